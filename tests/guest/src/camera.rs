//! The camera (`docs/hardware.md` §3.8, §12; `docs/abi.md`, "Camera"): the per-format
//! pattern at non-default geometry, the validation of the feature and XML commands, EBUSY
//! for the image format while streaming, the XML, triggers and acquisition modes, through
//! the library's `Features` and raw commands.
//!
//! The card keeps its settings across resets and tests: every test that changes them holds
//! a [`Restore`], which puts the defaults back when the test ends, however it ends.

use crate::ensure;
use crate::harness::TestResult;
use crate::pattern;
use fgrab::{Buffer, Card, Error, FeatureValue, Geometry, PixelFormat};
use fgrab_hw::camera::{address, WINDOW_SIZE};
use fgrab_uapi::{ops, PortCmd};
use std::time::Duration;
use zerocopy::{FromZeros, IntoBytes};

const CARD0: &str = "/dev/fgrab0";
const OFFSET: usize = 13;

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// Puts the card's settings back to their defaults when dropped.
pub(crate) struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let Ok(card) = Card::open(CARD0) else {
            return;
        };
        let features = card.features();
        for (name, value) in [
            ("TriggerMode", FeatureValue::Enum("Off".into())),
            ("AcquisitionMode", FeatureValue::Enum("Continuous".into())),
            ("AcquisitionFrameRateEnable", FeatureValue::Bool(false)),
            ("Width", FeatureValue::Int(2048)),
            ("Height", FeatureValue::Int(2048)),
            ("PixelFormat", FeatureValue::Enum("Mono8".into())),
        ] {
            if let Err(error) = features.set_feature(name, value) {
                eprintln!("restoring {name}: {error}");
            }
        }
    }
}

/// Attaches `count` frames of `frame_bytes` of a new buffer, `OFFSET` bytes in.
fn attach(card: Card, frame_bytes: u32, count: u32) -> Result<fgrab::Stream<'static>, String> {
    let len = OFFSET + frame_bytes as usize * count as usize;
    card.attach(
        Buffer::from_vec(vec![0u8; len]),
        Geometry::new(frame_bytes, count).offset(OFFSET),
    )
    .map_err(err)
}

/// Every format at 640 x 480, with frames of PayloadSize, shorter and longer: every byte of
/// three frames each is the format's pattern.
pub fn camera_formats() -> TestResult {
    let _restore = Restore;
    for format in PixelFormat::ALL {
        let card = Card::open(CARD0).map_err(err)?;
        let features = card.features();
        features.set_width(640).map_err(err)?;
        features.set_height(480).map_err(err)?;
        features.set_pixel_format(format).map_err(err)?;
        let payload = features.payload_size().map_err(err)?;
        ensure!(
            payload == 640 * 480 * format.bytes_per_pixel(),
            "{}: PayloadSize {payload}",
            format.name()
        );
        ensure!(
            features.pixel_format().map_err(err)? == format,
            "format read back"
        );
        drop(card);
        for frame_bytes in [payload, payload - 777, payload + 1001] {
            let mut stream = attach(Card::open(CARD0).map_err(err)?, frame_bytes, 4)?;
            stream.start().map_err(err)?;
            let mut checked = 0;
            while checked < 3 {
                let frame = stream
                    .next_frame(Some(Duration::from_secs(5)))
                    .map_err(err)?
                    .ok_or("no frame in 5 s")?;
                ensure!(
                    frame.len() == frame_bytes as usize,
                    "frame of {} bytes",
                    frame.len()
                );
                let seed = pattern::salted(frame.sequence(), format.pfnc());
                pattern::verify(&frame, seed, 0).map_err(|mismatch| {
                    format!("{} frame {}: {mismatch}", format.name(), frame.sequence())
                })?;
                if format != PixelFormat::Mono8 {
                    ensure!(
                        pattern::verify(&frame[..64], frame.sequence(), 0).is_err(),
                        "{} frames must differ from Mono8's",
                        format.name()
                    );
                }
                checked += 1;
            }
            stream.stop().map_err(err)?;
        }
    }
    Ok(())
}

fn port(card: &mut Card, op: u32, offset: u32, size: u32, buffer: &mut [u8]) -> i32 {
    let cmd = PortCmd {
        addr: buffer.as_mut_ptr() as u64,
        offset,
        size,
        ..PortCmd::new_zeroed()
    };
    // SAFETY: `addr` is `buffer`, at least `size` bytes (the callers pass 8 KiB), alive
    // until the command completes (raw_command waits).
    unsafe { card.raw_command(op, cmd.as_bytes()) }.unwrap_or(i32::MIN)
}

/// Bad offsets, sizes, alignments and reserved fields get EINVAL and change nothing.
pub fn camera_port_validation() -> TestResult {
    let _restore = Restore;
    let mut card = Card::open(CARD0).map_err(err)?;
    let mut buffer = vec![0u8; 8192];
    let einval = -libc::EINVAL;
    for (op, offset, size) in [
        (ops::FEATURE_READ, 0, 0),
        (ops::FEATURE_READ, 2, 4),
        (ops::FEATURE_READ, 0x100, 6),
        (ops::FEATURE_READ, WINDOW_SIZE, 4),
        (ops::FEATURE_READ, WINDOW_SIZE - 4, 8),
        (ops::FEATURE_READ, u32::MAX - 3, 8),
        (ops::FEATURE_READ, 0, 4100),
        (ops::FEATURE_WRITE, 0x101, 4),
        (ops::FEATURE_WRITE, 0x100, 0),
        (ops::FEATURE_WRITE, WINDOW_SIZE, 4),
        (ops::FEATURE_WRITE, 0, 8192),
        (ops::XML_READ, 0, 4097),
        (ops::XML_READ, 1 << 20, 16),
    ] {
        buffer[..4].copy_from_slice(&644u32.to_le_bytes());
        let res = port(&mut card, op, offset, size, &mut buffer);
        ensure!(
            res == einval,
            "op {op:#x} offset {offset:#x} size {size}: {res}, expected -EINVAL"
        );
    }
    ensure!(
        card.features().width().map_err(err)? == 2048,
        "a rejected write changed Width"
    );
    // Reserved fields.
    let cmd = PortCmd {
        addr: buffer.as_mut_ptr() as u64,
        offset: address::WIDTH,
        size: 4,
        reserved0: 1,
        ..PortCmd::new_zeroed()
    };
    // SAFETY: as in `port`.
    let res = unsafe { card.raw_command(ops::FEATURE_READ, cmd.as_bytes()) }.map_err(err)?;
    ensure!(res == einval, "reserved0 set: {res}");
    // A good read of the whole window.
    let res = port(&mut card, ops::FEATURE_READ, 0, WINDOW_SIZE, &mut buffer);
    ensure!(res == WINDOW_SIZE as i32, "whole window: {res}");
    ensure!(
        &buffer[..5] == b"fgrab",
        "DeviceVendorName {:?}",
        &buffer[..8]
    );
    // The library refuses bad values before sending.
    let features = card.features();
    ensure!(
        matches!(features.set_width(642), Err(Error::InvalidValue { .. })),
        "Width 642 accepted"
    );
    ensure!(
        matches!(features.feature("Gain"), Err(Error::NoSuchFeature { .. })),
        "Gain exists"
    );
    Ok(())
}

/// While streaming: image-format writes get EBUSY and change nothing, other features may
/// be written; another file may read but not write.
pub fn camera_busy_while_streaming() -> TestResult {
    let _restore = Restore;
    let mut stream = attach(Card::open(CARD0).map_err(err)?, 4 << 20, 4)?;
    stream.start().map_err(err)?;
    let features = stream.features();
    for result in [
        features.set_width(1024),
        features.set_height(100),
        features.set_pixel_format(PixelFormat::Mono16),
        features.write_port(address::WIDTH - 4, &[0; 12]),
    ] {
        ensure!(
            matches!(result, Err(Error::Busy { .. })),
            "{result:?}, expected Busy"
        );
    }
    ensure!(
        features.width().map_err(err)? == 2048,
        "Width changed while streaming"
    );
    features
        .set_feature("AcquisitionFrameRate", FeatureValue::Float(25.0))
        .map_err(err)?;
    features.execute("TriggerSoftware").map_err(err)?;
    features
        .set_feature("TLParamsLocked", FeatureValue::Int(1))
        .map_err(err)?;
    let other = Card::open(CARD0).map_err(err)?;
    ensure!(
        other.features().width().map_err(err)? == 2048,
        "another file reads"
    );
    let result = other
        .features()
        .set_feature("TLParamsLocked", FeatureValue::Int(0));
    ensure!(
        matches!(result, Err(Error::Busy { .. })),
        "{result:?} from another file"
    );
    ensure!(
        stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .is_some(),
        "the stream goes on"
    );
    stream.stop().map_err(err)?;
    // Attached and stopped: the owner may change the format.
    stream.features().set_width(1024).map_err(err)?;
    stream
        .features()
        .set_feature("TLParamsLocked", FeatureValue::Int(0))
        .map_err(err)?;
    Ok(())
}

/// The XML read whole and in odd pieces is the emulator's.
pub fn camera_xml() -> TestResult {
    const XML: &[u8] = include_bytes!("../../../hw/genicam/fgrab.xml");
    let mut card = Card::open(CARD0).map_err(err)?;
    let xml = card.features().genicam_xml().map_err(err)?;
    ensure!(
        xml == XML,
        "XML of {} bytes differs from hw/genicam/fgrab.xml",
        xml.len()
    );
    let mut buffer = vec![0u8; 8192];
    let size = port(&mut card, ops::XML_READ, 0, 0, &mut buffer);
    ensure!(size == XML.len() as i32, "XML size {size}");
    let mut pieces = Vec::new();
    let mut offset = 0u32;
    for step in [7u32, 1000, 3, 4096, 4095].iter().cycle() {
        let got = port(&mut card, ops::XML_READ, offset, *step, &mut buffer);
        ensure!(got >= 0, "XML_READ at {offset}: {got}");
        if got == 0 {
            break;
        }
        pieces.extend_from_slice(&buffer[..got as usize]);
        offset += got as u32;
    }
    ensure!(pieces == XML, "XML in pieces differs");
    Ok(())
}

/// TriggerMode On: no frame until a trigger (a wait blocks), exactly one per trigger, even
/// from another thread while a wait is blocked.
pub fn camera_trigger() -> TestResult {
    let _restore = Restore;
    let card = Card::open(CARD0).map_err(err)?;
    card.features()
        .set_feature("TriggerMode", FeatureValue::Enum("On".into()))
        .map_err(err)?;
    let stream = attach(card, 100_000, 8)?.into_shared().map_err(err)?;
    stream.start().map_err(err)?;
    let quiet = stream.next_frame(Some(Duration::from_millis(300)));
    ensure!(
        matches!(quiet, Err(Error::Timeout { .. })),
        "a frame without a trigger"
    );
    let mut sequences = Vec::new();
    for _ in 0..3 {
        let trigger = stream.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            trigger.features().trigger_software()
        });
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?;
        thread.join().map_err(|_| "trigger thread")?.map_err(err)?;
        pattern::verify(&frame, frame.sequence(), 0).map_err(err)?;
        sequences.push(frame.sequence());
        frame.release().map_err(err)?;
        // No second frame follows a trigger.
        let extra = stream.next_frame(Some(Duration::from_millis(200)));
        ensure!(
            matches!(extra, Err(Error::Timeout { .. })),
            "two frames for one trigger"
        );
    }
    ensure!(
        sequences == [0, 1, 2],
        "sequences {sequences:?}: one frame start per trigger"
    );
    let stats = stream.stats().map_err(err)?;
    ensure!(
        stats.frames_dropped_underrun + stats.frames_dropped_other == 0,
        "drops while waiting for triggers: {stats:?}"
    );
    stream.stop().map_err(err)?;
    Ok(())
}

/// SingleFrame produces one frame and MultiFrame its count, each re-armed by
/// AcquisitionStart; AcquisitionStop halts frame starts.
pub fn camera_acquisition_modes() -> TestResult {
    let _restore = Restore;
    for (mode, count) in [("SingleFrame", 1u64), ("MultiFrame", 3)] {
        let card = Card::open(CARD0).map_err(err)?;
        card.features()
            .set_feature("AcquisitionMode", FeatureValue::Enum(mode.into()))
            .map_err(err)?;
        card.features()
            .set_feature("AcquisitionFrameCount", FeatureValue::Int(3))
            .map_err(err)?;
        let stream = attach(card, 100_000, 8)?.into_shared().map_err(err)?;
        stream.start().map_err(err)?;
        let mut sequences = Vec::new();
        for round in 0..2 {
            if round == 1 {
                stream.features().execute("AcquisitionStart").map_err(err)?;
            }
            for _ in 0..count {
                let frame = stream
                    .next_frame(Some(Duration::from_secs(5)))
                    .map_err(err)?;
                sequences.push(frame.sequence());
            }
            let extra = stream.next_frame(Some(Duration::from_millis(300)));
            ensure!(
                matches!(extra, Err(Error::Timeout { .. })),
                "{mode}: more than {count} frames"
            );
        }
        let expected: Vec<u64> = (0..2 * count).collect();
        ensure!(sequences == expected, "{mode}: sequences {sequences:?}");
        stream.stop().map_err(err)?;
    }
    // Continuous, stopped by AcquisitionStop.
    let card = Card::open(CARD0).map_err(err)?;
    card.features()
        .set_feature("AcquisitionMode", FeatureValue::Enum("Continuous".into()))
        .map_err(err)?;
    let stream = attach(card, 100_000, 8)?.into_shared().map_err(err)?;
    stream.start().map_err(err)?;
    stream
        .next_frame(Some(Duration::from_secs(5)))
        .map_err(err)?;
    stream.features().execute("AcquisitionStop").map_err(err)?;
    // Frames already started may still arrive; then nothing.
    std::thread::sleep(Duration::from_millis(100));
    while stream.next_frame(Some(Duration::from_millis(300))).is_ok() {}
    let stats = stream.stats().map_err(err)?;
    std::thread::sleep(Duration::from_millis(300));
    let later = stream.stats().map_err(err)?;
    ensure!(
        later.frames_delivered == stats.frames_delivered
            && later.frames_dropped_underrun == stats.frames_dropped_underrun,
        "frames after AcquisitionStop: {stats:?} then {later:?}"
    );
    stream.stop().map_err(err)?;
    Ok(())
}

/// Card 0 of `vm-hostile` announces camera areas outside BAR0's rules: the driver refuses
/// them with a log line, the card streams on (see `hostile-records`) without camera
/// features.
pub fn hostile_camera() -> TestResult {
    let card = Card::open(CARD0).map_err(err)?;
    let result = card.features().width();
    ensure!(
        matches!(result, Err(Error::NoCamera)),
        "{result:?}, expected NoCamera"
    );
    ensure!(
        matches!(card.features().genicam_xml(), Err(Error::NoCamera)),
        "XML of a refused camera"
    );
    let log = crate::hostile::kernel_log()?;
    ensure!(
        log.contains("camera description refused"),
        "no log line for the refused camera"
    );
    Ok(())
}
