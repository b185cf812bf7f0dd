//! `cargo xtask bench`: the benchmark matrix in the VM on the fast kernel, the peers side by
//! side, and the README table regenerated from the figures.
//!
//! Two VM runs. The throughput run (TCG, two vCPU threads) measures rates, drops, latency
//! and the card's time: figures that depend on the host and its load. The cost run boots
//! the same guest under QEMU `-icount` (guest time counts executed instructions, one vCPU
//! thread) and runs a fixed number of frames per job: the guest's CPU time per frame is then
//! instructions, reproducible whatever else the host runs.
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

/// QEMU `-icount` of the cost run: 2^3 ns of guest time per instruction; `sleep=on` keeps
/// an idle guest's clock on real time (with `sleep=off` an idle guest's clock would leap to
/// its next timer, firing the 10 s timeouts of waits for a card that runs in real time);
/// `align=off`: no throttling to real time.
const ICOUNT: &str = "shift=3,align=off,sleep=on";

/// The shift of [`ICOUNT`]: nanoseconds of guest time per instruction = 2^shift.
const ICOUNT_SHIFT: u32 = 3;

/// Frame sizes of the matrix.
const SIZES: [&str; 4] = ["256k", "1M", "4M", "16M"];

/// The figures of one job this report uses, from the JSON object `fgrab-bench
/// --output-format=json` printed for it (`Figures` in `benches/src/main.rs`, which has more).
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Figures {
    name: String,
    engine: String,
    /// Frames in flight.
    #[serde(default)]
    queue_depth: u32,
    gbps: f64,
    drops_underrun: u64,
    drops_other: u64,
    /// `None` on the copy path, which has no completion timestamps.
    lat_p50_us: Option<f64>,
    lat_p99_us: Option<f64>,
    cpu_s_per_gb: f64,
    /// CPU time per frame (process and interrupt threads), microseconds.
    #[serde(default)]
    cpu_us_per_frame: f64,
    /// Guest-wide non-idle time per GB (ticks; interrupts and every task included).
    #[serde(default)]
    busy_s_per_gb: f64,
    syscalls_per_frame: f64,
    /// `None` where the engine has no ring.
    #[serde(default)]
    sqes_per_frame: Option<f64>,
    #[serde(default)]
    cqes_per_frame: Option<f64>,
    /// The card's interrupts per frame from `/proc/interrupts`.
    #[serde(default)]
    interrupts_per_frame: Option<f64>,
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

/// A per-frame count with two decimals, `-` if the engine has none.
fn count(value: Option<f64>) -> String {
    value.map_or("-".into(), |value| format!("{value:.2}"))
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

/// One VM run of the `bench` guest test; its jobs' figures and the card's log.
fn vm_run(
    env: &paths::Env,
    artifacts: &vm::Artifacts,
    name: &str,
    iommu: bool,
    guest_args: Vec<String>,
    icount: Option<&str>,
) -> Result<(Vec<Figures>, String)> {
    let mut config = VmConfig::test(name);
    config.iommu = iommu;
    config.cards = 1;
    config.tests = vec!["bench".into()];
    config.emulator_args = vec!["--rate".into(), "100000000000".into()];
    config.guest_args = guest_args;
    // Thirty-odd jobs: beyond the guest's default limit per test.
    config.guest_args.push("fgrab_test_timeout=1700".into());
    config.icount = icount.map(str::to_string);
    config.timeout = Duration::from_secs(1800);
    let outcome = vm::run(env, artifacts, &config)?;
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
    Ok((jobs, log))
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
    let cost = !flags.iter().any(|flag| flag == "--no-cost");
    if flags.iter().any(|flag| flag == "--record-only") {
        return record_only(&env, &runtime);
    }
    let artifacts = vm::prepare(&env, kernel::Profile::Fast)?;
    let name = if iommu { "bench-iommu" } else { "bench" };
    crate::cmd::step("benchmark jobs in the VM (fast kernel, QEMU TCG)");
    let (jobs, log) = vm_run(
        &env,
        &artifacts,
        name,
        iommu,
        vec![format!("fgrab_bench_runtime={runtime}")],
        None,
    )?;
    let streams = streams(&log);
    if streams.len() != jobs.len() {
        bail!(
            "{} jobs but {} device streams in card0.log: cannot pair them",
            jobs.len(),
            streams.len()
        );
    }
    let costs = if cost {
        crate::cmd::step(&format!(
            "CPU-cost jobs in the VM (fast kernel, QEMU TCG -icount {ICOUNT})"
        ));
        vm_run(
            &env,
            &artifacts,
            &format!("{name}-cost"),
            iommu,
            vec!["fgrab_bench_mode=cost".into()],
            Some(ICOUNT),
        )?
        .0
    } else {
        Vec::new()
    };
    let mut table = render(
        &Run {
            jobs: &jobs,
            streams: &streams,
            costs: &costs,
            runtime: &runtime,
        },
        iommu,
    );
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

/// What one `cargo xtask bench` measured.
struct Run<'a> {
    /// The throughput run's jobs ...
    jobs: &'a [Figures],
    /// ... each with its stream on the card.
    streams: &'a [Stream],
    /// The cost run's jobs (empty with `--no-cost`).
    costs: &'a [Figures],
    /// Seconds per throughput job.
    runtime: &'a str,
}

impl Run<'_> {
    fn named(&self, name: &str) -> Option<(&Figures, &Stream)> {
        self.jobs
            .iter()
            .zip(self.streams)
            .find(|(job, _)| job.name == name)
    }

    fn cost(&self, name: &str) -> Option<&Figures> {
        self.costs.iter().find(|job| job.name == name)
    }

    /// CPU per GB of job `name`: the reproducible figure if the cost run has it.
    fn cpu_per_gb(&self, name: &str) -> Option<(f64, bool)> {
        match self.cost(name) {
            Some(job) => Some((job.cpu_s_per_gb, true)),
            None => self.named(name).map(|(job, _)| (job.cpu_s_per_gb, false)),
        }
    }
}

/// `a / b` as a ratio for a table.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1}x", a / b)
    } else {
        "n/a".into()
    }
}

/// The report: every job, the reproducible CPU costs, then the ratios the project's
/// targets are about.
fn render(run: &Run, iommu: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Measured by `cargo xtask bench{}` on this machine (2 host cores, QEMU TCG guest). \
         **Which figures are reproducible:** the CPU costs of the second table come from a \
         run under QEMU `-icount {ICOUNT}`, where guest time counts executed instructions \
         (2^{ICOUNT_SHIFT} ns each): they measure work and do not depend on the host's load \
         (a frame's cost still varies a little with how many frames each wake finds). \
         Everything in the first table (rates, shares of the physical limit, drops, \
         latency, CPU per GB) is measured in real time on an emulated CPU sharing two host \
         cores with the device model: it depends on the host and its load, and ratios \
         measured side by side in one run carry the meaning. `uring` is the `fgrab` library \
         (`Card`, `Stream` on a single-thread ring: SINGLE_ISSUER and DEFER_TASKRUN, the \
         driver's lazy frame completions run in the waiting thread); `uring-raw` and \
         `uring-sqpoll` drive a hand-tuned ring of the benchmark's own with `fgrab::raw` \
         commands. Every io_uring engine waits for at least one completion and reaps every \
         one available (`-batchN` jobs wait for N); `-qbN` jobs give frames back N at a time \
         with one `QUEUE_BATCH` (one submission and one completion per batch) and ask for \
         one interrupt per N frames (`START_IRQ_FRAMES` with the driver's default time \
         bound); `uring-*-qbN` is the library's batched stream (`Options::batch(N)`), \
         `uring-raw-*-qbN` the same on the raw ring. Card 0 runs with its sensor faster than \
         its DMA engine, so the physical limit is the device model's own write rate into \
         guest memory during each job. Buffers start 0x321 bytes into a THP-backed mapping, \
         8 frames queued unless the name says `-qdN`, {} s per job. Latency runs from the \
         card's end of frame (its clock, translated to CLOCK_MONOTONIC by the driver at \
         START) to user space reading the completion. The card's time (from its ENABLE to \
         the stop request) splits into writing frames, starved (a frame was due and no \
         buffer was queued, or the completion ring was full) and the rest, the model's own \
         per-frame work. CPU time is the scheduler's run time (exact, not tick samples) of \
         the process and of the card's interrupt threads; SQEs and CQEs are counted in user \
         space, interrupts are the card's vectors in the guest's `/proc/interrupts`.\n\n",
        if iommu { " --iommu" } else { "" },
        run.runtime,
    ));
    out.push_str(
        "| job | GB/s | of physical limit | card writing/starved/other | drops (underrun/other) | latency p50/p99 us | CPU s per GB | per frame: syscalls/SQEs/CQEs/interrupts | descriptors/frame (extents) |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (job, stream) in run.jobs.iter().zip(run.streams) {
        out.push_str(&format!(
            "| {} | {:.3} | {:.0}% of {:.2} GB/s | {:.0}/{:.0}/{:.0}% | {}/{} | {}/{} | {:.4} | {:.2}/{}/{}/{} | {} ({}) |\n",
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
            count(job.sqes_per_frame),
            count(job.cqes_per_frame),
            count(job.interrupts_per_frame),
            decimal(job.descriptors_per_frame),
            decimal(job.extents_per_frame),
        ));
    }
    if !run.costs.is_empty() {
        out.push_str(&format!(
            "\nCPU cost, reproducible (QEMU `-icount {ICOUNT}`, a fixed number of frames per \
             job; instructions = CPU time / 2^{ICOUNT_SHIFT} ns; guest busy time also counts \
             interrupt handlers and every other task, from 100 Hz ticks):\n\n"
        ));
        out.push_str("| job | CPU us per frame | guest instructions per frame | CPU s per GB | guest busy s per GB | per frame: syscalls/SQEs/CQEs/interrupts |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for job in run.costs {
            out.push_str(&format!(
                "| {} | {:.1} | {:.0}k | {:.4} | {:.4} | {:.2}/{}/{}/{} |\n",
                job.name,
                job.cpu_us_per_frame,
                job.cpu_us_per_frame * 1000.0 / f64::from(1u32 << ICOUNT_SHIFT) / 1000.0,
                job.cpu_s_per_gb,
                job.busy_s_per_gb,
                job.syscalls_per_frame,
                count(job.sqes_per_frame),
                count(job.cqes_per_frame),
                count(job.interrupts_per_frame),
            ));
        }
    }
    out.push_str(
        "\nRatios per frame size (fgrab = `uring`, the library; CPU ratios from the \
         reproducible run where it ran, marked *):\n\n",
    );
    out.push_str("| frame | fgrab vs physical limit | fgrab vs raw ring: GB/s, CPU per frame | CPU per GB: copy / fgrab | CPU per GB: ioctl / fgrab | latency p50: fgrab, ioctl us |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for bs in SIZES {
        let (Some((fgrab, stream)), Some((ioctl, _))) = (
            run.named(&format!("uring-{bs}")),
            run.named(&format!("ioctl-{bs}")),
        ) else {
            continue;
        };
        let cpu = |engine: &str| run.cpu_per_gb(&format!("{engine}-{bs}"));
        let cpu_ratio = |peer: &str| match (cpu(peer), cpu("uring")) {
            (Some((peer, exact)), Some((fgrab, _))) => {
                format!("{}{}", ratio(peer, fgrab), if exact { "*" } else { "" })
            }
            _ => "n/a".into(),
        };
        let per_frame = |name: String| {
            run.cost(&name)
                .or_else(|| run.named(&name).map(|(job, _)| job))
                .map(|job| job.cpu_us_per_frame)
        };
        let raw_gap = match (
            run.named(&format!("uring-raw-{bs}")),
            per_frame(format!("uring-{bs}")),
            per_frame(format!("uring-raw-{bs}")),
        ) {
            (Some((raw, _)), Some(fgrab_cpu), Some(raw_cpu)) => format!(
                "{:.0}%, {:.0}%",
                100.0 * fgrab.gbps / raw.gbps.max(1e-9),
                100.0 * fgrab_cpu / raw_cpu.max(1e-9)
            ),
            _ => "n/a".into(),
        };
        out.push_str(&format!(
            "| {bs} | {:.0}% | {raw_gap} | {} | {} | {}, {} |\n",
            100.0 * fgrab.gbps / stream.rate,
            cpu_ratio("read"),
            cpu_ratio("ioctl"),
            decimal(fgrab.lat_p50_us),
            decimal(ioctl.lat_p50_us),
        ));
    }
    out.push_str(&verdicts(run));
    out
}

/// Why a throughput target was missed, from the card's time.
fn card_time(stream: &Stream) -> String {
    format!(
        "card writing/starved/other {:.0}/{:.0}/{:.0}%: {}",
        100.0 * stream.writing,
        100.0 * stream.starved,
        100.0 * (1.0 - stream.writing - stream.starved),
        if stream.starved >= 1.0 - stream.writing - stream.starved {
            "mostly starved, the guest did not give frames back in time"
        } else {
            "mostly the device model's own per-frame work and host scheduling"
        }
    )
}

/// The project's targets, each with the measured figure and whether it was met.
fn verdicts(run: &Run) -> String {
    let mark = |met: bool| if met { "met" } else { "missed" };
    let mut out = String::from("\nTargets:\n\n");
    // 256 KiB: 90% with at most 32 frames queued and no underrun drop (over a 10 s job).
    let small = ["uring-256k", "uring-256k-qd32", "uring-256k-qd32-qb8"]
        .iter()
        .filter_map(|name| run.named(name))
        .max_by(|(a, sa), (b, sb)| (a.gbps / sa.rate).total_cmp(&(b.gbps / sb.rate)));
    if let Some((job, stream)) = small {
        let share = job.gbps / stream.rate;
        let met = share >= 0.90 && job.drops_underrun == 0;
        out.push_str(&format!(
            "- 256k, at most 32 frames queued (best: {}): {:.1}% of the physical limit, {} \
             underrun drops over {} s (target 90%, none, over 10 s: {}{})\n",
            job.name,
            100.0 * share,
            job.drops_underrun,
            run.runtime,
            mark(met),
            if met {
                String::new()
            } else {
                format!(
                    "; short by {:.1} points; {}",
                    (90.0 - 100.0 * share).max(0.0),
                    card_time(stream)
                )
            },
        ));
    }
    for bs in ["1M", "4M", "16M"] {
        // The library's best job of the size at a modest depth (at most 32 frames queued,
        // as for 256k): one frame per command or batched. Deeper jobs are listed below,
        // for comparison only.
        let best = run
            .jobs
            .iter()
            .zip(run.streams)
            .filter(|(job, _)| {
                job.engine == "uring"
                    && job.queue_depth <= 32
                    && (job.name == format!("uring-{bs}")
                        || job.name.starts_with(&format!("uring-{bs}-qd")))
            })
            .max_by(|(a, sa), (b, sb)| (a.gbps / sa.rate).total_cmp(&(b.gbps / sb.rate)));
        if let Some((job, stream)) = best {
            let share = job.gbps / stream.rate;
            let met = share >= 0.97;
            out.push_str(&format!(
                "- {bs} (best at most 32 queued: {}): {:.1}% of the physical limit (target 97%: \
                 {}{}), {} underrun drops\n",
                job.name,
                100.0 * share,
                mark(met),
                if met {
                    String::new()
                } else {
                    format!(
                        "; short by {:.1} points; {}",
                        97.0 - 100.0 * share,
                        card_time(stream)
                    )
                },
                job.drops_underrun,
            ));
        }
    }
    for (job, stream) in run.jobs.iter().zip(run.streams) {
        if job.queue_depth > 32 {
            out.push_str(&format!(
                "- {} (not a modest depth; for comparison): {:.0}% of the physical limit, \
                 {} underrun drops\n",
                job.name,
                100.0 * job.gbps / stream.rate,
                job.drops_underrun
            ));
        }
    }
    // The zero-copy path never loses to the per-frame ioctl peer.
    for bs in SIZES {
        if let (Some((fgrab, _)), Some((ioctl, _))) = (
            run.named(&format!("uring-{bs}")),
            run.named(&format!("ioctl-{bs}")),
        ) {
            let latency = match (fgrab.lat_p50_us, ioctl.lat_p50_us) {
                (Some(f), Some(i)) => f <= i,
                _ => true,
            };
            out.push_str(&format!(
                "- {bs}: fgrab {:.3} GB/s and latency p50 {} us vs ioctl {:.3} GB/s and {} us \
                 (never behind the ioctl peer: {})\n",
                fgrab.gbps,
                decimal(fgrab.lat_p50_us),
                ioctl.gbps,
                decimal(ioctl.lat_p50_us),
                mark(fgrab.gbps >= ioctl.gbps && latency)
            ));
            if let (Some((fgrab_cpu, exact)), Some((ioctl_cpu, _))) = (
                run.cpu_per_gb(&format!("uring-{bs}")),
                run.cpu_per_gb(&format!("ioctl-{bs}")),
            ) {
                out.push_str(&format!(
                    "- {bs}: CPU per GB fgrab {fgrab_cpu:.4} s vs ioctl {ioctl_cpu:.4} s, {} \
                     (never behind the ioctl peer: {})\n",
                    if exact {
                        "reproducible figure"
                    } else {
                        "host-dependent figure"
                    },
                    mark(fgrab_cpu <= ioctl_cpu)
                ));
            }
        }
    }
    for (bs, target) in [("256k", 10.0), ("1M", 20.0), ("4M", 20.0), ("16M", 20.0)] {
        let (Some((copy, exact)), Some((fgrab, _))) = (
            run.cpu_per_gb(&format!("read-{bs}")),
            run.cpu_per_gb(&format!("uring-{bs}")),
        ) else {
            continue;
        };
        let ratio = if fgrab > 0.0 {
            copy / fgrab
        } else {
            f64::INFINITY
        };
        out.push_str(&format!(
            "- {bs}: CPU per GB {ratio:.1}x below the copy path, {} (target {target:.0}x: {})\n",
            if exact {
                "reproducible figure"
            } else {
                "host-dependent figure: no -icount run"
            },
            mark(ratio >= target)
        ));
    }
    for bs in ["256k", "1M"] {
        if let (Some((deferred, _)), Some((immediate, exact))) = (
            run.cpu_per_gb(&format!("uring-{bs}")),
            run.cpu_per_gb(&format!("uring-{bs}-no-defer")),
        ) {
            out.push_str(&format!(
                "- {bs}: CPU per GB {deferred:.4} s on the library's single-thread ring \
                 (DEFER_TASKRUN, lazy frame completions) vs {immediate:.4} s without{}\n",
                if exact { " (reproducible)" } else { "" }
            ));
        }
        if let (Some((one, _)), Some((four, _))) = (
            run.named(&format!("uring-raw-{bs}")),
            run.named(&format!("uring-raw-{bs}-batch4")),
        ) {
            out.push_str(&format!(
                "- {bs}: raw ring waiting for 1 completion: {:.3} GB/s, {} underrun drops, \
                 latency p50 {} us; waiting for 4: {:.3} GB/s, {} underrun drops, {} us\n",
                one.gbps,
                one.drops_underrun,
                decimal(one.lat_p50_us),
                four.gbps,
                four.drops_underrun,
                decimal(four.lat_p50_us),
            ));
        }
    }
    // Batched recycling, through the library (`Options::batch`): CPU against the ioctl
    // and copy peers from the reproducible run.
    for bs in ["256k", "1M"] {
        let name = format!("uring-{bs}-qb16");
        if let (Some((batched, exact)), Some((ioctl, _)), Some((copy, _))) = (
            run.cpu_per_gb(&name),
            run.cpu_per_gb(&format!("ioctl-{bs}")),
            run.cpu_per_gb(&format!("read-{bs}")),
        ) {
            out.push_str(&format!(
                "- {bs} batched ({name}, the library, 64 frames in batches of 16): CPU per GB \
                 {batched:.4} s vs ioctl {ioctl:.4} s ({:.1}x cheaper; never behind the ioctl \
                 peer: {}), {:.0}x below the copy path, {}\n",
                ioctl / batched.max(1e-12),
                mark(batched <= ioctl),
                copy / batched.max(1e-12),
                if exact {
                    "reproducible figures"
                } else {
                    "host-dependent figures"
                },
            ));
        }
    }
    // Batched recycling at 256 KiB: at most 1/16 SQE and 1/8 interrupt per frame.
    for name in [
        "uring-256k-qd64-qb16",
        "uring-256k-qd32-qb8",
        "uring-raw-256k-qd64-qb16",
    ] {
        if let Some((job, _)) = run.named(name) {
            if let (Some(sqes), Some(interrupts)) = (job.sqes_per_frame, job.interrupts_per_frame) {
                out.push_str(&format!(
                    "- {name}: {sqes:.4} SQEs per frame (target at most 1/16 = 0.0625: {}), \
                     {interrupts:.4} interrupts per frame (target at most 1/8: {})\n",
                    mark(sqes <= 1.0 / 16.0 + 1e-9),
                    mark(interrupts <= 1.0 / 8.0 + 1e-9)
                ));
            }
        }
    }
    for name in ["uring-raw-256k-batch32", "uring-raw-1M-batch32"] {
        if let Some((job, _)) = run.named(name) {
            let calls = job.syscalls_per_frame;
            out.push_str(&format!(
                "- {name}: {calls:.4} system calls per frame (target 1/32 = 0.03125: {})\n",
                mark(calls <= 1.0 / 32.0 + 1e-9)
            ));
        }
    }
    let sqpoll: Vec<f64> = run
        .jobs
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
    let exact =
        run.jobs.iter().all(
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
        "\nWhere a throughput target is missed, two causes of this machine show in the \
         figures. The guest CPU is emulated: every frame costs an interrupt, task work and a \
         completion in a TCG guest at roughly a hundred times native cost, so small frames at \
         thousands of frames per second load the guest before the card. And the two host \
         cores are shared by the two vCPU threads and the device model, whose DMA writes keep \
         one core busy: the guest stalls for host scheduling slices, and 8 queued frames of \
         256 KiB last under half a millisecond at the card's rate, so the card runs dry. The \
         card-time column separates the two sides: time starved is the host not keeping the \
         card fed (the guest and its stalls: the `-qd` jobs, with more frames in flight, show \
         how much depth buys back), while time that is neither writing nor starved is the \
         device model's own per-frame work (descriptor fetch, completion records, \
         interrupts) and its thread waiting for a host core between frames, which bounds \
         small frames below the write rate whatever the driver does. The reproducible CPU \
         table is the one to compare costs by; the same code and ratios on real hardware \
         remain to be measured.\n",
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
        let streams = [stream, stream];
        let run = Run {
            jobs: &jobs,
            streams: &streams,
            costs: &[],
            runtime: "2",
        };
        let table = render(&run, false);
        assert!(
            table.contains(
                "| uring-4M | 3.901 | 97% of 4.03 GB/s | 96/0/4% | 42/46181 | 2011.0/3951.3 \
                 | 0.0121 | 0.25/-/-/- | 5.0 (5.0) |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| read-4M | 0.555 | 14% of 4.03 GB/s | 96/0/4% | 38543/7691 | null/null \
                 | 1.8109 | 1.00/-/-/- | 4.9 (null) |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("- 4M (best at most 32 queued: uring-4M): 96.8% of the physical limit (target 97%: missed; short by 0.2 points; card writing/starved/other 96/0/4%: mostly the device model's own per-frame work and host scheduling), 42 underrun drops"),
            "{table}"
        );
        assert!(
            table.contains("- 4M: CPU per GB 149.7x below the copy path, host-dependent figure: no -icount run (target 20x: met)"),
            "{table}"
        );
        // With a cost run, CPU ratios come from it.
        let mut costs = jobs.clone();
        costs[0].cpu_s_per_gb = 0.1;
        costs[1].cpu_s_per_gb = 1.0;
        costs[0].cpu_us_per_frame = 80.0;
        let run = Run {
            costs: &costs,
            ..run
        };
        let table = render(&run, false);
        assert!(
            table.contains("- 4M: CPU per GB 10.0x below the copy path, reproducible figure (target 20x: missed)"),
            "{table}"
        );
        assert!(
            table.contains("| uring-4M | 80.0 | 10k | 0.1000 |"),
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
