//! What direct I/O needs of a file: the alignment of memory addresses, file offsets and
//! lengths, as the kernel reports it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Direct I/O alignment of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirectAlignment {
    /// Memory addresses must be multiples of this.
    pub(crate) memory: u32,
    /// File offsets and lengths must be multiples of this.
    pub(crate) offset: u32,
    /// Where the figures came from, for messages.
    pub(crate) source: &'static str,
}

/// The file's direct I/O alignment: `statx(STATX_DIOALIGN)` where the kernel and the file
/// system report it; else, for a block device or a file on one, its logical block size
/// (memory and offsets alike: what direct I/O asked before `STATX_DIOALIGN` existed).
///
/// # Errors
///
/// Why direct I/O is not possible, for the message that says buffered writes are used.
pub(crate) fn probe(file: &File) -> Result<DirectAlignment, String> {
    let mut statx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `statx` writes the struct it is given; the empty path with `AT_EMPTY_PATH`
    // names the open file itself.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN | libc::STATX_TYPE,
            statx.as_mut_ptr(),
        )
    };
    if rc == 0 {
        // SAFETY: zeroed before and filled by a successful `statx`.
        let statx = unsafe { statx.assume_init() };
        if statx.stx_mask & libc::STATX_DIOALIGN != 0 {
            if statx.stx_dio_offset_align == 0 || statx.stx_dio_mem_align == 0 {
                return Err("the file system does not support direct I/O on this file".into());
            }
            return Ok(DirectAlignment {
                memory: statx.stx_dio_mem_align,
                offset: statx.stx_dio_offset_align,
                source: "statx STATX_DIOALIGN",
            });
        }
    }
    let metadata = file
        .metadata()
        .map_err(|error| format!("cannot stat the file: {error}"))?;
    let block_size = if metadata.file_type().is_block_device() {
        let mut size: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one int.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut size) };
        (rc == 0)
            .then_some(size)
            .and_then(|size| u32::try_from(size).ok())
    } else {
        let device = metadata.dev();
        let path = format!(
            "/sys/dev/block/{}:{}/queue/logical_block_size",
            libc::major(device),
            libc::minor(device)
        );
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    };
    match block_size {
        Some(size) if size > 0 => Ok(DirectAlignment {
            memory: size,
            offset: size,
            source: "logical block size",
        }),
        _ => Err("the file system reports no direct I/O alignment (no block device)".into()),
    }
}

/// Turns `O_DIRECT` on for an open file (`fcntl(F_SETFL)`, keeping its other flags).
///
/// # Errors
///
/// Why the file refused it (file systems without direct I/O answer `EINVAL`).
pub(crate) fn enable_direct(file: &File) -> Result<(), String> {
    // SAFETY: F_GETFL and F_SETFL take and return plain integers on an open fd.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0
        || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_DIRECT) } < 0
    {
        return Err(format!(
            "the file refused O_DIRECT: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Whether frames at `addresses`, each written as `slot_bytes` at file offsets that are
/// multiples of `slot_bytes` from 0, satisfy `alignment`; `Err` says which rule fails.
pub(crate) fn check(
    alignment: DirectAlignment,
    mut addresses: impl Iterator<Item = usize>,
    slot_bytes: u32,
) -> Result<(), String> {
    if slot_bytes % alignment.offset != 0 {
        return Err(format!(
            "frames of {slot_bytes} bytes are not a multiple of the file's direct I/O \
             offset alignment of {}",
            alignment.offset
        ));
    }
    if let Some(address) = addresses.find(|address| address % alignment.memory as usize != 0) {
        return Err(format!(
            "frame address {address:#x} is not a multiple of the file's direct I/O memory \
             alignment of {}",
            alignment.memory
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIGNMENT: DirectAlignment = DirectAlignment {
        memory: 512,
        offset: 4096,
        source: "test",
    };

    #[test]
    fn alignment_rules() {
        assert_eq!(
            check(ALIGNMENT, [0x20_0000, 0x24_0000].into_iter(), 0x4_0000),
            Ok(())
        );
        let size = check(ALIGNMENT, [0x20_0000].into_iter(), 65_543).unwrap_err();
        assert!(size.contains("65543 bytes"), "{size}");
        let address = check(ALIGNMENT, [0x20_0000, 0x20_0013].into_iter(), 8192).unwrap_err();
        assert!(address.contains("0x200013"), "{address}");
    }

    #[test]
    fn probe_a_regular_file() {
        // Whatever the host's file system says, the probe answers without failing loudly.
        let file = File::open("/proc/self/exe").expect("own executable");
        let _ = probe(&file);
    }
}
