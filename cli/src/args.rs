//! The command line: subcommands, options and their typed values.
//!
//! Parsing is clap's: `--help` on every level, and a bad value or an unknown option is a
//! usage error (a message naming the option and the value, exit status 2), never a panic.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Look at fgrab frame grabbers and capture frames.
#[derive(Debug, Parser)]
#[command(
    name = "fgrab",
    version,
    arg_required_else_help = true,
    after_help = "Exit status: 0 on success, 1 when the card or the system refuses, \
                  2 for a usage error."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the cards: index, device node, PCI location, hardware version, state.
    ///
    /// Cards are found in /sys/class/misc and /dev; what sysfs does not show (the PCI
    /// vendor and device) is read from each card that can be opened. No card is not an
    /// error.
    List {
        /// Print a JSON array, one object per card.
        #[arg(long)]
        json: bool,
    },
    /// Identity, limits and DMA capabilities of a card.
    Info {
        /// The card.
        #[command(flatten)]
        card: CardArg,
        /// Print a JSON object (numbers under the ABI's field names).
        #[arg(long)]
        json: bool,
    },
    /// Stream state and counters of a card.
    Stats {
        /// The card.
        #[command(flatten)]
        card: CardArg,
        /// Print a JSON object with every counter.
        #[arg(long)]
        json: bool,
    },
    /// Stream frames from a card into a file, with a progress line every second.
    ///
    /// The frames go into a buffer `capture` allocates (huge pages when available), each
    /// written to `--output` as it completes by an io_uring write from that buffer (no copy
    /// in user space; O_DIRECT when the frames meet the file's alignment, else buffered),
    /// with a frame index in `FILE.idx`. Without `--frames` or `--seconds`, 100 frames are
    /// captured; with both, whichever limit comes first ends the capture.
    Capture(CaptureArgs),
}

/// `--card`, shared by the commands that talk to one card.
#[derive(Debug, Args)]
pub struct CardArg {
    /// Card index (N of /dev/fgrabN) or device node path.
    #[arg(
        short,
        long,
        value_name = "N|PATH",
        default_value = "0",
        allow_negative_numbers = true
    )]
    pub card: CardRef,
}

/// Options of `fgrab capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The card.
    #[command(flatten)]
    pub card: CardArg,
    /// Stop after this many frames (at least 1).
    #[arg(long, value_name = "N", value_parser = parse_frames, allow_negative_numbers = true)]
    pub frames: Option<u64>,
    /// Stop after this many seconds (fractions allowed, e.g. 0.5).
    #[arg(long, value_name = "S", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub seconds: Option<Duration>,
    /// File (or block device) the frames are written to, one after another.
    #[arg(short, long, value_name = "FILE", default_value = "/dev/null")]
    pub output: PathBuf,
    /// Where the frame index goes (default: FILE.idx; none for a character device such as
    /// /dev/null).
    #[arg(long, value_name = "PATH")]
    pub index: Option<PathBuf>,
    /// Write through the page cache even where O_DIRECT is possible.
    #[arg(long)]
    pub buffered: bool,
    /// Bytes per frame (default: the sensor's frame size). Suffixes k, M, G (powers of 1024)
    /// and 0x hex are accepted.
    #[arg(long, value_name = "BYTES", value_parser = parse_frame_bytes, allow_negative_numbers = true)]
    pub frame_bytes: Option<u32>,
    /// Frames in the buffer, all queued to the card.
    #[arg(
        long,
        value_name = "Q",
        default_value_t = 8,
        value_parser = parse_queue_depth,
        allow_negative_numbers = true
    )]
    pub queue_depth: u32,
    /// Bytes between the start of the buffer and its first frame (any alignment; suffixes
    /// and 0x hex as for --frame-bytes).
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "0",
        value_parser = parse_offset,
        allow_negative_numbers = true
    )]
    pub offset: usize,
    /// Let a kernel thread poll the submission queue (io_uring SQPOLL).
    #[arg(long)]
    pub sqpoll: bool,
    /// Give frames back to the card N at a time, with one submission, one completion and
    /// one interrupt per N frames (2 to 64, at most half of --queue-depth; 1: every frame).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = parse_batch,
        allow_negative_numbers = true
    )]
    pub batch: u32,
}

/// A card named on the command line: an index or a device node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardRef {
    /// N of `/dev/fgrabN`.
    Index(u32),
    /// A device node path.
    Path(PathBuf),
}

impl CardRef {
    /// The card's device node.
    pub fn path(&self) -> PathBuf {
        match self {
            CardRef::Index(index) => PathBuf::from(format!("/dev/fgrab{index}")),
            CardRef::Path(path) => path.clone(),
        }
    }
}

impl FromStr for CardRef {
    type Err = String;

    /// `3`, `fgrab3` and `/dev/fgrab3` (any path with a `/`) name card 3.
    fn from_str(text: &str) -> Result<Self, String> {
        let index = text.strip_prefix("fgrab").unwrap_or(text);
        if !index.is_empty() && index.bytes().all(|byte| byte.is_ascii_digit()) {
            return index
                .parse()
                .map(CardRef::Index)
                .map_err(|_| format!("card index `{index}` is too large"));
        }
        if text.contains('/') {
            return Ok(CardRef::Path(PathBuf::from(text)));
        }
        Err("expected a card index (0, 1, ...) or a device node path (/dev/fgrab0)".into())
    }
}

/// A byte count: decimal or `0x` hex, optionally followed by `k`, `M` or `G` (powers of
/// 1024), the convention of `fgrab-bench`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, scale) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1u64 << 10),
        Some((at, 'm' | 'M')) => (&text[..at], 1 << 20),
        Some((at, 'g' | 'G')) => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    let value = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    }
    .map_err(|_| "expected a byte count such as 4194304, 4M, 256k or 0x321".to_string())?;
    value
        .checked_mul(scale)
        .ok_or_else(|| "too large".to_string())
}

/// `--frames`: a whole number, at least 1.
fn parse_frames(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("capture at least 1 frame".into()),
        Ok(frames) => Ok(frames),
        Err(_) => Err("expected a whole number of frames such as 200".into()),
    }
}

/// `--queue-depth`: 1 to [`fgrab::uapi::MAX_FRAMES`].
fn parse_queue_depth(text: &str) -> Result<u32, String> {
    let max = fgrab::uapi::MAX_FRAMES;
    match text.parse::<u32>() {
        Ok(depth) if (1..=max).contains(&depth) => Ok(depth),
        _ => Err(format!("expected a number of frames from 1 to {max}")),
    }
}

/// `--batch`: 1 to [`fgrab::uapi::MAX_BATCH_FRAMES`] (the queue depth is checked when the
/// stream is attached).
fn parse_batch(text: &str) -> Result<u32, String> {
    let max = fgrab::uapi::MAX_BATCH_FRAMES;
    match text.parse::<u32>() {
        Ok(batch) if (1..=max).contains(&batch) => Ok(batch),
        _ => Err(format!("expected a number of frames from 1 to {max}")),
    }
}

/// `--frame-bytes`: a size from 1 byte to 4 GiB - 1.
fn parse_frame_bytes(text: &str) -> Result<u32, String> {
    match parse_size(text)? {
        0 => Err("a frame has at least 1 byte".into()),
        bytes => u32::try_from(bytes).map_err(|_| "a frame has at most 4294967295 bytes".into()),
    }
}

/// `--offset`: a size that fits the address space.
fn parse_offset(text: &str) -> Result<usize, String> {
    usize::try_from(parse_size(text)?).map_err(|_| "too large".into())
}

/// `--seconds`: a positive, finite number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| "expected a number of seconds such as 10 or 0.5".to_string())?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err("must be more than 0".into());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| "too large".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("fgrab").chain(args.iter().copied()))
    }

    /// The rendered error of a command line that must not parse.
    fn error(args: &[&str]) -> (ErrorKind, String) {
        let error = parse(args).expect_err("parsed");
        (error.kind(), error.to_string())
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let Command::Capture(capture) = parse(&["capture"]).unwrap().command else {
            panic!("not capture");
        };
        assert_eq!(capture.card.card, CardRef::Index(0));
        assert_eq!(capture.frames, None);
        assert_eq!(capture.seconds, None);
        assert_eq!(capture.output, PathBuf::from("/dev/null"));
        assert_eq!(capture.frame_bytes, None);
        assert_eq!(capture.queue_depth, 8);
        assert_eq!(capture.offset, 0);
        assert!(!capture.sqpoll);
        let Command::Info { card, json: false } = parse(&["info"]).unwrap().command else {
            panic!("not info");
        };
        assert_eq!(card.card.path(), PathBuf::from("/dev/fgrab0"));
    }

    #[test]
    fn json_flags() {
        assert!(matches!(
            parse(&["list"]).unwrap().command,
            Command::List { json: false }
        ));
        assert!(matches!(
            parse(&["list", "--json"]).unwrap().command,
            Command::List { json: true }
        ));
        assert_eq!(
            error(&["list", "--card", "0"]).0,
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn capture_options() {
        let Command::Capture(capture) = parse(&[
            "capture",
            "--card",
            "/dev/fgrab1",
            "--frames",
            "200",
            "--seconds",
            "0.5",
            "--output",
            "/tmp/frames",
            "--frame-bytes",
            "4M",
            "--queue-depth",
            "16",
            "--offset",
            "0x321",
            "--sqpoll",
            "--batch",
            "8",
        ])
        .unwrap()
        .command
        else {
            panic!("not capture");
        };
        assert_eq!(capture.card.card, CardRef::Path("/dev/fgrab1".into()));
        assert_eq!(capture.frames, Some(200));
        assert_eq!(capture.seconds, Some(Duration::from_millis(500)));
        assert_eq!(capture.output, PathBuf::from("/tmp/frames"));
        assert_eq!(capture.frame_bytes, Some(4 << 20));
        assert_eq!(capture.queue_depth, 16);
        assert_eq!(capture.offset, 0x321);
        assert!(capture.sqpoll);
        assert_eq!(capture.batch, 8);
    }

    #[test]
    fn cards() {
        assert_eq!("3".parse(), Ok(CardRef::Index(3)));
        assert_eq!("fgrab3".parse(), Ok(CardRef::Index(3)));
        assert_eq!(
            "/dev/fgrab3".parse(),
            Ok(CardRef::Path("/dev/fgrab3".into()))
        );
        assert_eq!("./fgrab".parse(), Ok(CardRef::Path("./fgrab".into())));
        for bad in ["", "x", "-1", "fgrab", "99999999999", "1.5"] {
            assert!(bad.parse::<CardRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("256k"), Ok(256 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("0x321"), Ok(0x321));
        assert_eq!(parse_size("1000003"), Ok(1_000_003));
        for bad in [
            "",
            "M",
            "4Q",
            "-1",
            "0x",
            "1.5M",
            "é",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("17179869184G").is_err(), "overflow");
        assert_eq!(parse_frame_bytes("65543"), Ok(65_543));
        assert!(parse_frame_bytes("0").is_err());
        assert!(parse_frame_bytes("4G").is_err());
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        for bad in ["0", "-1", "nan", "inf", "1e300", "ten"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    /// Every bad value is a usage error naming the option, not a panic.
    #[test]
    fn bad_values_are_errors() {
        for (args, option) in [
            (&["info", "--card", "x"][..], "--card"),
            (&["stats", "--card", "-1"][..], "--card"),
            (&["capture", "--frames", "0"][..], "--frames"),
            (&["capture", "--frames", "many"][..], "--frames"),
            (&["capture", "--frames", "-5"][..], "--frames"),
            (&["capture", "--seconds", "-1"][..], "--seconds"),
            (&["capture", "--seconds", "1e300"][..], "--seconds"),
            (&["capture", "--frame-bytes", "0"][..], "--frame-bytes"),
            (&["capture", "--frame-bytes", "5G"][..], "--frame-bytes"),
            (&["capture", "--frame-bytes", "4Q"][..], "--frame-bytes"),
            (&["capture", "--queue-depth", "0"][..], "--queue-depth"),
            (&["capture", "--queue-depth", "4096"][..], "--queue-depth"),
            (&["capture", "--batch", "0"][..], "--batch"),
            (&["capture", "--batch", "65"][..], "--batch"),
            (&["capture", "--offset", "-1"][..], "--offset"),
        ] {
            let (kind, message) = error(args);
            assert!(
                matches!(kind, ErrorKind::ValueValidation | ErrorKind::InvalidValue),
                "{args:?}: {kind:?} {message}"
            );
            assert!(message.contains(option), "{args:?}: {message}");
            assert_eq!(parse(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn usage_errors() {
        assert_eq!(error(&["capture", "--frames"]).0, ErrorKind::InvalidValue);
        assert_eq!(error(&["capture", "--bogus"]).0, ErrorKind::UnknownArgument);
        assert_eq!(error(&["info", "extra"]).0, ErrorKind::UnknownArgument);
        assert_eq!(error(&["frobnicate"]).0, ErrorKind::InvalidSubcommand);
        assert_eq!(
            error(&[]).0,
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }

    #[test]
    fn help() {
        for args in [&["--help"][..], &["capture", "--help"], &["help", "info"]] {
            let error = parse(args).expect_err("help is not a command line");
            assert_eq!(error.kind(), ErrorKind::DisplayHelp, "{args:?}");
            assert_eq!(error.exit_code(), 0);
        }
        let help = Cli::command().render_long_help().to_string();
        for word in ["list", "info", "stats", "capture", "Exit status"] {
            assert!(help.contains(word), "{word} not in {help}");
        }
        let mut command = Cli::command();
        let capture = command.find_subcommand_mut("capture").unwrap();
        let help = capture.render_long_help().to_string();
        for option in [
            "--card",
            "--frames",
            "--seconds",
            "--output",
            "--frame-bytes",
            "--queue-depth",
            "--offset",
            "--sqpoll",
        ] {
            assert!(help.contains(option), "{option} not in {help}");
        }
    }
}
