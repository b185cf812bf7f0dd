//! `fgrab-bench`: an fio-style benchmark of fgrab's frame paths, run inside the VM.
//!
//! ```text
//! fgrab-bench [--name NAME] [--filename /dev/fgrab0] [--ioengine uring|uring-sqpoll|read|ioctl]
//!             [--bs 4M] [--iodepth 8] [--iodepth_batch 4] [--backing 4k|huge] [--offset 0]
//!             [--defer_taskrun 1|0]
//!             [--number_ios N | --runtime 3] [--output-format human|json] [JOBFILE]
//! ```
//!
//! A job file has fio's shape: `[global]` options, then one `[section]` per job. Every job
//! reports throughput, drops, completion latency (card frame-done to user space), CPU time
//! per GB from the kernel's accounting (the process, its SQPOLL thread, and the driver's
//! interrupt threads), system calls per frame and descriptors per frame next to the
//! physically contiguous extents of the frame.

mod engines;
mod job;
mod measure;

use job::{parse_job_file, Job};

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
                "output-format" => json = value == "json",
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

/// The figures of one job.
struct Report {
    fields: Vec<(&'static str, String)>,
    human: String,
}

impl Report {
    fn new(job: &Job, outcome: &mut engines::Outcome, info: &fgrab_uapi::DeviceInfo) -> Self {
        let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
        let gb = outcome.bytes as f64 / 1e9;
        let gbps = gb / seconds;
        let fps = outcome.frames as f64 / seconds;
        let cpu = outcome.cpu;
        let cpu_total = (cpu.user + cpu.system + cpu.driver).as_secs_f64();
        let per_gb = |value: f64| if gb > 0.0 { value / gb } else { 0.0 };
        let syscalls_per_frame = outcome.syscalls as f64 / (outcome.frames.max(1) as f64);
        let p50 = outcome.latencies.quantile_us(0.50);
        let p99 = outcome.latencies.quantile_us(0.99);
        let max = outcome.latencies.quantile_us(1.0);
        let opt = |value: Option<f64>| value.map_or("null".to_string(), |v| format!("{v:.1}"));
        let fields = vec![
            ("name", format!("\"{}\"", job.name)),
            ("engine", format!("\"{}\"", job.engine.name())),
            ("frame_bytes", job.frame_bytes.to_string()),
            ("queue_depth", job.queue_depth.to_string()),
            ("batch", job.batch.to_string()),
            ("defer_taskrun", job.defer_taskrun.to_string()),
            ("backing", format!("\"{:?}\"", job.backing)),
            ("offset", job.offset.to_string()),
            ("card", info.card_index.to_string()),
            ("frames", outcome.frames.to_string()),
            ("bytes", outcome.bytes.to_string()),
            ("seconds", format!("{seconds:.3}")),
            ("gbps", format!("{gbps:.4}")),
            ("frames_per_s", format!("{fps:.1}")),
            ("drops_underrun", outcome.drops_underrun.to_string()),
            ("drops_other", outcome.drops_other.to_string()),
            ("lat_p50_us", opt(p50)),
            ("lat_p99_us", opt(p99)),
            ("lat_max_us", opt(max)),
            ("cpu_user_s", format!("{:.3}", cpu.user.as_secs_f64())),
            ("cpu_sys_s", format!("{:.3}", cpu.system.as_secs_f64())),
            ("cpu_driver_s", format!("{:.3}", cpu.driver.as_secs_f64())),
            ("cpu_s_per_gb", format!("{:.4}", per_gb(cpu_total))),
            ("syscalls", outcome.syscalls.to_string()),
            ("syscalls_per_frame", format!("{syscalls_per_frame:.4}")),
            ("descriptors_per_frame", opt(outcome.descriptors_per_frame)),
            ("extents_per_frame", opt(outcome.extents_per_frame)),
        ];
        let human = format!(
            "{name}: {engine} bs={bs} iodepth={qd} batch={batch} {backing:?} offset={offset}\n  \
             {frames} frames, {gbps:.3} GB/s, {fps:.0} frames/s, drops {under} underrun + {other} other\n  \
             latency p50 {p50} us, p99 {p99} us, max {max} us (frame end to user space)\n  \
             CPU {user:.2} s user + {sys:.2} s system + {drv:.2} s driver threads = {per_gb:.3} s/GB\n  \
             {syscalls_per_frame:.3} system calls per frame; descriptors per frame {desc}, physically contiguous extents {ext}",
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
            per_gb = per_gb(cpu_total),
            desc = opt(outcome.descriptors_per_frame),
            ext = opt(outcome.extents_per_frame),
        );
        Self { fields, human }
    }

    fn json(&self) -> String {
        let body: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| format!("\"{key}\":{value}"))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    fn human(&self) -> String {
        self.human.clone()
    }
}
