//! The Python suite's userland: a Debian trixie tree shared read-only by the host over 9p
//! (`xtask/src/guest_root.rs`), in which each Python test runs chrooted.
//!
//! `/init` stays this program: it loads the module as in every suite, then mounts the tree at
//! [`ROOT`] with what a process there needs (`/proc`, `/sys`, `/dev` with a `/dev/shm`,
//! `/tmp`, `/run`) and the package under test from the initramfs ([`PACKAGE`], read-only) at
//! [`PACKAGE_MOUNT`]. A Python test is `python-<file stem>` (underscores as dashes), run as
//! `python3 -X faulthandler /opt/fgrab/tests/<file>.py` with `PYTHONPATH=/opt/fgrab/site`,
//! under the same timeout and result lines as the Rust tests.

use crate::harness::TestResult;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the tree is mounted.
pub const ROOT: &str = "/userland";

/// The package under test in the initramfs: `site/` (the unpacked `fgrab` wheel) and
/// `tests/` (`tests/python/*.py`).
pub const PACKAGE: &str = "/python";

/// Where [`PACKAGE`] appears inside the tree (an empty directory there).
pub const PACKAGE_MOUNT: &str = "/opt/fgrab";

/// Names of Python tests start with this.
pub const PREFIX: &str = "python-";

/// Kernel command-line word naming the 9p mount tag; set only for the Python suite.
const TAG_VARIABLE: &str = "fgrab_userland";

/// 9p over virtio, protocol 9P2000.L. The tree is read-only on both sides, so the page cache
/// may keep what it read (`cache=loose`): Python's imports then read each file once.
const NINEP_OPTIONS: &str = "trans=virtio,version=9p2000.L,cache=loose,msize=262144";

/// Whether the kernel command line shares a userland with this guest.
pub fn requested() -> bool {
    std::env::var(TAG_VARIABLE).is_ok()
}

/// Mounts the userland when the kernel command line asks for it, reporting the step like
/// the module load (`userland-mount`, bookkeeping for the host).
pub fn mount_if_requested() {
    let Ok(tag) = std::env::var(TAG_VARIABLE) else {
        return;
    };
    println!("@@fgrab start userland-mount");
    let started = Instant::now();
    match mount(&tag) {
        Ok(()) => println!(
            "@@fgrab pass userland-mount {}ms",
            started.elapsed().as_millis()
        ),
        Err(error) => println!("@@fgrab fail userland-mount 0ms {error}"),
    }
}

fn mount(tag: &str) -> Result<(), String> {
    use crate::sys::mount_with;
    let step = |what: &str, result: std::io::Result<()>| {
        result.map_err(|error| format!("{what}: {error}"))
    };
    step("mkdir /userland", std::fs::create_dir_all(ROOT))?;
    step(
        &format!("mounting 9p tag `{tag}` at {ROOT}"),
        mount_with(tag, ROOT, "9p", libc::MS_RDONLY, NINEP_OPTIONS),
    )?;
    let inside = |path: &str| format!("{ROOT}{path}");
    step("proc", mount_with("proc", &inside("/proc"), "proc", 0, ""))?;
    step(
        "sysfs",
        mount_with("sysfs", &inside("/sys"), "sysfs", 0, ""),
    )?;
    step(
        "/dev",
        mount_with(
            "/dev",
            &inside("/dev"),
            "",
            libc::MS_BIND | libc::MS_REC,
            "",
        ),
    )?;
    // Python's multiprocessing and numpy's users put POSIX semaphores and shared memory here.
    step("mkdir /dev/shm", std::fs::create_dir_all("/dev/shm"))?;
    step(
        "/dev/shm",
        mount_with("tmpfs", &inside("/dev/shm"), "tmpfs", 0, "mode=1777"),
    )?;
    for dir in ["/tmp", "/run"] {
        step(
            dir,
            mount_with("tmpfs", &inside(dir), "tmpfs", 0, "mode=1777"),
        )?;
    }
    let package = inside(PACKAGE_MOUNT);
    step(
        PACKAGE_MOUNT,
        mount_with(PACKAGE, &package, "", libc::MS_BIND, ""),
    )?;
    step(
        "read-only package",
        mount_with(
            "",
            &package,
            "",
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            "",
        ),
    )
}

/// The script of Python test `name` (`python-<stem>`, underscores of the stem as dashes),
/// as a file name in `/python/tests`.
fn script(name: &str) -> Result<String, String> {
    let wanted = name
        .strip_prefix(PREFIX)
        .ok_or_else(|| format!("`{name}` is not a Python test"))?;
    let dir = format!("{PACKAGE}/tests");
    let entries = std::fs::read_dir(&dir).map_err(|error| format!("{dir}: {error}"))?;
    entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|file| {
            file.strip_suffix(".py")
                .is_some_and(|stem| stem.replace('_', "-") == wanted)
        })
        .ok_or_else(|| format!("no {dir}/*.py for test `{name}`"))
}

/// What a test file asks for in a `# fgrab-test: uid=N gid=N timeout=S` line (any of the
/// words, within its first 20 lines).
#[derive(Default)]
struct Directives {
    /// Run as this user and group (no supplementary groups) instead of root.
    user: Option<(u32, u32)>,
    /// Seconds it may take, if more than the harness default.
    timeout_seconds: Option<u64>,
}

fn directives(source: &str) -> Result<Directives, String> {
    let mut found = Directives::default();
    let mut uid = None;
    let mut gid = None;
    for line in source.lines().take(20) {
        let Some(words) = line.trim().strip_prefix("# fgrab-test:") else {
            continue;
        };
        for word in words.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("# fgrab-test: `{word}` wants a number"))
            };
            match key {
                "uid" => uid = Some(number()? as u32),
                "gid" => gid = Some(number()? as u32),
                "timeout" => found.timeout_seconds = Some(number()?),
                _ => return Err(format!("# fgrab-test: unknown word `{word}`")),
            }
        }
    }
    if let Some(uid) = uid {
        found.user = Some((uid, gid.unwrap_or(uid)));
    }
    Ok(found)
}

/// Runs Python test `name` chrooted in the userland; `timeout` unless the file asks for more.
///
/// Its standard output and error go to the console; the reason of a failure is the last
/// line it wrote to standard error (an uncaught exception's own line).
pub fn run(name: &str, timeout: Duration) -> TestResult {
    let file = script(name)?;
    let source = std::fs::read_to_string(format!("{PACKAGE}/tests/{file}"))
        .map_err(|error| format!("{file}: {error}"))?;
    let directives = directives(&source)?;
    let timeout = timeout.max(Duration::from_secs(directives.timeout_seconds.unwrap_or(0)));
    let user = directives.user;
    let mut command = Command::new("/usr/bin/python3");
    command
        .args(["-X", "faulthandler"])
        .arg(format!("{PACKAGE_MOUNT}/tests/{file}"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/tmp")
        .env("LANG", "C.UTF-8")
        .env("PYTHONPATH", format!("{PACKAGE_MOUNT}/site"))
        // The tree is read-only; output interleaves with the harness's lines in order.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        // What the tests compare with: the ABI this harness was built with, the cards.
        .env("FGRAB_ABI_VERSION", fgrab_uapi::ABI_VERSION.to_string())
        .env(
            "FGRAB_CARDS",
            std::env::var("fgrab_cards").unwrap_or_else(|_| "0".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
    // on its own arguments (string literals) and allocates nothing.
    unsafe {
        command.pre_exec(move || enter(user));
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start python3 in {ROOT}: {error}"))?;
    // What the script prints for its user reaches the host's output (`@@fgrab info`, as the
    // Rust tests' summaries do); its standard error stays in the serial log.
    let echo = |stream: Box<dyn std::io::Read + Send>, info: bool| {
        std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if info && !line.trim().is_empty() {
                    crate::harness::info(&line);
                } else {
                    println!("{line}");
                }
                if !line.trim().is_empty() {
                    last = Some(line.trim().to_string());
                }
            }
            last
        })
    };
    let stdout = echo(Box::new(child.stdout.take().ok_or("no stdout pipe")?), true);
    let stderr = echo(
        Box::new(child.stderr.take().ok_or("no stderr pipe")?),
        false,
    );
    let status = crate::harness::wait_or_kill(&mut child, timeout, "python3")?;
    let _ = stdout.join();
    let last_error = stderr.join().unwrap_or(None);
    if status.success() {
        Ok(())
    } else {
        Err(match last_error {
            Some(line) => format!("{line} (python3: {status})"),
            None => format!("python3 ended with {status}"),
        })
    }
}

/// In the forked child: into the userland, and to `user` if given.
fn enter(user: Option<(u32, u32)>) -> std::io::Result<()> {
    let check = |result: libc::c_int| {
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: NUL-terminated literals; chroot, chdir, setgroups, setgid and setuid are
    // async-signal-safe and touch only this process.
    unsafe {
        check(libc::chroot(c"/userland".as_ptr()))?; // ROOT
        check(libc::chdir(c"/tmp".as_ptr()))?;
        if let Some((uid, gid)) = user {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
        }
    }
    Ok(())
}
