//! Cards that are not to be trusted (suite `vm-hostile`, `docs/hardware.md` §11): card 0's
//! record for frame 100 claims more bytes than any frame, card 1's capability registers
//! break the interface's rules. The driver refuses card 1 and fails card 0's frame without
//! believing the count.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::stream::{Layout, Streamer};
use fgrab_uapi::{ops, META_ERROR, META_FRAME};
use std::time::{Duration, Instant};

/// The kernel log so far.
fn kernel_log() -> Result<String, String> {
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
    ensure!(cards.len() == 2, "expected 2 cards on the bus, found {cards:?}");
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
            log.lines()
                .any(|line| line.contains(refused.as_str()) && line.contains(&needle)
                    && line.contains("card refused")),
            "no refusal of {register} for {refused} in the kernel log"
        );
    }
    ensure!(
        std::path::Path::new("/dev/fgrab0").exists(),
        "/dev/fgrab0 missing: the good card was not bound"
    );
    ensure!(
        !std::path::Path::new("/dev/fgrab1").exists(),
        "a second card node exists"
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
                ensure!(
                    failed.is_none(),
                    "a second frame failed: {index}, {meta:?}"
                );
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
