//! The Interface module (`IF*`): one interface, the PCIe bus, whose devices are the fgrab
//! cards present (`/dev/fgrabN`), each with the camera it carries.
//!
//! One interface rather than one per card: the camera link is internal to each card, so
//! the card is what a consumer picks, and a consumer that expects one interface for a
//! transport finds every card there.

use crate::abi::*;
use crate::device::{self, Device, Discovered};
use crate::error::{entry, fail, Result};
use crate::handles::{self, Object};
use crate::info::{self, Info};
use crate::system::id_argument;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

/// The interface's ID.
pub const INTERFACE_ID: &str = "fgrab-pcie";

/// An open interface.
#[derive(Debug)]
pub struct Interface {
    id: String,
    /// The cards found by the last `IFUpdateDeviceList`.
    devices: Mutex<Vec<Discovered>>,
}

impl Interface {
    /// The interface `id`, with no devices listed yet.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            devices: Mutex::new(Vec::new()),
        }
    }

    fn devices(&self) -> std::sync::MutexGuard<'_, Vec<Discovered>> {
        self.devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn discovered(&self, id: &str) -> Result<Discovered> {
        self.devices()
            .iter()
            .find(|device| device.id == id)
            .cloned()
            .ok_or_else(|| {
                crate::error::Failure::new(
                    GC_ERR_INVALID_ID,
                    format!("no device {id:?} (IFUpdateDeviceList lists the cards)"),
                )
            })
    }
}

/// `INTERFACE_INFO_*` of interface `id`.
pub fn info_for(id: &str, command: i32) -> Result<Info> {
    if id != INTERFACE_ID {
        return fail(GC_ERR_INVALID_ID, format!("no interface {id:?}"));
    }
    Ok(match command {
        INTERFACE_INFO_ID => Info::string(INTERFACE_ID),
        INTERFACE_INFO_DISPLAYNAME => Info::string("fgrab cards on PCIe"),
        INTERFACE_INFO_TLTYPE => Info::string(TL_TYPE),
        other => {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("no interface info command {other}"),
            )
        }
    })
}

/// `IFClose`, with the devices and streams opened from it.
#[no_mangle]
pub extern "C" fn IFClose(interface: Handle) -> GcError {
    entry("IFClose", || {
        handles::interface(interface)?;
        handles::close(interface)
    })
}

/// `IFGetInfo`.
///
/// # Safety
///
/// As every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn IFGetInfo(
    interface: Handle,
    command: i32,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("IFGetInfo", || {
        let interface = handles::interface(interface)?;
        let value = info_for(&interface.id, command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, buffer, size) }
    })
}

/// `IFUpdateDeviceList`: looks for `/dev/fgrabN` and asks each card for its identity.
///
/// # Safety
///
/// `changed` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn IFUpdateDeviceList(
    interface: Handle,
    changed: *mut Bool8,
    _timeout_ms: u64,
) -> GcError {
    entry("IFUpdateDeviceList", || {
        let interface = handles::interface(interface)?;
        let found = device::discover();
        let mut devices = interface.devices();
        let different = *devices != found;
        *devices = found;
        if !changed.is_null() {
            // SAFETY: non-null and writable (caller contract).
            unsafe { changed.write(Bool8::from(different)) };
        }
        Ok(())
    })
}

/// `IFGetNumDevices`.
///
/// # Safety
///
/// `count` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn IFGetNumDevices(interface: Handle, count: *mut u32) -> GcError {
    entry("IFGetNumDevices", || {
        let interface = handles::interface(interface)?;
        if count.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "piNumDevices is NULL");
        }
        let number = u32::try_from(interface.devices().len()).unwrap_or(u32::MAX);
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { count.write_unaligned(number) };
        Ok(())
    })
}

/// `IFGetDeviceID`.
///
/// # Safety
///
/// `id` null or writable for `*size` bytes; `size` null or valid.
#[no_mangle]
pub unsafe extern "C" fn IFGetDeviceID(
    interface: Handle,
    index: u32,
    id: *mut c_char,
    size: *mut usize,
) -> GcError {
    entry("IFGetDeviceID", || {
        let interface = handles::interface(interface)?;
        let devices = interface.devices();
        let Some(device) = devices.get(index as usize) else {
            return fail(
                GC_ERR_INVALID_INDEX,
                format!("no device {index}: {} listed", devices.len()),
            );
        };
        // SAFETY: forwarded caller contract.
        unsafe { info::write_string(&device.id, id, size) }
    })
}

/// `IFGetDeviceInfo`.
///
/// # Safety
///
/// `id` null or a C string; the rest as every info call.
#[no_mangle]
pub unsafe extern "C" fn IFGetDeviceInfo(
    interface: Handle,
    id: *const c_char,
    command: i32,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("IFGetDeviceInfo", || {
        let interface = handles::interface(interface)?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { id_argument(id) }?;
        let value = interface.discovered(&id)?.info(command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, buffer, size) }
    })
}

/// `IFOpenDevice`: opens the card for control (its remote port); the data stream opens
/// the card again for streaming when acquisition starts.
///
/// # Safety
///
/// `id` null or a C string; `device` null or writable.
#[no_mangle]
pub unsafe extern "C" fn IFOpenDevice(
    interface: Handle,
    id: *const c_char,
    access: i32,
    device: *mut Handle,
) -> GcError {
    entry("IFOpenDevice", || {
        let interface_object = handles::interface(interface)?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { id_argument(id) }?;
        if device.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phDevice is NULL");
        }
        if !matches!(
            access,
            DEVICE_ACCESS_READONLY | DEVICE_ACCESS_CONTROL | DEVICE_ACCESS_EXCLUSIVE
        ) {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("access flags {access}: READONLY, CONTROL or EXCLUSIVE"),
            );
        }
        let discovered = interface_object.discovered(&id)?;
        if handles::find(|object| matches!(object, Object::Device(open) if open.id() == id))
            .is_some()
        {
            return fail(
                GC_ERR_RESOURCE_IN_USE,
                format!("device {id:?} is already open"),
            );
        }
        let opened = Device::open(discovered, access, interface)?;
        let handle = handles::register(Object::Device(Arc::new(opened)), interface);
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { device.write_unaligned(handle) };
        Ok(())
    })
}

/// `IFGetParentTL`.
///
/// # Safety
///
/// `system` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn IFGetParentTL(interface: Handle, system: *mut Handle) -> GcError {
    entry("IFGetParentTL", || {
        handles::interface(interface)?;
        if system.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phSystem is NULL");
        }
        let parent = handles::find(|object| matches!(object, Object::System(_)))
            .ok_or_else(|| crate::error::Failure::new(GC_ERR_INVALID_HANDLE, "no system"))?;
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { system.write_unaligned(parent) };
        Ok(())
    })
}
