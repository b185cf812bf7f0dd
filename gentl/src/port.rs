//! Ports: `GCReadPort`, `GCWritePort` and the port's XML URL, for the remote device port
//! (the camera) and for the modules' own ports.
//!
//! Remote device port address map:
//!
//! | addresses | what |
//! | --- | --- |
//! | `0x0` .. the feature window's end | the camera's feature registers ([`RemoteDevice`](crate::remote::RemoteDevice) `read`/`write`; the XML names them by these addresses) |
//! | [`REMOTE_XML_ADDRESS`] .. + its size | the card's GenICam XML, read only (URL `Local:fgrab.xml;100000000;<size>`) |
//!
//! The XML lives above any 32-bit feature address, so the window may grow without the
//! two meeting. Module ports (System, Interface, Device, DataStream) are read only and
//! hold just their own small XML at address 0: a `Root` category of constant strings
//! naming the module. Consumers build a node map for every port that has a URL
//! (Harvesters fails on a port with none), and the standard asks each module for one.

use crate::abi::*;
use crate::device::RemotePort;
use crate::error::{entry, fail, Failure, Result};
use crate::handles::{self, Object};
use crate::info::{self, Info};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// Where the remote device port serves the camera's XML.
pub const REMOTE_XML_ADDRESS: u64 = 0x1_0000_0000;

/// The XML's file name in the remote device port's URL.
pub const REMOTE_XML_FILE: &str = "fgrab.xml";

/// A port, resolved from its handle.
enum Port {
    /// A module's own port.
    Module(ModulePort),
    /// The camera.
    Remote(Arc<RemotePort>),
}

struct ModulePort {
    /// `PORT_INFO_MODULE`.
    module: &'static str,
    /// `PORT_INFO_PORTNAME`, and the XML's `Port` node.
    name: &'static str,
    id: String,
    file: &'static str,
    xml: Vec<u8>,
}

/// A module port's XML: constant strings under `Root`.
fn module_xml(model: &str, port: &str, features: &[(&str, String)]) -> Vec<u8> {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <RegisterDescription ModelName=\"{model}\" VendorName=\"fgrab\" \
         ToolTip=\"fgrab GenTL producer: {model}\" StandardNameSpace=\"None\" \
         SchemaMajorVersion=\"1\" SchemaMinorVersion=\"1\" SchemaSubMinorVersion=\"0\" \
         MajorVersion=\"1\" MinorVersion=\"0\" SubMinorVersion=\"0\" \
         ProductGuid=\"3d1f4c2e-7a55-4b8e-9c61-2f0e8d5a7b90\" \
         VersionGuid=\"8b2e6d14-0c3f-4e7a-a951-6f4d2c8e1b37\" \
         xmlns=\"http://www.genicam.org/GenApi/Version_1_1\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.genicam.org/GenApi/Version_1_1 \
         http://www.genicam.org/GenApi/GenApiSchema_Version_1_1.xsd\">\n\
         <Category Name=\"Root\" NameSpace=\"Standard\">\n"
    );
    for (name, _) in features {
        xml.push_str(&format!("<pFeature>{name}</pFeature>\n"));
    }
    xml.push_str("</Category>\n");
    for (name, value) in features {
        xml.push_str(&format!(
            "<String Name=\"{name}\" NameSpace=\"Standard\">\n\
             <ImposedAccessMode>RO</ImposedAccessMode>\n\
             <Value>{}</Value>\n</String>\n",
            escape(value)
        ));
    }
    xml.push_str(&format!(
        "<Port Name=\"{port}\" NameSpace=\"Standard\"/>\n</RegisterDescription>\n"
    ));
    xml.into_bytes()
}

fn port(handle: Handle) -> Result<Port> {
    let module = |module, name, id: String, file, model, features: Vec<(&str, String)>| {
        Port::Module(ModulePort {
            module,
            name,
            xml: module_xml(model, name, &features),
            id,
            file,
        })
    };
    Ok(match handles::lookup(handle) {
        Some(Object::RemotePort(remote)) => Port::Remote(remote),
        Some(Object::System(_)) => module(
            "TLSystem",
            "TLPort",
            "fgrab".into(),
            "fgrab_system.xml",
            "fgrabSystem",
            vec![
                ("TLVendorName", "fgrab".into()),
                ("TLModelName", "fgrab GenTL producer".into()),
                ("TLVersion", env!("CARGO_PKG_VERSION").into()),
                ("TLType", TL_TYPE.into()),
            ],
        ),
        Some(Object::Interface(_)) => module(
            "TLInterface",
            "InterfacePort",
            crate::interface::INTERFACE_ID.into(),
            "fgrab_interface.xml",
            "fgrabInterface",
            vec![("InterfaceID", crate::interface::INTERFACE_ID.into())],
        ),
        Some(Object::Device(device)) => module(
            "TLDevice",
            "DevicePort",
            device.id().into(),
            "fgrab_device.xml",
            "fgrabDevice",
            vec![
                ("DeviceID", device.id().into()),
                ("DeviceVendorName", "fgrab".into()),
                ("DeviceType", TL_TYPE.into()),
            ],
        ),
        Some(Object::Stream(_)) => module(
            "TLDataStream",
            "StreamPort",
            crate::stream::STREAM_ID.into(),
            "fgrab_stream.xml",
            "fgrabDataStream",
            vec![("StreamID", crate::stream::STREAM_ID.into())],
        ),
        Some(Object::Buffer(_)) => {
            return fail(GC_ERR_NOT_IMPLEMENTED, "buffer modules have no port")
        }
        Some(Object::Event(_)) | None => {
            return fail(GC_ERR_INVALID_HANDLE, "not an open port handle")
        }
    })
}

/// The value of attribute `name` of the XML's root element (`SchemaMajorVersion`, ...).
pub fn xml_attribute(xml: &[u8], name: &str) -> Option<u32> {
    let text = std::str::from_utf8(xml.get(..4096.min(xml.len()))?).ok()?;
    let pattern = format!("{name}=\"");
    let mut from = 0;
    while let Some(found) = text[from..].find(&pattern) {
        let at = from + found;
        let preceded_by_space = text[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_whitespace);
        if preceded_by_space {
            let value = &text[at + pattern.len()..];
            return value[..value.find('"')?].trim().parse().ok();
        }
        from = at + pattern.len();
    }
    None
}

/// The port's one URL: its file, address and XML.
fn url(port: &Port) -> Result<(String, u64, Arc<Vec<u8>>)> {
    Ok(match port {
        Port::Module(module) => (module.file.to_string(), 0, Arc::new(module.xml.clone())),
        Port::Remote(remote) => (
            REMOTE_XML_FILE.to_string(),
            REMOTE_XML_ADDRESS,
            remote.xml()?,
        ),
    })
}

/// `Local:<file>;<address hex>;<size hex>`.
pub fn local_url(file: &str, address: u64, size: usize) -> String {
    format!("Local:{file};{address:x};{size:x}")
}

fn url_info(port: &Port, command: i32) -> Result<Info> {
    let (file, address, xml) = url(port)?;
    let version = |name: &str| Info::I32(xml_attribute(&xml, name).unwrap_or(0) as i32);
    Ok(match command {
        URL_INFO_URL => Info::string(local_url(&file, address, xml.len())),
        URL_INFO_SCHEMA_VER_MAJOR => version("SchemaMajorVersion"),
        URL_INFO_SCHEMA_VER_MINOR => version("SchemaMinorVersion"),
        URL_INFO_FILE_VER_MAJOR => version("MajorVersion"),
        URL_INFO_FILE_VER_MINOR => version("MinorVersion"),
        URL_INFO_FILE_VER_SUBMINOR => version("SubMinorVersion"),
        URL_INFO_FILE_REGISTER_ADDRESS => Info::U64(address),
        URL_INFO_FILE_SIZE => Info::U64(xml.len() as u64),
        URL_INFO_SCHEME => Info::I32(URL_SCHEME_LOCAL),
        URL_INFO_FILENAME => Info::string(file),
        URL_INFO_FILE_SHA1_HASH => return fail(GC_ERR_NOT_AVAILABLE, "no hash is published"),
        other => {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("no URL info command {other}"),
            )
        }
    })
}

fn port_info(port: &Port, command: i32) -> Result<Info> {
    let (module, name, id, writable) = match port {
        Port::Module(module) => (module.module, module.name, module.id.clone(), false),
        Port::Remote(remote) => ("Device", "Device", remote.id.clone(), true),
    };
    Ok(match command {
        PORT_INFO_ID => Info::string(id),
        PORT_INFO_VENDOR => Info::string("fgrab"),
        PORT_INFO_MODEL => Info::string(match port {
            Port::Module(_) => "fgrab GenTL producer",
            Port::Remote(_) => "fgrab camera",
        }),
        PORT_INFO_TLTYPE => Info::string(TL_TYPE),
        PORT_INFO_MODULE => Info::string(module),
        PORT_INFO_LITTLE_ENDIAN => Info::Bool(true),
        PORT_INFO_BIG_ENDIAN => Info::Bool(false),
        PORT_INFO_ACCESS_READ => Info::Bool(true),
        PORT_INFO_ACCESS_WRITE => Info::Bool(writable),
        PORT_INFO_ACCESS_NA | PORT_INFO_ACCESS_NI => Info::Bool(false),
        PORT_INFO_VERSION => Info::string(env!("CARGO_PKG_VERSION")),
        PORT_INFO_PORTNAME => Info::string(name),
        other => {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("no port info command {other}"),
            )
        }
    })
}

/// Copies `address..address + data.len()` of `xml` (at `base`), if the range is there.
fn read_xml(xml: &[u8], base: u64, address: u64, data: &mut [u8]) -> Option<()> {
    let start = usize::try_from(address.checked_sub(base)?).ok()?;
    let end = start.checked_add(data.len())?;
    data.copy_from_slice(xml.get(start..end)?);
    Some(())
}

fn read(port: &Port, address: u64, data: &mut [u8]) -> Result<()> {
    let length = data.len();
    let outside = || {
        Failure::new(
            GC_ERR_INVALID_ADDRESS,
            format!("{length} bytes at {address:#x} are outside the port"),
        )
    };
    match port {
        Port::Module(module) => read_xml(&module.xml, 0, address, data).ok_or_else(outside),
        Port::Remote(remote) if address >= REMOTE_XML_ADDRESS => {
            let xml = remote.xml()?;
            read_xml(&xml, REMOTE_XML_ADDRESS, address, data).ok_or_else(|| {
                Failure::new(
                    GC_ERR_INVALID_ADDRESS,
                    format!("{length} bytes at {address:#x} are outside the XML"),
                )
            })
        }
        Port::Remote(remote) => remote.remote.read(address, data),
    }
}

fn write(port: &Port, address: u64, data: &[u8]) -> Result<()> {
    match port {
        Port::Remote(remote) if address < REMOTE_XML_ADDRESS => remote.remote.write(address, data),
        _ => fail(GC_ERR_ACCESS_DENIED, format!("{address:#x} is read only")),
    }
}

/// `GCGetPortInfo`.
///
/// # Safety
///
/// As every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn GCGetPortInfo(
    handle: Handle,
    command: i32,
    datatype: *mut InfoDatatype,
    out: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("GCGetPortInfo", || {
        let value = port_info(&port(handle)?, command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, out, size) }
    })
}

/// `GCGetNumPortURLs`: 1.
///
/// # Safety
///
/// `count` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn GCGetNumPortURLs(handle: Handle, count: *mut u32) -> GcError {
    entry("GCGetNumPortURLs", || {
        let port = port(handle)?;
        if count.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "piNumURLs is NULL");
        }
        // The remote port has a URL only if the camera has an XML.
        url(&port)?;
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { count.write_unaligned(1) };
        Ok(())
    })
}

/// `GCGetPortURL` (deprecated since GenTL 1.1, kept for old consumers): the one URL.
///
/// # Safety
///
/// `out` null or writable for `*size` bytes; `size` null or valid.
#[no_mangle]
pub unsafe extern "C" fn GCGetPortURL(
    handle: Handle,
    out: *mut c_char,
    size: *mut usize,
) -> GcError {
    entry("GCGetPortURL", || {
        let (file, address, xml) = url(&port(handle)?)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write_string(&local_url(&file, address, xml.len()), out, size) }
    })
}

/// `GCGetPortURLInfo`.
///
/// # Safety
///
/// As every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn GCGetPortURLInfo(
    handle: Handle,
    index: u32,
    command: i32,
    datatype: *mut InfoDatatype,
    out: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("GCGetPortURLInfo", || {
        let port = port(handle)?;
        if index != 0 {
            return fail(
                GC_ERR_INVALID_INDEX,
                format!("no URL {index}: there is one"),
            );
        }
        let value = url_info(&port, command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, out, size) }
    })
}

/// `GCReadPort`.
///
/// # Safety
///
/// `out` null or writable for `*size` bytes; `size` null or valid.
#[no_mangle]
pub unsafe extern "C" fn GCReadPort(
    handle: Handle,
    address: u64,
    out: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("GCReadPort", || {
        let port = port(handle)?;
        if out.is_null() || size.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "pBuffer or piSize is NULL");
        }
        // SAFETY: non-null and valid (caller contract); any alignment.
        let length = unsafe { size.read_unaligned() };
        // SAFETY: `out` is writable for `length` bytes (caller contract).
        let data = unsafe { std::slice::from_raw_parts_mut(out.cast::<u8>(), length) };
        let result = read(&port, address, data);
        if result.is_err() {
            // SAFETY: as above.
            unsafe { size.write_unaligned(0) };
        }
        result
    })
}

/// `GCWritePort`: remote device port only; module ports are read only.
///
/// # Safety
///
/// `data` null or readable for `*size` bytes; `size` null or valid.
#[no_mangle]
pub unsafe extern "C" fn GCWritePort(
    handle: Handle,
    address: u64,
    data: *const c_void,
    size: *mut usize,
) -> GcError {
    entry("GCWritePort", || {
        let port = port(handle)?;
        if data.is_null() || size.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "pBuffer or piSize is NULL");
        }
        // SAFETY: non-null and valid (caller contract); any alignment.
        let length = unsafe { size.read_unaligned() };
        // SAFETY: `data` is readable for `length` bytes (caller contract).
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), length) };
        let result = write(&port, address, bytes);
        if result.is_err() {
            // SAFETY: as above.
            unsafe { size.write_unaligned(0) };
        }
        result
    })
}

/// Runs `access` on each entry of a stacked port call; `*count` becomes the number done.
///
/// # Safety
///
/// `entries` null or valid for `*count` entries; `count` null or valid.
unsafe fn stacked(
    entries: *mut PortRegisterStackEntry,
    count: *mut usize,
    mut access: impl FnMut(&PortRegisterStackEntry) -> Result<()>,
) -> Result<()> {
    if entries.is_null() || count.is_null() {
        return fail(GC_ERR_INVALID_PARAMETER, "pEntries or piNumEntries is NULL");
    }
    // SAFETY: valid (caller contract); any alignment.
    let total = unsafe { count.read_unaligned() };
    for index in 0..total {
        // SAFETY: `entries` is valid for `total` entries (caller contract); packed.
        let entry = unsafe { entries.add(index).read_unaligned() };
        if let Err(failure) = access(&entry) {
            // SAFETY: as above.
            unsafe { count.write_unaligned(index) };
            return Err(failure);
        }
    }
    Ok(())
}

/// `GCReadPortStacked`.
///
/// # Safety
///
/// As [`stacked`], each entry's buffer writable for its size.
#[no_mangle]
pub unsafe extern "C" fn GCReadPortStacked(
    handle: Handle,
    entries: *mut PortRegisterStackEntry,
    count: *mut usize,
) -> GcError {
    entry("GCReadPortStacked", || {
        let port = port(handle)?;
        let access = |entry: &PortRegisterStackEntry| {
            if entry.buffer.is_null() {
                return fail(GC_ERR_INVALID_PARAMETER, "an entry's buffer is NULL");
            }
            // SAFETY: the entry's buffer is writable for its size (caller contract).
            let data =
                unsafe { std::slice::from_raw_parts_mut(entry.buffer.cast::<u8>(), entry.size) };
            read(&port, entry.address, data)
        };
        // SAFETY: forwarded caller contract.
        unsafe { stacked(entries, count, access) }
    })
}

/// `GCWritePortStacked`.
///
/// # Safety
///
/// As [`stacked`], each entry's buffer readable for its size.
#[no_mangle]
pub unsafe extern "C" fn GCWritePortStacked(
    handle: Handle,
    entries: *mut PortRegisterStackEntry,
    count: *mut usize,
) -> GcError {
    entry("GCWritePortStacked", || {
        let port = port(handle)?;
        let access = |entry: &PortRegisterStackEntry| {
            if entry.buffer.is_null() {
                return fail(GC_ERR_INVALID_PARAMETER, "an entry's buffer is NULL");
            }
            // SAFETY: the entry's buffer is readable for its size (caller contract).
            let data = unsafe { std::slice::from_raw_parts(entry.buffer.cast::<u8>(), entry.size) };
            write(&port, entry.address, data)
        };
        // SAFETY: forwarded caller contract.
        unsafe { stacked(entries, count, access) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_local_with_hex_address_and_size() {
        assert_eq!(
            local_url(REMOTE_XML_FILE, REMOTE_XML_ADDRESS, 0x2f1c),
            "Local:fgrab.xml;100000000;2f1c"
        );
    }

    #[test]
    fn xml_attributes_are_found_by_whole_name() {
        let xml = b"<RegisterDescription SchemaMajorVersion=\"1\" SchemaMinorVersion=\"1\"\n  MajorVersion=\"2\" MinorVersion=\"3\">";
        assert_eq!(xml_attribute(xml, "MajorVersion"), Some(2));
        assert_eq!(xml_attribute(xml, "SchemaMinorVersion"), Some(1));
        assert_eq!(xml_attribute(xml, "MinorVersion"), Some(3));
        assert_eq!(xml_attribute(xml, "SubMinorVersion"), None);
    }

    #[test]
    fn xml_reads_stay_inside_the_file() {
        let xml = b"0123456789";
        let mut out = [0u8; 4];
        assert!(read_xml(xml, 0x100, 0x106, &mut out).is_some());
        assert_eq!(&out, b"6789");
        assert!(read_xml(xml, 0x100, 0x107, &mut out).is_none());
        assert!(read_xml(xml, 0x100, 0xff, &mut out).is_none());
    }

    #[test]
    fn module_xml_escapes_values() {
        let xml = module_xml("m", "P", &[("A", "a<b".into())]);
        let text = String::from_utf8(xml).unwrap();
        assert!(text.contains("<Value>a&lt;b</Value>"));
        assert!(text.contains("<Port Name=\"P\""));
    }
}
