// SPDX-License-Identifier: GPL-2.0

//! Layer 5: decoding and answering `URING_CMD` submissions (`docs/abi.md`).
//!
//! Validation happens on a private copy of the payload. A rejected command returns a
//! negative errno and changes nothing.

use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};
use zerocopy::{FromBytes, IntoBytes};

use crate::{
    abstractions::uring_cmd::UringCmd,
    card::Card,
    domain::stream::{BatchRequest, StartModeration},
    uapi::{
        ops, AttachCmd, ControlCmd, CopyOutCmd, DetachCmd, PortCmd, QueueBatchCmd, QueueCmd,
        StartCmd, MAX_IRQ_DELAY_US, MAX_IRQ_FRAMES, MAX_PORT_BYTES, MAX_REGIONS, START_IRQ_DELAY,
        START_IRQ_FRAMES,
    },
};

// The ABI's payload is the SQE's command area.
const _: () =
    assert!(crate::uapi::CMD_PAYLOAD_BYTES == crate::abstractions::uring_cmd::PAYLOAD_BYTES);

/// Handles one command; the value becomes the CQE's `res` (`-EIOCBQUEUED`: in flight).
/// `owner` identifies the file it was submitted on (see `file.rs`).
pub(crate) fn handle(card: &Card, owner: u64, cmd: UringCmd) -> Result<i32> {
    if cmd.is_cancel() {
        card.cancel(&cmd);
        return Ok(0);
    }
    let result = answer(card, owner, cmd);
    // Anything but "in flight" is this command's completion, posted by io_uring now.
    card.count_command(result != Err(EIOCBQUEUED));
    result
}

/// Decodes and executes one command (not a cancel call).
fn answer(card: &Card, owner: u64, cmd: UringCmd) -> Result<i32> {
    match cmd.op() {
        ops::INFO => copy_out(card.info().as_bytes(), &cmd.payload()?),
        ops::STATS => copy_out(card.stats().as_bytes(), &cmd.payload()?),
        ops::ATTACH => {
            cqe32(&cmd)?;
            let request = AttachCmd::read_from_bytes(&cmd.payload()?).map_err(|_| EINVAL)?;
            if request.flags != 0 || request.region >= MAX_REGIONS || request.reserved != [0; 5] {
                return Err(EINVAL);
            }
            card.attach(owner, cmd, &request)?;
            Err(EIOCBQUEUED)
        }
        ops::QUEUE => {
            cqe32(&cmd)?;
            let request = QueueCmd::read_from_bytes(&cmd.payload()?).map_err(|_| EINVAL)?;
            if request.flags != 0
                || request.region >= MAX_REGIONS
                || request.reserved0 != 0
                || request.reserved != [0; 7]
            {
                return Err(EINVAL);
            }
            card.queue(owner, cmd, &request)?;
            Err(EIOCBQUEUED)
        }
        ops::QUEUE_BATCH => {
            cqe32(&cmd)?;
            let request = QueueBatchCmd::read_from_bytes(&cmd.payload()?).map_err(|_| EINVAL)?;
            if request.flags != 0 || request.region >= MAX_REGIONS || request.reserved != [0; 7] {
                return Err(EINVAL);
            }
            card.queue_batch(
                owner,
                cmd,
                &BatchRequest {
                    region: request.region,
                    first: request.first,
                    count: request.count,
                    meta_addr: request.meta_addr,
                },
            )?;
            Err(EIOCBQUEUED)
        }
        ops::DETACH => {
            let request = DetachCmd::read_from_bytes(&cmd.payload()?).map_err(|_| EINVAL)?;
            if request.flags != 0 || request.region >= MAX_REGIONS || request.reserved != [0; 9] {
                return Err(EINVAL);
            }
            card.detach(owner, request.region)?;
            Ok(0)
        }
        ops::START => {
            card.start(owner, start(&cmd)?)?;
            Ok(0)
        }
        ops::STOP => {
            control(&cmd)?;
            card.stop(owner)?;
            Ok(0)
        }
        ops::XML_READ => {
            let request = port(&cmd)?;
            let (len, bytes) = card.xml_read(request.offset, request.size)?;
            user(&request, bytes.len())?.writer().write_slice(&bytes)?;
            // CAST: at most `MAX_PORT_BYTES`, or the XML's size (at most 24 KiB).
            Ok(len as i32)
        }
        ops::FEATURE_READ => {
            let request = port(&cmd)?;
            let bytes = card.feature_read(request.offset, request.size)?;
            user(&request, bytes.len())?.writer().write_slice(&bytes)?;
            // CAST: at most `MAX_PORT_BYTES`.
            Ok(request.size as i32)
        }
        ops::FEATURE_WRITE => {
            let request = port(&cmd)?;
            if request.size == 0 || request.size > MAX_PORT_BYTES {
                return Err(EINVAL);
            }
            // CAST: u32 to usize, widening.
            let mut bytes = KVec::from_elem(0u8, request.size as usize, GFP_KERNEL)?;
            user(&request, bytes.len())?
                .reader()
                .read_slice(&mut bytes)?;
            card.feature_write(owner, request.offset, &bytes)?;
            // CAST: at most `MAX_PORT_BYTES`.
            Ok(request.size as i32)
        }
        _ => Err(EOPNOTSUPP),
    }
}

/// `XML_READ`, `FEATURE_READ`, `FEATURE_WRITE`: the payload, flags and reserved fields
/// zero.
fn port(cmd: &UringCmd) -> Result<PortCmd> {
    let request = PortCmd::read_from_bytes(&cmd.payload()?).map_err(|_| EINVAL)?;
    if request.flags != 0 || request.reserved0 != 0 || request.reserved != [0; 7] {
        return Err(EINVAL);
    }
    Ok(request)
}

/// The user memory of a camera command: `len` bytes at its `addr`.
fn user(request: &PortCmd, len: usize) -> Result<UserSlice> {
    let addr = usize::try_from(request.addr).map_err(|_| EFAULT)?;
    Ok(UserSlice::new(UserPtr::from_addr(addr), len))
}

/// `ATTACH`, `QUEUE`, `QUEUE_BATCH`: frame completions carry the sequence number in a 32-byte CQE, so a
/// ring without them cannot stream.
fn cqe32(cmd: &UringCmd) -> Result {
    if cmd.has_cqe32() {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

/// `START`: the interrupt moderation it asks for. A value without its flag, a delay or
/// count beyond its maximum, and a count above 1 (or left to the driver) with a zero time
/// bound (the card would then signal every frame, not what was asked) are `EINVAL`.
fn start(cmd: &UringCmd) -> Result<StartModeration> {
    let request = StartCmd::read_from_bytes(&cmd.payload()?).map_err(|_| EINVAL)?;
    if request.flags & !(START_IRQ_DELAY | START_IRQ_FRAMES) != 0
        || request.reserved0 != 0
        || request.reserved != [0; 8]
    {
        return Err(EINVAL);
    }
    let delay_us = if request.flags & START_IRQ_DELAY != 0 {
        if request.irq_delay_us > MAX_IRQ_DELAY_US {
            return Err(EINVAL);
        }
        Some(request.irq_delay_us)
    } else if request.irq_delay_us != 0 {
        return Err(EINVAL);
    } else {
        None
    };
    let frames = if request.flags & START_IRQ_FRAMES != 0 {
        match request.irq_frames {
            0 => None,
            frames if frames > MAX_IRQ_FRAMES => return Err(EINVAL),
            frames => Some(frames),
        }
    } else if request.irq_frames != 0 {
        return Err(EINVAL);
    } else {
        Some(1)
    };
    if delay_us == Some(0) && frames != Some(1) {
        return Err(EINVAL);
    }
    Ok(StartModeration { delay_us, frames })
}

/// `STOP`: the payload must be all zeros.
fn control(cmd: &UringCmd) -> Result {
    let request = ControlCmd::read_from_bytes(&cmd.payload()?).map_err(|_| EINVAL)?;
    if request.flags != 0 || request.reserved0 != 0 || request.reserved != [0; 9] {
        return Err(EINVAL);
    }
    Ok(())
}

/// `INFO`, `STATS`: copies up to `size` bytes of `bytes` to `addr`, returns the count.
fn copy_out(bytes: &[u8], payload: &[u8]) -> Result<i32> {
    let request = CopyOutCmd::read_from_bytes(payload).map_err(|_| EINVAL)?;
    if request.flags != 0 || request.reserved != [0; 8] || request.size == 0 {
        return Err(EINVAL);
    }
    let len = bytes.len().min(request.size as usize);
    let addr = usize::try_from(request.addr).map_err(|_| EFAULT)?;
    UserSlice::new(UserPtr::from_addr(addr), len)
        .writer()
        .write_slice(&bytes[..len])?;
    // CAST: `len` is at most the size of a uapi structure.
    Ok(len as i32)
}
