//! fgrab commands as io_uring submission entries, and decoders for their completions.
//!
//! For applications that put fgrab commands on a ring of their own, beside other io_uring
//! work, and for the layers above: [`crate::Stream`], the benchmark and the VM tests build
//! every command here. The ring must be created with `IORING_SETUP_SQE128` and
//! `IORING_SETUP_CQE32` (`IoUring<squeue::Entry128, cqueue::Entry32>`): commands carry an
//! 80-byte payload, and frame completions the sequence number in the CQE's first extra word.
//!
//! Builders take the required arguments in `new` and the optional ones as setters, like the
//! `io-uring` crate's opcodes; `build` returns the entry. Building is safe; pushing an entry
//! is not (`SubmissionQueue::push`): memory an entry names (the fixed buffer, a metadata
//! slot, an `INFO` or `STATS` target) must stay valid until its completion is reaped.
//!
//! ```no_run
//! use fgrab::raw;
//! use io_uring::{cqueue, squeue, IoUring};
//! use std::os::fd::AsRawFd;
//!
//! # fn main() -> std::io::Result<()> {
//! let card = std::fs::File::open("/dev/fgrab0")?;
//! let mut ring = IoUring::<squeue::Entry128, cqueue::Entry32>::builder().build(64)?;
//! let mut info = fgrab::uapi::DeviceInfo::default();
//! let entry = raw::Info::new(card.as_raw_fd(), &mut info).build().user_data(1);
//! // SAFETY: `info` outlives the command: its completion is reaped below.
//! unsafe { ring.submission().push(&entry).expect("queue full") };
//! ring.submit_and_wait(1)?;
//! let cqe = ring.completion().next().expect("one completion");
//! let bytes = raw::CommandResult::from_cqe(&cqe).value()?;
//! println!("INFO wrote {bytes} bytes: card {}", info.card_index);
//! # Ok(()) }
//! ```

use fgrab_uapi::{
    ops, AttachCmd, ControlCmd, CopyOutCmd, DetachCmd, DeviceInfo, FrameMeta, PortCmd,
    QueueBatchCmd, QueueCmd, StartCmd, Stats, CMD_PAYLOAD_BYTES, START_IRQ_DELAY, START_IRQ_FRAMES,
};
use io_uring::{cqueue, opcode, squeue, types};
use std::os::fd::RawFd;
use zerocopy::{FromZeros, IntoBytes};

/// Any command: an operation and its payload bytes (zero-padded to 80), optionally naming
/// a fixed buffer. The typed builders below are made of it; tests use it to send what they
/// would never send (malformed payloads, missing flags).
#[derive(Clone, Debug)]
pub struct Command {
    fd: RawFd,
    op: u32,
    payload: [u8; CMD_PAYLOAD_BYTES],
    buf_index: Option<u16>,
}

impl Command {
    /// Operation `op` on the card file `fd`, with an all-zero payload.
    pub fn new(fd: RawFd, op: u32) -> Self {
        Self {
            fd,
            op,
            payload: [0; CMD_PAYLOAD_BYTES],
            buf_index: None,
        }
    }

    /// The payload: `bytes` followed by zeros (at most 80 bytes are used).
    pub fn payload(mut self, bytes: &[u8]) -> Self {
        let len = bytes.len().min(CMD_PAYLOAD_BYTES);
        self.payload = [0; CMD_PAYLOAD_BYTES];
        self.payload[..len].copy_from_slice(&bytes[..len]);
        self
    }

    /// Names fixed buffer `index` (sets `IORING_URING_CMD_FIXED`).
    pub fn buf_index(mut self, index: Option<u16>) -> Self {
        self.buf_index = index;
        self
    }

    /// The submission entry.
    pub fn build(self) -> squeue::Entry128 {
        opcode::UringCmd80::new(types::Fd(self.fd), self.op)
            .cmd(self.payload)
            .buf_index(self.buf_index)
            .build()
    }
}

/// `ATTACH`: `frame_count` frames of `frame_bytes` in bytes `addr..addr + len` of fixed
/// buffer `buf_index`. The command stays in flight while the region is attached; it
/// completes with 0 at `DETACH`, or with an error when the region ends otherwise.
#[derive(Clone, Debug)]
pub struct Attach {
    fd: RawFd,
    buf_index: u16,
    cmd: AttachCmd,
}

impl Attach {
    /// A region of back-to-back frames (stride = `frame_bytes`; see [`Self::frame_stride`]).
    pub fn new(
        fd: RawFd,
        buf_index: u16,
        addr: u64,
        len: u64,
        frame_bytes: u32,
        frame_count: u32,
    ) -> Self {
        Self {
            fd,
            buf_index,
            cmd: AttachCmd {
                addr,
                len,
                frame_stride: u64::from(frame_bytes),
                frame_bytes,
                frame_count,
                ..AttachCmd::new_zeroed()
            },
        }
    }

    /// Bytes from one frame's start to the next (at least `frame_bytes`: the gap holds
    /// guard bytes the card never writes).
    pub fn frame_stride(mut self, stride: u64) -> Self {
        self.cmd.frame_stride = stride;
        self
    }

    /// The region's id in the file's stream, below [`fgrab_uapi::MAX_REGIONS`] (default 0:
    /// the one region of a single-region stream). Every region of a stream has frames of
    /// the same size.
    pub fn region(mut self, region: u32) -> Self {
        self.cmd.region = region;
        self
    }

    /// The submission entry.
    pub fn build(self) -> squeue::Entry128 {
        Command::new(self.fd, ops::ATTACH)
            .payload(self.cmd.as_bytes())
            .buf_index(Some(self.buf_index))
            .build()
    }
}

/// `QUEUE`: hands frame `frame` of the attached region to the card. It completes when the
/// frame is filled (see [`FrameCompletion`]) or taken back.
#[derive(Clone, Debug)]
pub struct Queue {
    fd: RawFd,
    cmd: QueueCmd,
}

impl Queue {
    /// Frame `frame`, without metadata.
    pub fn new(fd: RawFd, frame: u32) -> Self {
        Self {
            fd,
            cmd: QueueCmd {
                frame,
                ..QueueCmd::new_zeroed()
            },
        }
    }

    /// Where the driver writes the frame's [`FrameMeta`] just before the completion (bytes,
    /// timestamp, status flags). It must stay valid until the completion is reaped.
    pub fn meta(mut self, meta: *mut FrameMeta) -> Self {
        self.cmd.meta_addr = meta as u64;
        self
    }

    /// The region the frame belongs to (default 0). The CQE does not name it: tell
    /// completions apart by `user_data`, or read [`FrameMeta::region`].
    pub fn region(mut self, region: u32) -> Self {
        self.cmd.region = region;
        self
    }

    /// The submission entry.
    pub fn build(self) -> squeue::Entry128 {
        Command::new(self.fd, ops::QUEUE)
            .payload(self.cmd.as_bytes())
            .build()
    }
}

/// `QUEUE_BATCH`: hands frames `first..first + count` of an attached region to the card
/// with one submission (at most [`fgrab_uapi::MAX_BATCH_FRAMES`]; all or none are queued).
/// It completes once, when the last of them is filled or taken back (see
/// [`BatchCompletion`]); each frame's outcome is in its [`FrameMeta`].
#[derive(Clone, Debug)]
pub struct QueueBatch {
    fd: RawFd,
    cmd: QueueBatchCmd,
}

impl QueueBatch {
    /// Frames `first..first + count`, without metadata.
    pub fn new(fd: RawFd, first: u32, count: u32) -> Self {
        Self {
            fd,
            cmd: QueueBatchCmd {
                first,
                count,
                ..QueueBatchCmd::new_zeroed()
            },
        }
    }

    /// Where the driver writes the frames' metadata just before the completion: an array of
    /// `count` [`FrameMeta`], one per frame in order. It must stay valid until the
    /// completion is reaped.
    pub fn meta(mut self, metas: *mut FrameMeta) -> Self {
        self.cmd.meta_addr = metas as u64;
        self
    }

    /// The region the frames belong to (default 0).
    pub fn region(mut self, region: u32) -> Self {
        self.cmd.region = region;
        self
    }

    /// The submission entry.
    pub fn build(self) -> squeue::Entry128 {
        Command::new(self.fd, ops::QUEUE_BATCH)
            .payload(self.cmd.as_bytes())
            .build()
    }
}

macro_rules! control {
    ($(#[$doc:meta])* $name:ident, $op:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            fd: RawFd,
        }

        impl $name {
            /// On the card file `fd`.
            pub fn new(fd: RawFd) -> Self {
                Self { fd }
            }

            /// The submission entry.
            pub fn build(self) -> squeue::Entry128 {
                Command::new(self.fd, $op)
                    .payload(ControlCmd::new_zeroed().as_bytes())
                    .build()
            }
        }
    };
}

/// `START`: programs the card for the region and hands it every queued frame.
#[derive(Clone, Debug)]
pub struct Start {
    fd: RawFd,
    cmd: StartCmd,
}

impl Start {
    /// On the card file `fd`, with the driver's interrupt moderation (half the card's
    /// frame period).
    pub fn new(fd: RawFd) -> Self {
        Self {
            fd,
            cmd: StartCmd::new_zeroed(),
        }
    }

    /// Frame interrupts at least `us` microseconds apart (0: one per frame; at most
    /// [`fgrab_uapi::MAX_IRQ_DELAY_US`]): frames completed meanwhile complete together.
    pub fn irq_delay_us(mut self, us: u32) -> Self {
        self.cmd.flags |= START_IRQ_DELAY;
        self.cmd.irq_delay_us = us;
        self
    }

    /// One frame interrupt per `frames` completed frames (0: the driver's choice, a
    /// quarter of the frames attached, at most 16; 1: every frame; at most
    /// [`fgrab_uapi::MAX_IRQ_FRAMES`]). No frame waits longer than [`Self::irq_delay_us`]
    /// for its interrupt (which must then not be 0), or, without it, than `frames` frame
    /// times (the longer of the card's frame period and the frame's transfer at 500 MB/s).
    pub fn irq_frames(mut self, frames: u32) -> Self {
        self.cmd.flags |= START_IRQ_FRAMES;
        self.cmd.irq_frames = frames;
        self
    }

    /// The submission entry.
    pub fn build(self) -> squeue::Entry128 {
        Command::new(self.fd, ops::START)
            .payload(self.cmd.as_bytes())
            .build()
    }
}
control!(
    /// `STOP`: every frame on the card comes back (filled ones complete normally, the
    /// others with `-ECANCELED`).
    Stop,
    ops::STOP
);
/// `DETACH`: ends a region (0 unless [`Self::region`] says otherwise); its `ATTACH`
/// completes with 0 once the card can no longer write it. Other regions keep streaming.
#[derive(Clone, Debug)]
pub struct Detach {
    fd: RawFd,
    cmd: DetachCmd,
}

impl Detach {
    /// Region 0 of the stream on the card file `fd`.
    pub fn new(fd: RawFd) -> Self {
        Self {
            fd,
            cmd: DetachCmd::new_zeroed(),
        }
    }

    /// The region to detach.
    pub fn region(mut self, region: u32) -> Self {
        self.cmd.region = region;
        self
    }

    /// The submission entry.
    pub fn build(self) -> squeue::Entry128 {
        Command::new(self.fd, ops::DETACH)
            .payload(self.cmd.as_bytes())
            .build()
    }
}

macro_rules! copy_out {
    ($(#[$doc:meta])* $name:ident, $op:path, $target:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            fd: RawFd,
            cmd: CopyOutCmd,
        }

        impl $name {
            /// Into `*target`, which must stay valid until the completion is reaped.
            pub fn new(fd: RawFd, target: *mut $target) -> Self {
                Self {
                    fd,
                    cmd: CopyOutCmd {
                        addr: target as u64,
                        // CAST: uapi structures are a few dozen bytes.
                        size: size_of::<$target>() as u32,
                        ..CopyOutCmd::new_zeroed()
                    },
                }
            }

            /// The submission entry.
            pub fn build(self) -> squeue::Entry128 {
                Command::new(self.fd, $op)
                    .payload(self.cmd.as_bytes())
                    .build()
            }
        }
    };
}

copy_out!(
    /// `INFO`: the card's identity and capabilities ([`DeviceInfo`]); completes with the
    /// bytes written.
    Info,
    ops::INFO,
    DeviceInfo
);
copy_out!(
    /// `STATS`: the stream's state and counters ([`Stats`]); completes with the bytes
    /// written.
    StatsCmd,
    ops::STATS,
    Stats
);

macro_rules! port {
    ($(#[$doc:meta])* $name:ident, $op:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            fd: RawFd,
            cmd: PortCmd,
        }

        impl $name {
            /// `size` bytes at `offset`, from or to `addr` (memory that must stay valid until
            /// the completion is reaped).
            pub fn new(fd: RawFd, offset: u32, addr: *mut u8, size: u32) -> Self {
                Self {
                    fd,
                    cmd: PortCmd {
                        addr: addr as u64,
                        offset,
                        size,
                        ..PortCmd::new_zeroed()
                    },
                }
            }

            /// The submission entry.
            pub fn build(self) -> squeue::Entry128 {
                Command::new(self.fd, $op)
                    .payload(self.cmd.as_bytes())
                    .build()
            }
        }
    };
}

port!(
    /// `XML_READ`: up to `size` bytes of the card's GenICam XML from byte `offset`;
    /// completes with the bytes copied, or with the XML's size when `size` is 0.
    XmlRead,
    ops::XML_READ
);
port!(
    /// `FEATURE_READ`: `size` bytes of the feature window at `offset` (both multiples of 4,
    /// at most [`fgrab_uapi::MAX_PORT_BYTES`]); completes with `size`.
    FeatureRead,
    ops::FEATURE_READ
);
port!(
    /// `FEATURE_WRITE`: `size` bytes into the feature window at `offset` (rules of
    /// [`FeatureRead`]); completes with `size`, or `-EBUSY` (see `docs/abi.md`).
    FeatureWrite,
    ops::FEATURE_WRITE
);

/// The outcome of any command: `res` of its CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandResult {
    /// `user_data` of the submission.
    pub user_data: u64,
    /// `res`: a non-negative value, or a negative errno.
    pub res: i32,
}

impl CommandResult {
    /// Decodes a CQE.
    pub fn from_cqe(cqe: &cqueue::Entry32) -> Self {
        Self {
            user_data: cqe.user_data(),
            res: cqe.result(),
        }
    }

    /// The value, or the errno as an [`std::io::Error`].
    ///
    /// # Errors
    ///
    /// The command's errno.
    pub fn value(self) -> std::io::Result<u32> {
        count_or_errno(self.res)
    }
}

/// A completion's non-negative `res` (bytes, frames), or its negative errno as an error.
fn count_or_errno(res: i32) -> std::io::Result<u32> {
    u32::try_from(res).map_err(|_| std::io::Error::from_raw_os_error(-res))
}

/// The sequence number in a completion's `big_cqe[0]` (`u64::MAX`: none).
fn sequence(extra: u64) -> Option<u64> {
    (extra != u64::MAX).then_some(extra)
}

/// The outcome of a `QUEUE`: the frame was filled (`bytes`), or came back without data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCompletion {
    /// `user_data` of the submission.
    pub user_data: u64,
    /// `res`: bytes the card wrote, or a negative errno (`-ECANCELED`: taken back by a stop
    /// or teardown; `-EIO`: the card failed the frame; `-ENODEV`: the card is gone).
    pub res: i32,
    /// The card's sequence number of the frame, if it describes one.
    pub sequence: Option<u64>,
}

impl FrameCompletion {
    /// Decodes the CQE of a `QUEUE` (the sequence number travels in `big_cqe[0]`,
    /// `u64::MAX` when there is none).
    pub fn from_cqe(cqe: &cqueue::Entry32) -> Self {
        Self::from_parts(cqe.user_data(), cqe.result(), cqe.big_cqe()[0])
    }

    /// Decodes the fields of a `QUEUE` completion.
    pub fn from_parts(user_data: u64, res: i32, extra: u64) -> Self {
        Self {
            user_data,
            res,
            sequence: sequence(extra),
        }
    }

    /// Bytes filled, or the errno as an [`std::io::Error`].
    ///
    /// # Errors
    ///
    /// The frame's errno.
    pub fn bytes(self) -> std::io::Result<u32> {
        count_or_errno(self.res)
    }
}

/// The outcome of a `QUEUE_BATCH`: how many of its frames the card filled; which ones, and
/// how, is in their [`FrameMeta`] (`META_FLUSHED`, `META_ERROR` for the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchCompletion {
    /// `user_data` of the submission.
    pub user_data: u64,
    /// `res`: frames filled, or, when none was, the first frame's negative errno
    /// (`-ECANCELED`: taken back by a stop or teardown; `-EIO`; `-ENODEV`).
    pub res: i32,
    /// The sequence number of the batch's last frame, if it has one.
    pub last_sequence: Option<u64>,
}

impl BatchCompletion {
    /// Decodes the CQE of a `QUEUE_BATCH`.
    pub fn from_cqe(cqe: &cqueue::Entry32) -> Self {
        Self::from_parts(cqe.user_data(), cqe.result(), cqe.big_cqe()[0])
    }

    /// Decodes the fields of a `QUEUE_BATCH` completion.
    pub fn from_parts(user_data: u64, res: i32, extra: u64) -> Self {
        Self {
            user_data,
            res,
            last_sequence: sequence(extra),
        }
    }

    /// Frames filled, or the errno as an [`std::io::Error`] when none was.
    ///
    /// # Errors
    ///
    /// The first frame's errno, when no frame was filled.
    pub fn frames(self) -> std::io::Result<u32> {
        count_or_errno(self.res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromBytes;

    /// The payload of an entry, read back from its bytes (opcode `URING_CMD`, `cmd_op` at
    /// offset 8... the io-uring crate keeps the fields private, so look at the raw SQE).
    fn sqe_bytes(entry: &squeue::Entry128) -> &[u8] {
        // SAFETY: `Entry128` is `repr(C)` over the 128-byte SQE.
        unsafe { std::slice::from_raw_parts((entry as *const squeue::Entry128).cast::<u8>(), 128) }
    }

    #[test]
    fn attach_payload_and_fixed_buffer() {
        let entry = Attach::new(7, 3, 0x1000, 4096, 1000, 4)
            .frame_stride(1024)
            .build()
            .user_data(99);
        let sqe = sqe_bytes(&entry);
        // `fd` at 4, `cmd_op` at 8, `user_data` at 32, `buf_index` at 40, `uring_cmd_flags`
        // at 28, payload at 48.
        assert_eq!(i32::from_ne_bytes(sqe[4..8].try_into().unwrap()), 7);
        assert_eq!(
            u32::from_ne_bytes(sqe[8..12].try_into().unwrap()),
            ops::ATTACH
        );
        assert_eq!(u64::from_ne_bytes(sqe[32..40].try_into().unwrap()), 99);
        assert_eq!(u16::from_ne_bytes(sqe[40..42].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(sqe[28..32].try_into().unwrap()) & 1, 1);
        let cmd = AttachCmd::read_from_bytes(&sqe[48..48 + CMD_PAYLOAD_BYTES]).unwrap();
        assert_eq!(
            (
                cmd.addr,
                cmd.len,
                cmd.frame_stride,
                cmd.frame_bytes,
                cmd.frame_count
            ),
            (0x1000, 4096, 1024, 1000, 4)
        );
    }

    #[test]
    fn region_ids_in_their_fields() {
        let attach = Attach::new(7, 0, 0x1000, 4096, 1000, 4).region(9).build();
        let cmd =
            AttachCmd::read_from_bytes(&sqe_bytes(&attach)[48..48 + CMD_PAYLOAD_BYTES]).unwrap();
        assert_eq!((cmd.region, cmd.flags, cmd.reserved), (9, 0, [0; 5]));
        let queue = Queue::new(7, 3).region(63).build();
        let cmd =
            QueueCmd::read_from_bytes(&sqe_bytes(&queue)[48..48 + CMD_PAYLOAD_BYTES]).unwrap();
        assert_eq!((cmd.frame, cmd.region, cmd.reserved0), (3, 63, 0));
        let detach = Detach::new(7).region(5).build();
        let cmd =
            DetachCmd::read_from_bytes(&sqe_bytes(&detach)[48..48 + CMD_PAYLOAD_BYTES]).unwrap();
        assert_eq!((cmd.flags, cmd.region, cmd.reserved), (0, 5, [0; 9]));
        // Without a region, the payloads are those of a single-region program.
        let detach = Detach::new(7).build();
        assert_eq!(
            &sqe_bytes(&detach)[48..48 + CMD_PAYLOAD_BYTES],
            ControlCmd::new_zeroed().as_bytes()
        );
    }

    #[test]
    fn queue_and_control_name_no_fixed_buffer() {
        let mut meta = FrameMeta::default();
        for (entry, op) in [
            (Queue::new(5, 2).meta(&mut meta).build(), ops::QUEUE),
            (Start::new(5).build(), ops::START),
            (Stop::new(5).build(), ops::STOP),
            (Detach::new(5).build(), ops::DETACH),
        ] {
            let sqe = sqe_bytes(&entry);
            assert_eq!(u32::from_ne_bytes(sqe[8..12].try_into().unwrap()), op);
            assert_eq!(u32::from_ne_bytes(sqe[28..32].try_into().unwrap()) & 1, 0);
        }
        let entry = Queue::new(5, 2).meta(&mut meta).build();
        let cmd = QueueCmd::read_from_bytes(&sqe_bytes(&entry)[48..128]).unwrap();
        assert_eq!((cmd.frame, cmd.meta_addr), (2, &mut meta as *mut _ as u64));
    }

    #[test]
    fn queue_batch_payload() {
        let mut metas = [FrameMeta::default(); 8];
        let entry = QueueBatch::new(5, 16, 8)
            .meta(metas.as_mut_ptr())
            .region(3)
            .build();
        let sqe = sqe_bytes(&entry);
        assert_eq!(
            u32::from_ne_bytes(sqe[8..12].try_into().unwrap()),
            ops::QUEUE_BATCH
        );
        assert_eq!(u32::from_ne_bytes(sqe[28..32].try_into().unwrap()) & 1, 0);
        let cmd = QueueBatchCmd::read_from_bytes(&sqe[48..128]).unwrap();
        assert_eq!(
            (cmd.first, cmd.count, cmd.region, cmd.flags, cmd.reserved),
            (16, 8, 3, 0, [0; 7])
        );
        assert_eq!(cmd.meta_addr, metas.as_mut_ptr() as u64);
        let done = BatchCompletion::from_parts(7, 8, 41);
        assert_eq!((done.frames().unwrap(), done.last_sequence), (8, Some(41)));
        let canceled = BatchCompletion::from_parts(7, -125, u64::MAX);
        assert_eq!(canceled.frames().unwrap_err().raw_os_error(), Some(125));
        assert_eq!(canceled.last_sequence, None);
    }

    #[test]
    fn start_moderation() {
        let plain = Start::new(3).build();
        let cmd = StartCmd::read_from_bytes(&sqe_bytes(&plain)[48..128]).unwrap();
        assert_eq!((cmd.flags, cmd.irq_delay_us), (0, 0));
        let moderated = Start::new(3).irq_delay_us(500).build();
        let cmd = StartCmd::read_from_bytes(&sqe_bytes(&moderated)[48..128]).unwrap();
        assert_eq!((cmd.flags, cmd.irq_delay_us), (START_IRQ_DELAY, 500));
        let counted = Start::new(3).irq_frames(16).irq_delay_us(4000).build();
        let cmd = StartCmd::read_from_bytes(&sqe_bytes(&counted)[48..128]).unwrap();
        assert_eq!(
            (cmd.flags, cmd.irq_delay_us, cmd.irq_frames),
            (START_IRQ_DELAY | START_IRQ_FRAMES, 4000, 16)
        );
    }

    #[test]
    fn copy_out_names_its_target() {
        let mut stats = Stats::default();
        let entry = StatsCmd::new(1, &mut stats).build();
        let cmd = CopyOutCmd::read_from_bytes(&sqe_bytes(&entry)[48..128]).unwrap();
        assert_eq!(cmd.addr, &mut stats as *mut _ as u64);
        assert_eq!(cmd.size as usize, size_of::<Stats>());
    }

    #[test]
    fn frame_completion_sequence() {
        let filled = FrameCompletion::from_parts(1, 4096, 17);
        assert_eq!((filled.sequence, filled.bytes().unwrap()), (Some(17), 4096));
        let canceled = FrameCompletion::from_parts(1, -libc::ECANCELED, u64::MAX);
        assert_eq!(canceled.sequence, None);
        assert_eq!(
            canceled.bytes().unwrap_err().raw_os_error(),
            Some(libc::ECANCELED)
        );
    }
}
