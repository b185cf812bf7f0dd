//! Guest tests: each runs in its own process on the real kernel, driver and emulated card.

use crate::harness::{self, TestResult};
use crate::{
    attach, batch, camera, cancel, client, copy_path, ensure, faults, fuzz, hostile, moderation,
    nonroot, record, regions, regions_shared, removal, shared_api, soak, stream, teardown,
};
use fgrab::Card;
use fgrab_uapi::{ops, CopyOutCmd, DeviceInfo};
use zerocopy::{FromZeros, IntoBytes};

/// Where a test runs: the host harness (`cargo xtask test`) reads this through
/// `fgrab-guest list` and passes each suite its exact list.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Data path: its outcome depends on how DMA reaches memory, so it runs with direct DMA,
    /// behind the IOMMU and through swiotlb bounce buffers.
    EveryDmaMode,
    /// Control path (command decoding, ownership, sysfs, user-space libraries over paths
    /// that the data-path tests cover): DMA mode cannot change its outcome, so it runs once,
    /// with direct DMA.
    Once,
    /// Needs the machine of one particular suite (a card with injected faults, removal).
    Suite(&'static str),
    /// Run only when named (the long soak, the benchmark, the harness self-tests).
    Manual,
}

impl Scope {
    /// The word `fgrab-guest list` prints.
    pub fn word(self) -> &'static str {
        match self {
            Self::EveryDmaMode => "every-dma-mode",
            Self::Once => "once",
            Self::Suite(suite) => suite,
            Self::Manual => "manual",
        }
    }
}

/// A guest test.
pub struct Test {
    /// Name used on the command line and in reports.
    pub name: &'static str,
    /// The test body.
    pub run: fn() -> TestResult,
    /// Which suites run it.
    pub scope: Scope,
    /// Seconds it may take (the harness default when 0).
    pub timeout_seconds: u64,
}

const fn test(name: &'static str, scope: Scope, run: fn() -> TestResult) -> Test {
    Test {
        name,
        run,
        scope,
        timeout_seconds: 0,
    }
}

/// A data-path test: every DMA mode.
const fn data(name: &'static str, run: fn() -> TestResult) -> Test {
    test(name, Scope::EveryDmaMode, run)
}

/// A control-path test: once.
const fn control(name: &'static str, run: fn() -> TestResult) -> Test {
    test(name, Scope::Once, run)
}

/// Every guest test, in run order.
pub const ALL: &[Test] = &[
    // KUnit ran when the module loaded; reading its verdict does not depend on DMA.
    control("kunit", kunit),
    control("camera-formats", camera::camera_formats),
    control("camera-port-validation", camera::camera_port_validation),
    control(
        "camera-busy-while-streaming",
        camera::camera_busy_while_streaming,
    ),
    control("camera-xml", camera::camera_xml),
    control("camera-trigger", camera::camera_trigger),
    control("camera-acquisition-modes", camera::camera_acquisition_modes),
    control("enumerate", enumerate),
    control("driver-bound", driver_bound),
    control("cards-independent", cards_independent),
    control("info", info_roundtrip),
    control("info-rejects-bad-payload", info_rejects_bad_payload),
    control("unknown-op", unknown_op),
    control("small-sqe-ring-rejected", small_sqe_ring_rejected),
    data("attach-detach", attach::attach_detach),
    // Rejected before anything is mapped.
    control("attach-rejects-malformed", attach::attach_rejects_malformed),
    control(
        "attach-rejects-small-cqe-ring",
        attach::attach_rejects_small_cqe_ring,
    ),
    data("attach-ring-exit", attach::attach_ring_exit),
    data(
        "attach-survives-unregister",
        attach::attach_survives_unregister,
    ),
    data("attach-process-killed", attach::attach_process_killed),
    data("attach-huge-pages", attach::attach_huge_pages),
    data("attach-marks-pages-dirty", attach::attach_marks_pages_dirty),
    data("attach-unbind", attach::attach_unbind),
    // Bounced regions are capped: refused only where mappings bounce, attached elsewhere.
    data("attach-bounce-cap", attach::attach_bounce_cap),
    // The geometry rule is forced on by a module parameter: the same in every mode.
    control("attach-cache-alignment", attach::attach_cache_alignment),
    data("stream-verify", stream::stream_verify),
    data("stream-underrun", stream::stream_underrun),
    data("stream-stop-start", stream::stream_stop_start),
    // Rejected by command decoding, before the card or a mapping is touched.
    control("stream-rejects-malformed", stream::stream_rejects_malformed),
    data("stream-detach-midstream", teardown::stream_detach_midstream),
    // Several regions on one stream (issue 17).
    data("regions-stream", regions::regions_stream),
    data("regions-revoke", regions::regions_revoke),
    data("regions-ring-exit", regions::regions_ring_exit),
    data("regions-process-killed", regions::regions_process_killed),
    control("regions-rejects", regions::regions_rejects),
    data("stream-process-killed", teardown::stream_process_killed),
    data("stream-ring-exit", teardown::stream_ring_exit),
    data("stream-file-closed", teardown::stream_file_closed),
    data("stream-unbind", teardown::stream_unbind),
    data("stream-unbind-waiters", teardown::stream_unbind_waiters),
    // An `execve()` cancels its region under its ring's lock: the ring's other users must
    // not wait for the region to end (unmapping and dirtying differ between DMA modes).
    data("stream-cancel-keeps-ring", cancel::stream_cancel_keeps_ring),
    // Bounce buffers copied back at teardown would revert what user space wrote.
    data(
        "stream-user-bytes-detach",
        teardown::stream_user_bytes_detach,
    ),
    data(
        "stream-user-bytes-ring-exit",
        teardown::stream_user_bytes_ring_exit,
    ),
    // Reads counters and state: the same whichever way DMA goes.
    control("stream-sysfs", stream::stream_sysfs),
    // The card moderates its interrupts the same whichever way DMA goes.
    control("stream-irq-moderation", stream::stream_irq_moderation),
    control("stream-irq-frames", moderation::stream_irq_frames),
    // Batched recycling (issue 15): one SQE and one CQE for many frames.
    data("batch-stream", batch::batch_stream),
    data("batch-stop-detach", batch::batch_stop_detach),
    data("batch-ring-exit-killed", batch::batch_ring_exit_killed),
    data("batch-unbind", batch::batch_unbind),
    // Refused by validation before any DMA.
    control("batch-rejects", batch::batch_rejects),
    data("stream-ioctl", stream::stream_ioctl),
    data("stream-read", stream::stream_read),
    // Memory-cgroup charging of the copy path's frames does not depend on how DMA goes.
    control("stream-read-memcg", copy_path::stream_read_memcg),
    // Ownership rules are decided before any DMA.
    control("competing-owners", faults::competing_owners),
    data("two-cards-at-once", faults::two_cards_at_once),
    data("unregister-midstream", faults::unregister_midstream),
    test(
        "fault-injection",
        Scope::Suite("vm-faults"),
        faults::fault_injection,
    ),
    test(
        "fault-batched",
        Scope::Suite("vm-faults"),
        faults::fault_batched,
    ),
    // Hostile cards (capabilities, records, a stop that keeps frames).
    test(
        "hostile-camera",
        Scope::Suite("vm-hostile"),
        camera::hostile_camera,
    ),
    test(
        "hostile-capabilities",
        Scope::Suite("vm-hostile"),
        hostile::hostile_capabilities,
    ),
    test(
        "hostile-records",
        Scope::Suite("vm-hostile"),
        hostile::hostile_records,
    ),
    test(
        "hostile-stop-keeps-frames",
        Scope::Suite("vm-hostile"),
        hostile::hostile_stop_keeps_frames,
    ),
    test(
        "hostile-deaf-stop-cancel",
        Scope::Suite("vm-hostile"),
        cancel::hostile_deaf_stop_cancel,
    ),
    test(
        "hostile-regions-lying-stop",
        Scope::Suite("vm-hostile"),
        regions::hostile_regions_lying_stop,
    ),
    test(
        "hostile-moderation",
        Scope::Suite("vm-hostile"),
        moderation::hostile_moderation,
    ),
    test(
        "hostile-regions-deaf-stop",
        Scope::Suite("vm-hostile"),
        regions::hostile_regions_deaf_stop,
    ),
    // The ABI's decoding under random input; the mapping paths it reaches are the
    // data-path tests' (20,000 commands unless `fgrab_fuzz_commands` says otherwise;
    // `cargo xtask fuzz` gives it more).
    Test {
        timeout_seconds: 900,
        ..control("fuzz-commands", fuzz::fuzz_commands)
    },
    data("soak-short", soak::soak_short),
    test("soak", Scope::Manual, soak::soak_long),
    // The libraries and tools over the paths tested above in every DMA mode.
    control("client-rust-api", client::client_rust_api),
    control("client-misuse", client::client_misuse),
    control("client-single-thread", client::client_single_thread),
    control("client-batch", client::client_batch),
    control("client-regions", regions::client_regions),
    control(
        "client-shared-regions",
        regions_shared::client_shared_regions,
    ),
    control("client-legacy-c", client::client_legacy_c),
    control("client-legacy-misuse", client::client_legacy_misuse),
    control("client-legacy-threads", client::client_legacy_threads),
    control("client-raw-uring-c", client::client_raw_uring_c),
    control("client-cli", client::client_cli),
    // Recording (issue 15): the `vm` suite has the virtio disk; the writes leave from the
    // fixed buffer the data-path tests cover in every DMA mode.
    control("record-tmpfs-buffered", record::record_tmpfs_buffered),
    control("record-disk-direct", record::record_disk_direct),
    control("record-disk-batched", record::record_disk_batched),
    control("record-disk-buffered", record::record_disk_buffered),
    control("record-tmpfs-full", record::record_tmpfs_full),
    control(
        "record-tmpfs-full-batched",
        record::record_tmpfs_full_batched,
    ),
    control("record-disk-full", record::record_disk_full),
    control("record-cli", record::record_cli),
    control("client-shared-threads", shared_api::client_shared_threads),
    control("client-shared-cancel", shared_api::client_shared_cancel),
    control("client-tokio", shared_api::client_tokio),
    // Permissions and locked-memory accounting are decided before any DMA.
    control("nonroot-clients", nonroot::nonroot_clients),
    control(
        "stream-module-unload-refused",
        teardown::stream_module_unload_refused,
    ),
    // Removal changes the machine (and needs a card with a fault).
    test(
        "stream-hot-unplug",
        Scope::Suite("vm-removal"),
        removal::stream_hot_unplug,
    ),
    test(
        "stream-surprise-removal",
        Scope::Suite("vm-removal"),
        removal::stream_surprise_removal,
    ),
    test(
        "regions-hot-unplug",
        Scope::Suite("vm-removal"),
        regions::regions_hot_unplug,
    ),
    // `cargo xtask bench` runs it on the fast kernel.
    test("bench", Scope::Manual, bench),
    test("bench-record", Scope::Manual, record::bench_record),
    test("selftest-fail", Scope::Manual, selftest_fail),
    test("selftest-warn", Scope::Manual, selftest_warn),
];

const CARD0: &str = "/dev/fgrab0";
const PCI_DRIVER: &str = "/sys/bus/pci/drivers/fgrab";

/// PCI addresses of the devices bound to fgrab, sorted.
fn bound_devices() -> Vec<String> {
    let mut devices: Vec<String> = std::fs::read_dir(PCI_DRIVER)
        .map(|dir| {
            dir.filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains(':'))
                .collect()
        })
        .unwrap_or_default();
    devices.sort();
    devices
}

/// The driver's KUnit suites ran when the module loaded; every case must have passed: a
/// case that failed or was skipped (`ok N name # SKIP reason`, which KTAP counts as "ok")
/// fails the test.
fn kunit() -> TestResult {
    let root = "/sys/kernel/debug/kunit";
    let mut suites = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|error| format!("{root}: {error}"))? {
        let name = entry.map_err(|error| error.to_string())?.file_name();
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("fgrab") {
            suites.push(name);
        }
    }
    ensure!(!suites.is_empty(), "no fgrab KUnit suite under {root}");
    for suite in &suites {
        let results = std::fs::read_to_string(format!("{root}/{suite}/results"))
            .map_err(|error| format!("{suite} results: {error}"))?;
        let passed = kunit_verdict(suite, &results)?;
        harness::info(&format!(
            "KUnit {suite}: {passed} cases passed, none skipped"
        ));
    }
    Ok(())
}

/// Reads one suite's KTAP `results`: the number of cases that passed, or why the suite does
/// not count as passed (a case failed or was skipped, or none passed). The suite's own
/// result line is one of the "ok" lines and is not counted.
fn kunit_verdict(suite: &str, results: &str) -> Result<usize, String> {
    let mut passed = 0;
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for line in results.lines().map(str::trim_start) {
        if line.starts_with("not ok ") {
            failed.push(line);
        } else if line.starts_with("ok ") {
            // KTAP directives are case-insensitive: `# SKIP`, `# skip`.
            let directive = line
                .split_once('#')
                .map(|(_, directive)| directive.trim_start().to_ascii_uppercase());
            if directive.is_some_and(|directive| directive.starts_with("SKIP")) {
                skipped.push(line);
            } else {
                passed += 1;
            }
        }
    }
    ensure!(failed.is_empty(), "{suite}: failed {failed:?}\n{results}");
    ensure!(
        skipped.is_empty(),
        "{suite}: skipped (a skip is not a pass) {skipped:?}\n{results}"
    );
    ensure!(passed > 1, "{suite}: no passing case in\n{results}");
    Ok(passed - 1)
}

/// Number of emulated cards the host started (`fgrab_cards` on the kernel command line).
fn expected_cards() -> usize {
    std::env::var("fgrab_cards")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

fn read_sysfs(device: &str, attribute: &str) -> Result<String, String> {
    let path = format!("/sys/bus/pci/devices/{device}/{attribute}");
    std::fs::read_to_string(&path)
        .map(|text| text.trim().to_string())
        .map_err(|error| format!("{path}: {error}"))
}

/// Every PCI function with the card's IDs, with the documented configuration
/// (docs/hardware.md section 2), whether or not a driver is bound.
fn enumerate() -> TestResult {
    let mut cards = Vec::new();
    for entry in std::fs::read_dir("/sys/bus/pci/devices").map_err(|error| error.to_string())? {
        let device = entry.map_err(|error| error.to_string())?.file_name();
        let device = device.to_string_lossy().into_owned();
        if read_sysfs(&device, "vendor")? == "0x10ee" && read_sysfs(&device, "device")? == "0xf9a0"
        {
            cards.push(device);
        }
    }
    cards.sort();
    ensure!(
        cards.len() == expected_cards(),
        "found {} cards, expected {}: {cards:?}",
        cards.len(),
        expected_cards()
    );
    for device in &cards {
        for (attribute, want) in [
            ("subsystem_vendor", "0x10ee"),
            ("subsystem_device", "0x0001"),
            ("revision", "0x01"),
            ("class", "0x040000"),
        ] {
            let got = read_sysfs(device, attribute)?;
            ensure!(got == want, "{device} {attribute}: {got}, expected {want}");
        }
        // First line of `resource` is BAR0: start, end, flags.
        let resource = read_sysfs(device, "resource")?;
        let bar0: Vec<u64> = resource
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|word| u64::from_str_radix(word.trim_start_matches("0x"), 16).ok())
            .collect();
        ensure!(
            bar0.len() == 3,
            "{device}: cannot parse BAR0 from `{resource}`"
        );
        let size = bar0[1] - bar0[0] + 1;
        ensure!(
            size == 64 * 1024,
            "{device}: BAR0 is {size} bytes, expected 64 KiB"
        );
        ensure!(
            bar0[2] & 0x200 != 0,
            "{device}: BAR0 is not a memory BAR (flags {:#x})",
            bar0[2]
        );
        let iommu_group =
            std::fs::read_link(format!("/sys/bus/pci/devices/{device}/iommu_group")).is_ok();
        harness::info(&format!(
            "PCI {device}: 10ee:f9a0 subsystem 10ee:0001 rev 01 class 040000, BAR0 64 KiB at {:#x}{}",
            bar0[0],
            if iommu_group { ", behind an IOMMU" } else { "" }
        ));
    }
    Ok(())
}

/// Each card answers for itself: INFO on /dev/fgrabN reports card N at its own location.
fn cards_independent() -> TestResult {
    let devices = bound_devices();
    ensure!(
        devices.len() == expected_cards(),
        "{} cards bound, expected {}",
        devices.len(),
        expected_cards()
    );
    for (index, device) in devices.iter().enumerate() {
        let mut card =
            Card::open(format!("/dev/fgrab{index}")).map_err(|error| error.to_string())?;
        let info = card.info().map_err(|error| error.to_string())?;
        ensure!(
            info.card_index as usize == index,
            "/dev/fgrab{index} reports card {}",
            info.card_index
        );
        let location = location_name(info.pci_location);
        ensure!(
            &location == device,
            "/dev/fgrab{index} at {location}, sysfs says {device}"
        );
    }
    Ok(())
}

/// `DeviceInfo::pci_location` in sysfs notation (`dddd:bb:dd.f`).
fn location_name(location: u32) -> String {
    format!(
        "{:04x}:{:02x}:{:02x}.{}",
        location >> 16,
        (location >> 8) & 0xff,
        (location >> 3) & 0x1f,
        location & 0x7
    )
}

fn open_card0() -> Result<Card, String> {
    Card::open(CARD0).map_err(|error| error.to_string())
}

fn driver_bound() -> TestResult {
    let devices = bound_devices();
    ensure!(!devices.is_empty(), "no PCI device bound to {PCI_DRIVER}");
    for (index, device) in devices.iter().enumerate() {
        let node = format!("/dev/fgrab{index}");
        let meta = std::fs::metadata(&node).map_err(|error| format!("{node}: {error}"))?;
        use std::os::unix::fs::FileTypeExt;
        ensure!(
            meta.file_type().is_char_device(),
            "{node} is not a character device"
        );
        harness::info(&format!("card {index}: {device} -> {node}"));
    }
    Ok(())
}

fn info_roundtrip() -> TestResult {
    let mut card = open_card0()?;
    let info = card.info().map_err(|error| error.to_string())?;
    ensure!(
        info.struct_size as usize == size_of::<DeviceInfo>(),
        "struct_size {}",
        info.struct_size
    );
    ensure!(info.vendor_id == 0x10ee, "vendor {:#06x}", info.vendor_id);
    ensure!(info.device_id == 0xf9a0, "device {:#06x}", info.device_id);
    ensure!(info.card_index == 0, "card_index {}", info.card_index);
    ensure!(
        info.hw_version != 0,
        "hardware version not read from the card"
    );
    ensure!(info.max_segment_bytes != 0, "max_segment_bytes is 0");
    ensure!(
        info.reserved0 == [0; 3] && info.reserved == [0; 3],
        "reserved fields not zero"
    );
    let devices = bound_devices();
    let location = location_name(info.pci_location);
    ensure!(
        devices.first() == Some(&location),
        "location {location}, sysfs has {devices:?}"
    );
    harness::info(&format!(
        "card 0 at {location}: {:04x}:{:04x} rev {} hw v{:#x} abi {} max segment {} B, {} descriptors/frame",
        info.vendor_id, info.device_id, info.revision, info.hw_version, info.abi_version,
        info.max_segment_bytes, info.max_descriptors_per_frame
    ));
    Ok(())
}

/// Sends INFO with `mutate` applied and returns the CQE result.
fn info_with(card: &mut Card, mutate: impl FnOnce(&mut CopyOutCmd)) -> Result<i32, String> {
    let mut target = DeviceInfo::new_zeroed();
    let mut request = CopyOutCmd {
        addr: target.as_mut_bytes().as_mut_ptr() as u64,
        size: size_of::<DeviceInfo>() as u32,
        ..CopyOutCmd::new_zeroed()
    };
    mutate(&mut request);
    // SAFETY: the address is `target`'s (alive until the call returns), or a mutation's
    // unmapped address the driver must refuse with -EFAULT.
    unsafe { card.raw_command(ops::INFO, request.as_bytes()) }.map_err(|error| error.to_string())
}

fn info_rejects_bad_payload() -> TestResult {
    let mut card = open_card0()?;
    type Mutation = fn(&mut CopyOutCmd);
    let cases: [(&str, Mutation, i32); 4] = [
        ("nonzero flags", |request| request.flags = 1, libc::EINVAL),
        (
            "nonzero reserved",
            |request| request.reserved[7] = 1,
            libc::EINVAL,
        ),
        ("zero size", |request| request.size = 0, libc::EINVAL),
        (
            "unmapped address",
            |request| request.addr = 0x10,
            libc::EFAULT,
        ),
    ];
    for (what, mutate, errno) in cases {
        let result = info_with(&mut card, mutate)?;
        ensure!(result == -errno, "{what}: expected -{errno}, got {result}");
    }
    // A short buffer gets a prefix: an older, smaller DeviceInfo keeps working.
    let result = info_with(&mut card, |request| request.size = 8)?;
    ensure!(
        result == 8,
        "size 8: expected 8 bytes written, got {result}"
    );
    // Nothing above disturbed the card.
    card.info().map_err(|error| error.to_string())?;
    Ok(())
}

fn unknown_op() -> TestResult {
    let mut card = open_card0()?;
    for op in [0, 0x4647_00ff, 0xffff_ffff, ops::INFO ^ 0x0100_0000] {
        // SAFETY: an all-zero payload carries no address.
        let result = unsafe { card.raw_command(op, &[]) }.map_err(|error| error.to_string())?;
        ensure!(
            result == -libc::EOPNOTSUPP,
            "op {op:#x}: expected -EOPNOTSUPP, got {result}"
        );
    }
    Ok(())
}

/// A ring without `IORING_SETUP_SQE128` gives the driver a 16-byte payload: rejected.
fn small_sqe_ring_rejected() -> TestResult {
    use io_uring::{opcode, types, IoUring};
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CARD0)
        .map_err(|error| error.to_string())?;
    let mut ring = IoUring::new(4).map_err(|error| error.to_string())?;
    let entry = opcode::UringCmd16::new(types::Fd(file.as_raw_fd()), ops::INFO).build();
    // SAFETY: the entry points to no memory.
    unsafe { ring.submission().push(&entry) }.map_err(|error| error.to_string())?;
    ring.submit_and_wait(1).map_err(|error| error.to_string())?;
    let cqe = ring.completion().next().ok_or("no completion")?;
    ensure!(
        cqe.result() == -libc::EINVAL,
        "expected -EINVAL, got {}",
        cqe.result()
    );
    Ok(())
}

fn selftest_fail() -> TestResult {
    Err("deliberate failure: the harness must report this test as failed".into())
}

fn selftest_warn() -> TestResult {
    std::fs::write("/sys/kernel/debug/provoke-crash/DIRECT", "WARNING")
        .map_err(|error| format!("lkdtm: {error}"))
}

/// `fgrab_mode=demo`: show what the driver exposes.
pub fn demo() {
    let devices = bound_devices();
    println!("fgrab: {} card(s) bound to the driver", devices.len());
    for (index, device) in devices.iter().enumerate() {
        let path = format!("/dev/fgrab{index}");
        match Card::open(&path).and_then(|mut card| card.info()) {
            Ok(info) => harness::info(&format!(
                "{path}: {} {:04x}:{:04x} rev {} hw v{:#x}, ABI {}, frame {} B every {} us, \
                 max segment {} B, {} descriptors/frame, {}-bit DMA",
                device,
                info.vendor_id,
                info.device_id,
                info.revision,
                info.hw_version,
                info.abi_version,
                info.frame_bytes,
                info.frame_period_ns / 1000,
                info.max_segment_bytes,
                info.max_descriptors_per_frame,
                info.dma_address_bits
            )),
            Err(error) => println!("@@fgrab fail demo 0ms {path}: {error}"),
        }
    }
    if !devices.is_empty() {
        if let Err(error) = attach::demo("/dev/fgrab0") {
            println!("@@fgrab fail demo 0ms attach: {error}");
        }
        println!("fgrab: the legacy C API (an unchanged application, its own malloc buffer):");
        match std::process::Command::new("/bin/fgrab-legacy-capture")
            .arg("2000")
            .output()
        {
            Ok(output) if output.status.success() => {
                harness::info(String::from_utf8_lossy(&output.stdout).trim())
            }
            Ok(output) => println!(
                "@@fgrab fail demo 0ms legacy C example: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(error) => println!("@@fgrab fail demo 0ms legacy C example: {error}"),
        }
        println!("fgrab: the Rust API:");
        if let Err(error) = client::demo_rust_api(4) {
            println!("@@fgrab fail demo 0ms Rust API: {error}");
        }
        if crate::userland::requested() {
            println!("fgrab: Python (the fgrab package, numpy, in a Debian userland):");
            if let Err(error) =
                crate::userland::run("python-demo", std::time::Duration::from_secs(120))
            {
                println!("@@fgrab fail demo 0ms Python: {error}");
            }
        }
    }
}

/// The benchmark matrix of `cargo xtask bench`: every frame path at several frame sizes on
/// card 0, each job run by `/bin/fgrab-bench`; its JSON reports go to the host as
/// `bench-json` lines. With `fgrab_bench_mode=cost` (the run under QEMU `-icount`), the
/// CPU-cost jobs instead: a fixed number of frames per job, since guest time then counts
/// instructions and a timed job would measure the host.
fn bench() -> TestResult {
    let runtime = std::env::var("fgrab_bench_runtime").unwrap_or_else(|_| "2".into());
    let cost = std::env::var("fgrab_bench_mode").is_ok_and(|mode| mode == "cost");
    let job = |name: String, engine: &str, bs: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            format!("--name={name}"),
            format!("--ioengine={engine}"),
            format!("--bs={bs}"),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let mut jobs: Vec<Vec<String>> = Vec::new();
    if cost {
        // Frames per job: about 0.5-1 GB each, a few guest seconds on the copy path.
        for (bs, frames) in [("256k", "2000"), ("1M", "1000"), ("4M", "250")] {
            let count = format!("--number_ios={frames}");
            for engine in ["uring", "uring-raw", "ioctl", "read"] {
                jobs.push(job(format!("{engine}-{bs}"), engine, bs, &[&count]));
            }
            if bs != "4M" {
                // Batched recycling with count moderation: the per-frame kernel work left,
                // through the library (`Options::batch`: one interrupt per batch) and on the
                // raw ring (the library's own cost is the gap). The driver's default time
                // bound.
                jobs.push(job(
                    format!("uring-{bs}-qb16"),
                    "uring",
                    bs,
                    &[&count, "--iodepth=64", "--queue_batch=16"],
                ));
                jobs.push(job(
                    format!("uring-raw-{bs}-qb16"),
                    "uring-raw",
                    bs,
                    &[
                        &count,
                        "--iodepth=64",
                        "--queue_batch=16",
                        "--irq_frames=16",
                    ],
                ));
                jobs.push(job(
                    format!("uring-{bs}-no-defer"),
                    "uring",
                    bs,
                    &[&count, "--defer_taskrun=0"],
                ));
            }
        }
    } else {
        let runtime = format!("--runtime={runtime}");
        let timed = |mut args: Vec<String>| {
            args.push(runtime.clone());
            args
        };
        // `uring` is the fgrab library, `uring-raw` and `uring-sqpoll` the benchmark's own
        // hand-tuned ring: the gap between them is the library's.
        for bs in ["256k", "1M", "4M", "16M"] {
            for engine in ["uring", "uring-raw", "uring-sqpoll", "ioctl", "read"] {
                jobs.push(timed(job(format!("{engine}-{bs}"), engine, bs, &[])));
            }
        }
        for bs in ["256k", "1M"] {
            // Waiting for 4 completions per system call instead of 1: how a wait for a
            // batch keeps completed frames from the card (issue 15), side by side.
            jobs.push(timed(job(
                format!("uring-raw-{bs}-batch4"),
                "uring-raw",
                bs,
                &["--iodepth_batch=4"],
            )));
            // Task work run at once instead of deferred to the waiter: what a
            // single-thread stream (DEFER_TASKRUN, lazy frame completions) saves.
            jobs.push(timed(job(
                format!("uring-{bs}-no-defer"),
                "uring",
                bs,
                &["--defer_taskrun=0"],
            )));
            // Deeper queues, reaped 32 per system call: the batched mode's system call
            // budget.
            jobs.push(timed(job(
                format!("uring-raw-{bs}-batch32"),
                "uring-raw",
                bs,
                &["--iodepth=64", "--iodepth_batch=32"],
            )));
        }
        // Batched recycling (`QUEUE_BATCH`: one submission and one completion per batch)
        // with one interrupt per batch (`START_IRQ_FRAMES`, the driver's default time
        // bound), through the library (`Options::batch`): 32 frames in 4 batches of 8 (the
        // 256 KiB target's depth), 64 in 4 batches of 16 (the 1/16 SQE target), and the
        // larger frames; the same on the raw ring, whose gap to the library is the
        // library's own cost.
        for (bs, depth, batch) in [
            ("256k", 32, 8),
            ("256k", 64, 16),
            ("1M", 32, 8),
            ("1M", 64, 16),
            ("4M", 16, 4),
        ] {
            let depth_arg = format!("--iodepth={depth}");
            let batch_arg = format!("--queue_batch={batch}");
            jobs.push(timed(job(
                format!("uring-{bs}-qd{depth}-qb{batch}"),
                "uring",
                bs,
                &[&depth_arg, &batch_arg],
            )));
        }
        for (bs, depth, batch) in [("256k", 64, 16), ("1M", 64, 16)] {
            let depth_arg = format!("--iodepth={depth}");
            let batch_arg = format!("--queue_batch={batch}");
            let irq_arg = format!("--irq_frames={batch}");
            jobs.push(timed(job(
                format!("uring-raw-{bs}-qd{depth}-qb{batch}"),
                "uring-raw",
                bs,
                &[&depth_arg, &batch_arg, &irq_arg],
            )));
        }
        // The deepest queue the 256 KiB target allows, and far deeper ones (64 MiB in
        // flight): whether misses at small frames come from per-frame cost or from host
        // stalls longer than the queued frames last.
        for (bs, depth) in [("256k", 32), ("256k", 256), ("1M", 64)] {
            let depth_arg = format!("--iodepth={depth}");
            jobs.push(timed(job(
                format!("uring-{bs}-qd{depth}"),
                "uring",
                bs,
                &[&depth_arg],
            )));
        }
        // The same zero-copy job on 4 KiB pages: more descriptors, as many as extents.
        jobs.push(timed(job(
            "uring-4M-4k-pages".into(),
            "uring",
            "4M",
            &["--backing=4k"],
        )));
    }
    for job in jobs {
        let output = std::process::Command::new("/bin/fgrab-bench")
            .arg("--iodepth=8")
            .args(&job)
            .args(["--offset=0x321", "--output-format=json"])
            .output()
            .map_err(|error| format!("fgrab-bench: {error}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            output.status.success(),
            "fgrab-bench {job:?}: {} {}",
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        for line in stdout.lines() {
            harness::info(&format!("bench-json {line}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod kunit_tests {
    use super::kunit_verdict;

    const PASSED: &str = "KTAP version 1\n# Subtest: fgrab_region\n# module: fgrab\n1..2\n    \
        ok 1 frame_slicing\n    ok 2 descriptor_merging\n# fgrab_region: pass:2 fail:0 \
        skip:0 total:2\nok 1 fgrab_region\n";

    #[test]
    fn passed_cases_are_counted() {
        assert_eq!(kunit_verdict("fgrab_region", PASSED), Ok(2));
    }

    #[test]
    fn a_skipped_case_fails_and_is_named() {
        let results = PASSED.replace(
            "ok 2 descriptor_merging",
            "ok 2 descriptor_merging # SKIP no IOMMU",
        );
        let verdict = kunit_verdict("fgrab_region", &results).unwrap_err();
        assert!(
            verdict.contains("ok 2 descriptor_merging # SKIP no IOMMU"),
            "{verdict}"
        );
    }

    #[test]
    fn a_skipped_suite_fails() {
        let results = "KTAP version 1\n1..0\nok 1 fgrab_region # SKIP not built\n";
        assert!(kunit_verdict("fgrab_region", results).is_err());
    }

    #[test]
    fn a_failed_case_fails() {
        let results = PASSED.replace("    ok 1 frame_slicing", "    not ok 1 frame_slicing");
        assert!(kunit_verdict("fgrab_region", &results).is_err());
    }
}
