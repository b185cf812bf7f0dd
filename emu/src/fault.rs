//! Fault injection selected per run (`--fault KIND@FRAME[:ARG]`).
//!
//! Faults are keyed by frame sequence number and fire once per process run (sequence
//! numbers restart at 0 after a device reset; a fault that already fired stays off).

use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The frame's data write faults as if its middle segment were unmapped.
    DmaError,
    /// The frame completes normally but its vector 0 message is not sent.
    LostIrq,
    /// The frame's completion is published only after this delay.
    StallCompletion(Duration),
    /// The submission taken for the frame is rejected with DESC_ERROR.
    DescReject,
    /// The device halts and asks for a reset (FAULT_STATUS.RESET_REQUIRED).
    ResetRequest,
    /// The device stops responding: reads return all ones, no DMA, no interrupts.
    Remove,
    /// The device asks the host to unplug it (VFIO REQ interrupt), then keeps running.
    UnplugRequest,
    /// The capability registers read values outside the interface's rules from the start
    /// (the frame number is ignored): MAX_SEGMENT_BYTES 0, MAX_DESCRIPTORS 65536,
    /// RING_MAX_ENTRIES 16, MAX_FRAME_SLOTS 0, MAX_FRAME_BYTES 0xffffffff.
    HostileCapabilities,
    /// The frame's completion record claims 0xffffff00 bytes (more than any frame).
    HostileBytes,
    /// The first stop request once the frame has started is answered with IDLE at once,
    /// without returning the queued submissions; the oldest of them is written
    /// [`LYING_STOP_WRITE_DELAY`] later, with no record, unless the device is reset or Bus
    /// Master Enable is clear by then.
    LyingStop,
    /// The first stop request once the frame has started is ignored: the device keeps
    /// streaming until it is reset.
    DeafStop,
    /// The camera's area registers break the interface's rules from the start (the frame
    /// number is ignored): FEATURE_WINDOW_OFFSET 0xfffc, FEATURE_WINDOW_SIZE 0x10000,
    /// XML_OFFSET 0x7ffe, XML_SIZE 0xffffffff.
    HostileCamera,
    /// The card announces moderation by count and time and takes both registers, then
    /// ignores them: one frame-vector message per record, from the start (the frame
    /// number is ignored).
    HostileModeration,
}

impl FaultKind {
    /// Whether the fault holds for the whole run (read with [`FaultPlan::has`], never
    /// taken): such a fault must not hold back the frame-numbered faults planned with it.
    pub fn whole_run(self) -> bool {
        matches!(
            self,
            Self::HostileCapabilities | Self::HostileCamera | Self::HostileModeration
        )
    }
}

/// How long after a lying stop the device still writes a frame it kept.
pub const LYING_STOP_WRITE_DELAY: Duration = Duration::from_millis(500);

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// Sequence number of the frame it happens at.
    pub frame: u64,
}

/// Malformed `--fault` argument.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FaultParseError {
    /// Not `KIND@FRAME[:ARG]`.
    #[error("fault `{0}`: expected KIND@FRAME[:ARG], e.g. dma-error@100 or stall@50:200ms")]
    Syntax(String),
    /// Unknown kind.
    #[error("fault `{0}`: unknown kind (dma-error, lost-irq, stall, desc-reject, reset-request, remove, unplug-request, hostile-caps, hostile-bytes, lying-stop, deaf-stop, hostile-camera, hostile-moderation)")]
    Kind(String),
    /// Bad number or duration.
    #[error("fault `{0}`: bad frame number or duration")]
    Number(String),
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s
            .split_once('@')
            .ok_or_else(|| FaultParseError::Syntax(s.into()))?;
        let (frame, arg) = match rest.split_once(':') {
            Some((f, a)) => (f, Some(a)),
            None => (rest, None),
        };
        let frame = frame
            .parse()
            .map_err(|_| FaultParseError::Number(s.into()))?;
        let kind = match (kind, arg) {
            ("dma-error", None) => FaultKind::DmaError,
            ("lost-irq", None) => FaultKind::LostIrq,
            ("stall", arg) => FaultKind::StallCompletion(
                parse_duration(arg.unwrap_or("100ms"))
                    .ok_or_else(|| FaultParseError::Number(s.into()))?,
            ),
            ("desc-reject", None) => FaultKind::DescReject,
            ("reset-request", None) => FaultKind::ResetRequest,
            ("remove", None) => FaultKind::Remove,
            ("unplug-request", None) => FaultKind::UnplugRequest,
            ("hostile-caps", None) => FaultKind::HostileCapabilities,
            ("hostile-bytes", None) => FaultKind::HostileBytes,
            ("lying-stop", None) => FaultKind::LyingStop,
            ("deaf-stop", None) => FaultKind::DeafStop,
            ("hostile-camera", None) => FaultKind::HostileCamera,
            ("hostile-moderation", None) => FaultKind::HostileModeration,
            (_, Some(_)) => return Err(FaultParseError::Syntax(s.into())),
            _ => return Err(FaultParseError::Kind(s.into())),
        };
        Ok(Fault { kind, frame })
    }
}

/// `250ms`, `2s`, `500us` or a bare number of milliseconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let value: u64 = digits.parse().ok()?;
    match unit {
        "" | "ms" => Some(Duration::from_millis(value)),
        "s" => Some(Duration::from_secs(value)),
        "us" => Some(Duration::from_micros(value)),
        _ => None,
    }
}

/// The faults of a run and which have fired.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    pending: Vec<Fault>,
}

impl FaultPlan {
    /// A plan with `faults`.
    pub fn new(faults: Vec<Fault>) -> Self {
        Self { pending: faults }
    }

    /// Fires (removes and returns) the first pending fault due at frame `sequence` that
    /// `matches` accepts. A fault for frame N is due at the first frame the device handles
    /// with a sequence number of N or more: frame N itself may have been dropped (late,
    /// no buffer queued), and a test still wants its fault.
    ///
    /// Faults fire in the order of their frames: when a late engine finds several due at
    /// once (`dma-error@0` and `reset-request@1` both due at frame 3), only those of the
    /// earliest frame may fire now, the rest at the frames after. Otherwise a reset request
    /// checked first in a frame would halt the card before the DMA error planned ahead of it.
    pub fn take(
        &mut self,
        sequence: u64,
        matches: impl Fn(FaultKind) -> bool,
    ) -> Option<FaultKind> {
        // Whole-run faults (`has`) are never taken and do not hold others back.
        let due = |f: &Fault| f.frame <= sequence && !f.kind.whole_run();
        let earliest = self
            .pending
            .iter()
            .filter(|f| due(f))
            .map(|f| f.frame)
            .min()?;
        let i = self
            .pending
            .iter()
            .position(|f| due(f) && f.frame == earliest && matches(f.kind))?;
        let fault = self.pending.remove(i);
        log::warn!("fault injection: {:?} at frame {}", fault.kind, fault.frame);
        Some(fault.kind)
    }

    /// Whether a fault of `kind` is planned (for faults that hold for the whole run).
    pub fn has(&self, kind: FaultKind) -> bool {
        self.pending.iter().any(|f| f.kind == kind)
    }

    /// Fires the fault of exactly `kind` for frame `sequence`.
    pub fn take_kind(&mut self, sequence: u64, kind: FaultKind) -> bool {
        self.take(sequence, |k| k == kind).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_every_kind() {
        let cases = [
            ("dma-error@5", FaultKind::DmaError, 5),
            ("lost-irq@0", FaultKind::LostIrq, 0),
            (
                "stall@7:250ms",
                FaultKind::StallCompletion(Duration::from_millis(250)),
                7,
            ),
            (
                "stall@7:2s",
                FaultKind::StallCompletion(Duration::from_secs(2)),
                7,
            ),
            (
                "stall@7",
                FaultKind::StallCompletion(Duration::from_millis(100)),
                7,
            ),
            ("desc-reject@9", FaultKind::DescReject, 9),
            ("reset-request@10", FaultKind::ResetRequest, 10),
            ("remove@11", FaultKind::Remove, 11),
            ("unplug-request@12", FaultKind::UnplugRequest, 12),
            ("hostile-caps@0", FaultKind::HostileCapabilities, 0),
            ("hostile-bytes@13", FaultKind::HostileBytes, 13),
            ("lying-stop@14", FaultKind::LyingStop, 14),
            ("deaf-stop@15", FaultKind::DeafStop, 15),
        ];
        for (text, kind, frame) in cases {
            assert_eq!(text.parse(), Ok(Fault { kind, frame }), "{text}");
        }
        assert!(matches!(
            "x@1".parse::<Fault>(),
            Err(FaultParseError::Kind(_))
        ));
        assert!(matches!(
            "dma-error".parse::<Fault>(),
            Err(FaultParseError::Syntax(_))
        ));
        assert!(matches!(
            "dma-error@x".parse::<Fault>(),
            Err(FaultParseError::Number(_))
        ));
        assert!(matches!(
            "dma-error@1:3".parse::<Fault>(),
            Err(FaultParseError::Syntax(_))
        ));
        assert!(matches!(
            "stall@1:3h".parse::<Fault>(),
            Err(FaultParseError::Number(_))
        ));
    }

    #[test]
    fn whole_run_faults_do_not_hold_back_others() {
        for whole_run in ["hostile-caps@0", "hostile-camera@0", "hostile-moderation@0"] {
            let mut plan = FaultPlan::new(vec![
                "hostile-bytes@100".parse().unwrap(),
                whole_run.parse().unwrap(),
            ]);
            assert!(plan.take_kind(100, FaultKind::HostileBytes), "{whole_run}");
            assert!(plan.has(whole_run.parse::<Fault>().unwrap().kind));
        }
    }

    #[test]
    fn faults_fire_once() {
        let mut plan = FaultPlan::new(vec!["lost-irq@3".parse().unwrap()]);
        assert!(!plan.take_kind(2, FaultKind::LostIrq));
        assert!(!plan.take_kind(3, FaultKind::DmaError));
        assert!(plan.take_kind(3, FaultKind::LostIrq));
        assert!(!plan.take_kind(3, FaultKind::LostIrq));
    }

    #[test]
    fn a_fault_for_a_dropped_frame_fires_at_the_next_one() {
        let mut plan = FaultPlan::new(vec!["remove@300".parse().unwrap()]);
        assert!(!plan.take_kind(299, FaultKind::Remove));
        assert!(plan.take_kind(305, FaultKind::Remove));
        assert!(!plan.take_kind(306, FaultKind::Remove));
    }
}
