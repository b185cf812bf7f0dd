//! The Device module (`Dev*`): a card and the camera it carries. The device's remote port
//! ([`RemotePort`], `DevGetPort`) is the camera; its one data stream is the card's DMA.

use crate::abi::*;
use crate::error::{entry, fail, Result};
use crate::handles::{self, Object};
use crate::info::{self, Info};
use crate::remote::{Attachment, CameraRemote, RemoteDevice};
use crate::stream::{DataStream, STREAM_ID};
use crate::system::id_argument;
use fgrab::Card;
use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A card found by `IFUpdateDeviceList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// `fgrabN`.
    pub id: String,
    /// `/dev/fgrabN`.
    pub path: PathBuf,
    /// What the card said, or why it could not be asked.
    pub identity: std::result::Result<Identity, String>,
}

/// A card's identity, from its `INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `vvvv:dddd`.
    pub pci_id: String,
    /// `dddd:bb:dd.f`.
    pub pci_location: String,
    /// `major.minor` of the hardware interface.
    pub hw_version: String,
}

/// Cards present, in node order.
pub fn discover() -> Vec<Discovered> {
    fgrab::card_numbers()
        .into_iter()
        .map(|number| {
            let path = PathBuf::from(format!("/dev/fgrab{number}"));
            let identity = Card::open(&path)
                .and_then(|mut card| card.info())
                .map(|info| {
                    let location = info.pci_location;
                    Identity {
                        pci_id: format!("{:04x}:{:04x}", info.vendor_id, info.device_id),
                        pci_location: format!(
                            "{:04x}:{:02x}:{:02x}.{}",
                            location >> 16,
                            (location >> 8) & 0xff,
                            (location >> 3) & 0x1f,
                            location & 0x7
                        ),
                        hw_version: format!(
                            "{}.{}",
                            info.hw_version >> 16,
                            info.hw_version & 0xffff
                        ),
                    }
                })
                .map_err(|error| error.to_string());
            Discovered {
                id: format!("fgrab{number}"),
                path,
                identity,
            }
        })
        .collect()
}

impl Discovered {
    /// `DEVICE_INFO_*`.
    pub fn info(&self, command: i32) -> Result<Info> {
        self.info_with(command, false)
    }

    fn info_with(&self, command: i32, open: bool) -> Result<Info> {
        let identity = self.identity.as_ref();
        Ok(match command {
            DEVICE_INFO_ID => Info::string(&self.id),
            DEVICE_INFO_VENDOR => Info::string("fgrab"),
            DEVICE_INFO_MODEL => Info::string(match identity {
                Ok(identity) => format!("fgrab PCIe card {}", identity.pci_id),
                Err(_) => "fgrab PCIe card".into(),
            }),
            DEVICE_INFO_TLTYPE => Info::string(TL_TYPE),
            DEVICE_INFO_DISPLAYNAME => Info::string(match identity {
                Ok(identity) => format!("{} (PCI {})", self.id, identity.pci_location),
                Err(_) => self.id.clone(),
            }),
            DEVICE_INFO_ACCESS_STATUS => Info::I32(match (identity, open) {
                (_, true) => DEVICE_ACCESS_STATUS_OPEN_READWRITE,
                (Ok(_), false) => DEVICE_ACCESS_STATUS_READWRITE,
                (Err(_), false) => DEVICE_ACCESS_STATUS_NOACCESS,
            }),
            // The PCI location: stable for a slot, unlike the node number.
            DEVICE_INFO_SERIAL_NUMBER => match identity {
                Ok(identity) => Info::string(&identity.pci_location),
                Err(error) => return fail(GC_ERR_NOT_AVAILABLE, error.clone()),
            },
            DEVICE_INFO_VERSION => match identity {
                Ok(identity) => Info::string(format!("hardware {}", identity.hw_version)),
                Err(error) => return fail(GC_ERR_NOT_AVAILABLE, error.clone()),
            },
            // Timestamps are CLOCK_MONOTONIC nanoseconds.
            DEVICE_INFO_TIMESTAMP_FREQUENCY => Info::U64(1_000_000_000),
            DEVICE_INFO_USER_DEFINED_NAME => {
                return fail(GC_ERR_NOT_AVAILABLE, "cards have no user-defined name")
            }
            other => {
                return fail(
                    GC_ERR_INVALID_PARAMETER,
                    format!("no device info command {other}"),
                )
            }
        })
    }
}

/// The remote device port of an open device: the camera.
#[derive(Debug)]
pub struct RemotePort {
    /// `fgrabN`.
    pub id: String,
    /// The camera.
    pub remote: Box<dyn RemoteDevice>,
    /// The XML, read once from the card.
    xml: Mutex<Option<Arc<Vec<u8>>>>,
}

impl RemotePort {
    /// The camera's XML (read from the card the first time).
    pub fn xml(&self) -> Result<Arc<Vec<u8>>> {
        let mut cached = self
            .xml
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(xml) = cached.as_ref() {
            return Ok(xml.clone());
        }
        let xml = Arc::new(self.remote.xml()?);
        *cached = Some(xml.clone());
        Ok(xml)
    }
}

/// An open device.
#[derive(Debug)]
pub struct Device {
    discovered: Discovered,
    /// The `IF_HANDLE` it was opened from.
    interface: usize,
    port: Arc<RemotePort>,
    /// The region its data stream attached, if any: which file writes the camera.
    attachment: Arc<Attachment>,
}

impl Device {
    /// Opens the card of `discovered` for control.
    pub fn open(discovered: Discovered, _access: i32, interface: Handle) -> Result<Self> {
        let card = Card::open(&discovered.path)?;
        let attachment = Arc::new(Attachment::default());
        let remote = CameraRemote::new(card, attachment.clone());
        Ok(Self::with_remote(
            discovered,
            Box::new(remote),
            attachment,
            interface,
        ))
    }

    /// A device whose camera is `remote`, whose writes follow `attachment` (tests use a
    /// model of their own).
    pub fn with_remote(
        discovered: Discovered,
        remote: Box<dyn RemoteDevice>,
        attachment: Arc<Attachment>,
        interface: Handle,
    ) -> Self {
        let port = Arc::new(RemotePort {
            id: discovered.id.clone(),
            remote,
            xml: Mutex::new(None),
        });
        Self {
            discovered,
            interface: interface as usize,
            port,
            attachment,
        }
    }

    /// `fgrabN`.
    pub fn id(&self) -> &str {
        &self.discovered.id
    }

    /// The node the data stream opens.
    pub fn path(&self) -> &std::path::Path {
        &self.discovered.path
    }

    /// The remote device port.
    pub fn port(&self) -> &Arc<RemotePort> {
        &self.port
    }

    /// Where its data stream attaches regions (and so which file writes the camera).
    pub fn attachment(&self) -> &Arc<Attachment> {
        &self.attachment
    }
}

/// `DevClose`, with its port and streams.
#[no_mangle]
pub extern "C" fn DevClose(device: Handle) -> GcError {
    entry("DevClose", || {
        handles::device(device)?;
        handles::close(device)
    })
}

/// `DevGetInfo`.
///
/// # Safety
///
/// As every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn DevGetInfo(
    device: Handle,
    command: i32,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("DevGetInfo", || {
        let device = handles::device(device)?;
        let value = device.discovered.info_with(command, true)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, buffer, size) }
    })
}

/// `DevGetNumDataStreams`: 1.
///
/// # Safety
///
/// `count` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DevGetNumDataStreams(device: Handle, count: *mut u32) -> GcError {
    entry("DevGetNumDataStreams", || {
        handles::device(device)?;
        if count.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "piNumDataStreams is NULL");
        }
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { count.write_unaligned(1) };
        Ok(())
    })
}

/// `DevGetDataStreamID`.
///
/// # Safety
///
/// `id` null or writable for `*size` bytes; `size` null or valid.
#[no_mangle]
pub unsafe extern "C" fn DevGetDataStreamID(
    device: Handle,
    index: u32,
    id: *mut c_char,
    size: *mut usize,
) -> GcError {
    entry("DevGetDataStreamID", || {
        handles::device(device)?;
        if index != 0 {
            return fail(
                GC_ERR_INVALID_INDEX,
                format!("no stream {index}: there is one"),
            );
        }
        // SAFETY: forwarded caller contract.
        unsafe { info::write_string(STREAM_ID, id, size) }
    })
}

/// `DevOpenDataStream`.
///
/// # Safety
///
/// `id` null or a C string; `stream` null or writable.
#[no_mangle]
pub unsafe extern "C" fn DevOpenDataStream(
    device: Handle,
    id: *const c_char,
    stream: *mut Handle,
) -> GcError {
    entry("DevOpenDataStream", || {
        let device_object = handles::device(device)?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { id_argument(id) }?;
        if stream.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phDataStream is NULL");
        }
        if id != STREAM_ID {
            return fail(GC_ERR_INVALID_ID, format!("no stream {id:?}"));
        }
        let this_device = Arc::as_ptr(&device_object);
        if handles::find(|object| {
            matches!(object, Object::Stream(open) if Arc::as_ptr(open.device()) == this_device)
        })
        .is_some()
        {
            return fail(GC_ERR_RESOURCE_IN_USE, "the stream is already open");
        }
        let opened = DataStream::new(device_object);
        let handle = handles::register(Object::Stream(Arc::new(opened)), device);
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { stream.write_unaligned(handle) };
        Ok(())
    })
}

/// `DevGetPort`: the remote device port (the camera), the same handle each time.
///
/// # Safety
///
/// `port` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DevGetPort(device: Handle, port: *mut Handle) -> GcError {
    entry("DevGetPort", || {
        let device_object = handles::device(device)?;
        if port.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phRemoteDev is NULL");
        }
        let wanted = Arc::as_ptr(&device_object.port);
        let handle = handles::find(
            |object| matches!(object, Object::RemotePort(open) if Arc::as_ptr(open) == wanted),
        )
        .unwrap_or_else(|| {
            handles::register(Object::RemotePort(device_object.port.clone()), device)
        });
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { port.write_unaligned(handle) };
        Ok(())
    })
}

/// `DevGetParentIF`.
///
/// # Safety
///
/// `interface` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DevGetParentIF(device: Handle, interface: *mut Handle) -> GcError {
    entry("DevGetParentIF", || {
        let device = handles::device(device)?;
        if interface.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phIface is NULL");
        }
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { interface.write_unaligned(device.interface as Handle) };
        Ok(())
    })
}
