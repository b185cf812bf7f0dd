//! The DataStream and Buffer modules (`DS*`): announced buffers, their input pool and
//! output queue, acquisition, and the NEW_BUFFER wait behind `EventGetData`.
//!
//! Buffers are filled through one [`BufferPath`] (`path.rs`): [`ZeroCopyPath`], on which
//! the card writes each frame straight into an announced buffer (one region per buffer).
//! The data stream tells the path of every announce, queue, revoke, start, stop and close
//! under its lock, so that its pools and the card agree.
//!
//! Locking: one lock per stream (`state`), never held while a thread waits for the card
//! (the path waits without it, taking queued buffers through [`Targets`]), so that
//! `DSQueueBuffer`, `EventKill` and `DSStopAcquisition` from other threads never wait
//! behind `EventGetData`. The path's own lock is taken inside `state` at start, never the
//! other way round.

use crate::abi::*;
use crate::device::Device;
use crate::error::{entry, fail, Failure, Result};
use crate::handles::{self, Object};
use crate::info::{self, Info};
use crate::path::{BufferPath, Filled, Missed, Target, Targets};
use crate::remote::Image;
use crate::zero_copy::ZeroCopyPath;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The one stream's ID.
pub const STREAM_ID: &str = "stream0";

/// An announced buffer (`BUFFER_HANDLE`).
#[derive(Debug)]
pub struct BufferObject {
    /// First byte.
    base: usize,
    size: usize,
    /// The consumer's `pPrivate`.
    private: usize,
    /// Allocated by `DSAllocAndAnnounceBuffer` (freed on drop), else the consumer's.
    allocated: bool,
    /// The data stream it was announced to.
    stream: usize,
}

impl Drop for BufferObject {
    fn drop(&mut self) {
        if self.allocated {
            let memory = std::ptr::slice_from_raw_parts_mut(self.base as *mut u8, self.size);
            // SAFETY: `base..base + size` came from `Box::into_raw` in
            // `DSAllocAndAnnounceBuffer` and is freed only here, once: the buffer was
            // revoked or its stream closed, so no path fills it any more.
            drop(unsafe { Box::from_raw(memory) });
        }
    }
}

/// Where a buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Announced, not queued (revoked buffers leave the stream).
    Unqueued,
    /// In the input pool, waiting to be filled.
    Input,
    /// Being filled by the path.
    Filling,
    /// Filled, in the output queue, waiting for `EventGetData`.
    Output,
    /// Handed to the consumer by `EventGetData`.
    Delivered,
}

#[derive(Debug)]
struct Slot {
    object: Arc<BufferObject>,
    place: Place,
    /// A flush discarded it while it was being filled: unqueued once filled.
    discard: bool,
    /// The last fill, and the image it held.
    filled: Option<(Filled, Image)>,
    new_data: bool,
}

#[derive(Debug, Default)]
struct State {
    /// In announce order.
    slots: Vec<Slot>,
    input: VecDeque<usize>,
    output: VecDeque<usize>,
    acquiring: bool,
    /// Stopped without discarding: frames the card filled before are still delivered.
    draining: bool,
    image: Option<Image>,
    delivered: u64,
    underruns: u64,
    started: u64,
    /// Buffers still to deliver in this acquisition (`u64::MAX`: no limit).
    to_acquire: u64,
    /// `EventKill`s not yet consumed by a wait.
    kills: u32,
    /// A thread is waiting in the path.
    waiting: bool,
    closed: bool,
    /// The NEW_BUFFER event is registered.
    event: bool,
    fired: u64,
}

fn key(object: &Arc<BufferObject>) -> usize {
    Arc::as_ptr(object) as usize
}

/// What the path knows of a buffer.
fn target(object: &Arc<BufferObject>) -> Target {
    Target {
        key: key(object),
        base: object.base as *mut u8,
        size: object.size,
    }
}

impl State {
    fn slot(&mut self, key: usize) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|slot| Arc::as_ptr(&slot.object) as usize == key)
    }
}

/// An open data stream.
#[derive(Debug)]
pub struct DataStream {
    device: Arc<Device>,
    path: Box<dyn BufferPath>,
    state: Mutex<State>,
    changed: Condvar,
}

impl DataStream {
    /// The stream of `device`, filling buffers through the [`ZeroCopyPath`].
    pub fn new(device: Arc<Device>) -> Self {
        let path = Box::new(ZeroCopyPath::new(
            device.path().to_path_buf(),
            device.attachment().clone(),
        ));
        Self::with_path(device, path)
    }

    /// The stream of `device` with `path`.
    pub fn with_path(device: Arc<Device>, path: Box<dyn BufferPath>) -> Self {
        Self {
            device,
            path,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// The device it belongs to.
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stream's handle was closed: stop the card, let every buffer go, wake every
    /// waiter. Buffers whose end the card did not confirm are leaked, never freed.
    pub fn closed(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.acquiring = false;
        state.draining = false;
        self.path.cancel();
        if self.path.close().is_err() {
            for slot in &state.slots {
                std::mem::forget(slot.object.clone());
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Registers the NEW_BUFFER event.
    pub fn register_event(&self) -> Result<()> {
        let mut state = self.lock();
        if state.event {
            return fail(GC_ERR_RESOURCE_IN_USE, "NEW_BUFFER is already registered");
        }
        state.event = true;
        state.kills = 0;
        Ok(())
    }

    /// Unregisters the NEW_BUFFER event; waits end with `GC_ERR_ABORT`.
    pub fn unregister_event(&self) {
        self.lock().event = false;
        self.kill();
    }

    /// `EventKill`: ends the wait in progress, or the next one.
    pub fn kill(&self) {
        let mut state = self.lock();
        state.kills += 1;
        if state.waiting {
            self.path.cancel();
        }
        drop(state);
        self.changed.notify_all();
    }

    /// `EventFlush`: filled buffers not yet delivered go back to unqueued.
    pub fn flush_events(&self) {
        let mut state = self.lock();
        let output: Vec<usize> = state.output.drain(..).collect();
        for key in output {
            if let Some(slot) = state.slot(key) {
                slot.place = Place::Unqueued;
            }
        }
    }

    /// `EVENT_NUM_IN_QUEUE` and `EVENT_NUM_FIRED`.
    pub fn event_counts(&self) -> (usize, u64) {
        let state = self.lock();
        (state.output.len(), state.fired)
    }

    /// The NEW_BUFFER wait of `EventGetData`: the next filled buffer and its `pPrivate`.
    pub fn wait_new_buffer(&self, timeout: Option<Duration>) -> Result<(usize, usize)> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let mut state = self.lock();
        loop {
            if state.closed || !state.event {
                return fail(
                    GC_ERR_ABORT,
                    "the event was unregistered or its stream closed",
                );
            }
            if state.kills > 0 {
                state.kills -= 1;
                return fail(GC_ERR_ABORT, "EventKill");
            }
            if let Some(key) = state.output.pop_front() {
                let slot = state.slot(key).ok_or_else(|| {
                    Failure::new(GC_ERR_ERROR, "a queued buffer is not announced")
                })?;
                slot.place = Place::Delivered;
                return Ok((key, slot.object.private));
            }
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if !(state.acquiring || state.draining) {
                match left {
                    Some(left) if left.is_zero() => {
                        return fail(GC_ERR_TIMEOUT, "no buffer filled in time (not acquiring)")
                    }
                    Some(left) => {
                        state = self
                            .changed
                            .wait_timeout(state, left)
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .0;
                    }
                    None => {
                        state = self
                            .changed
                            .wait(state)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                }
                continue;
            }
            state.waiting = true;
            drop(state);
            let result = self.path.next(left, self, &|frames| {
                let mut state = self.lock();
                state.underruns = state.underruns.saturating_add(frames);
            });
            state = self.lock();
            state.waiting = false;
            match result {
                Ok((key, filled)) => {
                    let image = state.image.unwrap_or(Image {
                        width: 0,
                        height: 0,
                        pixel_format: 0,
                        payload_size: 0,
                    });
                    let Some(slot) = state.slot(key) else {
                        continue; // revoked while filled: nothing to deliver
                    };
                    slot.filled = Some((filled, image));
                    slot.new_data = true;
                    if slot.discard {
                        slot.discard = false;
                        slot.place = Place::Unqueued;
                        continue;
                    }
                    slot.place = Place::Output;
                    state.output.push_back(key);
                    state.delivered += 1;
                    state.fired += 1;
                    if state.to_acquire != u64::MAX {
                        state.to_acquire = state.to_acquire.saturating_sub(1);
                        if state.to_acquire == 0 && state.acquiring {
                            state.acquiring = false;
                            state.draining = false;
                            let _ = self.path.stop(false);
                        }
                    }
                }
                Err(Missed::Timeout) => return fail(GC_ERR_TIMEOUT, "no buffer filled in time"),
                // A cancel another wait already answered: wait again.
                Err(Missed::Canceled) => {}
                Err(Missed::Stopped) => state.draining = false,
                Err(Missed::Failed(failure)) => return Err(failure),
            }
        }
    }
}

impl Targets for DataStream {
    fn claim(&self, key: usize) -> bool {
        let mut state = self.lock();
        match state.slot(key) {
            Some(slot) if slot.place == Place::Input => slot.place = Place::Filling,
            _ => return false,
        }
        state.input.retain(|&queued| queued != key);
        true
    }

    fn take(&self) -> Option<Target> {
        let mut state = self.lock();
        let key = state.input.pop_front()?;
        let slot = state.slot(key)?;
        slot.place = Place::Filling;
        Some(Target {
            key,
            base: slot.object.base as *mut u8,
            size: slot.object.size,
        })
    }
}

/// The stream and one of its buffers.
fn stream_and_buffer(stream: Handle, buffer: Handle) -> Result<(Arc<DataStream>, usize)> {
    let stream_object = handles::stream(stream)?;
    let buffer_object = handles::buffer(buffer)?;
    if buffer_object.stream != Arc::as_ptr(&stream_object) as usize {
        return fail(
            GC_ERR_INVALID_HANDLE,
            "the buffer belongs to another stream",
        );
    }
    Ok((stream_object, key(&buffer_object)))
}

fn announce(
    stream: Handle,
    base: usize,
    size: usize,
    private: usize,
    allocated: bool,
) -> Result<Handle> {
    let stream_object = handles::stream(stream)?;
    let object = Arc::new(BufferObject {
        base,
        size,
        private,
        allocated,
        stream: Arc::as_ptr(&stream_object) as usize,
    });
    let mut state = stream_object.lock();
    if state.closed {
        return fail(GC_ERR_INVALID_HANDLE, "the stream is closed");
    }
    stream_object
        .path
        .announce(target(&object), state.acquiring)?;
    state.slots.push(Slot {
        object: object.clone(),
        place: Place::Unqueued,
        discard: false,
        filled: None,
        new_data: false,
    });
    Ok(handles::register(Object::Buffer(object), stream))
}

/// `DSAnnounceBuffer`: the consumer's memory, any alignment; it must stay allocated and
/// untouched while queued, until revoked.
///
/// # Safety
///
/// `base` must be valid for writes of `size` bytes until the buffer is revoked or the
/// stream closed; `buffer` null or writable.
#[no_mangle]
pub unsafe extern "C" fn DSAnnounceBuffer(
    stream: Handle,
    base: *mut c_void,
    size: usize,
    private: *mut c_void,
    buffer: *mut Handle,
) -> GcError {
    entry("DSAnnounceBuffer", || {
        if base.is_null() || size == 0 || buffer.is_null() {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                "pBuffer or phBuffer is NULL, or iSize 0",
            );
        }
        let handle = announce(stream, base as usize, size, private as usize, false)?;
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { buffer.write_unaligned(handle) };
        Ok(())
    })
}

/// `DSAllocAndAnnounceBuffer`: memory the producer allocates (zeroed) and frees at revoke.
///
/// # Safety
///
/// `buffer` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DSAllocAndAnnounceBuffer(
    stream: Handle,
    size: usize,
    private: *mut c_void,
    buffer: *mut Handle,
) -> GcError {
    entry("DSAllocAndAnnounceBuffer", || {
        if size == 0 || buffer.is_null() {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                "phBuffer is NULL or iBufferSize 0",
            );
        }
        handles::stream(stream)?;
        let mut memory = Vec::new();
        memory.try_reserve_exact(size).map_err(|_| {
            Failure::new(
                GC_ERR_OUT_OF_MEMORY,
                format!("cannot allocate {size} bytes"),
            )
        })?;
        memory.resize(size, 0u8);
        let base = Box::into_raw(memory.into_boxed_slice()) as *mut u8 as usize;
        let handle = announce(stream, base, size, private as usize, true);
        let handle = match handle {
            Ok(handle) => handle,
            Err(failure) => {
                let memory = std::ptr::slice_from_raw_parts_mut(base as *mut u8, size);
                // SAFETY: from `Box::into_raw` just above, owned by nothing else.
                drop(unsafe { Box::from_raw(memory) });
                return Err(failure);
            }
        };
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { buffer.write_unaligned(handle) };
        Ok(())
    })
}

/// `DSQueueBuffer`: into the input pool.
#[no_mangle]
pub extern "C" fn DSQueueBuffer(stream: Handle, buffer: Handle) -> GcError {
    entry("DSQueueBuffer", || {
        let (stream, key) = stream_and_buffer(stream, buffer)?;
        let mut state = stream.lock();
        let slot = state
            .slot(key)
            .ok_or_else(|| Failure::new(GC_ERR_INVALID_HANDLE, "revoked"))?;
        match slot.place {
            Place::Unqueued | Place::Delivered => {
                slot.place = Place::Input;
                slot.new_data = false;
                state.input.push_back(key);
                if state.acquiring {
                    // On the card at once; at start otherwise.
                    if let Err(failure) = stream.path.queue(key) {
                        state.input.retain(|&queued| queued != key);
                        if let Some(slot) = state.slot(key) {
                            slot.place = Place::Unqueued;
                        }
                        return Err(failure);
                    }
                }
                Ok(())
            }
            other => fail(
                GC_ERR_RESOURCE_IN_USE,
                format!("the buffer is already queued ({other:?})"),
            ),
        }
    })
}

/// `DSRevokeBuffer`: the buffer leaves the stream; its memory and `pPrivate` come back
/// (NULL memory for a buffer the producer allocated: it is freed).
///
/// # Safety
///
/// `base` and `private` must each be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DSRevokeBuffer(
    stream: Handle,
    buffer: Handle,
    base: *mut *mut c_void,
    private: *mut *mut c_void,
) -> GcError {
    entry("DSRevokeBuffer", || {
        let (stream_object, key) = stream_and_buffer(stream, buffer)?;
        let object = {
            let mut state = stream_object.lock();
            let index = state
                .slots
                .iter()
                .position(|slot| Arc::as_ptr(&slot.object) as usize == key)
                .ok_or_else(|| Failure::new(GC_ERR_INVALID_HANDLE, "revoked"))?;
            let place = state.slots[index].place;
            if !matches!(place, Place::Unqueued | Place::Delivered) {
                return fail(
                    GC_ERR_BUSY,
                    format!("the buffer is queued ({place:?}): DSFlushQueue first"),
                );
            }
            // The card lets go of the buffer first (the others keep streaming).
            let revoked = stream_object.path.revoke(key);
            let object = state.slots.remove(index).object;
            if let Err(failure) = revoked {
                // The card might still write it: never freed, never given back.
                std::mem::forget(object);
                drop(state);
                let _ = handles::close(buffer);
                return Err(failure);
            }
            object
        };
        handles::close(buffer)?;
        let memory = if object.allocated { 0 } else { object.base };
        if !base.is_null() {
            // SAFETY: non-null and writable (caller contract); any alignment.
            unsafe { base.write_unaligned(memory as *mut c_void) };
        }
        if !private.is_null() {
            // SAFETY: as above.
            unsafe { private.write_unaligned(object.private as *mut c_void) };
        }
        Ok(())
    })
}

/// `DSFlushQueue`.
#[no_mangle]
pub extern "C" fn DSFlushQueue(stream: Handle, operation: i32) -> GcError {
    entry("DSFlushQueue", || {
        let stream = handles::stream(stream)?;
        let mut state = stream.lock();
        let state = &mut *state;
        let set = |slots: &mut Vec<Slot>, key: usize, place: Place| {
            if let Some(slot) = slots
                .iter_mut()
                .find(|slot| Arc::as_ptr(&slot.object) as usize == key)
            {
                slot.place = place;
            }
        };
        match operation {
            // While acquiring, every buffer of the input pool is on the card, being filled:
            // GenTL leaves those alone (handing one out would let the card write into memory
            // the consumer reads).
            ACQ_QUEUE_INPUT_TO_OUTPUT if state.acquiring => {}
            ACQ_QUEUE_INPUT_TO_OUTPUT => {
                for key in state.input.drain(..).collect::<Vec<_>>() {
                    set(&mut state.slots, key, Place::Output);
                    state.output.push_back(key);
                    state.fired += 1;
                }
            }
            ACQ_QUEUE_OUTPUT_DISCARD => {
                for key in state.output.drain(..).collect::<Vec<_>>() {
                    set(&mut state.slots, key, Place::Unqueued);
                }
            }
            ACQ_QUEUE_ALL_TO_INPUT | ACQ_QUEUE_UNQUEUED_TO_INPUT => {
                let all = operation == ACQ_QUEUE_ALL_TO_INPUT;
                if all {
                    state.output.clear();
                }
                for slot in &mut state.slots {
                    let moves = match slot.place {
                        Place::Unqueued | Place::Delivered => true,
                        Place::Output => all,
                        Place::Input | Place::Filling => false,
                    };
                    if moves {
                        slot.place = Place::Input;
                        state.input.push_back(Arc::as_ptr(&slot.object) as usize);
                    }
                }
                if state.acquiring {
                    // The moved buffers go on the card now (the others are on it).
                    for &key in &state.input {
                        stream.path.queue(key)?;
                    }
                }
            }
            ACQ_QUEUE_ALL_DISCARD => {
                state.input.clear();
                state.output.clear();
                for slot in &mut state.slots {
                    match slot.place {
                        Place::Input | Place::Output => slot.place = Place::Unqueued,
                        Place::Filling => slot.discard = true,
                        Place::Unqueued | Place::Delivered => {}
                    }
                }
            }
            other => {
                return fail(
                    GC_ERR_INVALID_PARAMETER,
                    format!("no flush operation {other}"),
                )
            }
        }
        stream.changed.notify_all();
        Ok(())
    })
}

/// `DSStartAcquisition`: reads the image geometry from the camera and starts the card.
/// `iNumToAcquire` buffers are delivered, then acquisition stops (`GENTL_INFINITE`: no
/// limit).
#[no_mangle]
pub extern "C" fn DSStartAcquisition(stream: Handle, flags: i32, count: u64) -> GcError {
    entry("DSStartAcquisition", || {
        let stream = handles::stream(stream)?;
        if flags != ACQ_START_FLAGS_DEFAULT {
            return fail(GC_ERR_INVALID_PARAMETER, format!("start flags {flags}"));
        }
        let image = stream.device.port().remote.image()?;
        let mut state = stream.lock();
        if state.acquiring {
            return fail(GC_ERR_RESOURCE_IN_USE, "acquisition is already running");
        }
        if state.slots.is_empty() {
            return fail(GC_ERR_RESOURCE_EXHAUSTED, "no buffer is announced");
        }
        let announced: Vec<Target> = state
            .slots
            .iter()
            .map(|slot| target(&slot.object))
            .collect();
        let queued: Vec<usize> = state.input.iter().copied().collect();
        stream.path.start(&image, &announced, &queued)?;
        state.image = Some(image);
        state.acquiring = true;
        state.draining = false;
        state.started += 1;
        state.to_acquire = if count == 0 || count == GENTL_INFINITE {
            u64::MAX
        } else {
            count
        };
        drop(state);
        stream.changed.notify_all();
        Ok(())
    })
}

/// `DSStopAcquisition`: with `ACQ_STOP_FLAGS_KILL` frames the card filled but nobody
/// fetched are dropped; otherwise they are still delivered.
#[no_mangle]
pub extern "C" fn DSStopAcquisition(stream: Handle, flags: i32) -> GcError {
    entry("DSStopAcquisition", || {
        let stream = handles::stream(stream)?;
        let kill = match flags {
            ACQ_STOP_FLAGS_DEFAULT => false,
            ACQ_STOP_FLAGS_KILL => true,
            other => return fail(GC_ERR_INVALID_PARAMETER, format!("stop flags {other}")),
        };
        {
            let mut state = stream.lock();
            if !state.acquiring {
                return Ok(());
            }
            state.acquiring = false;
            state.draining = !kill;
        }
        let result = stream.path.stop(kill);
        stream.changed.notify_all();
        result
    })
}

fn stream_info(stream: &DataStream, command: i32) -> Result<Info> {
    let state = stream.lock();
    let count = |place: Place| {
        state
            .slots
            .iter()
            .filter(|slot| slot.place == place)
            .count()
    };
    let payload = || -> Result<usize> {
        Ok(match state.image {
            Some(image) if state.acquiring => image.payload_size as usize,
            _ => stream.device.port().remote.image()?.payload_size as usize,
        })
    };
    Ok(match command {
        STREAM_INFO_ID => Info::string(STREAM_ID),
        STREAM_INFO_NUM_DELIVERED => Info::U64(state.delivered),
        STREAM_INFO_NUM_UNDERRUN => Info::U64(state.underruns),
        STREAM_INFO_NUM_ANNOUNCED => Info::Size(state.slots.len()),
        STREAM_INFO_NUM_QUEUED => Info::Size(count(Place::Input)),
        STREAM_INFO_NUM_AWAIT_DELIVERY => Info::Size(count(Place::Output)),
        STREAM_INFO_NUM_STARTED => Info::U64(state.started),
        STREAM_INFO_PAYLOAD_SIZE => Info::Size(payload()?),
        STREAM_INFO_IS_GRABBING => Info::Bool(state.acquiring),
        STREAM_INFO_DEFINES_PAYLOADSIZE => Info::Bool(true),
        STREAM_INFO_TLTYPE => Info::string(TL_TYPE),
        STREAM_INFO_NUM_CHUNKS_MAX => Info::Size(0),
        STREAM_INFO_BUF_ANNOUNCE_MIN => Info::Size(1),
        // The path takes any alignment (the driver's regions need none either).
        STREAM_INFO_BUF_ALIGNMENT => Info::Size(1),
        STREAM_INFO_CUSTOM_ID => Info::U64(stream.path.copies()),
        other => {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("no stream info command {other}"),
            )
        }
    })
}

/// `DSGetInfo` (`STREAM_INFO_CUSTOM_ID`: frames the producer copied, `UINT64`: 0 on the
/// zero-copy path, which the tests assert).
///
/// # Safety
///
/// As every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn DSGetInfo(
    stream: Handle,
    command: i32,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("DSGetInfo", || {
        let stream = handles::stream(stream)?;
        let value = stream_info(&stream, command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, buffer, size) }
    })
}

fn buffer_info(stream: &DataStream, key: usize, command: i32) -> Result<Info> {
    let mut state = stream.lock();
    let acquiring = state.acquiring;
    let slot = state
        .slot(key)
        .ok_or_else(|| Failure::new(GC_ERR_INVALID_HANDLE, "revoked"))?;
    let filled = slot.filled;
    let fill =
        || filled.ok_or_else(|| Failure::new(GC_ERR_NOT_AVAILABLE, "the buffer was never filled"));
    Ok(match command {
        BUFFER_INFO_BASE => Info::Ptr(slot.object.base),
        BUFFER_INFO_SIZE => Info::Size(slot.object.size),
        BUFFER_INFO_USER_PTR => Info::Ptr(slot.object.private),
        BUFFER_INFO_TIMESTAMP | BUFFER_INFO_TIMESTAMP_NS => Info::U64(fill()?.0.timestamp_ns),
        BUFFER_INFO_NEW_DATA => Info::Bool(slot.new_data),
        BUFFER_INFO_IS_QUEUED => Info::Bool(matches!(slot.place, Place::Input | Place::Filling)),
        BUFFER_INFO_IS_ACQUIRING => Info::Bool(acquiring && slot.place == Place::Filling),
        BUFFER_INFO_IS_INCOMPLETE => Info::Bool(fill()?.0.incomplete),
        BUFFER_INFO_TLTYPE => Info::string(TL_TYPE),
        BUFFER_INFO_SIZE_FILLED | BUFFER_INFO_DATA_SIZE => Info::Size(fill()?.0.size_filled),
        BUFFER_INFO_WIDTH => Info::Size(fill()?.1.width as usize),
        BUFFER_INFO_HEIGHT | BUFFER_INFO_DELIVERED_IMAGEHEIGHT => {
            let (filled, image) = fill()?;
            if command == BUFFER_INFO_HEIGHT {
                Info::Size(image.height as usize)
            } else {
                // Whole lines actually written.
                let line = (image.payload_size / image.height.max(1)).max(1) as usize;
                Info::Size((filled.size_filled / line).min(image.height as usize))
            }
        }
        BUFFER_INFO_XOFFSET
        | BUFFER_INFO_YOFFSET
        | BUFFER_INFO_XPADDING
        | BUFFER_INFO_YPADDING
        | BUFFER_INFO_IMAGEOFFSET => Info::Size(0),
        BUFFER_INFO_FRAMEID => Info::U64(fill()?.0.frame_id),
        BUFFER_INFO_IMAGEPRESENT => Info::Bool(filled.is_some()),
        BUFFER_INFO_PAYLOADTYPE => Info::Size(PAYLOAD_TYPE_IMAGE as usize),
        BUFFER_INFO_PIXELFORMAT => Info::U64(u64::from(fill()?.1.pixel_format)),
        BUFFER_INFO_PIXELFORMAT_NAMESPACE => Info::U64(PIXELFORMAT_NAMESPACE_PFNC_32BIT as u64),
        BUFFER_INFO_DELIVERED_CHUNKPAYLOADSIZE => Info::Size(0),
        BUFFER_INFO_PIXEL_ENDIANNESS => Info::I32(PIXELENDIANNESS_LITTLE),
        BUFFER_INFO_DATA_LARGER_THAN_BUFFER => Info::Bool(fill()?.0.larger_than_buffer),
        BUFFER_INFO_CONTAINS_CHUNKDATA | BUFFER_INFO_IS_COMPOSITE => Info::Bool(false),
        BUFFER_INFO_CHUNKLAYOUTID | BUFFER_INFO_FILENAME => {
            return fail(GC_ERR_NOT_AVAILABLE, "no chunks, no files")
        }
        other => {
            return fail(
                GC_ERR_INVALID_PARAMETER,
                format!("no buffer info command {other}"),
            )
        }
    })
}

/// `DSGetBufferInfo`.
///
/// # Safety
///
/// As every info call (`info::write`).
#[no_mangle]
pub unsafe extern "C" fn DSGetBufferInfo(
    stream: Handle,
    buffer: Handle,
    command: i32,
    datatype: *mut InfoDatatype,
    out: *mut c_void,
    size: *mut usize,
) -> GcError {
    entry("DSGetBufferInfo", || {
        let (stream, key) = stream_and_buffer(stream, buffer)?;
        let value = buffer_info(&stream, key, command)?;
        // SAFETY: forwarded caller contract.
        unsafe { info::write(&value, datatype, out, size) }
    })
}

/// `DSGetBufferInfoStacked`: each entry's result in its `iResult`; the call fails with the
/// first entry's failure, if any.
///
/// # Safety
///
/// `infos` must be null or valid for `count` entries, each naming a buffer as for
/// [`DSGetBufferInfo`].
#[no_mangle]
pub unsafe extern "C" fn DSGetBufferInfoStacked(
    stream: Handle,
    buffer: Handle,
    infos: *mut DsBufferInfoStacked,
    count: usize,
) -> GcError {
    entry("DSGetBufferInfoStacked", || {
        let (stream, key) = stream_and_buffer(stream, buffer)?;
        if infos.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "pInfoStacked is NULL");
        }
        let mut first = None;
        for index in 0..count {
            // SAFETY: `infos` is valid for `count` entries (caller contract); packed, so
            // read and written unaligned.
            let entry_pointer = unsafe { infos.add(index) };
            // SAFETY: as above.
            let mut item = unsafe { entry_pointer.read_unaligned() };
            let result = buffer_info(&stream, key, item.info_cmd).and_then(|value| {
                let mut datatype = 0;
                let mut size = item.size;
                // SAFETY: the entry's buffer and size are the caller's (contract).
                let written = unsafe { info::write(&value, &mut datatype, item.buffer, &mut size) };
                item.info_type = datatype;
                item.size = size;
                written
            });
            item.result = result
                .as_ref()
                .map_or_else(|failure| failure.code, |()| GC_ERR_SUCCESS);
            // SAFETY: as above.
            unsafe { entry_pointer.write_unaligned(item) };
            if let Err(failure) = result {
                first.get_or_insert(failure);
            }
        }
        first.map_or(Ok(()), Err)
    })
}

/// `DSGetBufferID`: announced buffers in announce order.
///
/// # Safety
///
/// `buffer` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DSGetBufferID(stream: Handle, index: u32, buffer: *mut Handle) -> GcError {
    entry("DSGetBufferID", || {
        let stream = handles::stream(stream)?;
        if buffer.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phBuffer is NULL");
        }
        let state = stream.lock();
        let slot = state.slots.get(index as usize).ok_or_else(|| {
            Failure::new(
                GC_ERR_INVALID_INDEX,
                format!("no buffer {index}: {} announced", state.slots.len()),
            )
        })?;
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { buffer.write_unaligned(key(&slot.object) as Handle) };
        Ok(())
    })
}

/// `DSGetNumBufferParts`: 0, buffers are single images (not multi-part).
///
/// # Safety
///
/// `count` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DSGetNumBufferParts(
    stream: Handle,
    buffer: Handle,
    count: *mut u32,
) -> GcError {
    entry("DSGetNumBufferParts", || {
        stream_and_buffer(stream, buffer)?;
        if count.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "piNumParts is NULL");
        }
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { count.write_unaligned(0) };
        Ok(())
    })
}

/// `DSGetBufferPartInfo`: there are no parts.
#[no_mangle]
pub extern "C" fn DSGetBufferPartInfo(
    stream: Handle,
    buffer: Handle,
    part: u32,
    _command: i32,
    _datatype: *mut InfoDatatype,
    _out: *mut c_void,
    _size: *mut usize,
) -> GcError {
    entry("DSGetBufferPartInfo", || {
        stream_and_buffer(stream, buffer)?;
        fail(
            GC_ERR_INVALID_INDEX,
            format!("no part {part}: buffers are not multi-part"),
        )
    })
}

/// `DSGetParentDev`.
///
/// # Safety
///
/// `device` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn DSGetParentDev(stream: Handle, device: *mut Handle) -> GcError {
    entry("DSGetParentDev", || {
        let stream = handles::stream(stream)?;
        if device.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "phDevice is NULL");
        }
        let wanted = Arc::as_ptr(&stream.device);
        let handle = handles::find(
            |object| matches!(object, Object::Device(open) if Arc::as_ptr(open) == wanted),
        )
        .ok_or_else(|| Failure::new(GC_ERR_INVALID_HANDLE, "the device is closed"))?;
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { device.write_unaligned(handle) };
        Ok(())
    })
}

/// `DSClose`: stops the card; buffers still announced are let go (consumer memory is the
/// consumer's again, producer memory freed).
#[no_mangle]
pub extern "C" fn DSClose(stream: Handle) -> GcError {
    entry("DSClose", || {
        handles::stream(stream)?;
        handles::close(stream)
    })
}

macro_rules! not_implemented {
    ($($name:ident($($argument:ident: $type:ty),*);)*) => {$(
        #[doc = concat!("`", stringify!($name), "`: `GC_ERR_NOT_IMPLEMENTED`.")]
        #[no_mangle]
        pub extern "C" fn $name($(_: $type),*) -> GcError {
            entry(stringify!($name), || {
                fail(GC_ERR_NOT_IMPLEMENTED, "not implemented by fgrab.cti")
            })
        }
    )*};
}

not_implemented! {
    DSAnnounceCompositeBuffer(stream: Handle, segments: usize, bases: *mut *mut c_void,
        sizes: *mut usize, private: *mut c_void, buffer: *mut Handle);
    DSGetBufferChunkData(stream: Handle, buffer: Handle, chunks: *mut c_void, count: *mut usize);
    DSGetBufferPartInfoStacked(stream: Handle, buffer: Handle, infos: *mut c_void, count: usize);
    DSGetNumFlows(stream: Handle, count: *mut u32);
    DSGetFlowInfo(stream: Handle, flow: u32, command: i32, datatype: *mut InfoDatatype,
        out: *mut c_void, size: *mut usize);
    DSGetNumBufferSegments(stream: Handle, buffer: Handle, count: *mut u32);
    DSGetBufferSegmentInfo(stream: Handle, buffer: Handle, segment: u32, command: i32,
        datatype: *mut InfoDatatype, out: *mut c_void, size: *mut usize);
}
