//! The few system calls the guest's init needs that `std` does not offer.

use std::ffi::CString;
use std::io;

fn check(result: libc::c_long) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mount(2)`; an already mounted target is fine.
pub fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    match mount_with(source, target, fstype, 0, "") {
        Err(error) if error.raw_os_error() == Some(libc::EBUSY) => Ok(()),
        other => other,
    }
}

/// `mount(2)` with flags (`MS_*`) and file system options, on an existing `target`.
pub fn mount_with(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    options: &str,
) -> io::Result<()> {
    let source = CString::new(source)?;
    let target = CString::new(target)?;
    let fstype = CString::new(fstype)?;
    let options = CString::new(options)?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let result = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    check(result.into())
}

/// `umount(2)`.
pub fn unmount(target: &str) -> io::Result<()> {
    let target = CString::new(target)?;
    // SAFETY: `target` is a valid NUL-terminated string for the duration of the call.
    check(unsafe { libc::umount(target.as_ptr()) }.into())
}

/// Loads a kernel module from a file (`finit_module(2)`).
pub fn load_module(path: &str, params: &str) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    let params = CString::new(params)?;
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is open for the call's duration and `params` is NUL-terminated.
    check(unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) })
}

/// Unloads a kernel module (`delete_module(2)`), failing if it is in use.
pub fn unload_module(name: &str) -> io::Result<()> {
    let name = CString::new(name)?;
    // SAFETY: `name` is NUL-terminated; O_NONBLOCK makes an in-use module fail with EBUSY
    // instead of waiting.
    check(unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) })
}

/// Powers the machine off; QEMU exits.
pub fn power_off() -> ! {
    // SAFETY: sync and reboot have no memory-safety preconditions.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    std::process::exit(0)
}
