//! The C consumer (`examples/consumer.c`, written against `include/GenTL.h` alone) compiles
//! with warnings as errors, loads the producer under the name `fgrab.cti` and walks
//! System -> Interface -> Device. Without cards it finds no device; streaming
//! (`--frames`) runs in the VM.

use std::path::PathBuf;
use std::process::Command;

mod common;

#[test]
fn c_consumer_walks_the_module_tree() {
    let dir = std::env::temp_dir().join(format!("fgrab-gentl-consumer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cti = dir.join("fgrab.cti");
    std::fs::copy(common::producer(), &cti).unwrap();
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let program = dir.join("consumer");
    let status = Command::new("cc")
        .args([
            "-std=gnu11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-DFGRAB_CONSUMER_PATTERN",
        ])
        .arg("-I")
        .arg(manifest.join("include"))
        .arg("-I")
        .arg(manifest.join("../legacy/examples"))
        .arg(manifest.join("examples/consumer.c"))
        .arg("-o")
        .arg(&program)
        .arg("-ldl")
        .status()
        .expect("a C compiler (cc) is needed for this test");
    assert!(status.success(), "consumer.c does not compile");
    let output = Command::new(&program).arg(&cti).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "consumer failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("producer: fgrab"), "{stdout}");
    assert!(stdout.contains("interfaces: 1"), "{stdout}");
    assert!(stdout.ends_with("ok\n"), "{stdout}");
}
