//! `fgrab-guest`: `/init` of the test VM, and the runner of each guest test.
//!
//! As PID 1 it prepares the system, loads `fgrab.ko` and does what the kernel command line
//! says (`fgrab_mode=test|demo|shell`, `fgrab_tests=a,b`). Each test runs in its own process
//! (`fgrab-guest run-test NAME`) so a crash or hang is contained and reported.

mod attach;
mod bar;
mod batch;
mod camera;
mod cancel;
mod client;
mod copy_path;
mod faults;
mod fuzz;
mod harness;
mod hostile;
mod init;
mod moderation;
mod nonroot;
#[path = "../../../emu/src/pattern.rs"]
#[allow(dead_code)]
mod pattern;
mod record;
mod regions;
mod regions_shared;
#[path = "../../../emu/src/regs.rs"]
#[allow(dead_code)]
mod regs;
mod removal;
mod shared_api;
mod soak;
mod stream;
mod streamer;
mod sys;
mod teardown;
mod tests;
mod udev_rule;
mod uring;
mod userland;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if std::process::id() == 1 {
        init::main();
    }
    match args.get(1).map(String::as_str) {
        Some("run-test") => {
            let name = args.get(2).map(String::as_str).unwrap_or("");
            std::process::exit(harness::run_in_process(name));
        }
        Some("attach-and-wait") => {
            attach::attach_and_wait(args.get(2).map(String::as_str).unwrap_or("/dev/fgrab0"))
        }
        Some("stream-child") => teardown::stream_child(
            args.get(2).map(String::as_str).unwrap_or("/dev/fgrab0"),
            args.get(3).map(String::as_str) == Some("exit"),
        ),
        Some("batch-child") => batch::batch_child(
            args.get(2).map(String::as_str).unwrap_or("/dev/fgrab0"),
            args.get(3).map(String::as_str) == Some("exit"),
        ),
        Some("regions-child") => regions::regions_child("/dev/fgrab0"),
        Some("read-child") => copy_path::read_child(
            args.get(2).map(String::as_str).unwrap_or("/dev/fgrab0"),
            args.get(3)
                .and_then(|bytes| bytes.parse().ok())
                .unwrap_or(1 << 20),
        ),
        Some("as-user") => nonroot::as_user(&args[2..]),
        Some("nonroot-child") => nonroot::child(
            args.get(2)
                .and_then(|frames| frames.parse().ok())
                .unwrap_or(1),
        ),
        Some("list") => {
            // Read by the host harness: name, scope, timeout in seconds (0: the default).
            for test in tests::ALL {
                println!(
                    "{} {} {}",
                    test.name,
                    test.scope.word(),
                    test.timeout_seconds
                );
            }
        }
        _ => {
            eprintln!("usage: fgrab-guest run-test NAME | list");
            std::process::exit(2);
        }
    }
}
