//! `include/GenTL.h` must compile warning-free, agree with the producer on every value
//! `src/abi.rs` declares, and declare every function `fgrab.cti` exports.

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::producer;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fgrab-gentl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `(NAME, value)` of every integer `pub const` in `src/abi.rs`.
fn abi_constants() -> Vec<(String, i128)> {
    let source = include_str!("../src/abi.rs");
    source
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(':')?;
            let value = rest.split_once('=')?.1.trim().trim_end_matches(';').trim();
            let value = match value {
                "u64::MAX" => u64::MAX as i128,
                _ => value.replace('_', "").parse().ok()?,
            };
            Some((name.trim().to_string(), value))
        })
        .collect()
}

#[test]
fn header_values_match_the_producer() {
    let constants = abi_constants();
    assert!(constants.len() > 150, "abi.rs parsed: {}", constants.len());
    // Spot checks that the parse reads what the crate compiles.
    assert!(constants.contains(&("GC_ERR_NOT_IMPLEMENTED".into(), -1003)));
    assert!(constants.contains(&(
        "BUFFER_INFO_PIXELFORMAT_NAMESPACE".into(),
        i128::from(fgrab_gentl::abi::BUFFER_INFO_PIXELFORMAT_NAMESPACE)
    )));
    let mut program = String::from("#include <stddef.h>\n#include \"GenTL.h\"\n");
    for (index, (name, value)) in constants.iter().enumerate() {
        let value = if *value < 0 {
            format!("({value}LL)")
        } else {
            format!("{value}ULL")
        };
        program.push_str(&format!(
            "_Static_assert((long long)({name}) == (long long)({value}), \"check {index}: {name}\");\n"
        ));
    }
    let sizes = [
        (
            "sizeof(EVENT_NEW_BUFFER_DATA)",
            size_of::<fgrab_gentl::abi::EventNewBufferData>(),
        ),
        (
            "sizeof(PORT_REGISTER_STACK_ENTRY)",
            size_of::<fgrab_gentl::abi::PortRegisterStackEntry>(),
        ),
        (
            "sizeof(DS_BUFFER_INFO_STACKED)",
            size_of::<fgrab_gentl::abi::DsBufferInfoStacked>(),
        ),
        ("offsetof(DS_BUFFER_INFO_STACKED, iResult)", 24),
    ];
    for (expression, value) in sizes {
        program.push_str(&format!(
            "_Static_assert({expression} == {value}, \"{expression}\");\n"
        ));
    }
    let dir = scratch("header");
    let source = dir.join("check.c");
    std::fs::write(&source, program).unwrap();
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/include"))
        .arg(&source)
        .status()
        .expect("a C compiler (cc) is needed for this test");
    assert!(
        status.success(),
        "GenTL.h disagrees with src/abi.rs or does not compile"
    );
}

#[test]
fn header_declares_every_exported_function() {
    let output = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(producer())
        .output()
        .expect("nm (binutils) is needed for this test");
    let symbols = String::from_utf8(output.stdout).unwrap();
    let header = include_str!("../include/GenTL.h");
    let exported: Vec<&str> = symbols
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (kind, name) = (fields.nth(1)?, fields.next()?);
            (kind == "T"
                && ["GC", "TL", "IF", "Dev", "DS", "Event"]
                    .iter()
                    .any(|prefix| name.starts_with(prefix)))
            .then_some(name)
        })
        .collect();
    assert!(exported.len() >= 60, "{exported:?}");
    for name in exported {
        assert!(
            header.contains(&format!("FGRAB_GENTL_FUNCTION({name}, ")),
            "{name} is exported but not declared in GenTL.h"
        );
    }
}
