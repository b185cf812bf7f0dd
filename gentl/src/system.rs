//! The System module (`GC*` library calls and `TL*`): the producer itself and its one
//! interface.

use crate::abi::*;
use crate::error::{self, entry, entry_with, fail, Result};
use crate::handles::{self, Object};
use crate::info::{self, Info};
use crate::interface::{self, Interface};
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The open transport layer (`TLOpen`).
#[derive(Debug)]
pub struct System {
    /// `TLUpdateInterfaceList` has reported the list once.
    listed: AtomicBool,
}

impl System {
    /// A system module.
    pub fn new() -> Self {
        Self {
            listed: AtomicBool::new(false),
        }
    }
}

impl Default for System {
    fn default() -> Self {
        Self::new()
    }
}

/// The producer's file, as the dynamic loader knows it.
fn library_path() -> String {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let address = library_path as *const c_void;
    // SAFETY: `dladdr` only reads the address and fills `info`.
    let found = unsafe { libc::dladdr(address, info.as_mut_ptr()) };
    if found == 0 {
        return String::new();
    }
    // SAFETY: `dladdr` succeeded, so `info` is initialised.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string owned by the loader, valid while the library is.
    unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned()
}

/// `TL_INFO_*` (also `GCGetInfo`).
pub fn info(command: i32) -> Result<Info> {
    Ok(match command {
        TL_INFO_ID => Info::string("fgrab"),
        TL_INFO_VENDOR => Info::string("fgrab"),
        TL_INFO_MODEL => Info::string("fgrab GenTL producer"),
        TL_INFO_VERSION => Info::string(env!("CARGO_PKG_VERSION")),
        TL_INFO_TLTYPE => Info::string(TL_TYPE),
        TL_INFO_NAME => Info::string(
            std::path::Path::new(&library_path())
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "fgrab.cti".into()),
        ),
        TL_INFO_PATHNAME => Info::string(library_path()),
        TL_INFO_DISPLAYNAME => Info::string("fgrab PCIe frame grabbers"),
        TL_INFO_CHAR_ENCODING => Info::I32(TL_CHAR_ENCODING_ASCII),
        TL_INFO_GENTL_VER_MAJOR => Info::U32(1),
        TL_INFO_GENTL_VER_MINOR => Info::U32(6),
        other => {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("no TL info command {other}"),
            )
        }
    })
}

/// `GCInitLib`: the library's calls are allowed until `GCCloseLib`.
#[no_mangle]
pub extern "C" fn GCInitLib() -> GcError {
    entry_with("GCInitLib", false, || {
        if error::initialize() {
            Ok(())
        } else {
            fail(GC_ERR_RESOURCE_IN_USE, "already initialised")
        }
    })
}

/// `GCCloseLib`: closes every handle still open (streams stop, their buffers are let go).
#[no_mangle]
pub extern "C" fn GCCloseLib() -> GcError {
    entry("GCCloseLib", || {
        handles::close_all();
        error::deinitialize();
        Ok(())
    })
}

/// `GCGetInfo`: as `TLGetInfo`, without a handle.
///
/// # Safety
///
/// `datatype`, `buffer` and `size` as for every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn GCGetInfo(
    command: i32,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> GcError {
    // SAFETY: forwarded caller contract.
    entry("GCGetInfo", || unsafe {
        info::write(&info(command)?, datatype, buffer, size)
    })
}

/// `TLOpen`: one system per process.
///
/// # Safety
///
/// `system` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn TLOpen(system: *mut Handle) -> GcError {
    entry("TLOpen", || {
        if system.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phSystem is NULL");
        }
        if handles::find(|object| matches!(object, Object::System(_))).is_some() {
            return fail(GC_ERR_RESOURCE_IN_USE, "the system is already open");
        }
        let handle = handles::register(
            Object::System(Arc::new(System::new())),
            std::ptr::null_mut(),
        );
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { system.write_unaligned(handle) };
        Ok(())
    })
}

/// `TLClose`, with every interface, device and stream still open from it.
#[no_mangle]
pub extern "C" fn TLClose(system: Handle) -> GcError {
    entry("TLClose", || {
        handles::system(system)?;
        handles::close(system)
    })
}

/// `TLGetInfo`.
///
/// # Safety
///
/// As [`GCGetInfo`].
#[no_mangle]
pub unsafe extern "C" fn TLGetInfo(
    system: Handle,
    command: i32,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("TLGetInfo", || {
        handles::system(system)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&info(command)?, datatype, buffer, size) }
    })
}

/// `TLUpdateInterfaceList`: the list is fixed (one interface), so it changes only the
/// first time it is reported.
///
/// # Safety
///
/// `changed` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn TLUpdateInterfaceList(
    system: Handle,
    changed: *mut Bool8,
    _timeout_ms: u64,
) -> GcError {
    entry("TLUpdateInterfaceList", || {
        let system = handles::system(system)?;
        let first = !system.listed.swap(true, Ordering::AcqRel);
        if !changed.is_null() {
            // SAFETY: non-null and writable (caller contract).
            unsafe { changed.write(Bool8::from(first)) };
        }
        Ok(())
    })
}

/// `TLGetNumInterfaces`: 1.
///
/// # Safety
///
/// `count` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn TLGetNumInterfaces(system: Handle, count: *mut u32) -> GcError {
    entry("TLGetNumInterfaces", || {
        handles::system(system)?;
        if count.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "piNumIfaces is NULL");
        }
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { count.write_unaligned(1) };
        Ok(())
    })
}

/// `TLGetInterfaceID`.
///
/// # Safety
///
/// `id` null or writable for `*size` bytes; `size` null or valid.
#[no_mangle]
pub unsafe extern "C" fn TLGetInterfaceID(
    system: Handle,
    index: u32,
    id: *mut c_char,
    size: *mut usize,
) -> GcError {
    entry("TLGetInterfaceID", || {
        handles::system(system)?;
        if index != 0 {
            return fail(
                GC_ERR_INVALID_INDEX,
                format!("no interface {index}: there is one"),
            );
        }
        // SAFETY: forwarded caller contract.
        unsafe { info::write_string(interface::INTERFACE_ID, id, size) }
    })
}

/// Reads a C string ID argument.
///
/// # Safety
///
/// `id` must be null or a NUL-terminated string.
pub unsafe fn id_argument(id: *const c_char) -> Result<String> {
    if id.is_null() {
        return fail(GC_ERR_INVALID_PARAMETER, "the ID is NULL");
    }
    // SAFETY: non-null and NUL-terminated (caller contract).
    Ok(unsafe { CStr::from_ptr(id) }.to_string_lossy().into_owned())
}

/// `TLGetInterfaceInfo`.
///
/// # Safety
///
/// `id` null or a C string; the rest as [`GCGetInfo`].
#[no_mangle]
pub unsafe extern "C" fn TLGetInterfaceInfo(
    system: Handle,
    id: *const c_char,
    command: i32,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("TLGetInterfaceInfo", || {
        handles::system(system)?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { id_argument(id) }?;
        let value = interface::info_for(&id, command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, buffer, size) }
    })
}

/// `TLOpenInterface`.
///
/// # Safety
///
/// `id` null or a C string; `interface` null or writable.
#[no_mangle]
pub unsafe extern "C" fn TLOpenInterface(
    system: Handle,
    id: *const c_char,
    interface: *mut Handle,
) -> GcError {
    entry("TLOpenInterface", || {
        handles::system(system)?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { id_argument(id) }?;
        if interface.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phIface is NULL");
        }
        if id != interface::INTERFACE_ID {
            return fail(GC_ERR_INVALID_ID, format!("no interface {id:?}"));
        }
        if handles::find(|object| matches!(object, Object::Interface(_))).is_some() {
            return fail(
                GC_ERR_RESOURCE_IN_USE,
                format!("interface {id:?} is already open"),
            );
        }
        let handle = handles::register(Object::Interface(Arc::new(Interface::new(&id))), system);
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { interface.write_unaligned(handle) };
        Ok(())
    })
}
