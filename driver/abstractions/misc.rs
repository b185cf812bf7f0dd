// SPDX-License-Identifier: GPL-2.0

//! A misc character device whose files take io_uring commands, with read-only sysfs
//! attributes ([`MiscRegistration`], [`MiscFile`]).
//!
//! `kernel::miscdevice` in 7.3 builds a `file_operations` table without `.uring_cmd`, has no
//! parent device and no attribute groups. The table lives in `shim.c` and calls the
//! trampolines below, which find the registration's [`MiscFile`] implementation through a
//! vtable stored beside the `struct miscdevice` (at open) and beside each open file's
//! state (afterwards).

use core::{
    ffi::{c_int, c_long, c_uint, c_ulong, c_void},
    marker::PhantomData,
};
use kernel::{
    bindings,
    error::to_result,
    ffi::c_char,
    pci,
    prelude::*,
    str::CString,
    sync::Arc,
    types::Opaque,
    uaccess::{UserPtr, UserSlice, UserSliceWriter},
};

use super::{pci::raw, shim, uring_cmd::RawUringCmd, uring_cmd::UringCmd};

/// The files of a misc device: one value per open file, dropped at release.
pub(crate) trait MiscFile: Sized + Send + Sync + 'static {
    /// What the registration hands every open (the device the node stands for).
    type Device: Send + Sync + 'static;

    /// Names of the read-only attributes of the device node in sysfs.
    const ATTRIBUTES: &'static [&'static CStr];

    /// `->open`.
    fn open(device: &Arc<Self::Device>) -> Result<Self>;

    /// `->uring_cmd`: the result becomes the CQE's `res`; `Err(EIOCBQUEUED)` keeps the
    /// command in flight (see [`UringCmd::into_pending`]).
    fn uring_cmd(&self, cmd: UringCmd) -> Result<i32>;

    /// `->read` into `writer`; returns the bytes written.
    fn read(&self, writer: &mut UserSliceWriter) -> Result<usize>;

    /// `->unlocked_ioctl` with the user address `arg`.
    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result;

    /// The text of attribute `index` of [`Self::ATTRIBUTES`] (a newline is added).
    fn show_attribute(device: &Self::Device, index: usize) -> Result<CString>;
}

/// How the trampolines reach a [`MiscFile`] implementation.
struct VTable {
    open: unsafe fn(*const Header, *mut bindings::file) -> c_int,
    release: unsafe fn(*mut c_void),
    uring_cmd: unsafe fn(*mut c_void, UringCmd) -> c_int,
    read: unsafe fn(*mut c_void, *mut u8, usize) -> isize,
    ioctl: unsafe fn(*mut c_void, c_uint, c_ulong) -> c_long,
    show: unsafe fn(*const Header, *const c_char, *mut u8) -> isize,
}

/// The part of a registration the trampolines know: the `struct miscdevice` that
/// `misc_open()` stores in `file->private_data`, and the vtable.
#[repr(C)]
struct Header {
    raw: Opaque<bindings::miscdevice>,
    vtable: &'static VTable,
}

/// A registration's node: [`Header`] first, so that one is found from the other.
#[repr(C)]
struct Node<T: MiscFile> {
    header: Header,
    name: CString,
    device: Arc<T::Device>,
}

/// An open file's state: the vtable first, so that trampolines find it without knowing `T`.
#[repr(C)]
struct Open<T> {
    vtable: &'static VTable,
    file: T,
}

struct VTableOf<T>(PhantomData<T>);

impl<T: MiscFile> VTableOf<T> {
    const VTABLE: VTable = VTable {
        open: open::<T>,
        release: release::<T>,
        uring_cmd: uring_cmd::<T>,
        read: read::<T>,
        ioctl: ioctl::<T>,
        show: show::<T>,
    };
}

/// A registered misc device `/dev/<name>`; deregistered when dropped. Open files hold their
/// own reference to the device, so dropping this while files are open is fine.
///
/// # Invariants
///
/// The node is registered, and deregistered once, by `Drop`, before the box is freed.
pub(crate) struct MiscRegistration<T: MiscFile>(Pin<KBox<Node<T>>>);

// SAFETY: the `struct miscdevice` is written only by `misc_register()` and
// `misc_deregister()`, which serialize on `misc_mtx`; its raw pointers (name, fops, parent,
// groups) refer to data that lives at least as long as the node. `device` is an `Arc` of a
// `Send + Sync` type.
unsafe impl<T: MiscFile> Send for MiscRegistration<T> {}
// SAFETY: shared references do not touch the node.
unsafe impl<T: MiscFile> Sync for MiscRegistration<T> {}

impl<T: MiscFile> MiscRegistration<T> {
    /// Registers `/dev/<name>` for `device`, as a child of `parent` in sysfs, with
    /// `T::ATTRIBUTES`.
    ///
    /// # Errors
    ///
    /// Those of `misc_register()`; `ENOMEM`.
    pub(crate) fn new(name: CString, device: Arc<T::Device>, parent: &pci::Device) -> Result<Self> {
        let node = KBox::pin(
            Node::<T> {
                header: Header {
                    raw: Opaque::zeroed(),
                    vtable: &VTableOf::<T>::VTABLE,
                },
                name,
                device,
            },
            GFP_KERNEL,
        )?;
        let mut names = KVec::with_capacity(T::ATTRIBUTES.len(), GFP_KERNEL)?;
        for attribute in T::ATTRIBUTES {
            names.push(attribute.as_char_ptr(), GFP_KERNEL)?;
        }
        let count = c_uint::try_from(names.len()).map_err(|_| EINVAL)?;
        // SAFETY: `node.header.raw` is zeroed, pinned and outlives the registration
        // (deregistered in `Drop` before the box is freed); `name` lives as long as `node`;
        // `parent` is a bound device that outlives the registration (its driver drops it
        // at unbind); the attribute names are `'static` (the shim copies the array).
        to_result(unsafe {
            shim::fgrab_shim_misc_register(
                node.header.raw.get().cast(),
                node.name.as_char_ptr(),
                raw(parent),
                names.as_ptr(),
                count,
            )
        })?;
        // INVARIANT: registered; deregistered once, in `Drop`.
        Ok(Self(node))
    }
}

impl<T: MiscFile> Drop for MiscRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant); deregistered once, here. This waits for
        // attribute readers and for opens in progress (`misc_mtx`).
        unsafe { shim::fgrab_shim_misc_deregister(self.0.header.raw.get().cast()) };
    }
}

/// The node whose `struct miscdevice` is at `misc`.
///
/// # Safety
///
/// `misc` is the `raw` field of a registered node's [`Header`], registered for `'a`.
unsafe fn node<'a, T: MiscFile>(header: *const Header) -> &'a Node<T> {
    // SAFETY: per the contract, `header` is the first field of a `repr(C)` `Node<T>`: the
    // vtable it holds was built for this `T`.
    unsafe { &*header.cast::<Node<T>>() }
}

/// # Safety
///
/// `header` is registered for the call (`misc_open()` holds `misc_mtx`); `file` is being
/// opened.
unsafe fn open<T: MiscFile>(header: *const Header, file: *mut bindings::file) -> c_int {
    // SAFETY: per the contract.
    let node = unsafe { node::<T>(header) };
    let opened = T::open(&node.device).and_then(|file| {
        KBox::new(
            Open {
                vtable: node.header.vtable,
                file,
            },
            GFP_KERNEL,
        )
        .map_err(Into::into)
    });
    match opened {
        Ok(opened) => {
            // SAFETY: the file is being opened, so we own `private_data`; `release` takes it
            // back.
            unsafe { (*file).private_data = KBox::into_raw(opened).cast() };
            0
        }
        Err(error) => error.to_errno(),
    }
}

/// # Safety
///
/// `private` is the `private_data` that [`open`] set, released once, after every other
/// file operation finished.
unsafe fn release<T: MiscFile>(private: *mut c_void) {
    // SAFETY: per the contract, from `KBox::into_raw` in `open`.
    drop(unsafe { KBox::from_raw(private.cast::<Open<T>>()) });
}

/// The open file's `T`.
///
/// # Safety
///
/// `private` is the `private_data` that [`open`] set, not released for `'a`.
unsafe fn file<'a, T: MiscFile>(private: *mut c_void) -> &'a T {
    // SAFETY: per the contract.
    unsafe { &(*private.cast::<Open<T>>()).file }
}

/// # Safety
///
/// As [`file`]; `cmd` is this call's command.
unsafe fn uring_cmd<T: MiscFile>(private: *mut c_void, cmd: UringCmd) -> c_int {
    // SAFETY: per the contract.
    match unsafe { file::<T>(private) }.uring_cmd(cmd) {
        Ok(result) => result,
        Err(error) => error.to_errno(),
    }
}

/// # Safety
///
/// As [`file`]; `buf` is a user buffer of `count` bytes.
unsafe fn read<T: MiscFile>(private: *mut c_void, buf: *mut u8, count: usize) -> isize {
    let mut writer = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
    // SAFETY: per the contract.
    match unsafe { file::<T>(private) }.read(&mut writer) {
        // CAST: at most `count`, which the VFS bounds by `MAX_RW_COUNT`.
        Ok(copied) => copied as isize,
        Err(error) => error.to_errno() as isize,
    }
}

/// # Safety
///
/// As [`file`].
unsafe fn ioctl<T: MiscFile>(private: *mut c_void, cmd: c_uint, arg: c_ulong) -> c_long {
    // CAST: `arg` is a user address.
    let user = UserPtr::from_addr(arg as usize);
    // SAFETY: per the contract.
    match unsafe { file::<T>(private) }.ioctl(cmd, user) {
        Ok(()) => 0,
        Err(error) => c_long::from(error.to_errno()),
    }
}

/// # Safety
///
/// `header` is registered for the call; `name` is the NUL-terminated name of one of its
/// attributes; `buf` is sysfs's page-sized buffer.
unsafe fn show<T: MiscFile>(header: *const Header, name: *const c_char, buf: *mut u8) -> isize {
    // SAFETY: per the contract.
    let node = unsafe { node::<T>(header) };
    // SAFETY: per the contract `name` is NUL-terminated and lives for the call.
    let name = unsafe { CStr::from_char_ptr(name) };
    let Some(index) = T::ATTRIBUTES.iter().position(|known| *known == name) else {
        return ENOENT.to_errno() as isize;
    };
    let text = match T::show_attribute(&node.device, index) {
        Ok(text) => text,
        Err(error) => return error.to_errno() as isize,
    };
    let bytes = text.to_bytes();
    // Room for the newline and the NUL that sysfs expects within its page.
    let len = bytes.len().min(kernel::page::PAGE_SIZE - 2);
    // SAFETY: `buf` holds a page (contract), and `len + 1` bytes are below it.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, len);
        buf.add(len).write(b'\n');
    }
    // CAST: below a page.
    (len + 1) as isize
}

/// The [`Header`] of the registered node whose `struct miscdevice` is `misc`.
fn header_of(misc: *mut c_void) -> *const Header {
    // CAST: `raw` is the first field of the `repr(C)` `Header`.
    misc.cast_const().cast()
}

/// The vtable of an open file's state (the first field of every `Open<T>`).
///
/// # Safety
///
/// `private` is the `private_data` that [`open`] set, not released yet.
unsafe fn vtable_of(private: *mut c_void) -> &'static VTable {
    // SAFETY: per the contract, `private` points to a `repr(C)` `Open<T>`, whose first
    // field is the vtable.
    unsafe { *private.cast::<&'static VTable>() }
}

/// `->open` of the table in `shim.c`.
///
/// # Safety
///
/// Called by the VFS through `misc_open()`, which stored the `struct miscdevice` in
/// `file->private_data` and holds `misc_mtx` for the duration.
#[no_mangle]
unsafe extern "C" fn fgrab_file_open(_inode: *mut c_void, file: *mut bindings::file) -> c_int {
    // SAFETY: `file` is being opened; `misc_open()` set `private_data` to one of our
    // nodes' `struct miscdevice`, registered while `misc_mtx` is held.
    let header = header_of(unsafe { (*file).private_data });
    // SAFETY: as above.
    unsafe { ((*header).vtable.open)(header, file) }
}

/// `->release` of the table in `shim.c`.
///
/// # Safety
///
/// Called by the VFS once, after the last reference to a file opened by `fgrab_file_open`.
#[no_mangle]
unsafe extern "C" fn fgrab_file_release(_inode: *mut c_void, file: *mut bindings::file) -> c_int {
    // SAFETY: `private_data` was set by a successful open, released once, here.
    unsafe {
        let private = (*file).private_data;
        (vtable_of(private).release)(private);
    }
    0
}

/// `->uring_cmd` of the table in `shim.c`.
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
    let file = cmd.file().cast::<bindings::file>();
    // SAFETY: the file is open (io_uring holds a reference for the request), so its
    // `private_data` is the state set by a successful open, not yet released.
    unsafe {
        let private = (*file).private_data;
        (vtable_of(private).uring_cmd)(private, cmd)
    }
}

/// `->read` of the table in `shim.c`.
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
    _ppos: *mut c_void,
) -> isize {
    // SAFETY: the VFS holds the file open during `->read`.
    unsafe {
        let private = (*file).private_data;
        (vtable_of(private).read)(private, buf, count)
    }
}

/// `->unlocked_ioctl` of the table in `shim.c`.
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
    unsafe {
        let private = (*file).private_data;
        (vtable_of(private).ioctl)(private, cmd, arg)
    }
}

/// Show function of every attribute the shim creates for a registration.
///
/// # Safety
///
/// `misc` is the drvdata of a registered node's class device (the misc core removes the
/// attributes, waiting for readers, before `misc_deregister()` returns); `name` is the
/// attribute's name; `buf` is sysfs's page.
#[no_mangle]
unsafe extern "C" fn fgrab_misc_show(
    misc: *mut c_void,
    name: *const c_char,
    buf: *mut u8,
) -> isize {
    let header = header_of(misc);
    // SAFETY: per the function's contract.
    unsafe { ((*header).vtable.show)(header, name, buf) }
}
