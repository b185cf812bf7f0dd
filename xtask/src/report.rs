//! Reading a guest's serial log: test results from the guest harness, and kernel reports.
//!
//! Any kernel report fails the run, whichever test was running: a WARN during teardown is a
//! bug even if every assertion held.

/// Prefix of the guest harness's protocol lines (see `tests/guest/src/harness.rs`).
pub const MARKER: &str = "@@fgrab ";

/// Substrings that mean the kernel reported a problem.
const REPORT_PATTERNS: &[&str] = &[
    "------------[ cut here ]------------",
    "WARNING:",
    "BUG:",
    "Oops",
    "Kernel panic",
    "kernel BUG at",
    "general protection fault",
    "Unable to handle",
    "UBSAN:",
    "KASAN:",
    "Call Trace:",
    "panicked at",
    "possible circular locking dependency",
    "possible recursive locking",
    "inconsistent lock state",
    "suspicious RCU usage",
    "lockdep is turned off",
    "DMA-API:",
    "unreferenced object",
    "suspected memory leak",
    "list_add corruption",
    "list_del corruption",
    "refcount_t:",
    "INFO: task",
    "rcu_preempt detected stalls",
    "rcu: INFO:",
];

/// Boot-time lines that match a pattern above but report nothing.
const BENIGN: &[&str] = &[
    "DMA-API: preallocated",
    "DMA-API: debugging enabled by kernel config",
];

/// Whether a serial line is a kernel report.
pub fn is_kernel_report(line: &str) -> bool {
    !line.contains(MARKER)
        && REPORT_PATTERNS.iter().any(|pattern| line.contains(pattern))
        && !BENIGN.iter().any(|benign| line.contains(benign))
}

/// Taint flags every test run sets: `O` (bit 12), fgrab.ko is built outside the kernel
/// tree, and `N` (bit 18), KUnit ran the driver's suites at module load.
const EXPECTED_TAINT: u64 = (1 << 12) | (1 << 18);

/// Flag letters of `/proc/sys/kernel/tainted` bits (kernel/panic.c `taint_flags`).
const TAINT_LETTERS: &[u8; 20] = b"PFSRMBUDAWCIOELKXTNJ";

/// What is wrong with the guest's final taint value, if anything: any flag but the
/// expected ones means the kernel hit something (a WARN is `W`, an oops `D`, a forced
/// unload `R`), even if its message never reached the console.
pub fn taint_problem(value: &str) -> Option<String> {
    let Ok(taint) = value.parse::<u64>() else {
        return Some(format!("kernel taint not readable: {value}"));
    };
    let unexpected = taint & !EXPECTED_TAINT;
    if unexpected == 0 {
        return None;
    }
    let letters: String = (0..64)
        .filter(|bit| unexpected & (1 << bit) != 0)
        .map(|bit| TAINT_LETTERS.get(bit).map_or('?', |&letter| letter as char))
        .collect();
    Some(format!(
        "kernel tainted {taint} (unexpected flags {letters}: see Documentation/admin-guide/tainted-kernels.rst)"
    ))
}

/// One guest test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// All assertions held.
    Pass,
    /// An assertion failed, the test crashed or timed out; the text says which.
    Fail(String),
}

/// A parsed harness line.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A test started.
    Start(String),
    /// A test ended.
    End(String, Outcome, u64),
    /// The guest printed a figure or note worth showing (`@@fgrab info ...`).
    Info(String),
    /// kmemleak's verdict after the final scan.
    Kmemleak(String),
    /// `/proc/sys/kernel/tainted` at the end of the run.
    Tainted(String),
    /// The guest finished and is powering off.
    Done,
}

/// Parses one serial line; `None` if it is not a harness line.
pub fn parse(line: &str) -> Option<Event> {
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(match kind {
        "start" => Event::Start(rest.trim().to_string()),
        "pass" | "fail" => {
            let mut words = rest.splitn(3, ' ');
            let name = words.next()?.to_string();
            let millis = words.next()?.trim_end_matches("ms").parse().ok()?;
            let outcome = if kind == "pass" {
                Outcome::Pass
            } else {
                Outcome::Fail(words.next().unwrap_or("").to_string())
            };
            Event::End(name, outcome, millis)
        }
        "info" => Event::Info(rest.to_string()),
        "kmemleak" => Event::Kmemleak(rest.trim().to_string()),
        "tainted" => Event::Tainted(rest.trim().to_string()),
        "done" => Event::Done,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_reports() {
        assert!(is_kernel_report(
            "[   12.3] WARNING: CPU: 0 PID: 1 at drivers/x.c:10 f+0x1/0x2"
        ));
        assert!(is_kernel_report(
            "[ 1.0] BUG: KASAN: slab-use-after-free in f"
        ));
        assert!(is_kernel_report("unreferenced object 0xffff888 (size 64):"));
        assert!(!is_kernel_report(
            "[ 0.5] DMA-API: preallocated 65536 debug entries"
        ));
        assert!(!is_kernel_report("[ 0.5] fgrab 0000:01:00.0: card 0 ready"));
        assert!(!is_kernel_report(
            "@@fgrab fail x 10ms WARNING: text in a test's own message"
        ));
    }

    #[test]
    fn taint() {
        assert_eq!(taint_problem("0"), None);
        assert_eq!(taint_problem("266240"), None); // O + N
        let warned = taint_problem(&(266240 + 512).to_string()).unwrap();
        assert!(warned.contains("flags W"), "{warned}");
        assert!(taint_problem("garbage").is_some());
    }

    #[test]
    fn harness_lines() {
        assert_eq!(
            parse("@@fgrab start info"),
            Some(Event::Start("info".into()))
        );
        assert_eq!(
            parse("[ 3.1] @@fgrab pass info 12ms"),
            Some(Event::End("info".into(), Outcome::Pass, 12))
        );
        assert_eq!(
            parse("@@fgrab fail info 5ms expected 1, got 2"),
            Some(Event::End(
                "info".into(),
                Outcome::Fail("expected 1, got 2".into()),
                5
            ))
        );
        assert_eq!(parse("@@fgrab done"), Some(Event::Done));
        assert_eq!(parse("plain kernel line"), None);
    }
}
