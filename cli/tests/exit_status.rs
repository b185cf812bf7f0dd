//! The `fgrab` binary as a shell sees it: exit status and messages for help, usage errors
//! and runtime errors. Needs no card: the runtime errors name a node that does not exist.

use std::process::{Command, Output};

fn fgrab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fgrab"))
        .args(args)
        .output()
        .expect("running fgrab")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_exits_0_on_stdout() {
    for args in [&["--help"][..], &["capture", "--help"], &["help", "stats"]] {
        let output = fgrab(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(text(&output.stdout).contains("Usage: fgrab"), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2_naming_the_problem() {
    for (args, named) in [
        (&[][..], "Usage: fgrab"),
        (&["frobnicate"], "frobnicate"),
        (&["info", "--card", "zero"], "--card"),
        (&["capture", "--frames", "-5"], "--frames"),
        (&["capture", "--seconds", "nan"], "--seconds"),
        (&["capture", "--frame-bytes", "4Q"], "--frame-bytes"),
        (&["capture", "--queue-depth", "100000"], "--queue-depth"),
        (&["capture", "--offset"], "--offset"),
        (&["stats", "--bogus"], "--bogus"),
    ] {
        let output = fgrab(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn runtime_errors_exit_1_naming_the_node() {
    const NODE: &str = "/nonexistent/fgrab9";
    for command in ["info", "stats", "capture"] {
        let output = fgrab(&[command, "--card", NODE]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        assert!(stderr.starts_with("fgrab: "), "{command}: {stderr}");
        assert!(stderr.contains(NODE), "{command}: {stderr}");
    }
}

/// `list` exits 0 whether or not this machine has cards, and `--json` is a JSON array.
#[test]
fn list_exits_0() {
    let output = fgrab(&["list"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(!text(&output.stdout).is_empty());
    let output = fgrab(&["list", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let cards: serde_json::Value = serde_json::from_str(&text(&output.stdout)).expect("JSON");
    assert!(cards.is_array(), "{cards}");
}
