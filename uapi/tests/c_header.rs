//! The C header must describe exactly the Rust layout: compile a C program against
//! `include/fgrab.h` that prints every size and offset, and compare with `offset_of!`.

use fgrab_uapi::{
    AttachCmd, ControlCmd, CopyOutCmd, DetachCmd, DeviceInfo, FrameMeta, PortCmd, QueueBatchCmd,
    QueueCmd, StartCmd, Stats,
};
use std::mem::{offset_of, size_of};
use std::process::Command;

/// `(C expression, Rust value)` for every layout fact of the ABI.
fn expected() -> Vec<(&'static str, usize)> {
    macro_rules! fields {
        ($c:literal, $rust:ty: $($field:ident),*) => {
            vec![
                (concat!("sizeof(struct ", $c, ")"), size_of::<$rust>()),
                $((concat!("offsetof(struct ", $c, ", ", stringify!($field), ")"),
                   offset_of!($rust, $field)),)*
            ]
        };
    }
    let mut all = fields!("fgrab_copy_out_cmd", CopyOutCmd: addr, size, flags, reserved);
    all.extend(
        fields!("fgrab_attach_cmd", AttachCmd: addr, len, frame_stride, frame_bytes,
        frame_count, flags, region, reserved),
    );
    all.extend(fields!("fgrab_control_cmd", ControlCmd: flags, reserved0, reserved));
    all.extend(fields!("fgrab_detach_cmd", DetachCmd: flags, region, reserved));
    all.push(("FGRAB_MAX_REGIONS", fgrab_uapi::MAX_REGIONS as usize));
    all.extend(
        fields!("fgrab_start_cmd", StartCmd: flags, irq_delay_us, irq_frames,
        reserved0, reserved),
    );
    all.push((
        "FGRAB_START_IRQ_FRAMES",
        fgrab_uapi::START_IRQ_FRAMES as usize,
    ));
    all.push(("FGRAB_MAX_IRQ_FRAMES", fgrab_uapi::MAX_IRQ_FRAMES as usize));
    all.push((
        "FGRAB_START_IRQ_DELAY",
        fgrab_uapi::START_IRQ_DELAY as usize,
    ));
    all.push((
        "FGRAB_MAX_IRQ_DELAY_US",
        fgrab_uapi::MAX_IRQ_DELAY_US as usize,
    ));
    all.extend(
        fields!("fgrab_queue_cmd", QueueCmd: frame, flags, meta_addr, region,
        reserved0, reserved),
    );
    all.extend(
        fields!("fgrab_queue_batch_cmd", QueueBatchCmd: first, count, meta_addr, region,
        flags, reserved),
    );
    all.push((
        "FGRAB_MAX_BATCH_FRAMES",
        fgrab_uapi::MAX_BATCH_FRAMES as usize,
    ));
    all.push((
        "FGRAB_OP_QUEUE_BATCH",
        fgrab_uapi::ops::QUEUE_BATCH as usize,
    ));
    all.extend(
        fields!("fgrab_frame_meta", FrameMeta: sequence, timestamp_ns, bytes, flags, frame,
        region),
    );
    all.extend(
        fields!("fgrab_stats", Stats: struct_size, state, frame_count, frame_bytes,
        frame_stride, region_bytes, descriptors_total, descriptors_max_per_frame,
        mapped_entries, frames_queued, frames_delivered, frames_dropped_underrun,
        frames_dropped_other, frames_failed, bytes_delivered, frame_irqs, frames_completed,
        commands, cqes),
    );
    all.extend(
        fields!("fgrab_device_info", DeviceInfo: struct_size, abi_version, card_index,
        hw_version, vendor_id, device_id, subsystem_vendor_id, subsystem_id, pci_location,
        revision, reserved0, max_segment_bytes, max_descriptors_per_frame, frame_bytes,
        dma_address_bits, frame_period_ns, max_frame_bytes, max_frames, reserved),
    );
    all.push(("FGRAB_ABI_VERSION", fgrab_uapi::ABI_VERSION as usize));
    all.push(("FGRAB_CMD_PAYLOAD_BYTES", fgrab_uapi::CMD_PAYLOAD_BYTES));
    all.push(("FGRAB_OP_INFO", fgrab_uapi::ops::INFO as usize));
    all.push(("FGRAB_OP_ATTACH", fgrab_uapi::ops::ATTACH as usize));
    all.push(("FGRAB_OP_DETACH", fgrab_uapi::ops::DETACH as usize));
    all.push(("FGRAB_OP_STATS", fgrab_uapi::ops::STATS as usize));
    all.push(("FGRAB_OP_QUEUE", fgrab_uapi::ops::QUEUE as usize));
    all.push(("FGRAB_OP_START", fgrab_uapi::ops::START as usize));
    all.push(("FGRAB_OP_STOP", fgrab_uapi::ops::STOP as usize));
    all.extend(
        fields!("fgrab_port_cmd", PortCmd: addr, offset, size, flags, reserved0,
        reserved),
    );
    all.push(("FGRAB_OP_XML_READ", fgrab_uapi::ops::XML_READ as usize));
    all.push((
        "FGRAB_OP_FEATURE_READ",
        fgrab_uapi::ops::FEATURE_READ as usize,
    ));
    all.push((
        "FGRAB_OP_FEATURE_WRITE",
        fgrab_uapi::ops::FEATURE_WRITE as usize,
    ));
    all.push(("FGRAB_MAX_PORT_BYTES", fgrab_uapi::MAX_PORT_BYTES as usize));
    all.push(("FGRAB_IOC_QBUF", fgrab_uapi::ioctls::QBUF as usize));
    all.push(("FGRAB_IOC_DQBUF", fgrab_uapi::ioctls::DQBUF as usize));
    all.push(("FGRAB_MAX_FRAMES", fgrab_uapi::MAX_FRAMES as usize));
    all.push(("FGRAB_STATE_IDLE", fgrab_uapi::STATE_IDLE as usize));
    all.push(("FGRAB_STATE_ATTACHED", fgrab_uapi::STATE_ATTACHED as usize));
    all.push((
        "FGRAB_STATE_STREAMING",
        fgrab_uapi::STATE_STREAMING as usize,
    ));
    all.push(("FGRAB_META_FRAME", fgrab_uapi::META_FRAME as usize));
    all.push((
        "FGRAB_META_INCOMPLETE",
        fgrab_uapi::META_INCOMPLETE as usize,
    ));
    all.push(("FGRAB_META_ERROR", fgrab_uapi::META_ERROR as usize));
    all.push(("FGRAB_META_FLUSHED", fgrab_uapi::META_FLUSHED as usize));
    all
}

#[test]
fn c_header_matches_rust_layout() {
    let expected = expected();
    let dir = std::env::temp_dir().join(format!("fgrab-c-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut program = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"fgrab.h\"\nint main(void) {\n",
    );
    for (expression, _) in &expected {
        program.push_str(&format!("  printf(\"%zu\\n\", (size_t)({expression}));\n"));
    }
    program.push_str("  return 0;\n}\n");
    let source = dir.join("layout.c");
    let binary = dir.join("layout");
    std::fs::write(&source, program).unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Werror", "-I", include, "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("a C compiler (cc) is needed for this test");
    assert!(status.success(), "the C header does not compile");
    let output = Command::new(&binary).output().unwrap();
    let values: Vec<usize> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    assert_eq!(values.len(), expected.len());
    for ((expression, rust), c) in expected.iter().zip(values) {
        assert_eq!(*rust, c, "{expression}: Rust says {rust}, C says {c}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
