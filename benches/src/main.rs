//! `fgrab-bench`: an fio-style benchmark of fgrab's frame paths, run inside the VM.
//!
//! ```text
//! fgrab-bench [--name NAME] [--filename /dev/fgrab0]
//!             [--ioengine uring|uring-raw|uring-sqpoll|read|ioctl]
//!             [--bs 4M] [--iodepth 8] [--iodepth_batch 1] [--backing 4k|huge] [--offset 0]
//!             [--defer_taskrun 1|0] [--ioengine record|record-copy|disk-write --target PATH]
//!             [--number_ios N | --runtime 3] [--output-format human|json] [JOBFILE]
//! ```
//!
//! A job file has fio's shape: `[global]` options, then one `[section]` per job. Every job
//! reports throughput, drops, completion latency (card frame-done to user space), CPU time
//! per GB and per frame from the scheduler's run-time clocks (the process, its SQPOLL
//! thread, and the driver's interrupt threads; `measure.rs`), system calls, submission and
//! completion queue entries and the card's interrupts per frame, and descriptors per frame
//! next to the physically contiguous extents of the frame. `uring` is the `fgrab` library;
//! `uring-raw` and `uring-sqpoll` a hand-tuned ring of the benchmark's own (`engines.rs`).

mod engines;
mod job;
mod measure;
mod record;

use job::{parse_job_file, Job};
use serde::Serialize;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => {}
        Err(error) => {
            eprintln!("fgrab-bench: {error}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut base = Job::default();
    let mut json = false;
    let mut job_file = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(option) = arg.strip_prefix("--") {
            let (key, value) = match option.split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => {
                    let value = iter
                        .next()
                        .ok_or_else(|| format!("--{option} needs a value"))?;
                    (option.to_string(), value.clone())
                }
            };
            match key.as_str() {
                "output-format" => {
                    json = match value.as_str() {
                        "json" => true,
                        "human" | "normal" => false,
                        _ => return Err(format!("--output-format {value}: human or json")),
                    }
                }
                "help" => return Err("see the usage at the top of benches/src/main.rs".into()),
                _ => base.set(&key, &value)?,
            }
        } else {
            job_file = Some(arg.clone());
        }
    }
    let jobs = match job_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
            parse_job_file(&text, &base)?
        }
        None => vec![base],
    };
    for job in &jobs {
        if let Some(engine) = job.record {
            let figures =
                record::run(job, engine).map_err(|error| format!("job {}: {error}", job.name))?;
            println!(
                "{}",
                if json {
                    figures.json()
                } else {
                    figures.human()
                }
            );
            continue;
        }
        let info = engines::info(&job.device)?;
        let mut outcome =
            engines::run(job, &info).map_err(|error| format!("job {}: {error}", job.name))?;
        let report = Report::new(job, &mut outcome, &info);
        if json {
            println!("{}", report.json());
        } else {
            println!("{}", report.human());
        }
    }
    Ok(())
}

/// The figures of one job: one JSON object per job with `--output-format json`, which
/// `cargo xtask bench` reads (`xtask/src/bench.rs`). Fractions are rounded to the
/// precision they carry.
#[derive(Debug, Serialize)]
struct Figures {
    name: String,
    engine: &'static str,
    frame_bytes: u32,
    queue_depth: u32,
    batch: u32,
    defer_taskrun: bool,
    backing: String,
    offset: usize,
    card: u32,
    frames: u64,
    bytes: u64,
    seconds: f64,
    gbps: f64,
    frames_per_s: f64,
    drops_underrun: u64,
    drops_other: u64,
    lat_p50_us: Option<f64>,
    lat_p99_us: Option<f64>,
    lat_max_us: Option<f64>,
    cpu_user_s: f64,
    cpu_sys_s: f64,
    cpu_driver_s: f64,
    cpu_s_per_gb: f64,
    cpu_us_per_frame: f64,
    busy_s_per_gb: f64,
    syscalls: u64,
    syscalls_per_frame: f64,
    sqes_per_frame: Option<f64>,
    cqes_per_frame: Option<f64>,
    interrupts_per_frame: Option<f64>,
    descriptors_per_frame: Option<f64>,
    extents_per_frame: Option<f64>,
    irqs_per_frame: Option<f64>,
}

/// `value` rounded to `decimals` places.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The figures of one job, for JSON and for people.
struct Report {
    figures: Figures,
    human: String,
}

impl Report {
    fn new(job: &Job, outcome: &mut engines::Outcome, info: &fgrab_uapi::DeviceInfo) -> Self {
        let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
        let gb = outcome.bytes as f64 / 1e9;
        let gbps = gb / seconds;
        let fps = outcome.frames as f64 / seconds;
        let cpu = outcome.cpu;
        let cpu_total = cpu.total().as_secs_f64();
        let per_gb = |value: f64| if gb > 0.0 { value / gb } else { 0.0 };
        let frames = outcome.frames.max(1) as f64;
        let syscalls_per_frame = outcome.syscalls as f64 / frames;
        let per_frame = |count: Option<u64>| count.map(|count| round(count as f64 / frames, 4));
        let p50 = outcome.latencies.quantile_us(0.50);
        let p99 = outcome.latencies.quantile_us(0.99);
        let max = outcome.latencies.quantile_us(1.0);
        let round1 = |value: Option<f64>| value.map(|value| round(value, 1));
        let figures = Figures {
            name: job.name.clone(),
            engine: job.engine.name(),
            frame_bytes: job.frame_bytes,
            queue_depth: job.queue_depth,
            batch: job.batch,
            defer_taskrun: job.defer_taskrun,
            backing: format!("{:?}", job.backing),
            offset: job.offset,
            card: info.card_index,
            frames: outcome.frames,
            bytes: outcome.bytes,
            seconds: round(seconds, 3),
            gbps: round(gbps, 4),
            frames_per_s: round(fps, 1),
            drops_underrun: outcome.drops_underrun,
            drops_other: outcome.drops_other,
            lat_p50_us: round1(p50),
            lat_p99_us: round1(p99),
            lat_max_us: round1(max),
            cpu_user_s: round(cpu.user.as_secs_f64(), 3),
            cpu_sys_s: round(cpu.system.as_secs_f64(), 3),
            cpu_driver_s: round(cpu.driver.as_secs_f64(), 3),
            cpu_s_per_gb: round(per_gb(cpu_total), 4),
            cpu_us_per_frame: round(cpu_total * 1e6 / frames, 2),
            busy_s_per_gb: round(per_gb(cpu.busy.as_secs_f64()), 4),
            syscalls: outcome.syscalls,
            syscalls_per_frame: round(syscalls_per_frame, 4),
            sqes_per_frame: per_frame(outcome.sqes),
            cqes_per_frame: per_frame(outcome.cqes),
            interrupts_per_frame: per_frame(outcome.interrupts),
            descriptors_per_frame: round1(outcome.descriptors_per_frame),
            extents_per_frame: round1(outcome.extents_per_frame),
            irqs_per_frame: outcome.irqs_per_frame.map(|value| round(value, 3)),
        };
        let opt = |value: Option<f64>| value.map_or("null".to_string(), |v| format!("{v:.1}"));
        let opt4 = |value: Option<f64>| value.map_or("null".to_string(), |v| format!("{v:.3}"));
        let human = format!(
            "{name}: {engine} bs={bs} iodepth={qd} batch={batch} {backing:?} offset={offset}\n  \
             {frames} frames, {gbps:.3} GB/s, {fps:.0} frames/s, drops {under} underrun + {other} other\n  \
             latency p50 {p50} us, p99 {p99} us, max {max} us (frame end to user space)\n  \
             CPU {process:.3} s process ({user:.2} user + {sys:.2} system) + {drv:.3} s driver threads = {per_gb:.3} s/GB, {per_frame:.1} us/frame\n  \
             per frame: {syscalls_per_frame:.3} system calls, {sqes} SQEs, {cqes} CQEs, {interrupts} interrupts ({irqs} frame interrupts by the driver's count)\n  \
             descriptors per frame {desc}, physically contiguous extents {ext}",
            name = job.name,
            engine = job.engine.name(),
            bs = job.frame_bytes,
            qd = job.queue_depth,
            batch = job.batch,
            backing = job.backing,
            offset = job.offset,
            frames = outcome.frames,
            under = outcome.drops_underrun,
            other = outcome.drops_other,
            p50 = opt(p50),
            p99 = opt(p99),
            max = opt(max),
            user = cpu.user.as_secs_f64(),
            sys = cpu.system.as_secs_f64(),
            drv = cpu.driver.as_secs_f64(),
            process = cpu.process.as_secs_f64(),
            per_gb = per_gb(cpu_total),
            per_frame = cpu_total * 1e6 / frames,
            sqes = opt4(per_frame(outcome.sqes)),
            cqes = opt4(per_frame(outcome.cqes)),
            interrupts = opt4(per_frame(outcome.interrupts)),
            desc = opt(outcome.descriptors_per_frame),
            irqs = outcome
                .irqs_per_frame
                .map_or("null".to_string(), |v| format!("{v:.3}")),
            ext = opt(outcome.extents_per_frame),
        );
        Self { figures, human }
    }

    /// One line of JSON.
    fn json(&self) -> String {
        serde_json::to_string(&self.figures).expect("plain data serializes")
    }

    fn human(&self) -> String {
        self.human.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The JSON line of a job: numbers rounded, no latency as `null`, and the field names
    /// `cargo xtask bench` reads.
    #[test]
    fn json_line() {
        let job = Job {
            name: "uring-4M".into(),
            ..Job::default()
        };
        let mut outcome = engines::Outcome {
            frames: 3,
            bytes: 3 << 22,
            elapsed: Duration::from_millis(7),
            syscalls: 1,
            sqes: Some(3),
            descriptors_per_frame: Some(5.0),
            ..engines::Outcome::default()
        };
        let report = Report::new(&job, &mut outcome, &fgrab_uapi::DeviceInfo::default());
        let line = report.json();
        assert!(!line.contains('\n'), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["name"], "uring-4M");
        assert_eq!(value["engine"], "uring");
        assert_eq!(value["backing"], "Huge");
        assert_eq!(value["frames"], 3);
        assert_eq!(value["gbps"], 1.7976);
        assert_eq!(value["syscalls_per_frame"], 0.3333);
        assert_eq!(value["lat_p50_us"], serde_json::Value::Null);
        assert_eq!(value["descriptors_per_frame"], 5.0);
        assert_eq!(value["extents_per_frame"], serde_json::Value::Null);
        assert_eq!(value["sqes_per_frame"], 1.0);
        assert_eq!(value["cqes_per_frame"], serde_json::Value::Null);
        for key in [
            "drops_underrun",
            "drops_other",
            "lat_p99_us",
            "cpu_s_per_gb",
            "cpu_us_per_frame",
            "interrupts_per_frame",
        ] {
            assert!(value.get(key).is_some(), "{key} missing: {line}");
        }
    }
}
