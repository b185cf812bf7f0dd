//! `fgrab-emu`: the frame grabber device model (`serve`) and its DMA benchmark
//! (`bench-dma`).
#![deny(missing_docs)]

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use fgrab_emu::bench::{self, BenchConfig};
use fgrab_emu::dma::IovaTable;
use fgrab_emu::engine::{Device, EngineConfig};
use fgrab_emu::fault::Fault;
use fgrab_emu::irq::Interrupts;
use fgrab_emu::server::{serve, Backend};
use fgrab_hw::caps::MAX_FRAME_BYTES;

/// Device model of the fgrab PCIe frame grabber for QEMU's vfio-user-pci.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output (warnings and errors only).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the device on a vfio-user socket until QEMU disconnects.
    Serve(ServeArgs),
    /// Measure how fast the model writes patterned frames into memfd-backed memory.
    BenchDma(BenchArgs),
}

#[derive(Parser)]
struct ServeArgs {
    /// vfio-user socket path (a stale socket file is replaced).
    #[arg(short, long)]
    socket: PathBuf,
    /// Sensor data rate in bytes per second; the frame period is FRAME_BYTES / rate.
    #[arg(long, default_value_t = 1_000_000_000)]
    rate: u64,
    /// FRAME_BYTES after reset (the driver may change it while idle).
    #[arg(long, default_value_t = 4 << 20)]
    frame_bytes: u32,
    /// Fixed frame period in microseconds, instead of deriving it from --rate.
    #[arg(long)]
    period_us: Option<u64>,
    /// Inject a fault: KIND@FRAME[:ARG] with KIND one of dma-error, lost-irq,
    /// stall (ARG: delay, e.g. 250ms), desc-reject, reset-request, remove,
    /// unplug-request. FRAME is the frame sequence number. Repeatable.
    #[arg(long = "fault", value_name = "KIND@FRAME[:ARG]")]
    faults: Vec<Fault>,
    /// Keep serving after the client disconnects (reset, then wait for the next one).
    #[arg(long)]
    persist: bool,
}

#[derive(Parser)]
struct BenchArgs {
    /// Memory size in MiB.
    #[arg(long, default_value_t = 512)]
    memory_mib: u64,
    /// Bytes per frame.
    #[arg(long, default_value_t = 4 << 20)]
    frame_bytes: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Map the memory as one range instead of 4 KiB pages (as with a virtual IOMMU).
    #[arg(long)]
    single_map: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Warn,
        (false, 0) => log::LevelFilter::Info,
        (false, 1) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .format_timestamp_millis()
        .target(env_logger::Target::Stderr)
        .init();
    match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::BenchDma(args) => run_bench(args),
    }
}

fn run_serve(args: ServeArgs) -> Result<()> {
    if !(1..=MAX_FRAME_BYTES).contains(&args.frame_bytes) {
        bail!("--frame-bytes must be in 1..={MAX_FRAME_BYTES}");
    }
    if args.rate == 0 {
        bail!("--rate must be positive");
    }
    remove_stale_socket(&args.socket)?;
    let config = EngineConfig {
        rate: args.rate,
        frame_bytes: args.frame_bytes,
        period: args.period_us.map(Duration::from_micros),
        faults: args.faults,
    };
    log::info!(
        "fgrab-emu: frame {} bytes, period {} ns, faults {:?}",
        config.frame_bytes,
        config.period_ns(config.frame_bytes),
        config.faults
    );
    let dma = Arc::new(IovaTable::new());
    let irqs = Arc::new(Interrupts::new());
    let (device, engine) =
        Device::start(config, dma.clone(), irqs.clone()).context("starting the frame engine")?;
    let mut backend = Backend::new(device.clone(), dma, irqs);
    let result = loop {
        let served = serve(&args.socket, &mut backend);
        log::info!("client gone; counters: {:?}", device.counters());
        if served.is_err() || !args.persist {
            break served;
        }
        device.replug();
    };
    device.shutdown();
    let _ = engine.join();
    result.context("vfio-user server")
}

/// Removes a socket file nobody listens on (left by a killed run); refuses to steal a
/// live one. Liveness comes from /proc/net/unix: connecting to probe would be taken by a
/// live model as its one client.
fn remove_stale_socket(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!("{} exists and is not a socket", path.display());
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let bound = table.lines().skip(1).any(|line| {
        line.split_whitespace()
            .nth(7)
            .is_some_and(|p| Path::new(p) == path || Path::new(p) == absolute)
    });
    if bound {
        bail!("{} is served by another process", path.display());
    }
    log::info!("removing stale socket {}", path.display());
    std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let config = BenchConfig {
        memory_bytes: args.memory_mib << 20,
        frame_bytes: args.frame_bytes,
        duration: Duration::from_secs_f64(args.seconds),
        page_maps: !args.single_map,
    };
    let report = bench::run(&config).context("bench-dma")?;
    let gib = |r: f64| r / f64::from(1u32 << 30);
    println!(
        "bench-dma: {} MiB memfd, {} maps ({} table ranges), frames of {} bytes at odd offsets",
        args.memory_mib,
        if config.page_maps {
            "4 KiB page"
        } else {
            "one"
        },
        report.table_ranges,
        args.frame_bytes
    );
    println!("first touch     {:6.2} GiB/s", gib(report.first_touch));
    println!(
        "pattern frames  {:6.2} GiB/s  (device write path: generate + DMA write)",
        gib(report.pattern_frames)
    );
    println!(
        "raw copy        {:6.2} GiB/s  (same path without generation)",
        gib(report.raw_copy)
    );
    println!("read + verify   {:6.2} GiB/s", gib(report.verify));
    Ok(())
}
