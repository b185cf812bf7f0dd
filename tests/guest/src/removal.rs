//! The card leaving the bus while it streams: hot removal (the region ends with `-ENODEV`,
//! waiters return) and surprise removal (a card that stops answering).

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::streamer::{
    drain_until_gone, pci_address, pci_remove, stream_briefly, wait_for_node, Layout, Streamer,
    CARD0,
};
use crate::teardown::{waiters_see_departure, Departure};
use fgrab_uapi::{ops, STATE_ATTACHED};
use std::time::{Duration, Instant};

/// The card is hot-removed while streaming (`/sys/bus/pci/devices/.../remove`, the path
/// pciehp takes): frames and the attach command complete with -ENODEV, `/dev/fgrab0` goes;
/// found again by a bus rescan, it streams. Then threads blocked in `ioctl(DQBUF)`, and in
/// `read()`, when the card is removed return `ENODEV`.
///
/// QEMU's own `device_del` would be closer to a real slot, but in this stack it is not
/// usable: Linux 7.3's pciehp reports a lockdep cycle of its own on every removal
/// (`pci_rescan_remove_lock` / `ctrl->reset_lock`), and QEMU 11.1 aborts when a
/// vfio-user-pci device is added back (`memory_region_del_subregion` assertion).
pub fn stream_hot_unplug() -> TestResult {
    let address = pci_address(0)?;
    {
        let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(100, Duration::from_secs(60))?;
        pci_remove(&address)?;
        let res = drain_until_gone(&mut streamer, Duration::from_secs(30))?;
        ensure!(res == -libc::ENODEV, "attach ended with {res} on removal");
        streamer.check_guards()?;
        harness::info(&format!(
            "hot removal while streaming: {} frames verified before, region ended with -ENODEV",
            streamer.tally.verified
        ));
    }
    wait_for_node(CARD0, false, Duration::from_secs(10))?;
    std::fs::write("/sys/bus/pci/rescan", "1").map_err(|error| format!("rescan: {error}"))?;
    wait_for_node(CARD0, true, Duration::from_secs(30))?;
    stream_briefly(CARD0, 100)?;
    // Threads blocked in DQBUF, then in read(), when the card is removed: ENODEV at once.
    waiters_see_departure(false, Departure::Removal)?;
    waiters_see_departure(true, Departure::Removal)?;
    stream_briefly(CARD0, 50).map(|_| ())
}

/// The card stops answering mid-stream (emulator fault `remove@300` on card 1: reads all
/// ones, no DMA, no interrupts): the driver notices, queued frames complete with -ENODEV
/// and a new START fails; removing the dead device ends the region without waiting on it.
pub fn stream_surprise_removal() -> TestResult {
    const CARD1: &str = "/dev/fgrab1";
    let address = pci_address(1)?;
    let mut streamer = Streamer::attach(CARD1, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut gone = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "the dead card's frames did not come back"
        );
        let completions = streamer.reap(Duration::from_millis(100))?;
        let quiet = completions.is_empty();
        for completion in completions {
            if completion.res == -libc::ENODEV {
                gone += 1;
                // CAST: masked to 16 bits.
                streamer.queued[(completion.user_data & 0xffff) as usize] = false;
            } else {
                streamer.check(completion, gone == 0)?;
            }
        }
        streamer.flush()?;
        // Every frame that was on the card came back once the driver ended the stream and
        // nothing more arrives. A frame queued again just before the end (its QUEUE reached
        // the driver after it) waits for a START, as on any stopped stream.
        if gone > 0 && quiet && streamer.stats()?.state == STATE_ATTACHED {
            break;
        }
    }
    let last = streamer.tally.stream.last.unwrap_or(0);
    ensure!(
        last < 300,
        "frame {last} delivered after the card died at 300"
    );
    let stats = streamer.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED,
        "still streaming on a dead card: {stats:?}"
    );
    streamer.queue_all()?;
    let res = streamer.control(ops::START)?;
    ensure!(res == -libc::ENODEV, "START on a dead card: {res}");
    harness::info(&format!(
        "surprise removal: {} frames verified, then {gone} frames returned -ENODEV",
        streamer.tally.verified
    ));
    let started = Instant::now();
    pci_remove(&address)?;
    let res = drain_until_gone(&mut streamer, Duration::from_secs(30))?;
    ensure!(res == -libc::ENODEV, "attach ended with {res} on removal");
    streamer.check_guards()?;
    wait_for_node(CARD1, false, Duration::from_secs(10))?;
    harness::info(&format!(
        "the dead card was removed in {} ms",
        started.elapsed().as_millis()
    ));
    Ok(())
}
