//! Non-root use: the client path as an unprivileged member of the `fgrab` group, with the
//! default locked-memory limit (issue 14).
//!
//! The guest has no udev, so the test gives `/dev/fgrab0` the group and mode that
//! `udev/99-fgrab.rules` assigns (read from the rule file built into the binary,
//! [`crate::udev_rule`]), to the gid [`FGRAB_GID`] standing for the `fgrab` group (the
//! guest has no `/etc/group` either). Each client then runs in a process that becomes an
//! ordinary user before it executes the client: its own uid and primary group, the `fgrab`
//! group as a supplementary group (as `usermod -aG fgrab` gives it), no capability, and
//! `RLIMIT_MEMLOCK` set to the kernel's default of 8 MiB so that the outcome does not
//! depend on the VM's settings.
//!
//! Every case runs as a user of its own: io_uring charges registered buffers to the user's
//! account (all of the user's processes), and a child's ring is torn down asynchronously
//! after it exits, so a user reused at once could still be charged for the last buffer.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use crate::udev_rule;
use fgrab::{Buffer, Card, Error, Geometry};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::Duration;

const CARD0: &str = "/dev/fgrab0";
/// The `fgrab` group's gid in the guest (a system group, as `groupadd --system` makes).
const FGRAB_GID: u32 = 990;
/// The kernel's default `RLIMIT_MEMLOCK` (`MLOCK_LIMIT`), soft and hard.
const DEFAULT_MEMLOCK: u64 = 8 << 20;
/// Frames of the Rust client: the README's size, unaligned.
const FRAME_BYTES: u32 = 1_000_003;
const OFFSET: usize = 13;
/// 6 frames: a 6 MiB buffer (`Buffer::allocate` rounds up to 2 MiB), under the limit.
const FITS: u32 = 6;
/// 16 frames: 16 MiB, twice the limit.
const OVER: u32 = 16;
/// Frames the Rust client verifies.
const VERIFIED: u32 = 60;
/// `FGRAB_E_MEMLOCK` of `legacy/include/fgrab_legacy.h` (the guest does not link the legacy
/// library; `legacy/tests/header.rs` keeps header and library in step).
const FGRAB_E_MEMLOCK: i32 = -9;

/// One unprivileged user: uid, and whether it is in the `fgrab` group.
#[derive(Clone, Copy)]
struct User {
    uid: u32,
    member: bool,
}

const MEMBER_GROUPS: [libc::gid_t; 1] = [FGRAB_GID];

/// Runs `program` as `user` through `fgrab-guest as-user` ([`as_user`]).
///
/// Not with `CommandExt::pre_exec`: a spawn with a `pre_exec` hook forks, and the standard
/// library then reports the child's errors over an `AF_UNIX` socket pair, which the guest
/// kernel (no networking) refuses with `ENOSYS`.
fn run_as(user: User, program: &str, args: &[&str]) -> Result<Output, String> {
    let User { uid, member } = user;
    Command::new("/bin/fgrab-guest")
        .args([
            "as-user",
            &uid.to_string(),
            if member { "member" } else { "outsider" },
        ])
        .arg(program)
        .args(args)
        .output()
        .map_err(|error| format!("{program} as uid {uid}: {error}"))
}

/// Becomes `uid` (primary group `uid`, and the `fgrab` group as a supplementary group if
/// `member`) with `RLIMIT_MEMLOCK` at [`DEFAULT_MEMLOCK`], soft and hard.
fn become_user(uid: u32, member: bool) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: DEFAULT_MEMLOCK,
        rlim_max: DEFAULT_MEMLOCK,
    };
    let groups: &[libc::gid_t] = if member { &MEMBER_GROUPS } else { &[] };
    let last = || std::io::Error::last_os_error();
    // SAFETY: system calls on this single-threaded process's own limits and credentials,
    // with pointers to live values.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
            return Err(format!("setrlimit(RLIMIT_MEMLOCK): {}", last()));
        }
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(format!("setgroups: {}", last()));
        }
        if libc::setgid(uid) != 0 {
            return Err(format!("setgid: {}", last()));
        }
        if libc::setuid(uid) != 0 {
            return Err(format!("setuid: {}", last()));
        }
    }
    Ok(())
}

/// `fgrab-guest as-user UID member|outsider PROGRAM ARGS...`: becomes an unprivileged user
/// ([`become_user`]) and executes `PROGRAM`, which so starts without privileges.
pub fn as_user(args: &[String]) -> ! {
    let (Some(uid), Some(member), Some(program)) = (
        args.first().and_then(|uid| uid.parse().ok()),
        args.get(1).map(|member| member == "member"),
        args.get(2),
    ) else {
        eprintln!("usage: fgrab-guest as-user UID member|outsider PROGRAM ARGS...");
        std::process::exit(2)
    };
    if let Err(error) = become_user(uid, member) {
        eprintln!("as-user {uid}: {error}");
        std::process::exit(126)
    }
    let error = Command::new(program).args(&args[3..]).exec();
    eprintln!("as-user {uid}: exec {program}: {error}");
    std::process::exit(127)
}

/// Puts the node back as the driver created it (`0660 root:root`), whatever the outcome.
struct RestoreNode {
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Drop for RestoreNode {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown(CARD0, Some(self.uid), Some(self.gid));
        let _ = std::fs::set_permissions(CARD0, std::fs::Permissions::from_mode(self.mode));
    }
}

/// Applies the udev rule's group and mode to `/dev/fgrab0`, as udev would.
fn apply_udev_rule() -> Result<RestoreNode, String> {
    let rule = udev_rule::parse(udev_rule::RULES)?;
    ensure!(
        rule.group == "fgrab",
        "udev/99-fgrab.rules gives the nodes to group `{}`, the test stands in for `fgrab`",
        rule.group
    );
    let before = std::fs::metadata(CARD0).map_err(|error| format!("{CARD0}: {error}"))?;
    let restore = RestoreNode {
        uid: before.uid(),
        gid: before.gid(),
        mode: before.mode() & 0o7777,
    };
    std::os::unix::fs::chown(CARD0, Some(0), Some(FGRAB_GID))
        .map_err(|error| format!("chown {CARD0}: {error}"))?;
    std::fs::set_permissions(CARD0, std::fs::Permissions::from_mode(rule.mode))
        .map_err(|error| format!("chmod {CARD0}: {error}"))?;
    let after = std::fs::metadata(CARD0).map_err(|error| error.to_string())?;
    ensure!(
        after.uid() == 0 && after.gid() == FGRAB_GID && after.mode() & 0o7777 == rule.mode,
        "{CARD0} is {}:{} {:o} after applying the rule",
        after.uid(),
        after.gid(),
        after.mode() & 0o7777
    );
    harness::info(&format!(
        "{CARD0}: root:fgrab ({FGRAB_GID}) {:04o}, from udev/99-fgrab.rules",
        rule.mode
    ));
    Ok(restore)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// The child's report (stdout of `fgrab-guest nonroot-child`), after checking that it ran
/// unprivileged: `uid`, no effective capability, `RLIMIT_MEMLOCK` at the default.
fn child_report(user: User, frames_in_buffer: u32) -> Result<String, String> {
    let output = run_as(
        user,
        "/bin/fgrab-guest",
        &["nonroot-child", &frames_in_buffer.to_string()],
    )?;
    let stdout = text(&output.stdout);
    ensure!(
        output.status.success(),
        "nonroot-child as uid {} ({}): {stdout} {}",
        user.uid,
        output.status,
        text(&output.stderr)
    );
    let (credentials, report) = stdout.split_once('\n').unwrap_or((&stdout, ""));
    let expected = format!(
        "uid {} groups {} capeff 0000000000000000 memlock {DEFAULT_MEMLOCK}",
        user.uid,
        if user.member {
            FGRAB_GID.to_string()
        } else {
            "-".into()
        }
    );
    ensure!(
        credentials == expected,
        "the child's credentials: `{credentials}`, expected `{expected}`"
    );
    Ok(report.trim().to_string())
}

/// The client path as an unprivileged member of the `fgrab` group: the Rust library and
/// both C clients stream verified frames from a buffer under the default 8 MiB limit; a
/// buffer over it gets the memlock error, naming the limit and the shortfall, from the
/// Rust library and (`FGRAB_E_MEMLOCK`) from the legacy C API; a user outside the group
/// cannot open the card.
pub fn nonroot_clients() -> TestResult {
    let _restore = apply_udev_rule()?;

    // Outside the group: the node's mode refuses the open.
    let outsider = User {
        uid: 1004,
        member: false,
    };
    let report = child_report(outsider, FITS)?;
    ensure!(
        report.starts_with(&format!("open errno {}", libc::EACCES)),
        "a user outside the fgrab group opening {CARD0}: expected EACCES, got `{report}`"
    );
    harness::info(&format!("uid 1004 (not in fgrab): {report}"));

    // The Rust library, a buffer that fits.
    let report = child_report(
        User {
            uid: 1000,
            member: true,
        },
        FITS,
    )?;
    ensure!(
        report.starts_with(&format!("streamed {VERIFIED} frames")),
        "Rust library, {FITS} frames of {FRAME_BYTES} B: `{report}`"
    );
    harness::info(&format!("uid 1000 (fgrab), Rust library: {report}"));

    // The Rust library, a buffer over the limit: the typed error, and its message.
    let report = child_report(
        User {
            uid: 1002,
            member: true,
        },
        OVER,
    )?;
    let buffer = (OFFSET + (FRAME_BYTES * OVER) as usize) as u64;
    let (figures, message) = report
        .strip_prefix("memlock ")
        .and_then(|rest| rest.split_once(": "))
        .ok_or_else(|| {
            format!("Rust library over the limit: expected the memlock error, got `{report}`")
        })?;
    let figures: Vec<u64> = figures
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    ensure!(
        figures.len() == 2 && figures[0] >= buffer && figures[1] == DEFAULT_MEMLOCK,
        "Error::MemlockLimit {{ needed, limit }} = {figures:?}, expected at least {buffer} and \
         {DEFAULT_MEMLOCK}"
    );
    check_memlock_message(message, figures[0])?;
    harness::info(&format!(
        "uid 1002 (fgrab), Rust library, {buffer} B requested: Error::MemlockLimit {{ needed: {}, \
         limit: {} }}: {message}",
        figures[0], figures[1]
    ));

    // The legacy C API, its example program unchanged: a buffer that fits, every byte
    // checked.
    let capture = "/bin/fgrab-legacy-capture";
    let output = run_as(
        User {
            uid: 1001,
            member: true,
        },
        capture,
        &["100"],
    )?;
    ensure!(
        output.status.success(),
        "legacy C API as uid 1001 ({}): {} {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    harness::info(&format!("uid 1001 (fgrab), {}", text(&output.stdout)));

    // The legacy C API over the limit: 16 frames of 1,000,003 B in its malloc buffer.
    let output = run_as(
        User {
            uid: 1003,
            member: true,
        },
        capture,
        &["100", "0", &OVER.to_string()],
    )?;
    let stderr = text(&output.stderr);
    let code = format!("fgrab_set_buffer: code {FGRAB_E_MEMLOCK}: ");
    ensure!(
        !output.status.success() && stderr.starts_with(&code),
        "legacy C API over the limit: expected `{code}...`, got ({}) {stderr}",
        output.status
    );
    let c_buffer = u64::from(FRAME_BYTES * OVER);
    check_memlock_message(&stderr, c_buffer)?;
    harness::info(&format!(
        "uid 1003 (fgrab), legacy C API, {c_buffer} B buffer: {stderr}"
    ));

    // C on liburing and the uapi header alone (its 1 MiB buffer fits).
    let output = run_as(
        User {
            uid: 1005,
            member: true,
        },
        "/bin/fgrab-raw-uring",
        &["200"],
    )?;
    ensure!(
        output.status.success(),
        "liburing C example as uid 1005 ({}): {} {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    harness::info(&format!("uid 1005 (fgrab), {}", text(&output.stdout)));
    Ok(())
}

/// The memlock message names the limit, the bytes needed (at least `buffer`), the
/// shortfall and the ways to raise the limit.
fn check_memlock_message(message: &str, buffer: u64) -> TestResult {
    ensure!(
        message.contains(&format!("RLIMIT_MEMLOCK of {DEFAULT_MEMLOCK} bytes")),
        "the memlock message does not name the limit: {message}"
    );
    let needed: u64 = message
        .split("locked memory to at least ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|word| word.parse().ok())
        .ok_or_else(|| format!("the memlock message does not name the bytes needed: {message}"))?;
    ensure!(
        needed >= buffer,
        "the memlock message says {needed} bytes are needed, the buffer alone is {buffer}"
    );
    let short = format!("short by at least {} bytes", needed - DEFAULT_MEMLOCK);
    for part in [short.as_str(), "ulimit -l", "limits.d", "LimitMEMLOCK="] {
        ensure!(
            message.contains(part),
            "`{part}` missing from the memlock message: {message}"
        );
    }
    Ok(())
}

/// Reads `CapEff` of this process.
fn effective_capabilities() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| Some(line.strip_prefix("CapEff:")?.trim().to_string()))
        })
        .unwrap_or_else(|| "?".into())
}

/// `fgrab-guest nonroot-child FRAMES`: started unprivileged by [`nonroot_clients`]. Prints
/// its credentials, then what the Rust library did with `FRAMES` frames of
/// [`FRAME_BYTES`] in a buffer it allocates: `open errno E: ...`, `memlock NEEDED LIMIT:
/// MESSAGE`, or `streamed N frames ...` after verifying every byte of [`VERIFIED`] frames.
/// Exits 1 on any other outcome.
pub fn child(frames: u32) -> ! {
    // SAFETY: getuid, getgroups and getrlimit write only what they are given.
    let (uid, groups, memlock) = unsafe {
        let mut groups = [0 as libc::gid_t; 16];
        let count = libc::getgroups(groups.len() as i32, groups.as_mut_ptr());
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit);
        let groups: Vec<String> = groups[..count.max(0) as usize]
            .iter()
            .map(u32::to_string)
            .collect();
        (libc::getuid(), groups, limit.rlim_cur)
    };
    let groups = if groups.is_empty() {
        "-".to_string()
    } else {
        groups.join(",")
    };
    println!(
        "uid {uid} groups {groups} capeff {} memlock {memlock}",
        effective_capabilities()
    );
    match stream(frames) {
        Ok(report) => {
            println!("{report}");
            std::process::exit(0)
        }
        Err(report) => {
            println!("{report}");
            std::process::exit(1)
        }
    }
}

/// The child's work: `Ok` with the report line for the outcomes the test judges.
fn stream(frames: u32) -> Result<String, String> {
    let card = match Card::open(CARD0) {
        Ok(card) => card,
        Err(Error::Open { source, .. }) if source.raw_os_error().is_some() => {
            let errno = source.raw_os_error().unwrap_or(0);
            return Ok(format!("open errno {errno}: {source}"));
        }
        Err(error) => return Err(format!("open: {error}")),
    };
    let geometry = Geometry::new(FRAME_BYTES, frames).offset(OFFSET);
    let buffer = Buffer::allocate(OFFSET + (FRAME_BYTES * frames) as usize)
        .map_err(|error| error.to_string())?;
    let len = buffer.len();
    let mut stream = match card.attach(buffer, geometry) {
        Ok(stream) => stream,
        Err(failed) => match failed.error {
            error @ Error::MemlockLimit { needed, limit } => {
                return Ok(format!("memlock {needed} {limit}: {error}"))
            }
            error => return Err(format!("attach of a {len} B buffer: {error}")),
        },
    };
    let err = |error: Error| error.to_string();
    stream.start().map_err(err)?;
    for _ in 0..VERIFIED {
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or("no frame within 5 s")?;
        pattern::verify(&frame, frame.sequence(), 0)
            .map_err(|mismatch| format!("frame {}: {mismatch}", frame.sequence()))?;
    }
    stream.stop().map_err(err)?;
    let dropped = stream.counters().dropped;
    stream.detach().map_err(err)?;
    Ok(format!(
        "streamed {VERIFIED} frames of {FRAME_BYTES} B, every byte verified, {dropped} dropped \
         by the card, from a {len} B buffer"
    ))
}
