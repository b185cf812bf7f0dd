//! PID 1 of the test VM.

use crate::tests::Scope;
use crate::{harness, sys, tests, userland};
use std::time::{Duration, Instant};

const MODULE: &str = "/lib/modules/fgrab.ko";
const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

/// Sets up the guest, runs the requested mode and powers off.
pub fn main() -> ! {
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("debugfs", "/sys/kernel/debug", "debugfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ] {
        if let Err(error) = sys::mount(source, target, fstype) {
            println!("init: mounting {target}: {error}");
        }
    }
    // Huge pages for the tests that compare page sizes, reserved before memory fragments.
    if let Err(error) = std::fs::write("/proc/sys/vm/nr_hugepages", "16") {
        println!("init: reserving huge pages: {error}");
    }
    // Boot-time allocations are not ours to judge: only leaks from here on count.
    let kmemleak = std::path::Path::new(KMEMLEAK).exists();
    if kmemleak {
        let _ = std::fs::write(KMEMLEAK, "clear");
    }
    let mode = std::env::var("fgrab_mode").unwrap_or_else(|_| "test".into());
    let requested: Vec<String> = std::env::var("fgrab_tests")
        .map(|list| list.split(',').map(str::to_string).collect())
        .unwrap_or_default();

    // The harness self-tests need no module (the Python one runs in the userland).
    let selftest = requested.iter().all(|name| {
        name.starts_with("selftest-") || name.starts_with(&format!("{}selftest-", userland::PREFIX))
    }) && !requested.is_empty();
    if !selftest {
        println!("@@fgrab start module-load");
        match sys::load_module(MODULE, "") {
            Ok(()) => println!("@@fgrab pass module-load 0ms"),
            Err(error) => {
                println!("@@fgrab fail module-load 0ms finit_module({MODULE}): {error}");
                finish(kmemleak);
            }
        }
    }

    userland::mount_if_requested();

    match mode.as_str() {
        "shell" => shell(),
        "demo" => crate::tests::demo(),
        _ => {
            // The host resolves filters and scopes (`fgrab-guest list`) and names every test
            // exactly; without a list (an interactive `fgrab_mode=test`), the data-path and
            // control-path tests.
            let names: Vec<String> = if requested.is_empty() {
                tests::ALL
                    .iter()
                    .filter(|test| matches!(test.scope, Scope::EveryDmaMode | Scope::Once))
                    .map(|test| test.name.to_string())
                    .collect()
            } else {
                requested.clone()
            };
            harness::run_tests(&names);
        }
    }
    if !selftest {
        println!("@@fgrab start module-unload");
        // A test killed on timeout leaves its ring to io_uring's asynchronous exit work,
        // which drops the last file reference (and the module's) a moment later.
        let deadline = Instant::now() + Duration::from_secs(10);
        let result = loop {
            match sys::unload_module("fgrab") {
                Err(error)
                    if matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY))
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100))
                }
                result => break result,
            }
        };
        match result {
            Ok(()) => println!("@@fgrab pass module-unload 0ms"),
            Err(error) => println!("@@fgrab fail module-unload 0ms delete_module(fgrab): {error}"),
        }
    }
    finish(kmemleak)
}

/// Final kmemleak scan, then power off.
fn finish(kmemleak: bool) -> ! {
    if kmemleak {
        // kmemleak ignores objects younger than 5 s; give everything freed above time to age.
        std::thread::sleep(Duration::from_millis(5500));
        let _ = std::fs::write(KMEMLEAK, "scan");
        match std::fs::read_to_string(KMEMLEAK) {
            Ok(report) if report.trim().is_empty() => println!("@@fgrab kmemleak clean"),
            Ok(report) => {
                println!("{report}");
                let count = report.matches("unreferenced object").count();
                println!("@@fgrab kmemleak {count} suspected leaks");
            }
            Err(error) => println!("@@fgrab kmemleak unreadable: {error}"),
        }
    }
    report_taint();
    println!("---- kernel log (dmesg) ----");
    let _ = std::process::Command::new("/bin/busybox")
        .arg("dmesg")
        .status();
    println!("@@fgrab done");
    sys::power_off()
}

/// Prints the kernel's taint flags for the host to judge (`@@fgrab tainted N`): a WARN,
/// an oops or a forced module unload taints the kernel even when its message was lost.
fn report_taint() {
    match std::fs::read_to_string("/proc/sys/kernel/tainted") {
        Ok(text) => println!("@@fgrab tainted {}", text.trim()),
        Err(error) => println!("@@fgrab tainted unreadable: {error}"),
    }
}

fn shell() {
    let _ = std::process::Command::new("/bin/busybox")
        .args(["--install", "-s", "/bin"])
        .status();
    println!("fgrab guest shell: the module is loaded; `poweroff -f` leaves.");
    let _ = std::process::Command::new("/bin/busybox")
        .args(["setsid", "cttyhack", "sh"])
        .status();
}
