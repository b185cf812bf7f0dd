//! Every teardown trigger in the middle of a stream: detach, ring exit, process killed, file
//! closed, unbind (with waiters blocked in the driver), module unload; and what user space
//! wrote into its frames surviving each.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::stream::{dqbuf, qbuf};
use crate::streamer::{
    drain_until_gone, pci_address, pci_remove, stream_briefly, wait_for_node, wait_idle, Layout,
    Streamer, CARD0, GUARD, MIB, PCI_DRIVER,
};
use fgrab_uapi::{ops, META_FRAME, STATE_STREAMING};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `DETACH` while frames stream: queued frames complete first, then the region ends; the
/// card streams again afterwards.
pub fn stream_detach_midstream() -> TestResult {
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(100, Duration::from_secs(60))?;
    streamer.detach()?;
    streamer.check_guards()?;
    drop(streamer);
    stream_briefly(CARD0, 100).map(|_| ())
}

/// What user space writes into frame `frame` of the region in [`user_bytes_survive`].
fn user_byte(frame: u32, offset: usize) -> u8 {
    // CAST: a byte of a mix of both; any pattern no card frame and no guard byte matches.
    (offset.wrapping_mul(131) ^ (frame as usize * 29) ^ 0x3c) as u8
}

/// The region ends (`DETACH`, or the ring's exit) after a few frames: bytes user space wrote
/// into a frame the card had filled and completed (in-place processing), and into a frame it
/// never queued, are still there afterwards. Under bounce buffering (`swiotlb=force`) an
/// unmap that copies back would revert both to the stale bounce buffer contents.
fn user_bytes_survive(ring_exit: bool) -> TestResult {
    const FILLED: u32 = 1;
    const NEVER_QUEUED: u32 = 15;
    let layout = Layout::UNALIGNED;
    let mut streamer = Streamer::attach(CARD0, layout)?;
    for index in 0..4 {
        streamer.queue(index)?;
    }
    streamer.flush()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while streamer.queued[..4].iter().any(|&queued| queued) {
        ensure!(
            Instant::now() < deadline,
            "the first frames did not complete"
        );
        for completion in streamer.reap(Duration::from_millis(200))? {
            streamer.check(completion, false)?;
        }
    }
    ensure!(
        streamer.metas[FILLED as usize].flags == META_FRAME,
        "frame {FILLED} was not filled: {:?}",
        streamer.metas[FILLED as usize]
    );
    for index in [FILLED, NEVER_QUEUED] {
        streamer.write_frame(index, |offset| user_byte(index, offset));
    }
    let how = if ring_exit {
        streamer.exit_ring(CARD0)?;
        wait_idle(CARD0)?;
        "ring exit"
    } else {
        streamer.detach()?;
        "DETACH"
    };
    for (index, what) in [
        (FILLED, "filled and completed"),
        (NEVER_QUEUED, "never queued"),
    ] {
        let frame = streamer.frame(index);
        if let Some(offset) =
            (0..frame.len()).find(|&offset| frame[offset] != user_byte(index, offset))
        {
            let reverted = if frame[offset] == GUARD {
                " (the byte from before the region was attached)"
            } else {
                ""
            };
            return Err(format!(
                "after {how}: frame {index} ({what}) lost the bytes user space wrote: offset \
                 {offset} is {:#04x}, expected {:#04x}{reverted}",
                frame[offset],
                user_byte(index, offset)
            ));
        }
    }
    streamer.check_guards()?;
    harness::info(&format!(
        "after {how}: user bytes in a completed frame and a never-queued frame intact"
    ));
    Ok(())
}

/// [`user_bytes_survive`] with `DETACH`.
pub fn stream_user_bytes_detach() -> TestResult {
    user_bytes_survive(false)
}

/// [`user_bytes_survive`] with the ring's exit.
pub fn stream_user_bytes_ring_exit() -> TestResult {
    user_bytes_survive(true)
}

/// Helper process: streams, says so, and keeps streaming until killed or until its ring
/// exits (`exit` = return without detaching after 200 frames).
pub fn stream_child(path: &str, exit: bool) -> ! {
    let result = (|| -> TestResult {
        let mut streamer = Streamer::attach(path, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(50, Duration::from_secs(60))?;
        println!("streaming");
        if exit {
            streamer.run(200, Duration::from_secs(60))?;
            // Leave without STOP or DETACH: the ring's exit cancels the attach command.
            std::process::exit(0);
        }
        streamer.run(u64::MAX, Duration::from_secs(3600))
    })();
    println!("error: {}", result.err().unwrap_or_default());
    std::process::exit(1)
}

/// Runs [`stream_child`] and returns it once it streams.
fn spawn_streamer(exit: bool) -> Result<std::process::Child, String> {
    let mut child = Command::new("/bin/fgrab-guest")
        .args(["stream-child", CARD0, if exit { "exit" } else { "wait" }])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("spawning the streaming process: {error}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|error| error.to_string())?;
    ensure!(line.trim() == "streaming", "child said `{}`", line.trim());
    Ok(child)
}

/// The streaming process is killed: the region ends, nothing leaks, the card streams again.
pub fn stream_process_killed() -> TestResult {
    let mut child = spawn_streamer(false)?;
    let _ = child.kill();
    let _ = child.wait();
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The streaming process exits without stopping: its ring's exit ends the region.
pub fn stream_ring_exit() -> TestResult {
    let mut child = spawn_streamer(true)?;
    let status = child.wait().map_err(|error| error.to_string())?;
    ensure!(status.success(), "streaming process failed: {status}");
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The card file is closed while streaming: in-flight commands keep the file, so frames
/// keep coming; when the ring goes, the region ends.
pub fn stream_file_closed() -> TestResult {
    {
        let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(50, Duration::from_secs(60))?;
        streamer.ring.close_file()?;
        // The queued frames hold the file: they are still filled and completed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while streamer.queued.iter().any(|&queued| queued) {
            ensure!(
                Instant::now() < deadline,
                "queued frames stalled after close"
            );
            for completion in streamer.reap(Duration::from_millis(100))? {
                streamer.check(completion, false)?;
            }
        }
        ensure!(
            streamer.stats()?.state == STATE_STREAMING,
            "the region ended when the file was closed, although commands hold it"
        );
    }
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The card is unbound while streaming: every frame completes with -ENODEV (or filled),
/// the attach command with -ENODEV; after a rebind the card streams again.
pub fn stream_unbind() -> TestResult {
    let driver = "/sys/bus/pci/drivers/fgrab";
    let device = pci_address(0)?;
    {
        let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(100, Duration::from_secs(60))?;
        std::fs::write(format!("{driver}/unbind"), &device)
            .map_err(|error| format!("unbind {device}: {error}"))?;
        let res = drain_until_gone(&mut streamer, Duration::from_secs(10))?;
        ensure!(res == -libc::ENODEV, "attach ended with {res}");
        streamer.check_guards()?;
    }
    std::fs::write(format!("{driver}/bind"), &device)
        .map_err(|error| format!("bind {device}: {error}"))?;
    wait_for_node(CARD0, true, Duration::from_secs(10))?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// How card 0 goes away under its waiters.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Departure {
    /// `/sys/bus/pci/drivers/fgrab/unbind`, then `bind` again.
    Unbind,
    /// `/sys/bus/pci/devices/.../remove` (hot removal), then a bus rescan.
    Removal,
}

/// Threads blocked on card 0 when it goes: in `ioctl(DQBUF)` (frames queued with `QBUF`
/// but the stream not started, so nothing ever completes) or, with `read`, in `read()` on
/// the copy path (frames of 1 MiB: 8 of them stay under the cap on bounced regions, so the
/// test means the same through swiotlb; at any moment some threads copy and the others
/// wait for a frame). Every one must return `ENODEV` promptly. The card comes back
/// afterwards.
pub(crate) fn waiters_see_departure(read: bool, departure: Departure) -> TestResult {
    const THREADS: usize = 4;
    let address = pci_address(0)?;
    let mut streamer = None;
    let mut reading = None;
    let mut threads = Vec::new();
    if read {
        let file = std::sync::Arc::new(
            std::fs::File::open(CARD0).map_err(|error| format!("{CARD0}: {error}"))?,
        );
        reading = Some(file.clone());
        for _ in 0..THREADS {
            let file = file.clone();
            threads.push(std::thread::spawn(move || {
                use std::io::Read;
                let mut buffer = vec![0u8; MIB];
                loop {
                    if let Err(error) = (&*file).read(&mut buffer) {
                        return error.raw_os_error().unwrap_or(0);
                    }
                }
            }));
        }
    } else {
        let attached = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        let fd = attached.ring.fd();
        for index in 0..THREADS as u32 {
            qbuf(fd, index).map_err(|errno| format!("QBUF {index}: errno {errno}"))?;
        }
        streamer = Some(attached);
        for _ in 0..THREADS {
            threads.push(std::thread::spawn(move || match dqbuf(fd) {
                Ok(_) => 0,
                Err(errno) => errno,
            }));
        }
    }
    let what = if read { "read()" } else { "ioctl(DQBUF)" };
    // Let them block (or, reading, stream for a while).
    std::thread::sleep(Duration::from_millis(500));
    let early = threads.iter().filter(|thread| thread.is_finished()).count();
    ensure!(
        early == 0,
        "{early} threads in {what} returned before the card went"
    );
    let started = Instant::now();
    match departure {
        Departure::Unbind => std::fs::write(format!("{PCI_DRIVER}/unbind"), &address)
            .map_err(|error| format!("unbind {address}: {error}"))?,
        Departure::Removal => pci_remove(&address)?,
    }
    let gone_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(3);
    while threads.iter().any(|thread| !thread.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let returned_in = started.elapsed();
    let stuck = threads
        .iter()
        .filter(|thread| !thread.is_finished())
        .count();
    // Bring the card back before judging: later tests need it, and its number (the lowest
    // free one) is free only once every file of the departed card is closed. A thread still
    // blocked is interrupted by a signal (no SA_RESTART: its call fails with EINTR).
    interrupt(&threads);
    let errnos: Vec<i32> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or(0))
        .collect();
    drop(reading);
    drop(streamer);
    match departure {
        Departure::Unbind => std::fs::write(format!("{PCI_DRIVER}/bind"), &address)
            .map_err(|error| format!("bind {address}: {error}"))?,
        Departure::Removal => {
            wait_for_node(CARD0, false, Duration::from_secs(10))?;
            std::fs::write("/sys/bus/pci/rescan", "1")
                .map_err(|error| format!("rescan: {error}"))?;
        }
    }
    wait_for_node(CARD0, true, Duration::from_secs(30))?;
    ensure!(
        stuck == 0,
        "{departure:?}: {stuck} of {THREADS} threads in {what} still blocked 3 s after the \
         card went"
    );
    for errno in errnos {
        ensure!(
            errno == libc::ENODEV,
            "{departure:?}: a thread in {what} returned errno {errno}, expected ENODEV"
        );
    }
    harness::info(&format!(
        "{departure:?}: {THREADS} threads in {what} returned ENODEV within {} ms of the card \
         going ({} ms for it to go)",
        returned_in.as_millis(),
        gone_in.as_millis()
    ));
    Ok(())
}

/// Sends SIGUSR1, caught by a handler that does nothing, to every thread still running.
fn interrupt(threads: &[std::thread::JoinHandle<i32>]) {
    use std::os::unix::thread::JoinHandleExt;
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: a handler that does nothing, installed without SA_RESTART; the sigaction
    // structure is zeroed and then filled.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
    for thread in threads.iter().filter(|thread| !thread.is_finished()) {
        // SAFETY: the thread has not been joined, so its pthread_t is valid.
        unsafe { libc::pthread_kill(thread.as_pthread_t() as _, libc::SIGUSR1) };
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// Threads blocked in `ioctl(DQBUF)` and in `read()` when the card is unbound return
/// `ENODEV`; after a rebind the card streams again.
pub fn stream_unbind_waiters() -> TestResult {
    waiters_see_departure(false, Departure::Unbind)?;
    waiters_see_departure(true, Departure::Unbind)?;
    stream_briefly(CARD0, 50).map(|_| ())
}

/// Module unload attempted while a stream runs: refused, and the stream goes on.
pub fn stream_module_unload_refused() -> TestResult {
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(50, Duration::from_secs(60))?;
    // SAFETY: a NUL-terminated module name; O_NONBLOCK makes the call fail instead of wait.
    let res =
        unsafe { libc::syscall(libc::SYS_delete_module, c"fgrab".as_ptr(), libc::O_NONBLOCK) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    ensure!(
        res == -1 && (errno == Some(libc::EBUSY) || errno == Some(libc::EWOULDBLOCK)),
        "unloading fgrab while streaming: result {res}, errno {errno:?}"
    );
    streamer.run(150, Duration::from_secs(60))?;
    streamer.stop()?;
    streamer.check_guards()?;
    streamer.detach()
}
