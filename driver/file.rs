// SPDX-License-Identifier: GPL-2.0

//! Layer 5: the files of `/dev/fgrabN` ([`OpenFile`]) and the card's sysfs attributes,
//! as a [`MiscFile`] of the layer-1 misc device.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    prelude::*,
    str::CString,
    sync::Arc,
    uaccess::{UserPtr, UserSlice, UserSliceWriter},
};
use zerocopy::IntoBytes;

use crate::{
    abstractions::{misc::MiscFile, uring_cmd::UringCmd},
    card::Card,
    commands,
    uapi::{ioctls, FrameMeta},
};

/// Source of [`OpenFile::id`]s; 64 bits never wrap in practice.
static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

/// What one open file of a card owns.
pub(crate) struct OpenFile {
    card: Arc<Card>,
    /// Identifies the file as owner of a region (addresses of freed files get reused).
    id: u64,
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        self.card.release(self.id);
    }
}

/// Attributes of `/sys/class/misc/fgrabN`: identity and stream counters, for monitoring
/// without opening the device (`docs/abi.md`). Index order is [`show_attribute`]'s.
///
/// [`show_attribute`]: MiscFile::show_attribute
const ATTRIBUTES: &[&CStr] = &[
    c"card_index",
    c"hw_version",
    c"state",
    c"frame_bytes",
    c"frame_count",
    c"frames_queued",
    c"descriptors_max_per_frame",
    c"frames_delivered",
    c"frames_dropped_underrun",
    c"frames_dropped_other",
    c"frames_failed",
    c"bytes_delivered",
];

impl MiscFile for OpenFile {
    type Device = Card;

    const ATTRIBUTES: &'static [&'static CStr] = ATTRIBUTES;

    fn open(card: &Arc<Card>) -> Result<Self> {
        Ok(Self {
            card: card.clone(),
            id: NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn uring_cmd(&self, cmd: UringCmd) -> Result<i32> {
        commands::handle(&self.card, self.id, cmd)
    }

    /// The copy path (see `Card::read`): one frame per call, `writer.len()` bytes of it.
    fn read(&self, writer: &mut UserSliceWriter) -> Result<usize> {
        self.card.read(self.id, writer)
    }

    /// The per-frame blocking path (`QBUF`, `DQBUF`).
    fn ioctl(&self, cmd: u32, user: UserPtr) -> Result {
        match cmd {
            ioctls::QBUF => UserSlice::new(user, core::mem::size_of::<u32>())
                .reader()
                .read::<u32>()
                .and_then(|index| self.card.qbuf(self.id, index)),
            ioctls::DQBUF => self.card.dqbuf(self.id).and_then(|meta: FrameMeta| {
                UserSlice::new(user, core::mem::size_of::<FrameMeta>())
                    .writer()
                    .write_slice(meta.as_bytes())
            }),
            _ => Err(ENOTTY),
        }
    }

    fn show_attribute(card: &Card, index: usize) -> Result<CString> {
        let info = card.info();
        let stats = card.stats();
        let number: u64 = match index {
            0 => info.card_index.into(),
            1 => {
                return CString::try_from_fmt(fmt!(
                    "{}.{}",
                    info.hw_version >> 16,
                    info.hw_version & 0xffff
                ))
            }
            2 => {
                const STATES: [&str; 3] = ["idle", "attached", "streaming"];
                let state = STATES
                    .get(stats.state as usize)
                    .copied()
                    .unwrap_or("unknown");
                return CString::try_from_fmt(fmt!("{}", state));
            }
            3 => stats.frame_bytes.into(),
            4 => stats.frame_count.into(),
            5 => stats.frames_queued.into(),
            6 => stats.descriptors_max_per_frame.into(),
            7 => stats.frames_delivered,
            8 => stats.frames_dropped_underrun,
            9 => stats.frames_dropped_other,
            10 => stats.frames_failed,
            11 => stats.bytes_delivered,
            _ => return Err(ENOENT),
        };
        CString::try_from_fmt(fmt!("{}", number))
    }
}
