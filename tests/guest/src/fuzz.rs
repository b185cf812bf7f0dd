//! A command fuzzer: random and mutated `URING_CMD`s from two files on one card, with
//! valid streams on the other card in between. Every command must be answered, the kernel
//! must stay silent (the harness watches), and the card must stream afterwards.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::ring::{attach_request, Memory, TestRing};
use crate::stream::{Layout, Streamer};
use fgrab_uapi::{ops, ControlCmd, CopyOutCmd, QueueCmd};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

/// xorshift64*: deterministic, seeded, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Values that tend to find edge cases.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    4095,
    4096,
    4097,
    65_535,
    65_536,
    1 << 20,
    (1 << 30) + 1,
    u32::MAX as u64,
    (u32::MAX as u64) + 1,
    i64::MAX as u64,
    u64::MAX,
];

/// The fuzzer's address space hygiene: the kernel writes to addresses in INFO/STATS and
/// QUEUE payloads, so those point into `scratch` or at memory the process cannot have.
struct Targets {
    scratch: u64,
    buffer: u64,
    buffer_len: u64,
}

impl Targets {
    fn write_address(&self, rng: &mut Rng) -> u64 {
        match rng.below(5) {
            0 => 0,
            1 => 0x1000,                  // never mapped
            2 => 0xffff_8880_0000_0000,   // kernel address
            3 => self.scratch + 4096 - 8, // across a page boundary

            _ => self.scratch + rng.below(3000),
        }
    }
}

/// One random or mutated command: `(op, payload, buf_index)`.
fn command(rng: &mut Rng, targets: &Targets) -> (u32, [u8; 80], Option<u16>) {
    let valid_ops = [
        ops::INFO,
        ops::ATTACH,
        ops::DETACH,
        ops::STATS,
        ops::QUEUE,
        ops::START,
        ops::STOP,
    ];
    let op = match rng.below(10) {
        0 => rng.next() as u32,
        1 => valid_ops[rng.below(7) as usize].wrapping_add(rng.below(16) as u32),
        _ => valid_ops[rng.below(7) as usize],
    };
    let mut payload = [0u8; 80];
    match op {
        ops::INFO | ops::STATS => {
            let request = CopyOutCmd {
                addr: targets.write_address(rng),
                size: INTERESTING[rng.below(INTERESTING.len() as u64) as usize] as u32 % 200,
                ..CopyOutCmd::new_zeroed()
            };
            payload.copy_from_slice(request.as_bytes());
        }
        ops::ATTACH => {
            let frame_bytes = 1 + rng.below(200_000) as u32;
            let count = 1 + rng.below(20) as u32;
            let stride = u64::from(frame_bytes) + rng.below(100);
            let mut request =
                attach_request(targets.buffer + rng.below(8192), frame_bytes, stride, count);
            if rng.chance(40) {
                // Break one field.
                let value = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                match rng.below(6) {
                    0 => request.addr = value,
                    1 => request.len = value,
                    2 => request.frame_stride = value,
                    3 => request.frame_bytes = value as u32,
                    4 => request.frame_count = value as u32,
                    _ => request.len = targets.buffer_len + value,
                }
            }
            payload.copy_from_slice(request.as_bytes());
        }
        ops::QUEUE => {
            let request = QueueCmd {
                frame: if rng.chance(80) {
                    rng.below(24) as u32
                } else {
                    rng.next() as u32
                },
                meta_addr: targets.write_address(rng),
                ..QueueCmd::new_zeroed()
            };
            payload.copy_from_slice(request.as_bytes());
        }
        _ => payload.copy_from_slice(ControlCmd::new_zeroed().as_bytes()),
    }
    // Mutate: flip bytes of the payload, but never the address fields of commands that
    // make the kernel write (they were chosen above).
    if rng.chance(30) {
        let protected = match op {
            ops::INFO | ops::STATS | ops::QUEUE => 0..16,
            _ => 0..0,
        };
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(80) as usize;
            if !protected.contains(&at) {
                payload[at] ^= 1 << rng.below(8);
            }
        }
    }
    let buf_index = match rng.below(10) {
        0 => None,
        1 => Some(rng.below(4) as u16),
        _ if op == ops::ATTACH => Some(0),
        _ => None,
    };
    (op, payload, buf_index)
}

/// At least 100,000 commands; prints the seed and the errno distribution.
pub fn fuzz_commands() -> TestResult {
    const COMMANDS: u64 = 100_000;
    const BATCH: u64 = 64;
    let seed = std::env::var("fgrab_fuzz_seed")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_f9a0_u64);
    let mut rng = Rng(seed | 1);
    let scratch = Memory::new(2 << 20)?;
    let buffer = Memory::new(8 << 20)?;
    let targets = Targets {
        scratch: scratch.addr(),
        buffer: buffer.addr(),
        buffer_len: 8 << 20,
    };
    let mut rings = [
        TestRing::open("/dev/fgrab0")?,
        TestRing::open("/dev/fgrab0")?,
    ];
    for ring in &mut rings {
        // SAFETY: `buffer` outlives the rings (dropped after them, below).
        unsafe { ring.register(&[&buffer])? };
    }
    let started = Instant::now();
    let mut results: BTreeMap<i32, u64> = BTreeMap::new();
    let mut outstanding = [0u64; 2];
    let mut sent = 0u64;
    let mut streams = 0;
    let mut next_stream = 20_000;
    while sent < COMMANDS {
        for _ in 0..BATCH {
            let which = rng.below(2) as usize;
            let (op, payload, buf_index) = command(&mut rng, &targets);
            rings[which].push(op, &payload, buf_index, sent)?;
            outstanding[which] += 1;
            sent += 1;
        }
        for (which, ring) in rings.iter_mut().enumerate() {
            ring.flush()?;
            for completion in ring.reap(0, Duration::from_millis(1))? {
                *results.entry(completion.res.min(1)).or_default() += 1;
                outstanding[which] -= 1;
            }
        }
        if sent >= next_stream {
            next_stream += 20_000;
            // A valid stream on the other card in between: it must be unaffected.
            streams += 1;
            let mut streamer = Streamer::attach("/dev/fgrab1", Layout::UNALIGNED)?;
            streamer.queue_all()?;
            ensure!(streamer.control(ops::START)? == 0, "START on card 1");
            streamer.run(20, Duration::from_secs(30))?;
            streamer.stop()?;
            streamer.detach()?;
            harness::info(&format!("fuzzer: {sent} commands sent"));
        }
    }
    // End whatever the fuzz left (a region, a stream): commands still in flight (an
    // attach, frames) must then complete too.
    let control = ControlCmd::new_zeroed();
    for ring in &mut rings {
        ring.push(ops::STOP, control.as_bytes(), None, u64::MAX)?;
        ring.push(ops::DETACH, control.as_bytes(), None, u64::MAX)?;
        ring.flush()?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (which, ring) in rings.iter_mut().enumerate() {
        let mut extra = 2;
        while outstanding[which] + extra > 0 {
            ensure!(
                Instant::now() < deadline,
                "{} commands never answered (ring {which})",
                outstanding[which]
            );
            for completion in ring.reap(1, Duration::from_millis(100))? {
                if completion.user_data == u64::MAX {
                    extra -= 1;
                } else {
                    *results.entry(completion.res.min(1)).or_default() += 1;
                    outstanding[which] -= 1;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let distribution: Vec<String> = results
        .iter()
        .map(|(res, count)| match res {
            1 => format!("answered with a byte count {count}"),
            0 => format!("answered 0 {count}"),
            errno => format!("{} {count}", errno_name(-errno)),
        })
        .collect();
    harness::info(&format!(
        "fuzzer: {sent} commands (seed {seed:#x}) in {:.1} s, every one answered; {}; \
         {streams} valid streams on card 1 in between",
        elapsed.as_secs_f64(),
        distribution.join(", ")
    ));
    drop(rings);
    drop(buffer);
    drop(scratch);
    // The card still streams.
    let mut streamer = Streamer::attach("/dev/fgrab0", Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START after fuzzing");
    streamer.run(100, Duration::from_secs(30))?;
    streamer.stop()?;
    streamer.check_guards()?;
    streamer.detach()
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::ENOENT => "ENOENT",
        libc::EALREADY => "EALREADY",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EXDEV => "EXDEV",
        libc::E2BIG => "E2BIG",
        libc::ECANCELED => "ECANCELED",
        libc::ENOMEM => "ENOMEM",
        libc::EIO => "EIO",
        libc::ENODEV => "ENODEV",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}
