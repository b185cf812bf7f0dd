//! `cargo xtask bench`'s recording jobs (issue 15): a VM run of its own, with a virtio
//! disk, on the fast kernel. The guest test `bench-record` runs, per frame size, the disk's
//! own sequential write rate (`disk-write`, before and after), the recorder (`record`:
//! `fgrab::Recorder`, `WRITE_FIXED` from the fixed buffer), the same recorder writing to
//! /dev/null (`record-card`: what the card side delivers) and its `read()` + `write()`
//! peer (`record-copy`), all onto `/dev/vda` (filled once before, so that every job
//! rewrites blocks the host has allocated); the limit of a recording is the disk's own rate
//! measured in the same run, the higher of the two `disk-write` figures (the stricter
//! limit: a disk that slowed down meanwhile does not flatter the recording), and, where
//! the card side is slower than the disk, the card side's rate as well.

use crate::vm::{self, VmConfig};
use crate::{kernel, paths};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::time::Duration;

/// The disk, in MiB: room for a few seconds at the rates a TCG guest reaches (jobs stop at
/// its end anyway; with 2 GiB they lasted under a second, and the disk's own rate measured
/// before and after differed by a third); sparse on the host and removed after the run.
const DISK_MIB: u64 = 8192;

/// Frame sizes the guest test runs (`tests/guest/src/record.rs`, `bench_record`).
const SIZES: [&str; 2] = ["1M", "4M"];

/// Share of the disk's own rate a recording must reach.
const TARGET: f64 = 0.90;

/// One job's figures (`RecordFigures` in `benches/src/record.rs`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Figures {
    name: String,
    engine: String,
    frames: u64,
    mb_per_s: f64,
    drops: Option<u64>,
    mode: String,
}

/// The jobs of the `bench-record-json` info lines, in order.
fn jobs(infos: &[String]) -> Result<Vec<Figures>> {
    infos
        .iter()
        .filter_map(|line| line.strip_prefix("bench-record-json "))
        .map(|json| {
            serde_json::from_str(json).with_context(|| format!("fgrab-bench's report `{json}`"))
        })
        .collect()
}

/// Runs the recording jobs and returns their table (Markdown).
pub fn run(env: &paths::Env, runtime: &str) -> Result<String> {
    let artifacts = vm::prepare(env, kernel::Profile::Fast)?;
    let mut config = VmConfig::test("bench-record");
    config.cards = 1;
    config.tests = vec!["bench-record".into()];
    config.emulator_args = vec!["--rate".into(), "100000000000".into()];
    config.guest_args = vec![format!("fgrab_bench_runtime={runtime}")];
    config.disk_mib = Some(DISK_MIB);
    config.timeout = Duration::from_secs(1200);
    crate::cmd::step("recording jobs in the VM (fast kernel, virtio disk)");
    let outcome = vm::run(env, &artifacts, &config)?;
    if !outcome.clean() {
        bail!(
            "the recording benchmark failed: {:?}; serial log: {}",
            outcome.failure,
            outcome.log.display()
        );
    }
    Ok(render(&jobs(&outcome.infos)?))
}

/// The table and the verdicts.
fn render(jobs: &[Figures]) -> String {
    let mut out = String::from(
        "Recording (issue 15), measured by `cargo xtask bench` in a VM run of its own: frames \
         from card 0 (sensor faster than its DMA engine) onto a virtio disk (`/dev/vda`, a \
         sparse raw image on the host, `cache=none`), each job from the disk's offset 0 for \
         the runtime or until the disk is full, time including the final sync; the disk is \
         filled once first, so every job rewrites blocks the host has allocated. \
         `disk-write` is the disk's own sequential rate (`O_DIRECT` io_uring writes of the \
         frame size from memory, 8 in flight), measured before and after the recordings, the \
         higher figure being the limit; `record` is `fgrab::Recorder` \
         (`IORING_OP_WRITE_FIXED` from the frame buffer on the stream's ring, no copy in user \
         space; 16 frames given back to the card 4 at a time, `Options::batch`, on the \
         single-thread ring, as `fgrab capture` does); \
         `record-card` the same recorder writing to /dev/null, what the card side delivers; \
         `record-copy` the peer, `read()` from the driver and `write()` to the disk, 8 frames \
         queued.\n\n",
    );
    out.push_str("| job | MB/s | of the disk's own rate | frames | card drops | writes |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    let limit = |bs: &str| {
        jobs.iter()
            .filter(|job| job.engine == "disk-write" && job.name.ends_with(&format!("-{bs}")))
            .map(|job| job.mb_per_s)
            .reduce(f64::max)
    };
    for job in jobs {
        let bs = job.name.rsplit('-').next().unwrap_or("");
        let share = match limit(bs) {
            Some(limit) if limit > 0.0 && job.engine != "disk-write" => {
                format!("{:.0}% of {limit:.1} MB/s", 100.0 * job.mb_per_s / limit)
            }
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {:.1} | {share} | {} | {} | {} |\n",
            job.name,
            job.mb_per_s,
            job.frames,
            job.drops.map_or("-".into(), |drops| drops.to_string()),
            job.mode
        ));
    }
    out.push_str("\nTargets:\n\n");
    for bs in SIZES {
        let named = |name: &str| jobs.iter().find(|job| job.name == format!("{name}-{bs}"));
        let (Some(limit), Some(record)) = (limit(bs), named("record")) else {
            continue;
        };
        let share = |mb_per_s: f64, of: f64| if of > 0.0 { mb_per_s / of } else { 0.0 };
        let disk_share = share(record.mb_per_s, limit);
        let mut line =
            format!(
            "- {bs}: recording {:.1}% of the disk's own rate ({:.1} of {limit:.1} MB/s; target \
             {:.0}%: {})",
            100.0 * disk_share,
            record.mb_per_s,
            100.0 * TARGET,
            if disk_share >= TARGET { "met" } else { "missed" }
        );
        if let Some(card) = named("record-card") {
            // For information, not a second verdict: the same recorder writing to
            // /dev/null, what the card side delivers to it. A recording cannot outrun it,
            // but a slower library would lower it too.
            line.push_str(&format!(
                "; for information, the same recorder to /dev/null takes {:.1} MB/s from the \
                 card side, so the lower of the two limits is {}",
                card.mb_per_s,
                if card.mb_per_s < limit {
                    "the card side's"
                } else {
                    "the disk's"
                },
            ));
        }
        if let Some(copy) = named("record-copy") {
            line.push_str(&format!(
                "; the read() + write() peer {:.0}% of the disk's rate",
                100.0 * share(copy.mb_per_s, limit)
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, engine: &str, mb_per_s: f64) -> String {
        format!(
            r#"bench-record-json {{"name":"{name}","engine":"{engine}","target":"/dev/vda","frame_bytes":1048576,"queue_depth":8,"frames":100,"bytes":104857600,"seconds":1.0,"mb_per_s":{mb_per_s},"drops":null,"mode":"O_DIRECT"}}"#
        )
    }

    #[test]
    fn verdict_against_the_faster_disk_figure() {
        let infos = vec![
            line("disk-write-1M", "disk-write", 200.0),
            line("record-1M", "record", 185.0),
            line("record-card-1M", "record", 150.0),
            line("record-copy-1M", "record-copy", 90.0),
            line("disk-write-after-1M", "disk-write", 190.0),
            "unrelated".to_string(),
        ];
        let jobs = jobs(&infos).unwrap();
        assert_eq!(jobs.len(), 5);
        let table = render(&jobs);
        assert!(
            table.contains("| record-1M | 185.0 | 92% of 200.0 MB/s |"),
            "{table}"
        );
        assert!(
            table.contains("- 1M: recording 92.5% of the disk's own rate (185.0 of 200.0 MB/s; target 90%: met); for information, the same recorder to /dev/null takes 150.0 MB/s from the card side, so the lower of the two limits is the card side's; the read() + write() peer 45% of the disk's rate"),
            "{table}"
        );
    }
}
