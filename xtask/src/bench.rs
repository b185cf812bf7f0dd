//! `cargo xtask bench`: the benchmark matrix in the VM on the fast kernel, the peers side by
//! side, and the README table regenerated from the figures.
//!
//! The card runs with its sensor rate far above what its DMA engine can write
//! (`--rate 1e11`), so it is always busy: the "physical limit" of a job is the rate at which
//! the device model wrote frame bytes into guest memory while busy, which it logs after
//! every stream (`stream: ... dma_bytes ... dma_busy_ns`). Jobs run one after another, each
//! one stream on card 0, so the n-th stream line belongs to the n-th job.

use crate::vm::{self, VmConfig};
use crate::{kernel, paths};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::time::Duration;

/// The figures of one job this report uses, from the JSON object `fgrab-bench
/// --output-format=json` printed for it (`Figures` in `benches/src/main.rs`, which has more).
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Figures {
    name: String,
    engine: String,
    gbps: f64,
    drops_underrun: u64,
    drops_other: u64,
    /// `None` on the copy path, which has no completion timestamps.
    lat_p50_us: Option<f64>,
    lat_p99_us: Option<f64>,
    cpu_s_per_gb: f64,
    syscalls_per_frame: f64,
    descriptors_per_frame: Option<f64>,
    /// `None` on the copy path.
    extents_per_frame: Option<f64>,
}

/// The jobs of the `bench-json` lines among the guest's info lines, in order.
fn jobs(infos: &[String]) -> Result<Vec<Figures>> {
    infos
        .iter()
        .filter_map(|line| line.strip_prefix("bench-json "))
        .map(|json| {
            serde_json::from_str(json).with_context(|| format!("fgrab-bench's report `{json}`"))
        })
        .collect()
}

/// A figure with one decimal, `null` if there is none (as the table always showed it).
fn decimal(value: Option<f64>) -> String {
    value.map_or("null".into(), |value| format!("{value:.1}"))
}

/// What the device model logged about one stream.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stream {
    /// Write rate while writing frames, GB/s: the physical limit.
    rate: f64,
    /// Shares of the time from `ENABLE` to the stop request spent writing frames and
    /// starved (a frame was due but no buffer was queued, or completions were not reaped);
    /// the rest is the model's own per-frame work (descriptor and ring accesses, interrupts)
    /// and its thread waiting for a host core.
    writing: f64,
    starved: f64,
}

/// Every stream the device model logged, in order.
fn streams(log: &str) -> Vec<Stream> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find("stream: ")?..];
            let words: Vec<&str> = rest.split_whitespace().collect();
            let field = |name: &str| {
                words
                    .iter()
                    .position(|word| *word == name)
                    .and_then(|at| words.get(at + 1))
                    .and_then(|value| value.parse::<f64>().ok())
            };
            let busy = field("dma_busy_ns")?;
            let running = field("running_ns").unwrap_or(0.0);
            let share = |ns: f64| {
                if running > 0.0 {
                    ns / running
                } else {
                    f64::NAN
                }
            };
            (busy > 0.0).then(|| Stream {
                rate: field("dma_bytes").unwrap_or(0.0) / busy,
                writing: share(busy),
                starved: share(field("starved_ns").unwrap_or(0.0)),
            })
        })
        .collect()
}

/// Runs the benchmark and prints (and writes) the tables.
pub fn run(flags: &[String]) -> Result<()> {
    let env = paths::Env::new()?;
    let runtime = flags
        .iter()
        .find_map(|flag| flag.strip_prefix("--runtime="))
        .unwrap_or("2")
        .to_string();
    let iommu = flags.iter().any(|flag| flag == "--iommu");
    if flags.iter().any(|flag| flag == "--record-only") {
        return record_only(&env, &runtime);
    }
    let artifacts = vm::prepare(&env, kernel::Profile::Fast)?;
    let mut config = VmConfig::test(if iommu { "bench-iommu" } else { "bench" });
    config.iommu = iommu;
    config.cards = 1;
    config.tests = vec!["bench".into()];
    config.emulator_args = vec!["--rate".into(), "100000000000".into()];
    config.guest_args = vec![format!("fgrab_bench_runtime={runtime}")];
    config.timeout = Duration::from_secs(1800);
    crate::cmd::step("benchmark jobs in the VM (fast kernel, QEMU TCG)");
    let outcome = vm::run(&env, &artifacts, &config)?;
    if !outcome.clean() {
        bail!(
            "the benchmark run failed: {:?}; serial log: {}",
            outcome.failure,
            outcome.log.display()
        );
    }
    let jobs = jobs(&outcome.infos)?;
    let log = std::fs::read_to_string(outcome.log.with_file_name("card0.log"))
        .context("reading the device model's log")?;
    let streams = streams(&log);
    if streams.len() != jobs.len() {
        bail!(
            "{} jobs but {} device streams in card0.log: cannot pair them",
            jobs.len(),
            streams.len()
        );
    }
    let mut table = render(&jobs, &streams, iommu);
    table.push('\n');
    table.push_str(&crate::bench_record::run(&env, &runtime)?);
    println!("{table}");
    let results = env.root.join("benches/RESULTS.md");
    std::fs::write(&results, &table)?;
    if !iommu {
        update_readme(&env, &table)?;
    }
    println!("written to {}", results.display());
    Ok(())
}

/// The report: every job, then the ratios the project's targets are about.
fn render(jobs: &[Figures], streams: &[Stream], iommu: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Measured by `cargo xtask bench{}` on this machine (2 host cores, QEMU TCG guest: the \
         guest CPU is emulated, so absolute times are slow and noisy; ratios measured side by \
         side in one run carry the meaning). Card 0 runs with its sensor faster than its DMA \
         engine, so the physical limit is the device model's own write rate into guest memory \
         during each job. Buffers start 0x321 bytes into a THP-backed mapping, 8 frames \
         queued, completions reaped 4 per system call; io_uring jobs without SQPOLL use \
         DEFER_TASKRUN rings, on which the driver's lazy frame completions wake the \
         waiter once per batch (the `-no-defer` jobs show the difference). Latency runs from the card's end of \
         frame (its clock, translated to CLOCK_MONOTONIC by the driver at START) to user space \
         reading the completion. The card's time (from its ENABLE to the stop request) splits \
         into writing frames, starved (a frame was due and no buffer was queued, or the \
         completion ring was full) and the rest, the model's own per-frame work.\n\n",
        if iommu { " --iommu" } else { "" }
    ));
    out.push_str(
        "| job | GB/s | of physical limit | card writing/starved/other | drops (underrun/other) | latency p50/p99 us | CPU s per GB (user+sys+driver) | syscalls/frame | descriptors/frame (extents) |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (job, stream) in jobs.iter().zip(streams) {
        out.push_str(&format!(
            "| {} | {:.3} | {:.0}% of {:.2} GB/s | {:.0}/{:.0}/{:.0}% | {}/{} | {}/{} | {:.4} | {:.4} | {} ({}) |\n",
            job.name,
            job.gbps,
            100.0 * job.gbps / stream.rate,
            stream.rate,
            100.0 * stream.writing,
            100.0 * stream.starved,
            100.0 * (1.0 - stream.writing - stream.starved),
            job.drops_underrun,
            job.drops_other,
            decimal(job.lat_p50_us),
            decimal(job.lat_p99_us),
            job.cpu_s_per_gb,
            job.syscalls_per_frame,
            decimal(job.descriptors_per_frame),
            decimal(job.extents_per_frame),
        ));
    }
    out.push_str("\nRatios per frame size (fgrab = `uring`, batched):\n\n");
    out.push_str("| frame | fgrab vs physical limit | CPU per GB: copy / fgrab | CPU per GB: ioctl / fgrab | syscalls per frame: fgrab, sqpoll, ioctl, read |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    let find = |engine: &str, bs: &str| {
        jobs.iter()
            .zip(streams)
            .find(|(job, _)| job.name == format!("{engine}-{bs}"))
    };
    for bs in ["256k", "1M", "4M", "16M"] {
        let (Some((uring, stream)), Some((read, _)), Some((ioctl, _)), Some((sqpoll, _))) = (
            find("uring", bs),
            find("read", bs),
            find("ioctl", bs),
            find("uring-sqpoll", bs),
        ) else {
            continue;
        };
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.1}x", a / b)
            } else {
                "n/a".into()
            }
        };
        out.push_str(&format!(
            "| {bs} | {:.0}% | {} | {} | {:.4}, {:.4}, {:.4}, {:.4} |\n",
            100.0 * uring.gbps / stream.rate,
            ratio(read.cpu_s_per_gb, uring.cpu_s_per_gb),
            ratio(ioctl.cpu_s_per_gb, uring.cpu_s_per_gb),
            uring.syscalls_per_frame,
            sqpoll.syscalls_per_frame,
            ioctl.syscalls_per_frame,
            read.syscalls_per_frame,
        ));
    }
    out.push_str(&verdicts(jobs, streams));
    out
}

/// The project's targets, each with the measured figure and whether it was met.
fn verdicts(jobs: &[Figures], streams: &[Stream]) -> String {
    let named = |name: &str| jobs.iter().zip(streams).find(|(job, _)| job.name == name);
    let mark = |met: bool| if met { "met" } else { "missed" };
    let mut out = String::from("\nTargets:\n\n");
    for bs in ["256k", "1M", "4M", "16M"] {
        if let Some((job, stream)) = named(&format!("uring-{bs}")) {
            let share = job.gbps / stream.rate;
            let underrun = job.drops_underrun;
            out.push_str(&format!(
                "- {bs}: {:.1}% of the physical limit ({}), {underrun} underrun drops ({})\n",
                100.0 * share,
                mark(share >= 0.95),
                mark(underrun == 0)
            ));
        }
    }
    for (job, stream) in jobs.iter().zip(streams) {
        if job.name.contains("-qd") {
            out.push_str(&format!(
                "- {} (not a modest depth; for comparison): {:.0}% of the physical limit, \
                 {} underrun drops\n",
                job.name,
                100.0 * job.gbps / stream.rate,
                job.drops_underrun
            ));
        }
    }
    let cpu = |name: &str| named(name).map(|(job, _)| job.cpu_s_per_gb);
    for bs in ["256k", "1M", "4M", "16M"] {
        if let (Some(copy), Some(fgrab)) = (cpu(&format!("read-{bs}")), cpu(&format!("uring-{bs}")))
        {
            let ratio = if fgrab > 0.0 {
                copy / fgrab
            } else {
                f64::INFINITY
            };
            out.push_str(&format!(
                "- {bs}: CPU per GB {ratio:.1}x below the copy path (target 20x: {})\n",
                mark(ratio >= 20.0)
            ));
        }
    }
    for name in ["uring-256k-batch32", "uring-1M-batch32"] {
        if let Some((job, _)) = named(name) {
            let calls = job.syscalls_per_frame;
            out.push_str(&format!(
                "- {name}: {calls:.4} system calls per frame (target 1/32 = 0.03125: {})\n",
                mark(calls <= 1.0 / 32.0 + 1e-9)
            ));
        }
    }
    for bs in ["256k", "1M"] {
        if let (Some(deferred), Some(immediate)) = (
            cpu(&format!("uring-{bs}")),
            cpu(&format!("uring-{bs}-no-defer")),
        ) {
            out.push_str(&format!(
                "- {bs}: CPU per GB {deferred:.4} s with task work deferred to the waiter \
                 (DEFER_TASKRUN, lazy frame completions) vs {immediate:.4} s without\n"
            ));
        }
    }
    let sqpoll: Vec<f64> = jobs
        .iter()
        .filter(|job| job.engine == "uring-sqpoll")
        .map(|job| job.syscalls_per_frame)
        .collect();
    if let Some(worst) = sqpoll.iter().copied().reduce(f64::max) {
        out.push_str(&format!(
            "- SQPOLL: at most {worst:.4} system calls per frame (near zero: {})\n",
            mark(worst < 0.01)
        ));
    }
    let exact = jobs.iter().all(
        |job| match (job.descriptors_per_frame, job.extents_per_frame) {
            (Some(descriptors), Some(extents)) => (descriptors - extents).abs() < 1e-6,
            _ => true,
        },
    );
    out.push_str(&format!(
        "- descriptors per frame equal the physically contiguous extents in every zero-copy job: {}\n",
        mark(exact)
    ));
    out.push_str(
        "\nWhere a target is missed, two causes of this machine show in the figures. The \
         guest CPU is emulated: every frame costs an interrupt, task work and a completion in \
         a TCG guest at roughly a hundred times native cost, so small frames at thousands of \
         frames per second load the guest before the card. And the two host cores are shared \
         by the two vCPU threads and the device model, whose DMA writes keep one core busy: \
         the guest stalls for host scheduling slices, and 8 queued frames of 256 KiB last \
         under half a millisecond at the card's rate, so the card runs dry. The card-time \
         column separates the two sides: time starved is the host not keeping the card fed \
         (the guest and its stalls: the `-qd` jobs, with far more frames in flight, show how \
         much depth buys back), while time that is neither writing nor starved is the device \
         model's own per-frame work (descriptor fetch, completion records, interrupts) and \
         its thread waiting for a host core between frames, which bounds small frames below \
         the write rate whatever the driver does. CPU figures come from 100 Hz tick accounting and are coarse for \
         short jobs. The same code and ratios on real hardware remain to be measured.\n",
    );
    out
}

/// `cargo xtask bench --record-only`: the recording jobs alone, written to
/// `benches/RECORD.md` (the README keeps the last full run).
fn record_only(env: &paths::Env, runtime: &str) -> Result<()> {
    let table = crate::bench_record::run(env, runtime)?;
    println!("{table}");
    let path = env.root.join("benches/RECORD.md");
    std::fs::write(&path, &table)?;
    println!("written to {}", path.display());
    Ok(())
}

/// Replaces the README's benchmark section (between markers) with `table`.
fn update_readme(env: &paths::Env, table: &str) -> Result<()> {
    const START: &str = "<!-- bench:start -->";
    const END: &str = "<!-- bench:end -->";
    let path = env.root.join("README.md");
    let readme = std::fs::read_to_string(&path)?;
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        bail!("README.md has no {START} ... {END} section");
    };
    let updated = format!("{}{START}\n{table}\n{}", &readme[..start], &readme[end..]);
    std::fs::write(&path, updated)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two `bench-json` lines as `fgrab-bench --output-format=json` writes them.
    const LINES: [&str; 2] = [
        r#"bench-json {"name":"uring-4M","engine":"uring","frame_bytes":4194304,"queue_depth":8,"batch":4,"defer_taskrun":true,"backing":"Huge","offset":801,"card":0,"frames":2790,"bytes":11702108160,"seconds":3.0,"gbps":3.9007,"frames_per_s":930.0,"drops_underrun":42,"drops_other":46181,"lat_p50_us":2011.0,"lat_p99_us":3951.3,"lat_max_us":5000.2,"cpu_user_s":0.01,"cpu_sys_s":0.1,"cpu_driver_s":0.03,"cpu_s_per_gb":0.0121,"syscalls":700,"syscalls_per_frame":0.25,"descriptors_per_frame":5.0,"extents_per_frame":5.0}"#,
        r#"bench-json {"name":"read-4M","engine":"read","frame_bytes":4194304,"queue_depth":8,"batch":4,"defer_taskrun":true,"backing":"Huge","offset":801,"card":0,"frames":400,"bytes":1677721600,"seconds":3.0,"gbps":0.555,"frames_per_s":133.3,"drops_underrun":38543,"drops_other":7691,"lat_p50_us":null,"lat_p99_us":null,"lat_max_us":null,"cpu_user_s":0.5,"cpu_sys_s":2.0,"cpu_driver_s":0.5,"cpu_s_per_gb":1.8109,"syscalls":400,"syscalls_per_frame":1.0,"descriptors_per_frame":4.9,"extents_per_frame":null}"#,
    ];

    #[test]
    fn bench_json() {
        let mut infos: Vec<String> = LINES.iter().map(|line| line.to_string()).collect();
        infos.insert(1, "fgrab capture: something else".into());
        let jobs = jobs(&infos).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].name, "uring-4M");
        assert_eq!(jobs[0].gbps, 3.9007);
        assert_eq!(jobs[0].drops_underrun, 42);
        assert_eq!(jobs[1].lat_p50_us, None);
        assert_eq!(jobs[1].extents_per_frame, None);
        // A report that is not a job's figures is an error, not a job left out.
        infos.push(r#"bench-json {"name":"x"}"#.into());
        assert!(jobs_err(&infos).contains("missing field"));
    }

    fn jobs_err(infos: &[String]) -> String {
        format!("{:#}", jobs(infos).unwrap_err())
    }

    /// The table rows keep the figures' precision as the README shows them.
    #[test]
    fn table_rows() {
        let infos: Vec<String> = LINES.iter().map(|line| line.to_string()).collect();
        let jobs = jobs(&infos).unwrap();
        let stream = Stream {
            rate: 4.03,
            writing: 0.96,
            starved: 0.0,
        };
        let table = render(&jobs, &[stream, stream], false);
        assert!(
            table.contains(
                "| uring-4M | 3.901 | 97% of 4.03 GB/s | 96/0/4% | 42/46181 | 2011.0/3951.3 \
                 | 0.0121 | 0.2500 | 5.0 (5.0) |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| read-4M | 0.555 | 14% of 4.03 GB/s | 96/0/4% | 38543/7691 | null/null \
                 | 1.8109 | 1.0000 | 4.9 (null) |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("- 4M: 96.8% of the physical limit (met), 42 underrun drops (missed)"),
            "{table}"
        );
        assert!(
            table.contains("- 4M: CPU per GB 149.7x below the copy path (target 20x: met)"),
            "{table}"
        );
    }

    #[test]
    fn rates_from_log() {
        let log = "x INFO fgrab_emu::engine] stopped: idle\n\
                   x INFO fgrab_emu::engine] stream: produced 10 completed 9 dma_bytes 3000 dma_busy_ns 1000 rate 3.000 GB/s\n";
        let parsed = streams(log);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].rate, 3.0);
        assert!(parsed[0].writing.is_nan());
        let log = "x INFO fgrab_emu::engine] stream: produced 10 completed 9 dma_bytes 3000 \
                   dma_busy_ns 1000 running_ns 4000 starved_ns 1000 rate 3.000 GB/s\n";
        assert_eq!(
            streams(log),
            vec![Stream {
                rate: 3.0,
                writing: 0.25,
                starved: 0.25
            }]
        );
    }
}
