//! The copy path's (`read()`) memory: bounded, and charged to the reader's memory cgroup,
//! so an unprivileged opener cannot make the driver allocate GiBs of unaccounted kernel
//! memory.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::stream::read_verified_frames;
use crate::sys;
use crate::uring::TestUring;
use fgrab_uapi::STATE_IDLE;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CARD0: &str = "/dev/fgrab0";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The test's memory cgroup.
const GROUP: &str = "/sys/fs/cgroup/fgrab-read-test";
/// Its `memory.max`: far below what the reader's frames need.
const LIMIT_BYTES: u64 = 8 << 20;
/// The reader's frame: 8 of them are 16 MiB, within the bounce-buffer limit of a 64 MiB
/// swiotlb pool, so the memory cgroup is what refuses them in every suite.
const FRAME_BYTES: usize = 2 << 20;
/// The driver's largest copy-path frame (`docs/abi.md`).
const COPY_MAX_FRAME_BYTES: usize = 16 << 20;
/// `nobody`.
const UNPRIVILEGED: u32 = 65534;

/// `read(2)` of `len` bytes into a buffer that is allocated but not touched (an allocation
/// the kernel refuses costs the reader nothing): the byte count or the errno.
fn raw_read(file: &std::fs::File, len: usize) -> Result<usize, i32> {
    use std::os::fd::AsRawFd;
    let mut buffer: Vec<u8> = Vec::with_capacity(len);
    // SAFETY: the buffer has room for `len` bytes; the kernel only writes into it.
    let got = unsafe { libc::read(file.as_raw_fd(), buffer.as_mut_ptr().cast(), len) };
    if got < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        // CAST: non-negative.
        Ok(got as usize)
    }
}

/// Puts the machine back whatever the test's outcome: the node's mode, the cgroup.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(CARD0, std::fs::Permissions::from_mode(0o660));
        let _ = std::fs::remove_dir(GROUP);
    }
}

/// Mounts cgroup v2 if needed and creates [`GROUP`] with the memory controller and
/// [`LIMIT_BYTES`].
fn memory_cgroup() -> TestResult {
    let controllers = format!("{CGROUP_ROOT}/cgroup.controllers");
    if !std::path::Path::new(&controllers).exists() {
        sys::mount("cgroup2", CGROUP_ROOT, "cgroup2")
            .map_err(|error| format!("mounting cgroup2 on {CGROUP_ROOT}: {error}"))?;
    }
    let available = std::fs::read_to_string(&controllers).map_err(|error| error.to_string())?;
    ensure!(
        available.split_whitespace().any(|name| name == "memory"),
        "no memory controller in {controllers} ({available:?}): kernel without CONFIG_MEMCG?"
    );
    std::fs::write(format!("{CGROUP_ROOT}/cgroup.subtree_control"), "+memory")
        .map_err(|error| format!("enabling the memory controller: {error}"))?;
    let _ = std::fs::remove_dir(GROUP);
    std::fs::create_dir(GROUP).map_err(|error| format!("creating {GROUP}: {error}"))?;
    std::fs::write(format!("{GROUP}/memory.max"), LIMIT_BYTES.to_string())
        .map_err(|error| format!("setting memory.max: {error}"))
}

/// A counter of `GROUP/memory.events` (`oom_kill`, `max`, ...).
fn memory_event(name: &str) -> Result<u64, String> {
    let events = std::fs::read_to_string(format!("{GROUP}/memory.events"))
        .map_err(|error| error.to_string())?;
    events
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .ok_or_else(|| format!("no {name} in memory.events: {events:?}"))
}

/// An unprivileged reader in a memory cgroup far smaller than the copy path's frames gets
/// a clean `ENOMEM` (the frames are charged to it; nothing is OOM-killed), a frame above
/// the documented maximum gets `EINVAL`, and the card streams normally afterwards.
pub fn stream_read_memcg() -> TestResult {
    let _cleanup = Cleanup;
    memory_cgroup()?;
    std::fs::set_permissions(CARD0, std::fs::Permissions::from_mode(0o666))
        .map_err(|error| format!("chmod {CARD0}: {error}"))?;
    // The reader waits for a line on stdin, so that it is in the cgroup before it drops
    // its privileges and opens the card.
    let mut child = Command::new("/bin/fgrab-guest")
        .args(["read-child", CARD0, &FRAME_BYTES.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("starting the reader: {error}"))?;
    std::fs::write(format!("{GROUP}/cgroup.procs"), child.id().to_string())
        .map_err(|error| format!("moving the reader into {GROUP}: {error}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin pipe")?
        .write_all(b"go\n")
        .map_err(|error| error.to_string())?;
    let mut report = String::new();
    child
        .stdout
        .take()
        .ok_or("no stdout pipe")?
        .read_to_string(&mut report)
        .map_err(|error| error.to_string())?;
    let status = child.wait().map_err(|error| error.to_string())?;
    ensure!(
        status.signal().is_none(),
        "the reader was killed by signal {:?}: {report}",
        status.signal()
    );
    let report = report.trim();
    ensure!(
        report == format!("uid {UNPRIVILEGED} errno {}", libc::ENOMEM),
        "unprivileged read() of {FRAME_BYTES} B frames in a {LIMIT_BYTES} B memory cgroup: \
         expected ENOMEM, the reader says {report:?}"
    );
    let (oom_kills, at_max) = (memory_event("oom_kill")?, memory_event("max")?);
    ensure!(
        oom_kills == 0,
        "{oom_kills} OOM kills in the reader's cgroup"
    );
    ensure!(
        at_max > 0,
        "the cgroup never reached memory.max: the frames were not charged to it"
    );
    harness::info(&format!(
        "copy path in a {LIMIT_BYTES} B memory cgroup: ENOMEM after {at_max} charges at the \
         limit, no OOM kill"
    ));

    {
        let file = std::fs::File::open(CARD0).map_err(|error| error.to_string())?;
        let res = raw_read(&file, COPY_MAX_FRAME_BYTES + 1);
        ensure!(
            res == Err(libc::EINVAL),
            "read() of a frame above the copy path's maximum: expected EINVAL, got {res:?}"
        );
    }

    // Nothing was left behind: the card is idle and streams for the next reader.
    let mut observer = TestUring::open(CARD0)?;
    let stats = observer.stats()?;
    ensure!(
        stats.state == STATE_IDLE,
        "card not idle after the refused read: {stats:?}"
    );
    let mut file = std::fs::File::open(CARD0).map_err(|error| error.to_string())?;
    let started = Instant::now();
    read_verified_frames(&mut file, FRAME_BYTES, 5)
        .map_err(|error| format!("after the refusal: {error}"))?;
    ensure!(
        started.elapsed() < Duration::from_secs(60),
        "5 frames took over a minute"
    );
    Ok(())
}

/// Becomes user and group [`UNPRIVILEGED`], without supplementary groups.
fn drop_privileges() -> Result<(), String> {
    // SAFETY: plain system calls on this single-threaded process's credentials.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
        }
        if libc::setgid(UNPRIVILEGED) != 0 {
            return Err(format!("setgid: {}", std::io::Error::last_os_error()));
        }
        if libc::setuid(UNPRIVILEGED) != 0 {
            return Err(format!("setuid: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// `fgrab-guest read-child PATH BYTES`: waits for a line on stdin, becomes `nobody`, then
/// reads one frame of `BYTES` from `PATH` and prints `uid UID bytes N` or `uid UID errno E`.
pub fn read_child(path: &str, bytes: usize) -> ! {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    if let Err(error) = drop_privileges() {
        println!("{error}");
        std::process::exit(1);
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    match std::fs::File::open(path) {
        Ok(file) => match raw_read(&file, bytes) {
            Ok(got) => println!("uid {uid} bytes {got}"),
            Err(errno) => println!("uid {uid} errno {errno}"),
        },
        Err(error) => println!("uid {uid} open {error}"),
    }
    std::process::exit(0)
}
