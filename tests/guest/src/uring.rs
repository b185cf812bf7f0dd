//! Raw io_uring access for tests that must craft commands the client library would never
//! send (missing flags, bad buffer indexes, malformed payloads), and fixed-buffer memory.

use fgrab::raw;
use fgrab_uapi::{AttachCmd, Stats};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use zerocopy::FromZeros;

/// Anonymous memory for fixed buffers, unmapped on drop.
pub struct Memory {
    ptr: *mut u8,
    len: usize,
}

impl Memory {
    /// Maps `len` bytes asking for 4 KiB pages (`MADV_NOHUGEPAGE`). In this guest that advice
    /// has not kept transparent huge pages away: a test that needs 4 KiB pages also switches
    /// THP off while the buffer is populated (see `attach_huge_pages`).
    pub fn new(len: usize) -> Result<Self, String> {
        Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            libc::MADV_NOHUGEPAGE,
        )
    }

    /// Maps `len` bytes of 4 KiB pages of which no two neighbours in the buffer are likely
    /// neighbours in physical memory: each page is faulted in alternately with a page of a
    /// spacer mapping that is unmapped afterwards. Fresh guest memory otherwise hands out
    /// ascending frames, and a plain buffer can come out physically contiguous. Transparent
    /// huge pages are off while it is populated: `MADV_NOHUGEPAGE` alone has not kept them
    /// away in this guest.
    pub fn fragmented(len: usize) -> Result<Self, String> {
        const THP: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
        let saved = std::fs::read_to_string(THP).unwrap_or_default();
        let _ = std::fs::write(THP, "never");
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let mapped = Self::reserve(len, flags, libc::MADV_NOHUGEPAGE).and_then(|buffer| {
            let spacer = Self::reserve(len, flags, libc::MADV_NOHUGEPAGE)?;
            for page in 0..len.div_ceil(4096) {
                buffer.touch(page);
                spacer.touch(page);
            }
            Ok(buffer)
        });
        if let Some(mode) = saved.split_whitespace().find(|word| word.starts_with('[')) {
            let _ = std::fs::write(THP, mode.trim_matches(['[', ']']));
        }
        mapped
    }

    /// Maps `len` bytes (a multiple of 2 MiB) from the hugetlb pool, which the guest's init
    /// fills at boot, before memory fragments.
    pub fn huge(len: usize) -> Result<Self, String> {
        Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
            libc::MADV_NORMAL,
        )
    }

    fn map(len: usize, flags: libc::c_int, advice: libc::c_int) -> Result<Self, String> {
        let memory = Self::reserve(len, flags, advice)?;
        // Touch every page so the backing exists before io_uring pins it; last to first, so
        // neighbours in the buffer are less likely to be neighbours in physical memory.
        for page in (0..len.div_ceil(4096)).rev() {
            memory.touch(page);
        }
        Ok(memory)
    }

    /// Writes to 4 KiB page `page` so that it is backed.
    fn touch(&self, page: usize) {
        assert!(page * 4096 < self.len, "page {page} outside the mapping");
        // SAFETY: `page * 4096 < len` (checked above), inside the writable mapping.
        unsafe { self.ptr.add(page * 4096).write_volatile(0xa5) };
    }

    /// Maps `len` bytes without touching them.
    fn reserve(len: usize, flags: libc::c_int, advice: libc::c_int) -> Result<Self, String> {
        // SAFETY: anonymous mapping at an address of the kernel's choice.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap {len}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: advice on the mapping just created.
        unsafe { libc::madvise(ptr, len, advice) };
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Unmaps the memory now (the mapping is gone for this process; pages pinned by io_uring
    /// stay allocated until it lets go of them).
    pub fn unmap(&mut self) {
        // SAFETY: unmapping the mapping created in `new`; `len` becomes 0 so `Drop` does
        // not unmap again.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
        self.len = 0;
    }

    /// Whether the memory is still mapped.
    pub fn is_mapped(&self) -> bool {
        self.len != 0
    }

    /// Bytes mapped.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Start address.
    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }

    /// The `iovec` that registers all of it.
    pub fn iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.cast(),
            iov_len: self.len,
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if self.is_mapped() {
            // SAFETY: unmapping the mapping created in `new`.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }
}

/// A big-SQE ring on one open card, with optional fixed buffers.
pub struct TestUring {
    ring: IoUring<squeue::Entry128, cqueue::Entry32>,
    file: File,
    /// Submit with `IOSQE_ASYNC`: io_uring issues from a worker thread without its ring
    /// lock (`IO_URING_F_UNLOCKED`), a different locking path through the driver.
    async_issue: bool,
}

/// A completion: `(user_data, res)`.
pub type Cqe = (u64, i32);

/// A completion with the first extra word of its 32-byte CQE (a frame's sequence number).
#[derive(Clone, Copy, Debug)]
pub struct Completion {
    /// `user_data` of the submission.
    pub user_data: u64,
    /// `res`.
    pub res: i32,
    /// `big_cqe[0]`.
    pub extra: u64,
}

impl TestUring {
    /// Opens `path` and creates the ring.
    pub fn open(path: &str) -> Result<Self, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|error| format!("{path}: {error}"))?;
        Self::on(file)
    }

    /// A new ring submitting to `file`.
    fn on(file: File) -> Result<Self, String> {
        let ring = IoUring::<squeue::Entry128, cqueue::Entry32>::builder()
            .build(64)
            .map_err(|error| format!("io_uring setup: {error}"))?;
        Ok(Self {
            ring,
            file,
            async_issue: false,
        })
    }

    /// The card file's descriptor (for `read()` and `ioctl()`).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// Another ring on the same open file (a duplicated descriptor of it).
    pub fn sibling(&self) -> Result<Self, String> {
        let file = self
            .file
            .try_clone()
            .map_err(|error| format!("dup: {error}"))?;
        Self::on(file)
    }

    /// Makes later submissions use `IOSQE_ASYNC` (or not).
    pub fn set_async(&mut self, async_issue: bool) {
        self.async_issue = async_issue;
    }

    /// Registers `memory` as fixed buffer 0.
    ///
    /// # Safety
    ///
    /// `memory` must outlive the ring (or the registration).
    pub unsafe fn register(&mut self, memory: &[&Memory]) -> Result<(), String> {
        let iovecs: Vec<libc::iovec> = memory.iter().map(|memory| memory.iovec()).collect();
        // SAFETY: the caller keeps the memory alive.
        unsafe { self.ring.submitter().register_buffers(&iovecs) }
            .map_err(|error| format!("register_buffers: {error}"))
    }

    /// Creates an empty fixed-buffer table of `count` slots (see [`Self::register_at`]).
    pub fn register_sparse(&mut self, count: u32) -> Result<(), String> {
        self.ring
            .submitter()
            .register_buffers_sparse(count)
            .map_err(|error| format!("register_buffers_sparse: {error}"))
    }

    /// Registers `memory` as fixed buffer `index` of a sparse table.
    ///
    /// # Safety
    ///
    /// `memory` must outlive the ring (or the registration).
    pub unsafe fn register_at(&mut self, index: u32, memory: &Memory) -> Result<(), String> {
        // SAFETY: the caller keeps the memory alive.
        unsafe {
            self.ring
                .submitter()
                .register_buffers_update(index, &[memory.iovec()], None)
        }
        .map_err(|error| format!("register_buffers_update: {error}"))
    }

    /// Unregisters all fixed buffers.
    pub fn unregister(&mut self) -> Result<(), String> {
        self.ring
            .submitter()
            .unregister_buffers()
            .map_err(|error| format!("unregister_buffers: {error}"))
    }

    /// Queues a command in the submission queue without entering the kernel; [`Self::flush`]
    /// submits everything queued with one `io_uring_enter`. Honours [`Self::set_async`].
    pub fn push(
        &mut self,
        op: u32,
        payload: &[u8],
        buf_index: Option<u16>,
        user_data: u64,
    ) -> Result<(), String> {
        let entry = raw::Command::new(self.file.as_raw_fd(), op)
            .payload(payload)
            .buf_index(buf_index)
            .build();
        self.push_entry(entry.user_data(user_data))
    }

    /// Queues an entry built with [`fgrab::raw`]; see [`Self::push`].
    pub fn push_entry(&mut self, entry: squeue::Entry128) -> Result<(), String> {
        let entry = entry.flags(if self.async_issue {
            squeue::Flags::ASYNC
        } else {
            squeue::Flags::empty()
        });
        loop {
            // SAFETY: the entry carries only copied bytes; memory its payload points to is
            // kept alive by the caller until the completion is reaped.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.flush()?;
        }
    }

    /// Queues a no-op (`IORING_OP_NOP`) in the submission queue; see [`Self::push`].
    pub fn push_nop(&mut self, user_data: u64) -> Result<(), String> {
        let entry: squeue::Entry128 = opcode::Nop::new().build().user_data(user_data).into();
        loop {
            // SAFETY: a no-op refers to no memory.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.flush()?;
        }
    }

    /// Submits what [`Self::push`] queued.
    pub fn flush(&mut self) -> Result<(), String> {
        self.ring
            .submit()
            .map(|_| ())
            .map_err(|error| format!("submit: {error}"))
    }

    /// Waits up to `timeout` until at least `min` completions arrived; returns all that did.
    pub fn reap(&mut self, min: usize, timeout: Duration) -> Result<Vec<Completion>, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            seen.extend(self.ring.completion().map(|cqe| Completion {
                user_data: cqe.user_data(),
                res: cqe.result(),
                extra: cqe.big_cqe()[0],
            }));
            if seen.len() >= min || Instant::now() > deadline {
                return Ok(seen);
            }
            self.wait_briefly()?;
        }
    }

    /// Submits what is queued and waits up to 20 ms for a completion.
    fn wait_briefly(&mut self) -> Result<(), String> {
        let timeout = types::Timespec::from(Duration::from_millis(20));
        let wait = types::SubmitArgs::new().timespec(&timeout);
        match self.ring.submitter().submit_with_args(1, &wait) {
            Ok(_) => Ok(()),
            Err(error) if matches!(error.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
            Err(error) => Err(format!("wait: {error}")),
        }
    }

    /// Closes the ring's file descriptor of the card (in-flight commands keep the file).
    pub fn close_file(&mut self) -> Result<(), String> {
        let fd = self.file.as_raw_fd();
        let null = File::open("/dev/null").map_err(|error| error.to_string())?;
        // SAFETY: `fd` is this ring's open descriptor of the card; dup2 atomically replaces
        // it with /dev/null, closing the card file. `self.file` then owns a /dev/null
        // descriptor and closes it once, on drop.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Submits a command without waiting.
    pub fn submit(
        &mut self,
        op: u32,
        payload: &[u8],
        buf_index: Option<u16>,
        user_data: u64,
    ) -> Result<(), String> {
        self.push(op, payload, buf_index, user_data)?;
        self.flush()
    }

    /// Waits up to `timeout` for the completion with `user_data`; other completions that
    /// arrive meanwhile are returned too.
    pub fn wait_for(&mut self, user_data: u64, timeout: Duration) -> Result<Vec<Cqe>, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            seen.extend(
                self.ring
                    .completion()
                    .map(|cqe| (cqe.user_data(), cqe.result())),
            );
            if seen.iter().any(|(data, _)| *data == user_data) {
                return Ok(seen);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no completion for {user_data} within {timeout:?}: {seen:?}"
                ));
            }
            self.wait_briefly()?;
        }
    }

    /// Submits a command and returns its result.
    pub fn call(&mut self, op: u32, payload: &[u8], buf_index: Option<u16>) -> Result<i32, String> {
        let entry = raw::Command::new(self.fd(), op)
            .payload(payload)
            .buf_index(buf_index)
            .build();
        self.call_entry(entry)
    }

    /// Submits an entry built with [`fgrab::raw`] and returns its result.
    pub fn call_entry(&mut self, entry: squeue::Entry128) -> Result<i32, String> {
        const USER_DATA: u64 = 0xca11;
        self.push_entry(entry.user_data(USER_DATA))?;
        self.flush()?;
        let seen = self.wait_for(USER_DATA, Duration::from_secs(10))?;
        let (_, res) = seen
            .iter()
            .find(|(data, _)| *data == USER_DATA)
            .copied()
            .ok_or("lost completion")?;
        if seen.len() > 1 {
            return Err(format!("unexpected completions besides the call: {seen:?}"));
        }
        Ok(res)
    }

    /// Whether a completion is waiting (without blocking).
    pub fn pending_completions(&mut self) -> Vec<Cqe> {
        self.ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()))
            .collect()
    }

    /// `STATS` through this ring.
    pub fn stats(&mut self) -> Result<Stats, String> {
        let mut stats = Stats::new_zeroed();
        let entry = raw::StatsCmd::new(self.fd(), &mut stats).build();
        let res = self.call_entry(entry)?;
        if res != size_of::<Stats>() as i32 {
            return Err(format!("STATS returned {res}"));
        }
        Ok(stats)
    }

    /// `DETACH` through this ring.
    pub fn detach(&mut self) -> Result<i32, String> {
        self.call_entry(raw::Detach::new(self.fd()).build())
    }
}

/// An attach request for `frame_count` frames of `frame_bytes` every `frame_stride` bytes
/// from `addr`.
pub fn attach_request(
    addr: u64,
    frame_bytes: u32,
    frame_stride: u64,
    frame_count: u32,
) -> AttachCmd {
    AttachCmd {
        addr,
        len: frame_stride * u64::from(frame_count - 1) + u64::from(frame_bytes),
        frame_stride,
        frame_bytes,
        frame_count,
        ..AttachCmd::new_zeroed()
    }
}
