//! Job options, from the command line or an fio-style job file.

use std::time::Duration;

/// How frames reach user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The `fgrab` library (`Card`, `Stream`): zero copy, what applications get.
    Uring,
    /// `QUEUE` commands built with `fgrab::raw` on the benchmark's own hand-tuned ring.
    UringRaw,
    /// The raw ring with `IORING_SETUP_SQPOLL`: a kernel thread submits, completions are
    /// polled.
    UringSqpoll,
    /// `read()` from driver-owned frames: one copy per byte, one system call per frame.
    Read,
    /// `ioctl(QBUF/DQBUF)` on the attached fixed buffer: two system calls per frame.
    Ioctl,
}

impl Engine {
    /// Name in job files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Uring => "uring",
            Engine::UringRaw => "uring-raw",
            Engine::UringSqpoll => "uring-sqpoll",
            Engine::Read => "read",
            Engine::Ioctl => "ioctl",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "uring" | "fgrab" => Engine::Uring,
            "uring-raw" | "raw" => Engine::UringRaw,
            "uring-sqpoll" | "sqpoll" => Engine::UringSqpoll,
            "read" | "copy" => Engine::Read,
            "ioctl" => Engine::Ioctl,
            _ => {
                return Err(format!(
                    "unknown engine `{text}` (uring, uring-raw, uring-sqpoll, read, ioctl)"
                ))
            }
        })
    }
}

/// Memory behind the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// 4 KiB pages (transparent huge pages off while the buffer is populated).
    Pages4k,
    /// Transparent huge pages (2 MiB) where the kernel can.
    Huge,
}

/// One benchmark job.
#[derive(Clone, Debug)]
pub struct Job {
    /// Section name.
    pub name: String,
    /// Card node.
    pub device: String,
    /// Frame path.
    pub engine: Engine,
    /// Bytes per frame.
    pub frame_bytes: u32,
    /// Frames in the region, all kept queued.
    pub queue_depth: u32,
    /// Completions the raw io_uring engine waits for per `io_uring_enter` before it reaps
    /// every one available (fio's `iodepth_batch_complete_min`; the library always waits
    /// for one).
    pub batch: u32,
    /// `IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN` on the io_uring engines without SQPOLL
    /// (the library's `Options::single_thread`).
    pub defer_taskrun: bool,
    /// Frames per `QUEUE_BATCH` (0: one `QUEUE` per frame): the frames are split into
    /// batches of this many, each given back to the card with one submission and completed
    /// with one CQE; the library's `Options::batch` on the `uring` engine.
    pub queue_batch: u32,
    /// One frame interrupt per this many frames (`START_IRQ_FRAMES`; `None`: the driver's
    /// default, every frame at most half a frame period apart).
    pub irq_frames: Option<u32>,
    /// No frame interrupt later than this many microseconds after the first frame it covers
    /// (`START_IRQ_DELAY`; `None`: the driver's choice, `irq_frames` frame times: the
    /// longer of the sensor's period and the frame's transfer at 500 MB/s).
    pub irq_delay_us: Option<u32>,
    /// Buffer backing.
    pub backing: Backing,
    /// Region offset in the buffer (frames are back to back from there).
    pub offset: usize,
    /// Stop after this many frames ...
    pub frames: Option<u64>,
    /// ... or after this long.
    pub runtime: Duration,
    /// A recording job (`record.rs`) instead of a frame path.
    pub record: Option<crate::record::RecordEngine>,
    /// File or block device a recording job writes.
    pub target: Option<String>,
}

impl Default for Job {
    fn default() -> Self {
        Self {
            name: "job".into(),
            device: "/dev/fgrab0".into(),
            engine: Engine::Uring,
            frame_bytes: 4 << 20,
            queue_depth: 8,
            batch: 1,
            defer_taskrun: true,
            queue_batch: 0,
            irq_frames: None,
            irq_delay_us: None,
            backing: Backing::Huge,
            offset: 0,
            frames: None,
            runtime: Duration::from_secs(3),
            record: None,
            target: None,
        }
    }
}

/// `4M`, `256k`, `1000003`, `0x321`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, scale) = match text.chars().last() {
        Some('k' | 'K') => (&text[..text.len() - 1], 1 << 10),
        Some('m' | 'M') => (&text[..text.len() - 1], 1 << 20),
        Some('g' | 'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    }
    .map_err(|_| format!("bad size `{text}`"))?;
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("size `{text}` too large"))
}

impl Job {
    /// Applies one `key=value` option (fio names where fio has one).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number = |value: &str| parse_size(value);
        match key {
            "name" => self.name = value.into(),
            "filename" | "device" => self.device = value.into(),
            "ioengine" | "engine" => match crate::record::RecordEngine::parse(value) {
                Some(record) => self.record = Some(record),
                None => {
                    self.engine = Engine::parse(value)?;
                    self.record = None;
                }
            },
            "target" => self.target = Some(value.into()),
            "bs" | "frame-size" => {
                self.frame_bytes =
                    u32::try_from(number(value)?).map_err(|_| format!("frame size {value}"))?
            }
            "iodepth" | "queue-depth" => {
                self.queue_depth = u32::try_from(number(value)?).map_err(|_| "queue depth")?
            }
            "iodepth_batch" | "batch" => {
                self.batch = u32::try_from(number(value)?).map_err(|_| "batch")?.max(1)
            }
            "queue_batch" => {
                self.queue_batch = u32::try_from(number(value)?).map_err(|_| "queue batch")?
            }
            "irq_frames" => {
                self.irq_frames = Some(u32::try_from(number(value)?).map_err(|_| "irq frames")?)
            }
            "irq_delay_us" => {
                self.irq_delay_us = Some(u32::try_from(number(value)?).map_err(|_| "irq delay")?)
            }
            "defer_taskrun" => self.defer_taskrun = matches!(value, "1" | "true" | "on"),
            "sqpoll" | "sqthread_poll" => {
                if matches!(value, "1" | "true" | "on") {
                    self.engine = Engine::UringSqpoll;
                }
            }
            "backing" | "mem" => {
                self.backing = match value {
                    "4k" | "pages" | "malloc" => Backing::Pages4k,
                    "huge" | "thp" | "mmaphuge" => Backing::Huge,
                    _ => return Err(format!("unknown backing `{value}` (4k, huge)")),
                }
            }
            "offset" | "align-offset" => {
                self.offset = usize::try_from(number(value)?).map_err(|_| "offset")?
            }
            "number_ios" | "frames" => self.frames = Some(number(value)?),
            "runtime" => {
                let seconds: f64 = value
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| format!("bad runtime `{value}`"))?;
                self.runtime = Duration::from_secs_f64(seconds);
            }
            _ => return Err(format!("unknown option `{key}`")),
        }
        Ok(())
    }
}

/// Parses an fio-style job file: `[global]` options apply to every later `[job]` section.
pub fn parse_job_file(text: &str, base: &Job) -> Result<Vec<Job>, String> {
    let mut global = base.clone();
    let mut jobs: Vec<Job> = Vec::new();
    let mut in_global = false;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            in_global = section == "global";
            if !in_global {
                let mut job = global.clone();
                job.name = section.to_string();
                jobs.push(job);
            }
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, "1"));
        let target = if in_global {
            &mut global
        } else {
            jobs.last_mut().ok_or("option before any section")?
        };
        target
            .set(key.trim(), value.trim())
            .map_err(|error| format!("line {}: {error}", number + 1))?;
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("256k"), Ok(256 << 10));
        assert_eq!(parse_size("0x321"), Ok(0x321));
        assert_eq!(parse_size("1000003"), Ok(1_000_003));
        assert!(parse_size("4Q").is_err());
    }

    #[test]
    fn job_file() {
        let text = "[global]\nbs=1M\niodepth=4\n\n[zero-copy]\nioengine=uring\n[copy]\nioengine=read\nbs=256k\n";
        let jobs = parse_job_file(text, &Job::default()).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            (
                jobs[0].name.as_str(),
                jobs[0].frame_bytes,
                jobs[0].queue_depth
            ),
            ("zero-copy", 1 << 20, 4)
        );
        assert_eq!(
            (jobs[1].engine, jobs[1].frame_bytes),
            (Engine::Read, 256 << 10)
        );
        assert!(parse_job_file("[a]\nbogus=1\n", &Job::default()).is_err());
    }
}
