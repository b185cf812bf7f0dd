//! Handles: what the consumer holds for each open module is the address of the module's
//! reference-counted object, and every call looks it up in one registry before using it.
//! A stale, foreign or mistyped handle is therefore `GC_ERR_INVALID_HANDLE`, never a
//! dereference: no handle is ever turned back into a pointer.
//!
//! Each entry names its owner (the module it was opened from), so that closing a module
//! closes what was opened from it. Objects leave the registry under its lock and are dropped
//! after it is released, since ending a stream may take a while.

use crate::abi::*;
use crate::device::{Device, RemotePort};
use crate::error::{fail, Result};
use crate::event::Event;
use crate::interface::Interface;
use crate::stream::{BufferObject, DataStream};
use crate::system::System;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A registered module.
#[derive(Clone)]
pub enum Object {
    /// `TL_HANDLE`.
    System(Arc<System>),
    /// `IF_HANDLE`.
    Interface(Arc<Interface>),
    /// `DEV_HANDLE`.
    Device(Arc<Device>),
    /// The `PORT_HANDLE` of `DevGetPort`.
    RemotePort(Arc<RemotePort>),
    /// `DS_HANDLE`.
    Stream(Arc<DataStream>),
    /// `BUFFER_HANDLE`.
    Buffer(Arc<BufferObject>),
    /// `EVENT_HANDLE`.
    Event(Arc<Event>),
}

impl Object {
    /// The handle: the object's address, unique while the object lives (the registry
    /// keeps it alive while registered).
    fn address(&self) -> usize {
        match self {
            Object::System(object) => Arc::as_ptr(object) as usize,
            Object::Interface(object) => Arc::as_ptr(object) as usize,
            Object::Device(object) => Arc::as_ptr(object) as usize,
            Object::RemotePort(object) => Arc::as_ptr(object) as usize,
            Object::Stream(object) => Arc::as_ptr(object) as usize,
            Object::Buffer(object) => Arc::as_ptr(object) as usize,
            Object::Event(object) => Arc::as_ptr(object) as usize,
        }
    }

    /// Called once the object left the registry: wakes its waiters, stops what it runs.
    fn closed(&self) {
        match self {
            Object::Stream(stream) => stream.closed(),
            Object::Event(event) => event.closed(),
            _ => {}
        }
    }
}

struct Entry {
    object: Object,
    owner: usize,
}

static REGISTRY: Mutex<Option<HashMap<usize, Entry>>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<HashMap<usize, Entry>>> {
    // Every critical section leaves the map consistent before it can panic.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers `object`, opened from `owner` (null for the system), and returns its handle.
pub fn register(object: Object, owner: Handle) -> Handle {
    let address = object.address();
    registry().get_or_insert_with(HashMap::new).insert(
        address,
        Entry {
            object,
            owner: owner as usize,
        },
    );
    address as Handle
}

/// The object behind `handle`, if it is registered.
pub fn lookup(handle: Handle) -> Option<Object> {
    registry()
        .as_ref()?
        .get(&(handle as usize))
        .map(|entry| entry.object.clone())
}

/// Whether an object of this kind is registered (for "already open" checks).
pub fn find(matches: impl Fn(&Object) -> bool) -> Option<Handle> {
    registry()
        .as_ref()?
        .iter()
        .find_map(|(address, entry)| matches(&entry.object).then_some(*address as Handle))
}

/// Removes `handle` and everything opened from it, then tells each removed object it is
/// closed and drops it, outside the registry's lock.
pub fn close(handle: Handle) -> Result<()> {
    let removed = {
        let mut guard = registry();
        let Some(map) = guard.as_mut() else {
            return fail(GC_ERR_INVALID_HANDLE, "not an open handle");
        };
        if !map.contains_key(&(handle as usize)) {
            return fail(GC_ERR_INVALID_HANDLE, "not an open handle");
        }
        let mut removed = Vec::new();
        let mut pending = vec![handle as usize];
        while let Some(address) = pending.pop() {
            if let Some(entry) = map.remove(&address) {
                pending.extend(
                    map.iter()
                        .filter(|(_, child)| child.owner == address)
                        .map(|(child, _)| *child),
                );
                removed.push(entry.object);
            }
        }
        removed
    };
    // Children first: events and buffers before their stream, streams before devices.
    for object in removed.iter().rev() {
        object.closed();
    }
    drop(removed);
    Ok(())
}

/// Closes every handle (`GCCloseLib`).
pub fn close_all() {
    let removed: Vec<Object> = registry()
        .take()
        .map(|map| map.into_values().map(|entry| entry.object).collect())
        .unwrap_or_default();
    for object in &removed {
        object.closed();
    }
}

macro_rules! typed {
    ($name:ident, $variant:ident, $type:ty, $what:literal) => {
        #[doc = concat!("The ", $what, " behind `handle`, or `GC_ERR_INVALID_HANDLE`.")]
        pub fn $name(handle: Handle) -> Result<Arc<$type>> {
            match lookup(handle) {
                Some(Object::$variant(object)) => Ok(object),
                _ => fail(
                    GC_ERR_INVALID_HANDLE,
                    concat!("not an open ", $what, " handle"),
                ),
            }
        }
    };
}

typed!(system, System, System, "system (TL_HANDLE)");
typed!(interface, Interface, Interface, "interface (IF_HANDLE)");
typed!(device, Device, Device, "device (DEV_HANDLE)");
typed!(stream, Stream, DataStream, "data stream (DS_HANDLE)");
typed!(buffer, Buffer, BufferObject, "buffer (BUFFER_HANDLE)");
typed!(event, Event, Event, "event (EVENT_HANDLE)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_mistyped_handles_are_invalid() {
        assert_eq!(
            system(0x1234 as Handle).unwrap_err().code,
            GC_ERR_INVALID_HANDLE
        );
        let handle = register(
            Object::System(Arc::new(System::new())),
            std::ptr::null_mut(),
        );
        assert!(system(handle).is_ok());
        assert_eq!(interface(handle).unwrap_err().code, GC_ERR_INVALID_HANDLE);
        close(handle).unwrap();
        assert_eq!(system(handle).unwrap_err().code, GC_ERR_INVALID_HANDLE);
        assert_eq!(close(handle).unwrap_err().code, GC_ERR_INVALID_HANDLE);
    }

    #[test]
    fn closing_an_owner_closes_what_was_opened_from_it() {
        let system_handle = register(
            Object::System(Arc::new(System::new())),
            std::ptr::null_mut(),
        );
        let interface_handle = register(
            Object::Interface(Arc::new(Interface::new(crate::interface::INTERFACE_ID))),
            system_handle,
        );
        close(system_handle).unwrap();
        assert!(lookup(interface_handle).is_none());
    }
}
