//! What a job measures besides bytes and time: CPU time from the kernel's accounting,
//! completion latency, and the physical layout of the buffer.

use std::time::Duration;

/// CPU time charged to this process (all its threads, io_uring's SQPOLL thread included)
/// and to the driver's interrupt threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// User time of this process.
    pub user: Duration,
    /// System time of this process.
    pub system: Duration,
    /// Time of the kernel threads serving the card's interrupts (`irq/N-fgrabK-*`).
    pub driver: Duration,
}

impl Cpu {
    /// Now, for `card` (the K of fgrabK).
    pub fn now(card: u32) -> Self {
        // SAFETY: getrusage fills the zeroed struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        let time = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
        };
        Self {
            user: time(usage.ru_utime),
            system: time(usage.ru_stime),
            driver: irq_thread_time(card),
        }
    }

    /// Time spent between `self` and `later`.
    pub fn since(self, later: Cpu) -> Cpu {
        Cpu {
            user: later.user.saturating_sub(self.user),
            system: later.system.saturating_sub(self.system),
            driver: later.driver.saturating_sub(self.driver),
        }
    }
}

/// utime + stime of every interrupt thread of card `card`, from /proc (clock ticks).
fn irq_thread_time(card: u32) -> Duration {
    let marker = format!("-fgrab{card}-");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !(comm.starts_with("irq/") && comm.contains(&marker)) {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            // Fields after the parenthesized command: state is field 3, utime 14, stime 15.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
                ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// Completion latencies in nanoseconds.
#[derive(Default)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    /// Records one.
    pub fn push(&mut self, nanoseconds: u64) {
        self.0.push(nanoseconds);
    }

    /// The `q`-quantile (0..=1) in microseconds, if any were recorded.
    pub fn quantile_us(&mut self, q: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable();
        let index = ((self.0.len() - 1) as f64 * q).round() as usize;
        Some(self.0[index] as f64 / 1000.0)
    }
}
