//! `fgrab_legacy.h` must compile warning-free and agree with the library on
//! every error code and structure size.

use std::process::Command;

#[test]
fn header_matches_library() {
    let dir = std::env::temp_dir().join(format!("fgrab-legacy-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("check.c");
    let checks = [
        ("FGRAB_OK", fgrab_legacy::FGRAB_OK as i64),
        ("FGRAB_E_INVAL", fgrab_legacy::FGRAB_E_INVAL as i64),
        ("FGRAB_E_NODEV", fgrab_legacy::FGRAB_E_NODEV as i64),
        ("FGRAB_E_BUSY", fgrab_legacy::FGRAB_E_BUSY as i64),
        ("FGRAB_E_TIMEOUT", fgrab_legacy::FGRAB_E_TIMEOUT as i64),
        ("FGRAB_E_STATE", fgrab_legacy::FGRAB_E_STATE as i64),
        ("FGRAB_E_IO", fgrab_legacy::FGRAB_E_IO as i64),
        ("FGRAB_E_NOMEM", fgrab_legacy::FGRAB_E_NOMEM as i64),
        ("FGRAB_E_INTERNAL", fgrab_legacy::FGRAB_E_INTERNAL as i64),
        ("FGRAB_E_MEMLOCK", fgrab_legacy::FGRAB_E_MEMLOCK as i64),
        ("FGRAB_E_ABORTED", fgrab_legacy::FGRAB_E_ABORTED as i64),
        (
            "sizeof(struct fgrab_card_info)",
            size_of::<fgrab_legacy::CardInfo>() as i64,
        ),
        (
            "offsetof(struct fgrab_card_info, frame_period_ns)",
            std::mem::offset_of!(fgrab_legacy::CardInfo, frame_period_ns) as i64,
        ),
        (
            "FGRAB_WAIT_FOREVER",
            fgrab_legacy::FGRAB_WAIT_FOREVER as i64,
        ),
        (
            "sizeof(struct fgrab_frame_info)",
            size_of::<fgrab_legacy::FrameInfo>() as i64,
        ),
        (
            "sizeof(struct fgrab_counters)",
            size_of::<fgrab_legacy::Counters>() as i64,
        ),
        (
            "offsetof(struct fgrab_frame_info, data)",
            std::mem::offset_of!(fgrab_legacy::FrameInfo, data) as i64,
        ),
    ];
    let mut program = String::from("#include <stddef.h>\n#include \"fgrab_legacy.h\"\n");
    for (index, (expression, value)) in checks.iter().enumerate() {
        program.push_str(&format!(
            "_Static_assert(({expression}) == ({value}), \"check {index}: {expression}\");\n"
        ));
    }
    std::fs::write(&source, program).unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
            include,
        ])
        .arg(&source)
        .status()
        .expect("a C compiler (cc) is needed for this test");
    assert!(
        status.success(),
        "fgrab_legacy.h disagrees with the library or does not compile"
    );
}

/// The README's C example compiles against the header as written.
#[test]
fn readme_c_example_compiles() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```c\n").expect("README has a C example") + 5;
    let end = start + readme[start..].find("```").unwrap();
    let dir = std::env::temp_dir().join(format!("fgrab-readme-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("readme.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n#include \"fgrab_legacy.h\"\n{}",
            &readme[start..end]
        ),
    )
    .unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-missing-prototypes",
        ])
        .args(["-fsyntax-only", "-I", include])
        .arg(&source)
        .status()
        .expect("a C compiler (cc) is needed for this test");
    assert!(status.success(), "the README's C example does not compile");
}
