//! What a job measures besides bytes and time: CPU time, the card's interrupts, completion
//! latency.
//!
//! CPU time comes from the scheduler's run-time clocks (`sum_exec_runtime`, nanoseconds),
//! not from tick sampling: the process's `CLOCK_PROCESS_CPUTIME_ID` (every thread of it,
//! io_uring's SQPOLL thread and the task work run in its context included) and the CPU
//! clock of each of the card's interrupt threads. Hard and soft interrupt time is not in
//! either (the kernel has no `IRQ_TIME_ACCOUNTING`); the guest-wide busy time from
//! `/proc/stat` (ticks) includes it, coarsely. Under QEMU `-icount` these clocks count
//! guest instructions (each takes 2^shift ns of guest time), so they do not depend on the
//! host's load.

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
    /// User plus system time of this process, from its CPU clock (exact; `user` and
    /// `system` split it by tick sampling).
    pub process: Duration,
    /// Time no CPU of the guest was idle, from `/proc/stat` (clock ticks, all tasks and
    /// interrupts).
    pub busy: Duration,
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
            process: cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID),
            busy: guest_busy(),
        }
    }

    /// Everything charged to the stream: this process and the card's interrupt threads.
    pub fn total(&self) -> Duration {
        self.process + self.driver
    }

    /// Time spent between `self` and `later`.
    pub fn since(self, later: Cpu) -> Cpu {
        Cpu {
            user: later.user.saturating_sub(self.user),
            system: later.system.saturating_sub(self.system),
            driver: later.driver.saturating_sub(self.driver),
            process: later.process.saturating_sub(self.process),
            busy: later.busy.saturating_sub(self.busy),
        }
    }
}

/// The time on CPU clock `clock`.
fn cpu_clock(clock: libc::clockid_t) -> Duration {
    // SAFETY: clock_gettime fills the zeroed timespec it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(clock, &mut ts) != 0 {
            return Duration::ZERO;
        }
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Run time of every interrupt thread of card `card`, from their CPU clocks.
fn irq_thread_time(card: u32) -> Duration {
    let marker = format!("-fgrab{card}-");
    let mut total = Duration::ZERO;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if !(comm.starts_with("irq/") && comm.contains(&marker)) {
            continue;
        }
        let mut clock: libc::clockid_t = 0;
        // SAFETY: writes the clock id of `pid`'s CPU clock into `clock`.
        if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } == 0 {
            total += cpu_clock(clock);
        }
    }
    total
}

/// Non-idle time of every guest CPU, from the first line of `/proc/stat`.
fn guest_busy() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Duration::ZERO;
    };
    let Some(line) = stat.lines().next() else {
        return Duration::ZERO;
    };
    // cpu user nice system idle iowait irq softirq steal ...
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(field, _)| *field != 3 && *field != 4)
        .filter_map(|(_, value)| value.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// The card's interrupts so far: the `/proc/interrupts` lines of its vectors, summed over
/// CPUs.
#[derive(Clone, Copy, Debug)]
pub struct Interrupts(Option<u64>);

impl Interrupts {
    /// Now, for card `card` (the K of fgrabK).
    pub fn now(card: u32) -> Self {
        Self(card_interrupts(card))
    }

    /// Interrupts since `self`.
    pub fn since(self, card: u32) -> Option<u64> {
        Some(card_interrupts(card)?.saturating_sub(self.0?))
    }
}

/// Sum of the per-CPU counts of the card's vectors: lines naming its PCI address (read
/// from `/sys/class/misc/fgrabK/device`) and an `fgrab-` vector name.
fn card_interrupts(card: u32) -> Option<u64> {
    let device = std::fs::read_link(format!("/sys/class/misc/fgrab{card}/device")).ok()?;
    let address = device.file_name()?.to_str()?.to_string();
    let table = std::fs::read_to_string("/proc/interrupts").ok()?;
    parse_interrupts(&table, &address)
}

/// The sum of the counts of the lines of `table` naming `address` and an `fgrab-` vector.
fn parse_interrupts(table: &str, address: &str) -> Option<u64> {
    let cpus = table.lines().next()?.split_whitespace().count();
    let mut found = false;
    let mut total = 0;
    for line in table.lines().skip(1) {
        if !(line.contains(address) && line.contains("fgrab-")) {
            continue;
        }
        found = true;
        total += line
            .split_whitespace()
            .skip(1)
            .take(cpus)
            .filter_map(|count| count.parse::<u64>().ok())
            .sum::<u64>();
    }
    found.then_some(total)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupts_of_one_card() {
        let table = "           CPU0       CPU1\n\
             24:        100         20  PCI-MSIX-0000:01:00.0    0-edge      fgrab-frames\n\
             25:          1          0  PCI-MSIX-0000:01:00.0    1-edge      fgrab-errors\n\
             26:        900          9  PCI-MSIX-0000:02:00.0    0-edge      fgrab-frames\n\
            LOC:       5000       5000   Local timer interrupts\n";
        assert_eq!(parse_interrupts(table, "0000:01:00.0"), Some(121));
        assert_eq!(parse_interrupts(table, "0000:02:00.0"), Some(909));
        assert_eq!(parse_interrupts(table, "0000:03:00.0"), None);
    }
}
