// SPDX-License-Identifier: GPL-2.0

//! File operations of `/dev/fgrabN`, called from the table in `shim.c`.

use core::{
    ffi::{c_int, c_long, c_uint, c_ulong},
    sync::atomic::{AtomicU64, Ordering},
};
use kernel::{
    bindings,
    prelude::*,
    sync::Arc,
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice},
};
use zerocopy::IntoBytes;

use crate::{
    card::Card,
    shim::{MiscNode, RawUringCmd, UringCmd},
    uapi::{ioctls, FrameMeta},
    uring,
};

/// Source of [`OpenFile::id`]s; 64 bits never wrap in practice.
static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

/// What one open file of a card owns.
pub(crate) struct OpenFile {
    card: Arc<Card>,
    /// Identifies the file as owner of a region (addresses of freed files get reused).
    id: u64,
}

impl OpenFile {
    /// The card this file was opened on.
    pub(crate) fn card(&self) -> &Card {
        &self.card
    }

    /// This file's identity.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        self.card.release(self.id);
    }
}

/// `->open`: attaches an [`OpenFile`] to the file.
///
/// # Safety
///
/// Called by the VFS through `misc_open()`, which stored the `struct miscdevice` in
/// `file->private_data` and holds `misc_mtx` for the duration.
#[no_mangle]
unsafe extern "C" fn fgrab_file_open(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `file` is valid during open; `misc_open()` set `private_data` to our node's
    // `struct miscdevice`, which stays registered while `misc_mtx` is held.
    let node = unsafe { MiscNode::from_raw((*file).private_data.cast()) };
    let open = match KBox::new(
        OpenFile {
            card: node.card().clone(),
            id: NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed),
        },
        GFP_KERNEL,
    ) {
        Ok(open) => open,
        Err(error) => return Error::from(error).to_errno(),
    };
    // SAFETY: the file is being opened, so we own `private_data`; `release` takes it back.
    unsafe { (*file).private_data = open.into_foreign().cast() };
    0
}

/// `->release`: drops the file's [`OpenFile`].
///
/// # Safety
///
/// Called by the VFS once, after the last reference to a file opened by `fgrab_file_open`.
#[no_mangle]
unsafe extern "C" fn fgrab_file_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `private_data` was set by `fgrab_file_open` from `KBox::into_foreign`, and
    // release runs once, after every other file operation finished.
    drop(unsafe { KBox::<OpenFile>::from_foreign((*file).private_data.cast()) });
    0
}

/// `->uring_cmd`: decodes and answers one io_uring command.
///
/// # Safety
///
/// Called by io_uring with a valid command on a file opened by `fgrab_file_open`.
#[no_mangle]
unsafe extern "C" fn fgrab_file_uring_cmd(cmd: *mut RawUringCmd, issue_flags: c_uint) -> c_int {
    // SAFETY: `cmd` is the command of this `->uring_cmd` call and is used only during it.
    let Some(cmd) = (unsafe { UringCmd::from_raw(cmd, issue_flags) }) else {
        return EINVAL.to_errno();
    };
    let file = cmd.file();
    // SAFETY: the file is open (io_uring holds a reference for the request), so its
    // `private_data` is the `OpenFile` set in `fgrab_file_open` and not yet released.
    let open = unsafe { <KBox<OpenFile> as ForeignOwnable>::borrow((*file).private_data.cast()) };
    match uring::handle(open, cmd) {
        Ok(result) => result,
        Err(error) => error.to_errno(),
    }
}

/// The [`OpenFile`] of a file opened by `fgrab_file_open`.
///
/// # Safety
///
/// `file` is such a file, not yet released, for the returned lifetime.
unsafe fn open_file<'a>(file: *mut bindings::file) -> &'a OpenFile {
    // SAFETY: per the contract `private_data` is the `OpenFile` set in `fgrab_file_open`.
    unsafe { <KBox<OpenFile> as ForeignOwnable>::borrow((*file).private_data.cast()) }
}

/// `->read`: the copy path (see `Card::read`); one frame per call, `count` bytes of it.
///
/// # Safety
///
/// Called by the VFS on a file opened by `fgrab_file_open`, with a user buffer of `count`
/// bytes.
#[no_mangle]
unsafe extern "C" fn fgrab_file_read(
    file: *mut bindings::file,
    buf: *mut u8,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: the VFS holds the file open during `->read`.
    let open = unsafe { open_file(file) };
    let mut writer = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
    match open.card().read(open.id(), &mut writer) {
        // CAST: at most `count`, which the VFS bounds by `MAX_RW_COUNT`.
        Ok(copied) => copied as isize,
        Err(error) => error.to_errno() as isize,
    }
}

/// `->unlocked_ioctl`: the per-frame blocking path (`QBUF`, `DQBUF`).
///
/// # Safety
///
/// Called by the VFS on a file opened by `fgrab_file_open`.
#[no_mangle]
unsafe extern "C" fn fgrab_file_ioctl(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: the VFS holds the file open during `->unlocked_ioctl`.
    let open = unsafe { open_file(file) };
    // CAST: `arg` is a user address.
    let user = UserPtr::from_addr(arg as usize);
    let result = match cmd {
        ioctls::QBUF => UserSlice::new(user, core::mem::size_of::<u32>())
            .reader()
            .read::<u32>()
            .and_then(|index| open.card().qbuf(open.id(), index)),
        ioctls::DQBUF => open.card().dqbuf(open.id()).and_then(|meta: FrameMeta| {
            UserSlice::new(user, core::mem::size_of::<FrameMeta>())
                .writer()
                .write_slice(meta.as_bytes())
        }),
        _ => Err(ENOTTY),
    };
    match result {
        Ok(()) => 0,
        Err(error) => c_long::from(error.to_errno()),
    }
}
