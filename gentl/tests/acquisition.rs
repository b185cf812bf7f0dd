//! The DataStream, Buffer and Event modules through their C entry points, with a scripted
//! [`BufferPath`] in place of the card: FRAMEID gaps for frames that found no queued buffer,
//! IS_INCOMPLETE, EventKill from another thread, the stop / flush / revoke sequence, and
//! what the data stream tells the path (announce, queue while acquiring, start with the
//! input pool, revoke, close), which the zero-copy path turns into region commands.

use fgrab_gentl::abi::*;
use fgrab_gentl::device::{Device, Discovered};
use fgrab_gentl::error::Result;
use fgrab_gentl::event::*;
use fgrab_gentl::handles::{self, Object};
use fgrab_gentl::path::{BufferPath, Filled, Missed, Target, Targets};
use fgrab_gentl::remote::{Attachment, Image, RemoteDevice};
use fgrab_gentl::stream::*;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug)]
struct Camera;

const IMAGE: Image = Image {
    width: 8,
    height: 2,
    pixel_format: 0x0108_0001,
    payload_size: 16,
};

impl RemoteDevice for Camera {
    fn read(&self, _: u64, _: &mut [u8]) -> Result<()> {
        Ok(())
    }
    fn write(&self, _: u64, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn xml(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn image(&self) -> Result<Image> {
        Ok(IMAGE)
    }
}

/// Frames `(sequence, bytes)` handed out in order; waits end at the timeout or a cancel.
#[derive(Debug, Default)]
struct Script {
    state: Mutex<(VecDeque<(u64, usize)>, u32)>,
    changed: Condvar,
    /// What the data stream told the path, in order (waits and cancels aside).
    calls: Mutex<Vec<String>>,
}

impl Script {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn push(&self, sequence: u64, bytes: usize) {
        self.state.lock().unwrap().0.push_back((sequence, bytes));
        self.changed.notify_all();
    }
}

#[derive(Debug)]
struct ScriptPath(Arc<Script>);

impl BufferPath for ScriptPath {
    fn announce(&self, target: Target, acquiring: bool) -> Result<()> {
        self.0
            .record(format!("announce {} acquiring={acquiring}", target.size));
        Ok(())
    }
    fn queue(&self, _: usize) -> Result<()> {
        self.0.record("queue".into());
        Ok(())
    }
    fn revoke(&self, _: usize) -> Result<()> {
        self.0.record("revoke".into());
        Ok(())
    }
    fn start(&self, image: &Image, announced: &[Target], queued: &[usize]) -> Result<()> {
        self.0.record(format!(
            "start payload={} announced={} queued={}",
            image.payload_size,
            announced.len(),
            queued.len()
        ));
        Ok(())
    }
    fn stop(&self, discard: bool) -> Result<()> {
        self.0.record(format!("stop discard={discard}"));
        Ok(())
    }
    fn close(&self) -> Result<()> {
        self.0.record("close".into());
        Ok(())
    }
    fn next(
        &self,
        timeout: Option<Duration>,
        targets: &dyn Targets,
        underrun: &dyn Fn(u64),
    ) -> std::result::Result<(usize, Filled), Missed> {
        let script = &self.0;
        let mut state = script.state.lock().unwrap();
        loop {
            if state.1 > 0 {
                state.1 -= 1;
                return Err(Missed::Canceled);
            }
            if let Some((sequence, bytes)) = state.0.pop_front() {
                let Some(target) = targets.take() else {
                    underrun(1);
                    continue;
                };
                // SAFETY: the target is a queued buffer of `size` bytes.
                unsafe {
                    std::ptr::write_bytes(target.base, sequence as u8, bytes.min(target.size))
                };
                return Ok((
                    target.key,
                    Filled {
                        size_filled: bytes,
                        frame_id: sequence,
                        timestamp_ns: sequence * 1000,
                        incomplete: bytes < IMAGE.payload_size as usize,
                        larger_than_buffer: false,
                    },
                ));
            }
            let (next, waited) = script
                .changed
                .wait_timeout(state, timeout.unwrap_or(Duration::from_secs(10)))
                .unwrap();
            state = next;
            if waited.timed_out() {
                return Err(Missed::Timeout);
            }
        }
    }
    fn cancel(&self) {
        self.0.state.lock().unwrap().1 += 1;
        self.0.changed.notify_all();
    }
    fn copies(&self) -> u64 {
        0
    }
}

fn info_u64(stream: Handle, buffer: Handle, command: i32) -> u64 {
    let mut value = [0u8; 8];
    let mut size = value.len();
    let mut datatype = 0;
    // SAFETY: `value` has `size` bytes.
    let status = unsafe {
        DSGetBufferInfo(
            stream,
            buffer,
            command,
            &mut datatype,
            value.as_mut_ptr().cast(),
            &mut size,
        )
    };
    assert_eq!(status, GC_ERR_SUCCESS, "buffer info {command}");
    let mut bytes = [0u8; 8];
    bytes[..size].copy_from_slice(&value[..size]);
    u64::from_ne_bytes(bytes)
}

fn wait(event: Handle, timeout_ms: u64) -> std::result::Result<Handle, GcError> {
    let mut data = [0u8; 16];
    let mut size = data.len();
    // SAFETY: `data` has `size` bytes.
    let status = unsafe { EventGetData(event, data.as_mut_ptr().cast(), &mut size, timeout_ms) };
    if status != GC_ERR_SUCCESS {
        return Err(status);
    }
    Ok(usize::from_ne_bytes(data[..8].try_into().unwrap()) as Handle)
}

#[test]
fn frames_reach_queued_buffers_with_gaps_and_kills_reported() {
    let _ = fgrab_gentl::system::GCInitLib();
    let discovered = Discovered {
        id: "fake0".into(),
        path: "/nonexistent".into(),
        identity: Err("none".into()),
    };
    let device = Arc::new(Device::with_remote(
        discovered,
        Box::new(Camera),
        Arc::new(Attachment::default()),
        std::ptr::null_mut(),
    ));
    let device_handle = handles::register(Object::Device(device.clone()), std::ptr::null_mut());
    let script = Arc::new(Script::default());
    let stream = handles::register(
        Object::Stream(Arc::new(DataStream::with_path(
            device,
            Box::new(ScriptPath(script.clone())),
        ))),
        device_handle,
    );

    let mut buffers = [std::ptr::null_mut(); 2];
    for buffer in &mut buffers {
        // SAFETY: valid out pointer.
        let status = unsafe { DSAllocAndAnnounceBuffer(stream, 16, std::ptr::null_mut(), buffer) };
        assert_eq!(status, GC_ERR_SUCCESS);
    }
    assert_eq!(DSQueueBuffer(stream, buffers[0]), GC_ERR_SUCCESS);
    assert_eq!(DSQueueBuffer(stream, buffers[0]), GC_ERR_RESOURCE_IN_USE);
    let mut event = std::ptr::null_mut();
    // SAFETY: valid out pointer.
    assert_eq!(
        unsafe { GCRegisterEvent(stream, EVENT_NEW_BUFFER, &mut event) },
        GC_ERR_SUCCESS
    );
    assert_eq!(wait(event, 10), Err(GC_ERR_TIMEOUT), "not acquiring yet");
    assert_eq!(
        DSStartAcquisition(stream, ACQ_START_FLAGS_DEFAULT, GENTL_INFINITE),
        GC_ERR_SUCCESS
    );

    // Frame 1 fills the queued buffer; frame 2 finds none (an underrun); frame 3 the requeued one.
    script.push(1, 16);
    script.push(2, 16);
    let first = wait(event, 1000).unwrap();
    assert_eq!(first, buffers[0]);
    assert_eq!(info_u64(stream, first, BUFFER_INFO_FRAMEID), 1);
    assert_eq!(info_u64(stream, first, BUFFER_INFO_SIZE_FILLED), 16);
    assert_eq!(info_u64(stream, first, BUFFER_INFO_IS_INCOMPLETE), 0);
    assert_eq!(info_u64(stream, first, BUFFER_INFO_WIDTH), 8);
    assert_eq!(
        info_u64(stream, first, BUFFER_INFO_PIXELFORMAT),
        0x0108_0001
    );
    assert_eq!(
        info_u64(stream, first, BUFFER_INFO_PIXELFORMAT_NAMESPACE),
        4
    );
    assert_eq!(
        wait(event, 50),
        Err(GC_ERR_TIMEOUT),
        "frame 2 had no buffer"
    );
    assert_eq!(DSQueueBuffer(stream, first), GC_ERR_SUCCESS);
    script.push(3, 10);
    let second = wait(event, 1000).unwrap();
    assert_eq!(
        info_u64(stream, second, BUFFER_INFO_FRAMEID),
        3,
        "the gap is the drop"
    );
    assert_eq!(info_u64(stream, second, BUFFER_INFO_IS_INCOMPLETE), 1);
    assert_eq!(info_u64(stream, second, BUFFER_INFO_SIZE_FILLED), 10);
    let mut underruns = 0u64;
    let mut size = 8;
    // SAFETY: `underruns` has 8 bytes.
    let status = unsafe {
        DSGetInfo(
            stream,
            STREAM_INFO_NUM_UNDERRUN,
            std::ptr::null_mut(),
            (&mut underruns as *mut u64).cast(),
            &mut size,
        )
    };
    assert_eq!((status, underruns), (GC_ERR_SUCCESS, 1));

    // EventKill from another thread ends a wait in progress.
    assert_eq!(DSQueueBuffer(stream, second), GC_ERR_SUCCESS);
    let event_address = event as usize;
    let waiter = std::thread::spawn(move || {
        wait(event_address as Handle, GENTL_INFINITE).map(|h| h as usize)
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(EventKill(event), GC_ERR_SUCCESS);
    assert_eq!(waiter.join().unwrap(), Err(GC_ERR_ABORT));
    // A kill with no wait in progress ends the next one.
    assert_eq!(EventKill(event), GC_ERR_SUCCESS);
    assert_eq!(wait(event, 1000), Err(GC_ERR_ABORT));

    // Harvesters' stop: stop (kill), flush everything, revoke.
    assert_eq!(
        DSStopAcquisition(stream, ACQ_STOP_FLAGS_KILL),
        GC_ERR_SUCCESS
    );
    // SAFETY: null out pointers are allowed.
    let busy =
        unsafe { DSRevokeBuffer(stream, second, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert_eq!(busy, GC_ERR_BUSY, "still queued");
    assert_eq!(DSFlushQueue(stream, ACQ_QUEUE_ALL_DISCARD), GC_ERR_SUCCESS);
    for buffer in buffers {
        let mut base: *mut c_void = std::ptr::dangling_mut();
        // SAFETY: valid out pointers.
        let status = unsafe { DSRevokeBuffer(stream, buffer, &mut base, std::ptr::null_mut()) };
        assert_eq!(status, GC_ERR_SUCCESS);
        assert!(
            base.is_null(),
            "producer-allocated memory is not handed back"
        );
    }
    assert_eq!(
        DSQueueBuffer(stream, buffers[0]),
        GC_ERR_INVALID_HANDLE,
        "revoked"
    );
    assert_eq!(GCUnregisterEvent(stream, EVENT_NEW_BUFFER), GC_ERR_SUCCESS);
    assert_eq!(wait(event, 0), Err(GC_ERR_INVALID_HANDLE));
    assert_eq!(DSClose(stream), GC_ERR_SUCCESS);
    handles::close(device_handle).unwrap();
    // Queued before the start: given to the card by the start; while acquiring: at once;
    // the refused revoke (still queued) never reached the path.
    assert_eq!(
        *script.calls.lock().unwrap(),
        [
            "announce 16 acquiring=false",
            "announce 16 acquiring=false",
            "start payload=16 announced=2 queued=1",
            "queue",
            "queue",
            "stop discard=true",
            "revoke",
            "revoke",
            "close",
        ]
    );
}

/// A camera whose image format the test changes, as a consumer does through the node map.
#[derive(Debug)]
struct Resizable(Arc<Mutex<Image>>);

impl RemoteDevice for Resizable {
    fn read(&self, _: u64, _: &mut [u8]) -> Result<()> {
        Ok(())
    }
    fn write(&self, _: u64, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn xml(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn image(&self) -> Result<Image> {
        Ok(*self.0.lock().unwrap())
    }
}

fn payload_size(stream: Handle) -> usize {
    let mut value = 0usize;
    let mut size = std::mem::size_of::<usize>();
    let mut datatype = 0;
    // SAFETY: `value` has `size` bytes.
    let status = unsafe {
        DSGetInfo(
            stream,
            STREAM_INFO_PAYLOAD_SIZE,
            &mut datatype,
            (&mut value as *mut usize).cast(),
            &mut size,
        )
    };
    assert_eq!(status, GC_ERR_SUCCESS);
    value
}

#[test]
fn the_image_format_is_read_at_each_start() {
    let _ = fgrab_gentl::system::GCInitLib();
    let image = Arc::new(Mutex::new(IMAGE));
    let discovered = Discovered {
        id: "fake1".into(),
        path: "/nonexistent".into(),
        identity: Err("none".into()),
    };
    let device = Arc::new(Device::with_remote(
        discovered,
        Box::new(Resizable(image.clone())),
        Arc::new(Attachment::default()),
        std::ptr::null_mut(),
    ));
    let device_handle = handles::register(Object::Device(device.clone()), std::ptr::null_mut());
    let script = Arc::new(Script::default());
    let stream = handles::register(
        Object::Stream(Arc::new(DataStream::with_path(
            device,
            Box::new(ScriptPath(script.clone())),
        ))),
        device_handle,
    );
    let mut event = std::ptr::null_mut();
    // SAFETY: valid out pointer.
    assert_eq!(
        unsafe { GCRegisterEvent(stream, EVENT_NEW_BUFFER, &mut event) },
        GC_ERR_SUCCESS
    );
    let mono16 = Image {
        width: 16,
        height: 4,
        pixel_format: 0x0110_0007,
        payload_size: 128,
    };
    for (round, expected) in [IMAGE, mono16].into_iter().enumerate() {
        // As Harvesters: PAYLOAD_SIZE, announce and queue buffers of it, start, fetch.
        let payload = payload_size(stream);
        assert_eq!(payload, expected.payload_size as usize, "round {round}");
        let mut buffer = std::ptr::null_mut();
        // SAFETY: valid out pointer.
        let status =
            unsafe { DSAllocAndAnnounceBuffer(stream, payload, std::ptr::null_mut(), &mut buffer) };
        assert_eq!(status, GC_ERR_SUCCESS);
        assert_eq!(DSQueueBuffer(stream, buffer), GC_ERR_SUCCESS);
        assert_eq!(
            DSStartAcquisition(stream, ACQ_START_FLAGS_DEFAULT, GENTL_INFINITE),
            GC_ERR_SUCCESS
        );
        // A change while acquiring (the card would refuse it) does not touch this acquisition.
        *image.lock().unwrap() = mono16;
        assert_eq!(payload_size(stream), expected.payload_size as usize);
        script.push(round as u64, expected.payload_size as usize);
        let filled = wait(event, 1000).unwrap();
        assert_eq!(filled, buffer);
        assert_eq!(
            info_u64(stream, filled, BUFFER_INFO_WIDTH),
            u64::from(expected.width)
        );
        assert_eq!(
            info_u64(stream, filled, BUFFER_INFO_HEIGHT),
            u64::from(expected.height)
        );
        assert_eq!(
            info_u64(stream, filled, BUFFER_INFO_PIXELFORMAT),
            u64::from(expected.pixel_format)
        );
        assert_eq!(
            DSStopAcquisition(stream, ACQ_STOP_FLAGS_KILL),
            GC_ERR_SUCCESS
        );
        assert_eq!(DSFlushQueue(stream, ACQ_QUEUE_ALL_DISCARD), GC_ERR_SUCCESS);
        let (mut base, mut private) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: valid out pointers.
        let status = unsafe { DSRevokeBuffer(stream, buffer, &mut base, &mut private) };
        assert_eq!(status, GC_ERR_SUCCESS);
    }
    assert_eq!(GCUnregisterEvent(stream, EVENT_NEW_BUFFER), GC_ERR_SUCCESS);
    assert_eq!(DSClose(stream), GC_ERR_SUCCESS);
    assert_eq!(fgrab_gentl::device::DevClose(device_handle), GC_ERR_SUCCESS);
}
