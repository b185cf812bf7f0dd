//! A cancel call must not hold its ring (issue 13, item 7).
//!
//! When a process that shares a ring calls `execve()`, io_uring cancels every cancelable
//! command on that ring, holding the ring's lock, and repeats the call until they complete;
//! the ring stays alive for the other processes that hold it. (A thread's or process's exit
//! cancels nothing of ours: the commands stay in flight until the ring itself goes.) If the
//! driver ended the region inside that call, stopping the card (up to 2 s for a card that
//! does not stop, then a reset) and unmapping and dirtying every page, each of those
//! processes would wait as long for its next submission. Here a forked child attaches and
//! streams on the parent's ring, then execs, while the parent times no-ops on that ring.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::streamer::{Layout, Streamer, ATTACH, FRAME};
use crate::uring::{attach_request, Completion, Memory, TestUring};
use fgrab_uapi::{ops, ControlCmd, QueueCmd};
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

const START: u64 = 0x57a7;
/// No-ops: a bit of their own, apart from the frame and control tags.
const NOP: u64 = 1 << 40;

/// What one process's `execve()` cost the ring's other user.
struct CancelRun {
    /// Longest a no-op waited for its completion while the exec canceled the region.
    worst_nop: Duration,
    /// No-ops timed.
    nops: u32,
    /// From the go-ahead to exec to the attach command's completion (the region's end).
    teardown: Duration,
}

/// A pipe: (read end, write end).
fn pipe() -> Result<(File, File), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// The forked child: attaches `request`, queues `count` frames and starts the card on the
/// parent's ring, says so on `ready`, waits for a byte on `go` and execs `busybox true`.
/// Never returns.
fn child(
    ring: &mut TestUring,
    request: &fgrab_uapi::AttachCmd,
    count: u32,
    ready: i32,
    go: i32,
    argv: &[*const libc::c_char],
) -> ! {
    let submitted = (|| -> Result<(), String> {
        ring.push(ops::ATTACH, request.as_bytes(), Some(0), ATTACH)?;
        for frame in 0..count {
            let queue = QueueCmd {
                frame,
                ..QueueCmd::new_zeroed()
            };
            ring.push(ops::QUEUE, queue.as_bytes(), None, FRAME | u64::from(frame))?;
        }
        ring.push(ops::START, ControlCmd::new_zeroed().as_bytes(), None, START)?;
        ring.flush()
    })();
    let mut byte = [0u8];
    // SAFETY: raw syscalls on descriptors this process owns; `argv` is a null-terminated
    // array of C strings prepared before the fork; `_exit` ends the child without running
    // the parent's destructors twice.
    unsafe {
        if submitted.is_err() {
            libc::_exit(2);
        }
        libc::write(ready, byte.as_ptr().cast(), 1);
        libc::read(go, byte.as_mut_ptr().cast(), 1);
        libc::execv(argv[0], argv.as_ptr());
        libc::_exit(127)
    }
}

/// A forked child attaches `count` frames of `frame_bytes` every `stride` bytes of `memory`
/// on this process's ring of `card`, queues them all and starts the card; once
/// `frames_before_exec` frames completed, it execs, while this process times no-ops on the
/// same ring until the attach command has completed and every frame command was answered.
fn exec_while_streaming(
    card: &str,
    memory: &Memory,
    frame_bytes: u32,
    stride: u64,
    count: u32,
    frames_before_exec: usize,
) -> Result<CancelRun, String> {
    let mut ring = TestUring::open(card)?;
    // SAFETY: `memory` outlives the ring, which this function drops before returning.
    unsafe { ring.register(&[memory])? };
    let request = attach_request(memory.addr() + 0x321, frame_bytes, stride, count);
    let program = CString::new("/bin/busybox").map_err(|error| error.to_string())?;
    let name = CString::new("true").map_err(|error| error.to_string())?;
    let argv = [program.as_ptr(), name.as_ptr(), std::ptr::null()];
    let (mut ready_read, ready_write) = pipe()?;
    let (go_read, mut go_write) = pipe()?;
    // SAFETY: this test process is single-threaded; the child only makes system calls and
    // execs or `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let (ready, go) = (ready_write.into_raw_fd(), go_read.into_raw_fd());
        child(&mut ring, &request, count, ready, go, &argv);
    }
    drop((ready_write, go_read));
    let reap_child = |expect_success: bool| -> TestResult {
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        ensure!(
            !expect_success || (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0),
            "the child that exec'd `busybox true` ended with status {status:#x}"
        );
        Ok(())
    };
    let mut byte = [0u8];
    if ready_read
        .read(&mut byte)
        .map_err(|error| error.to_string())?
        != 1
    {
        reap_child(false)?;
        return Err("the child could not submit its commands".into());
    }
    // The child submitted; its completions arrive on the shared ring, reaped here only.
    let mut early: Vec<Completion> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = loop {
        early.extend(ring.reap(1, Duration::from_millis(200))?);
        let failed = early
            .iter()
            .find(|c| (c.user_data == ATTACH || c.user_data == START) && c.res != 0)
            .copied();
        let frames = early.iter().filter(|c| c.user_data & FRAME != 0).count();
        let started = early.iter().any(|c| c.user_data == START);
        if failed.is_some()
            || (started && frames >= frames_before_exec)
            || Instant::now() > deadline
        {
            break failed.map_or(
                if started && frames >= frames_before_exec {
                    Ok(())
                } else {
                    Err(format!("{frames} frames before the exec: {early:?}"))
                },
                |failed| Err(format!("ATTACH or START failed: {failed:?}")),
            );
        }
    };
    // Go: the child execs, which cancels its commands on the shared ring.
    let exec_at = Instant::now();
    let told = go_write.write(&byte).map_err(|error| error.to_string());
    drop(go_write);
    if let Err(error) = started.and(told.map(|_| ())) {
        reap_child(false)?;
        return Err(error);
    }
    let mut worst_nop = Duration::ZERO;
    let mut nops = 0u32;
    let mut seen: Vec<Completion> = Vec::new();
    let mut attach_done: Option<(i32, Instant)> = None;
    // Time no-ops until the region ended and a little after.
    while attach_done.is_none_or(|(_, at)| at.elapsed() < Duration::from_millis(200)) {
        if exec_at.elapsed() > Duration::from_secs(30) {
            reap_child(false)?;
            return Err(format!(
                "the attach command was not answered within 30 s of the exec ({} completions \
                 since)",
                seen.len()
            ));
        }
        let user_data = NOP | u64::from(nops);
        let sent = Instant::now();
        ring.push_nop(user_data)?;
        ring.flush()?;
        loop {
            let batch = ring.reap(1, Duration::from_secs(10))?;
            ensure!(
                sent.elapsed() < Duration::from_secs(10),
                "a no-op was not answered within 10 s"
            );
            let mine = batch.iter().any(|c| c.user_data == user_data);
            for completion in batch.into_iter().filter(|c| c.user_data & NOP == 0) {
                if completion.user_data == ATTACH {
                    attach_done = Some((completion.res, Instant::now()));
                }
                seen.push(completion);
            }
            if mine {
                break;
            }
        }
        worst_nop = worst_nop.max(sent.elapsed());
        nops += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    reap_child(true)?;
    let (attach_res, attach_at) = attach_done.ok_or("no attach completion")?;
    ensure!(
        attach_res == -libc::ECANCELED,
        "the attach command of the exec'd child completed with {attach_res}, expected -ECANCELED"
    );
    // Every frame command was answered exactly once: before the exec, or by the region's end.
    let mut answered: Vec<u64> = early
        .iter()
        .chain(&seen)
        .filter(|c| c.user_data & FRAME != 0)
        .map(|c| c.user_data)
        .collect();
    answered.sort_unstable();
    let expected: Vec<u64> = (0..u64::from(count)).map(|frame| FRAME | frame).collect();
    ensure!(
        answered == expected,
        "frame commands answered {answered:x?}, expected each of 0..{count} once; before the \
         exec: {early:x?}; after: {seen:x?}"
    );
    for completion in seen.iter().filter(|c| c.user_data & FRAME != 0) {
        ensure!(
            completion.res == -libc::ECANCELED
                || (completion.res > 0 && completion.res <= frame_bytes as i32),
            "frame completion at the region's end: {completion:?}"
        );
    }
    Ok(CancelRun {
        worst_nop,
        nops,
        teardown: attach_at - exec_at,
    })
}

/// Where a ring's other user would wait longest with a card that stops: a region of many
/// 4 KiB pages (each unmapped and dirtied at its end) streaming at the exec. Every DMA mode.
pub fn stream_cancel_keeps_ring() -> TestResult {
    // 12 MiB of small pages: under the bounce-buffer cap of vm-swiotlb.
    const FRAME_BYTES: u32 = 786_431;
    const STRIDE: u64 = 786_431 + 65;
    const COUNT: u32 = 16;
    let memory =
        Memory::fragmented((STRIDE as usize * COUNT as usize + 4096).next_multiple_of(4096))?;
    let run = exec_while_streaming("/dev/fgrab0", &memory, FRAME_BYTES, STRIDE, COUNT, 4)?;
    harness::info(&format!(
        "an exec canceled a streaming region: it ended in {} ms; worst no-op on the shared \
         ring {} ms over {} no-ops",
        run.teardown.as_millis(),
        run.worst_nop.as_millis(),
        run.nops
    ));
    ensure!(
        run.worst_nop < Duration::from_millis(500),
        "a no-op on the ring waited {} ms while the exec canceled the region",
        run.worst_nop.as_millis()
    );
    Ok(())
}

/// Card 3 of vm-hostile (`/dev/fgrab2`) ignores its first stop request: the driver waits
/// 2 s for it and then resets the card. That must happen outside the ring lock: the other
/// process's no-ops keep completing at once. The card streams again afterwards.
pub fn hostile_deaf_stop_cancel() -> TestResult {
    const CARD: &str = "/dev/fgrab2";
    let memory = Memory::new(2 << 20)?;
    let run = exec_while_streaming(CARD, &memory, 65_543, 65_543 + 61, 16, 4)?;
    harness::info(&format!(
        "an exec canceled a region on a card that ignores stop: it ended in {} ms; worst \
         no-op on the shared ring {} ms over {} no-ops",
        run.teardown.as_millis(),
        run.worst_nop.as_millis(),
        run.nops
    ));
    ensure!(
        run.teardown >= Duration::from_secs(2),
        "the region ended in {} ms: the card was expected to ignore the stop for 2 s",
        run.teardown.as_millis()
    );
    ensure!(
        run.worst_nop < Duration::from_millis(500),
        "a no-op on the ring waited {} ms while the card ignored the stop",
        run.worst_nop.as_millis()
    );
    ensure!(
        crate::hostile::kernel_log()?.contains("after a stop request; resetting the card"),
        "the kernel log does not say the card was reset"
    );
    // The reset card works again.
    let mut streamer = Streamer::attach(CARD, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(
        streamer.control(ops::START)? == 0,
        "START after the reset failed"
    );
    streamer.run(50, Duration::from_secs(60))?;
    streamer.stop()?;
    streamer.detach()?;
    harness::info("the card that ignored the stop was reset and streams again");
    Ok(())
}
