//! Memory the card writes frames into.
//!
//! A [`Buffer`] always *owns* its memory while a stream uses it: the card may write into it
//! until the driver has confirmed the end of the region, and only ownership guarantees that
//! nobody frees or reuses it earlier (a borrowed slice could be released by leaking the
//! stream with `mem::forget`). Owned memory of a leaked stream simply leaks with it.

use crate::{Error, Result};
use std::marker::PhantomData;

/// Huge page size used for allocation (x86-64 PMD).
const HUGE_PAGE: usize = 2 << 20;

enum Owner<'a> {
    /// An anonymous mapping made by [`Buffer::allocate`], unmapped on drop.
    Mapping,
    /// Caller memory handed over as a boxed slice (returned by `Stream::detach`), held as
    /// the raw pointer `Box::into_raw` gave, so that no `Box` asserts unique access while
    /// the card writes it; rebuilt by `into_box` or freed on drop.
    Boxed,
    /// Caller memory the caller keeps owning (FFI layers, `raw-buffers` feature).
    #[cfg_attr(not(feature = "raw-buffers"), allow(dead_code))]
    Raw(PhantomData<&'a mut [u8]>),
}

/// Frame memory: allocated by the library or adopted from the caller.
pub struct Buffer<'a> {
    ptr: *mut u8,
    len: usize,
    huge: bool,
    owner: Owner<'a>,
}

impl std::fmt::Debug for Buffer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owner = match self.owner {
            Owner::Mapping => "mapping",
            Owner::Boxed => "adopted box",
            Owner::Raw(_) => "caller memory",
        };
        f.debug_struct("Buffer")
            .field("len", &self.len)
            .field("huge", &self.huge)
            .field("owner", &owner)
            .finish_non_exhaustive()
    }
}

// SAFETY: the buffer owns its memory (or, for raw buffers, the caller promised exclusive
// use); it is only accessed through `&self`/`&mut self`.
unsafe impl Send for Buffer<'_> {}

impl Buffer<'static> {
    /// Allocates `len` bytes for frames: from the hugetlb pool when it has room (fewest
    /// descriptors per frame), else anonymous memory advised to use transparent huge pages.
    ///
    /// # Errors
    ///
    /// [`Error::Buffer`] if no memory can be mapped.
    pub fn allocate(len: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::Buffer {
                what: "allocate",
                reason: "zero bytes requested".into(),
            });
        }
        let rounded = len.next_multiple_of(HUGE_PAGE);
        let map = |flags: libc::c_int| {
            // SAFETY: anonymous mapping at an address of the kernel's choice.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    rounded,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | flags,
                    -1,
                    0,
                )
            };
            (ptr != libc::MAP_FAILED).then_some(ptr)
        };
        let (ptr, huge) = match map(libc::MAP_HUGETLB) {
            Some(ptr) => (ptr, true),
            None => {
                let ptr = map(0).ok_or_else(|| Error::Buffer {
                    what: "allocate",
                    reason: format!(
                        "mmap of {rounded} bytes: {}",
                        std::io::Error::last_os_error()
                    ),
                })?;
                // SAFETY: advice on the mapping just created.
                unsafe { libc::madvise(ptr, rounded, libc::MADV_HUGEPAGE) };
                (ptr, false)
            }
        };
        Ok(Self {
            ptr: ptr.cast(),
            len: rounded,
            huge,
            owner: Owner::Mapping,
        })
    }

    /// Adopts caller memory (any alignment); `Stream::detach` gives it back.
    pub fn from_vec(memory: Vec<u8>) -> Self {
        Self::from_box(memory.into_boxed_slice())
    }

    /// Adopts caller memory (any alignment); `Stream::detach` gives it back.
    pub fn from_box(memory: Box<[u8]>) -> Self {
        let len = memory.len();
        Self {
            ptr: Box::into_raw(memory).cast(),
            len,
            huge: false,
            owner: Owner::Boxed,
        }
    }
}

impl<'a> Buffer<'a> {
    /// Uses memory the caller keeps owning, for FFI layers such as the legacy C API.
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` must be valid, writable memory that nothing else accesses while a
    /// stream uses it, and that stays allocated until the stream is dropped or detached, even
    /// if that drop reports that the region could not be confirmed ended (then it must never
    /// be freed).
    #[cfg(feature = "raw-buffers")]
    pub unsafe fn from_raw_parts(ptr: *mut u8, len: usize) -> Self {
        Self {
            ptr,
            len,
            huge: false,
            owner: Owner::Raw(PhantomData),
        }
    }

    /// Bytes in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes (never true for a usable buffer).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the memory came from the hugetlb pool.
    pub fn is_huge(&self) -> bool {
        self.huge
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    /// Bytes `offset..offset + len`, if inside the buffer.
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: inside the buffer; callers only ask for frames the card does not own.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) })
    }

    /// The caller's memory back (adopted buffers), after the stream ended.
    pub fn into_box(self) -> Option<Box<[u8]>> {
        let this = std::mem::ManuallyDrop::new(self);
        match this.owner {
            // SAFETY: `ptr`/`len` came from `Box::into_raw` in `from_box`; rebuilt once (no
            // drop follows).
            Owner::Boxed => Some(unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(this.ptr, this.len))
            }),
            // A mapping: unmap it now.
            Owner::Mapping => {
                // SAFETY: the mapping made in `allocate`, unmapped once (no drop follows).
                unsafe { libc::munmap(this.ptr.cast(), this.len) };
                None
            }
            Owner::Raw(_) => None,
        }
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        match self.owner {
            Owner::Mapping => {
                // SAFETY: the mapping made in `allocate`, unmapped once.
                unsafe { libc::munmap(self.ptr.cast(), self.len) };
            }
            // SAFETY: from `Box::into_raw` in `from_box`, freed once.
            Owner::Boxed => drop(unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len))
            }),
            Owner::Raw(_) => {}
        }
    }
}
