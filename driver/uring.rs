// SPDX-License-Identifier: GPL-2.0

//! Decoding and answering `URING_CMD` submissions (`docs/abi.md`).
//!
//! Validation happens on a private copy of the payload. A rejected command returns a
//! negative errno and changes nothing.

use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};
use zerocopy::{FromBytes, IntoBytes};

use crate::{
    card::Card,
    file::OpenFile,
    shim::UringCmd,
    uapi::{ops, InfoCmd},
};

/// Handles one command; the value becomes the CQE's `res`.
pub(crate) fn handle(file: &OpenFile, cmd: &UringCmd) -> Result<i32> {
    match cmd.op() {
        ops::INFO => info(file.card(), &cmd.payload()?),
        _ => Err(EOPNOTSUPP),
    }
}

/// `INFO`: copies up to `size` bytes of the card's `DeviceInfo` to `addr`.
fn info(card: &Card, payload: &[u8]) -> Result<i32> {
    let request = InfoCmd::read_from_bytes(payload).map_err(|_| EINVAL)?;
    if request.flags != 0 || request.reserved != [0; 8] || request.size == 0 {
        return Err(EINVAL);
    }
    let bytes = card.info().as_bytes();
    let len = bytes.len().min(request.size as usize);
    let addr = usize::try_from(request.addr).map_err(|_| EFAULT)?;
    UserSlice::new(UserPtr::from_addr(addr), len)
        .writer()
        .write_slice(&bytes[..len])?;
    // CAST: `len` is at most `size_of::<DeviceInfo>()`.
    Ok(len as i32)
}
