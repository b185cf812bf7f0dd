//! The Event module: `GCRegisterEvent` for `EVENT_NEW_BUFFER` on a data stream, and
//! `EventGetData` / `EventKill` / `EventFlush` on it. Other events are not produced
//! (`GC_ERR_NOT_IMPLEMENTED`, which consumers such as Harvesters expect for module events).

use crate::abi::*;
use crate::error::{entry, fail, Result};
use crate::handles::{self, Object};
use crate::info::{self, Info};
use crate::stream::DataStream;
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

/// A registered NEW_BUFFER event.
#[derive(Debug)]
pub struct Event {
    stream: Arc<DataStream>,
}

impl Event {
    /// Its handle was closed (unregistered, or its stream closed): waits end.
    pub fn closed(&self) {
        self.stream.unregister_event();
    }
}

/// `GCRegisterEvent`.
///
/// # Safety
///
/// `event` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn GCRegisterEvent(module: Handle, kind: i32, event: *mut Handle) -> GcError {
    entry("GCRegisterEvent", || {
        if event.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phEvent is NULL");
        }
        let stream = match handles::lookup(module) {
            Some(Object::Stream(stream)) if kind == EVENT_NEW_BUFFER => stream,
            Some(_) => {
                return fail(
                    GC_ERR_NOT_IMPLEMENTED,
                    format!("event type {kind} is not produced by this module"),
                )
            }
            None => return fail(GC_ERR_INVALID_HANDLE, "not an open module handle"),
        };
        stream.register_event()?;
        let handle = handles::register(Object::Event(Arc::new(Event { stream })), module);
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { event.write_unaligned(handle) };
        Ok(())
    })
}

/// `GCUnregisterEvent`: a wait in progress ends with `GC_ERR_ABORT`.
#[no_mangle]
pub extern "C" fn GCUnregisterEvent(module: Handle, kind: i32) -> GcError {
    entry("GCUnregisterEvent", || {
        let stream = match handles::lookup(module) {
            Some(Object::Stream(stream)) if kind == EVENT_NEW_BUFFER => stream,
            Some(_) => return fail(GC_ERR_NOT_IMPLEMENTED, format!("event type {kind}")),
            None => return fail(GC_ERR_INVALID_HANDLE, "not an open module handle"),
        };
        let wanted = Arc::as_ptr(&stream);
        let handle = handles::find(
            |object| matches!(object, Object::Event(event) if Arc::as_ptr(&event.stream) == wanted),
        )
        .ok_or_else(|| {
            crate::error::Failure::new(GC_ERR_NOT_AVAILABLE, "NEW_BUFFER is not registered")
        })?;
        handles::close(handle)
    })
}

/// The wait's timeout: milliseconds, `GENTL_INFINITE` for none.
fn timeout(milliseconds: u64) -> Option<Duration> {
    (milliseconds != GENTL_INFINITE).then(|| Duration::from_millis(milliseconds))
}

/// `EventGetData`: waits for the next filled buffer and writes its
/// `EVENT_NEW_BUFFER_DATA` (buffer handle and `pPrivate`). `GC_ERR_TIMEOUT` when none came
/// in time, `GC_ERR_ABORT` after `EventKill`.
///
/// # Safety
///
/// `buffer` must be null or writable for `*size` bytes; `size` null or valid.
#[no_mangle]
pub unsafe extern "C" fn EventGetData(
    event: Handle,
    buffer: *mut c_void,
    size: *mut usize,
    timeout_ms: u64,
) -> GcError {
    entry("EventGetData", || {
        let event = handles::event(event)?;
        if buffer.is_null() || size.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "pBuffer or piSize is NULL");
        }
        let needed = size_of::<EventNewBufferData>();
        // SAFETY: non-null and valid (caller contract); any alignment.
        let capacity = unsafe { size.read_unaligned() };
        if capacity < needed {
            // SAFETY: as above.
            unsafe { size.write_unaligned(needed) };
            return fail(
                GC_ERR_BUFFER_TOO_SMALL,
                format!("EVENT_NEW_BUFFER_DATA needs {needed} bytes"),
            );
        }
        let (key, private) = event.stream.wait_new_buffer(timeout(timeout_ms))?;
        let data = EventNewBufferData {
            buffer_handle: key as Handle,
            user_pointer: private as *mut c_void,
        };
        // SAFETY: `buffer` is writable for `capacity >= needed` bytes (caller contract);
        // any alignment.
        unsafe {
            buffer.cast::<EventNewBufferData>().write_unaligned(data);
            size.write_unaligned(needed);
        }
        Ok(())
    })
}

/// `EventGetDataInfo`: `EVENT_DATA_ID` is the buffer handle, `EVENT_DATA_VALUE` its
/// `pPrivate` (both `PTR`).
///
/// # Safety
///
/// `input` null or valid for `input_size` bytes; the rest as every info call.
#[no_mangle]
pub unsafe extern "C" fn EventGetDataInfo(
    event: Handle,
    input: *const c_void,
    input_size: usize,
    command: i32,
    datatype: *mut InfoDatatype,
    out: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("EventGetDataInfo", || {
        handles::event(event)?;
        if input.is_null() || input_size < size_of::<EventNewBufferData>() {
            return fail(GC_ERR_INVALID_PARAMETER, "not an EVENT_NEW_BUFFER_DATA");
        }
        // SAFETY: valid for `input_size` bytes (caller contract), enough for the struct;
        // any alignment.
        let data = unsafe { input.cast::<EventNewBufferData>().read_unaligned() };
        let value = match command {
            EVENT_DATA_ID => Info::Ptr(data.buffer_handle as usize),
            EVENT_DATA_VALUE => Info::Ptr(data.user_pointer as usize),
            EVENT_DATA_NUMID => return fail(GC_ERR_NOT_AVAILABLE, "NEW_BUFFER has no numeric ID"),
            other => {
                return fail(
                    GC_ERR_INVALID_PARAMETER,
                    format!("no event data info command {other}"),
                )
            }
        };
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, out, size) }
    })
}

fn event_info(event: &Event, command: i32) -> Result<Info> {
    let (queued, fired) = event.stream.event_counts();
    Ok(match command {
        EVENT_EVENT_TYPE => Info::I32(EVENT_NEW_BUFFER),
        EVENT_NUM_IN_QUEUE => Info::Size(queued),
        EVENT_NUM_FIRED => Info::U64(fired),
        EVENT_SIZE_MAX | EVENT_INFO_DATA_SIZE_MAX => Info::Size(size_of::<EventNewBufferData>()),
        other => {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("no event info command {other}"),
            )
        }
    })
}

/// `EventGetInfo`.
///
/// # Safety
///
/// As every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn EventGetInfo(
    event: Handle,
    command: i32,
    datatype: *mut InfoDatatype,
    out: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("EventGetInfo", || {
        let event = handles::event(event)?;
        let value = event_info(&event, command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, out, size) }
    })
}

/// `EventFlush`: filled buffers not yet fetched go back to unqueued.
#[no_mangle]
pub extern "C" fn EventFlush(event: Handle) -> GcError {
    entry("EventFlush", || {
        handles::event(event)?.stream.flush_events();
        Ok(())
    })
}

/// `EventKill`: the `EventGetData` in progress, or the next one, returns `GC_ERR_ABORT`.
#[no_mangle]
pub extern "C" fn EventKill(event: Handle) -> GcError {
    entry("EventKill", || {
        handles::event(event)?.stream.kill();
        Ok(())
    })
}
