//! Cards that are not to be trusted (suite `vm-hostile`, `docs/hardware.md` §11): card 0's
//! record for frame 100 claims more bytes than any frame, card 1's capability registers
//! break the interface's rules, card 2 answers a stop with IDLE while it keeps frames and
//! writes one of them later, card 3 ignores its first stop (see `cancel.rs`). The driver refuses card 1, fails card 0's frame without
//! believing the count, and resets card 2 before its frames are reclaimed.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::streamer::{Layout, Streamer};
use fgrab_uapi::{ops, META_ERROR, META_FRAME};
use std::time::{Duration, Instant};

/// The kernel log so far.
pub(crate) fn kernel_log() -> Result<String, String> {
    let output = std::process::Command::new("/bin/busybox")
        .arg("dmesg")
        .output()
        .map_err(|error| format!("dmesg: {error}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn read_attribute(device: &str, attribute: &str) -> String {
    std::fs::read_to_string(format!("/sys/bus/pci/devices/{device}/{attribute}"))
        .map(|text| text.trim().to_string())
        .unwrap_or_default()
}

/// The card with invalid capabilities is on the bus but not bound, the kernel log says
/// which registers were refused, and the other cards are bound.
pub fn hostile_capabilities() -> TestResult {
    let mut cards = Vec::new();
    for entry in std::fs::read_dir("/sys/bus/pci/devices").map_err(|error| error.to_string())? {
        let device = entry.map_err(|error| error.to_string())?.file_name();
        let device = device.to_string_lossy().into_owned();
        if read_attribute(&device, "vendor") == "0x10ee"
            && read_attribute(&device, "device") == "0xf9a0"
        {
            cards.push(device);
        }
    }
    cards.sort();
    // Seven cards: the suite's four, two more for `hostile-regions-*`, one for
    // `hostile-moderation`.
    ensure!(
        cards.len() == 7,
        "expected 7 cards on the bus, found {cards:?}"
    );
    let unbound: Vec<&String> = cards
        .iter()
        .filter(|device| {
            !std::path::Path::new(&format!("/sys/bus/pci/devices/{device}/driver")).exists()
        })
        .collect();
    ensure!(
        unbound.len() == 1,
        "expected exactly the hostile card unbound, unbound: {unbound:?} of {cards:?}"
    );
    let refused = unbound[0];
    let log = kernel_log()?;
    for register in [
        "MAX_SEGMENT_BYTES",
        "MAX_DESCRIPTORS",
        "RING_MAX_ENTRIES",
        "MAX_FRAME_SLOTS",
        "MAX_FRAME_BYTES",
    ] {
        let needle = format!("capability register {register} reads");
        ensure!(
            log.lines().any(|line| line.contains(refused.as_str())
                && line.contains(&needle)
                && line.contains("card refused")),
            "no refusal of {register} for {refused} in the kernel log"
        );
    }
    for node in [
        "/dev/fgrab0",
        "/dev/fgrab1",
        "/dev/fgrab2",
        "/dev/fgrab3",
        "/dev/fgrab4",
        "/dev/fgrab5",
    ] {
        ensure!(
            std::path::Path::new(node).exists(),
            "{node} missing: a good card was not bound"
        );
    }
    ensure!(
        !std::path::Path::new("/dev/fgrab6").exists(),
        "a seventh card node exists"
    );
    harness::info(&format!(
        "{refused} (hostile capabilities) is on the bus, unbound, and the log names each bad register"
    ));
    Ok(())
}

/// Card 0's record for frame 100 claims 0xffffff00 bytes: that frame completes with
/// `-EIO`, its metadata flags an error and carries the frame's size, the stream goes on.
pub fn hostile_records() -> TestResult {
    let layout = Layout::UNALIGNED;
    let mut streamer = Streamer::attach("/dev/fgrab0", layout)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut failed = None;
    while streamer.tally.verified < 300 || failed.is_none() {
        ensure!(
            Instant::now() < deadline,
            "{} frames verified, failed frame {failed:?}",
            streamer.tally.verified
        );
        for completion in streamer.reap(Duration::from_millis(500))? {
            if completion.res < 0 && completion.res != -libc::ECANCELED {
                // CAST: masked to 16 bits.
                let index = (completion.user_data & 0xffff) as u32;
                let meta = streamer.metas[index as usize];
                ensure!(
                    completion.res == -libc::EIO,
                    "frame {index} with the hostile record completed with {}, expected -EIO \
                     (metadata {meta:?})",
                    completion.res
                );
                ensure!(failed.is_none(), "a second frame failed: {index}, {meta:?}");
                ensure!(
                    meta.flags & META_ERROR != 0
                        && meta.flags & META_FRAME != 0
                        && meta.bytes == layout.frame_bytes,
                    "metadata of the hostile record's frame: {meta:?}"
                );
                failed = Some(meta.sequence);
                streamer.queued[index as usize] = false;
                streamer.queue(index)?;
            } else {
                streamer.check(completion, true)?;
            }
        }
        streamer.flush()?;
    }
    streamer.stop()?;
    let stats = streamer.stats()?;
    ensure!(
        stats.frames_failed == 1 && stats.frames_delivered == streamer.tally.verified,
        "driver counted {} delivered, {} failed; the test verified {}",
        stats.frames_delivered,
        stats.frames_failed,
        streamer.tally.verified
    );
    ensure!(
        kernel_log()?.contains("record claims 4294967040 bytes"),
        "no warning about the record in the kernel log"
    );
    streamer.check_guards()?;
    harness::info(&format!(
        "hostile record at sequence {failed:?}: -EIO, flagged, {} frames verified around it",
        streamer.tally.verified
    ));
    streamer.detach()
}

/// Card 2 (`/dev/fgrab1`) answers its first stop after frame 50 with IDLE while it keeps
/// every queued frame, and writes one of them 500 ms later. The driver must notice that
/// the card's account does not match its own and reset the card before it reclaims the
/// frames: nothing is written into them afterwards.
pub fn hostile_stop_keeps_frames() -> TestResult {
    const CARD: &str = "/dev/fgrab1";
    const MARK: u8 = 0x7e;
    let layout = Layout::UNALIGNED;
    let mut streamer = Streamer::attach(CARD, layout)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(100, Duration::from_secs(60))?;
    // Every frame on the card when the stop comes.
    streamer.queue_all()?;
    streamer.stop()?;
    for index in 0..layout.count {
        streamer.write_frame(index, |_| MARK);
    }
    // The card's late write is due 500 ms after the stop (the frames are marked well before that).
    std::thread::sleep(Duration::from_millis(1500));
    for index in 0..layout.count {
        if let Some(offset) = streamer.frame(index).iter().position(|&byte| byte != MARK) {
            return Err(format!(
                "frame {index} was written after the driver reclaimed it (offset {offset})"
            ));
        }
    }
    streamer.check_guards()?;
    ensure!(
        kernel_log()?.contains("frames unaccounted for; resetting the card"),
        "the kernel log does not say the card was reset"
    );
    // The card works again after the reset.
    let target = streamer.tally.verified + 100;
    streamer.queue_all()?;
    ensure!(
        streamer.control(ops::START)? == 0,
        "START after the reset failed"
    );
    streamer.run(target, Duration::from_secs(60))?;
    streamer.stop()?;
    harness::info("a card idle with frames kept was reset before they were reclaimed");
    streamer.detach()
}
