// SPDX-License-Identifier: GPL-2.0

//! Rust side of the C shim (`shim.c`): its raw declarations, and the safe types built on
//! them. No other module declares `extern "C"` items.

use core::ffi::{c_int, c_uint, c_void};
use kernel::{bindings, error::to_result, prelude::*, str::CString, sync::Arc, types::Opaque};

use crate::card::Card;

/// `kernel::pci::Device` is `#[repr(transparent)]` over `struct pci_dev`, which is what lets
/// [`raw_pci_dev`] hand it to C. Fence that assumption.
const _: () = assert!(
    core::mem::size_of::<kernel::pci::Device>() == core::mem::size_of::<bindings::pci_dev>()
);

/// The `struct pci_dev` behind a Rust PCI device, for the shim.
fn raw_pci_dev(pdev: &kernel::pci::Device) -> *mut c_void {
    // CAST: `pci::Device` is `#[repr(transparent)]` over `Opaque<bindings::pci_dev>`.
    core::ptr::from_ref(pdev).cast_mut().cast()
}

/// PCI location of `pdev` as `domain << 16 | bus << 8 | devfn`.
pub(crate) fn pci_location(pdev: &kernel::pci::Device) -> u32 {
    // SAFETY: `raw_pci_dev` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    unsafe { fgrab_shim_pci_location(raw_pci_dev(pdev)) }
}

/// `struct io_uring_cmd`, only ever handled by pointer.
#[repr(C)]
pub(crate) struct RawUringCmd {
    _opaque: [u8; 0],
}

// Kernel structs are declared as `c_void` here: some of their bindgen types embed members
// that rustc does not consider FFI-safe (`improper_ctypes`), and the shim only needs their
// addresses. The C prototypes in shim.c carry the real types.
extern "C" {
    fn fgrab_shim_misc_register(
        misc: *mut c_void,
        name: *const kernel::ffi::c_char,
        pdev: *mut c_void,
    ) -> c_int;
    fn fgrab_shim_pci_location(pdev: *mut c_void) -> u32;
    fn fgrab_shim_misc_deregister(misc: *mut c_void);
    fn fgrab_shim_card_index_alloc() -> c_int;
    fn fgrab_shim_card_index_free(index: c_int);
    fn fgrab_shim_cmd_op(cmd: *const RawUringCmd) -> u32;
    fn fgrab_shim_cmd_file(cmd: *const RawUringCmd) -> *mut c_void;
    fn fgrab_shim_cmd_payload(
        cmd: *const RawUringCmd,
        issue_flags: c_uint,
        dst: *mut c_void,
        len: usize,
    ) -> c_int;
}

/// A card number (the N of `/dev/fgrabN`), returned to the pool when dropped.
pub(crate) struct CardIndex(c_int);

impl CardIndex {
    /// Takes the smallest free card number.
    pub(crate) fn alloc() -> Result<Self> {
        // SAFETY: no preconditions; the IDA is static in the shim.
        let index = unsafe { fgrab_shim_card_index_alloc() };
        to_result(index)?;
        Ok(Self(index))
    }

    /// The number.
    pub(crate) fn get(&self) -> u32 {
        // CAST: `alloc` only keeps non-negative values.
        self.0 as u32
    }
}

impl Drop for CardIndex {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `fgrab_shim_card_index_alloc` and is freed once.
        unsafe { fgrab_shim_card_index_free(self.0) };
    }
}

/// The registered `struct miscdevice` and what an opening file needs from it.
///
/// Lives in a pinned box: `misc_open()` hands its address to [`MiscNode::from_raw`].
pub(crate) struct MiscNode {
    raw: Opaque<bindings::miscdevice>,
    name: CString,
    card: Arc<Card>,
}

// SAFETY: the `struct miscdevice` is written only by `misc_register()` and
// `misc_deregister()`, which serialize on `misc_mtx`; its raw pointers (name, fops, parent)
// refer to data that lives at least as long as the node. `card` is an `Arc` of a `Sync` type.
unsafe impl Send for MiscNode {}
// SAFETY: shared references only read `card` and hand `raw` to C, see `Send` above.
unsafe impl Sync for MiscNode {}

impl MiscNode {
    /// The card behind an open of this node.
    pub(crate) fn card(&self) -> &Arc<Card> {
        &self.card
    }

    /// Recovers the node from the `struct miscdevice` that `misc_open()` stored in
    /// `file->private_data`.
    ///
    /// # Safety
    ///
    /// `misc` must point to the `raw` field of a [`MiscNode`] that stays registered for `'a`
    /// (true during `open`: `misc_open()` holds `misc_mtx`, which `misc_deregister()` takes).
    pub(crate) unsafe fn from_raw<'a>(misc: *mut bindings::miscdevice) -> &'a MiscNode {
        let raw = misc.cast::<Opaque<bindings::miscdevice>>();
        // SAFETY: per the function's contract `raw` is the `raw` field of a live `MiscNode`.
        unsafe { &*kernel::container_of!(raw, MiscNode, raw) }
    }
}

/// A registered `/dev/fgrabN`; deregistered when dropped. Open files keep the [`Card`]
/// alive on their own, so dropping this while files are open is fine.
pub(crate) struct MiscRegistration(Pin<KBox<MiscNode>>);

impl MiscRegistration {
    /// Registers `/dev/<name>` for `card`, as a child of `parent` in sysfs.
    pub(crate) fn new(
        name: CString,
        card: Arc<Card>,
        parent: &kernel::pci::Device,
    ) -> Result<Self> {
        let node = KBox::pin(
            MiscNode {
                raw: Opaque::zeroed(),
                name,
                card,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `node.raw` is zeroed, pinned and outlives the registration (deregistered in
        // `Drop` before the box is freed); `name` lives as long as `node`; `parent` is a
        // bound device that outlives the registration (dropped with the driver data).
        to_result(unsafe {
            fgrab_shim_misc_register(
                node.raw.get().cast(),
                node.name.as_char_ptr(),
                raw_pci_dev(parent),
            )
        })?;
        // INVARIANT: the node is registered and deregistered exactly once, in `Drop`.
        Ok(Self(node))
    }
}

impl Drop for MiscRegistration {
    fn drop(&mut self) {
        // SAFETY: registered in `new` (type invariant); deregistered once, here.
        unsafe { fgrab_shim_misc_deregister(self.0.raw.get().cast()) };
    }
}

/// One `URING_CMD` submission, valid for the duration of the `->uring_cmd` call.
pub(crate) struct UringCmd {
    raw: *mut RawUringCmd,
    issue_flags: c_uint,
}

impl UringCmd {
    /// Wraps the arguments of `->uring_cmd`.
    ///
    /// # Safety
    ///
    /// `raw` must be the command passed to `->uring_cmd`, used only during that call.
    pub(crate) unsafe fn from_raw(raw: *mut RawUringCmd, issue_flags: c_uint) -> Self {
        Self { raw, issue_flags }
    }

    /// `sqe->cmd_op`.
    pub(crate) fn op(&self) -> u32 {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { fgrab_shim_cmd_op(self.raw) }
    }

    /// The file the command was submitted on.
    pub(crate) fn file(&self) -> *mut bindings::file {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { fgrab_shim_cmd_file(self.raw) }.cast()
    }

    /// Copies the 80-byte payload out of the SQE (read once; user space may change the SQE).
    ///
    /// # Errors
    ///
    /// `EINVAL` if the ring was not created with `IORING_SETUP_SQE128`.
    pub(crate) fn payload(&self) -> Result<[u8; crate::uapi::CMD_PAYLOAD_BYTES]> {
        let mut payload = [0u8; crate::uapi::CMD_PAYLOAD_BYTES];
        // SAFETY: `raw` is valid for this call; `payload` is writable for its length.
        to_result(unsafe {
            fgrab_shim_cmd_payload(
                self.raw,
                self.issue_flags,
                payload.as_mut_ptr().cast(),
                payload.len(),
            )
        })?;
        Ok(payload)
    }
}
