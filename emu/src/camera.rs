//! The camera's feature registers and acquisition state (docs/hardware.md §3.8, §12).
//!
//! Pure state, no threads: the engine asks [`Camera`] whether a frame may start and tells
//! it when one did; register accesses to the feature window land in [`Camera::read`] and
//! [`Camera::write`]. Addresses, codes and limits are the card's definition
//! (`fgrab_hw::camera`); the XML served in BAR0 is `hw/genicam/fgrab.xml`.

use fgrab_hw::camera::{
    acquisition_mode, address, identity, limits, pfnc, trigger_mode, trigger_source,
};

/// The card's GenICam XML, as BAR0 carries it.
pub const XML: &[u8] = include_bytes!("../../hw/genicam/fgrab.xml");

/// Most software triggers that wait for their frame start; later ones are ignored.
pub const MAX_PENDING_TRIGGERS: u32 = 16;

/// What a feature write asks of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the register's new value.
    None,
    /// Acquisition was (re-)armed: the next frame start is one period from now.
    Armed,
    /// A trigger is waiting: wake the engine.
    Triggered,
    /// The frame period changed.
    Period,
}

/// The settings a user makes and the acquisition in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    width: u32,
    height: u32,
    pixel_format: u32,
    mode: u32,
    frame_count: u32,
    rate_enable: bool,
    rate: f32,
    trigger_mode: u32,
    trigger_source: u32,
    tl_params_locked: u32,
    serial: [u8; 16],
    /// Frame starts are allowed (ENABLE or AcquisitionStart, until the mode's count or
    /// AcquisitionStop).
    armed: bool,
    /// Frame starts left in a SingleFrame or MultiFrame acquisition.
    frames_left: Option<u32>,
    /// Software triggers waiting for their frame start.
    triggers: u32,
}

impl Camera {
    /// A camera at power-up, with serial number `serial` (ASCII, truncated to 15 bytes).
    pub fn new(serial: &str) -> Self {
        let mut bytes = [0u8; 16];
        let len = serial.len().min(15);
        bytes[..len].copy_from_slice(&serial.as_bytes()[..len]);
        Self {
            width: limits::WIDTH_DEFAULT,
            height: limits::HEIGHT_DEFAULT,
            pixel_format: pfnc::MONO8,
            mode: acquisition_mode::CONTINUOUS,
            frame_count: 1,
            rate_enable: false,
            rate: limits::FRAME_RATE_DEFAULT,
            trigger_mode: trigger_mode::OFF,
            trigger_source: trigger_source::SOFTWARE,
            tl_params_locked: 0,
            serial: bytes,
            armed: false,
            frames_left: None,
            triggers: 0,
        }
    }

    /// The camera after `CONTROL.RESET`: settings kept (the driver resets the card at every
    /// start), acquisition disarmed.
    pub fn reset(&mut self) {
        self.disarm();
    }

    /// `PixelFormat`'s PFNC code.
    pub fn pixel_format(&self) -> u32 {
        self.pixel_format
    }

    /// `PayloadSize`.
    pub fn payload_size(&self) -> u32 {
        let bytes = pfnc::bytes_per_pixel(self.pixel_format).unwrap_or(1);
        self.width * self.height * bytes
    }

    /// Frame period in force for a link period of `link_ns` (the floor for FRAME_BYTES).
    pub fn period_ns(&self, link_ns: u32) -> u32 {
        if !self.rate_enable {
            return link_ns;
        }
        // CAST: the rate is at least FRAME_RATE_MIN, so the quotient is below 1e10; clamped.
        let rated = (1e9 / f64::from(self.rate)).min(f64::from(u32::MAX)) as u32;
        rated.max(link_ns)
    }

    /// Arms acquisition: at ENABLE and AcquisitionStart.
    pub fn arm(&mut self) {
        self.armed = true;
        self.triggers = 0;
        self.frames_left = match self.mode {
            acquisition_mode::SINGLE_FRAME => Some(1),
            acquisition_mode::MULTI_FRAME => Some(self.frame_count),
            _ => None,
        };
    }

    fn disarm(&mut self) {
        self.armed = false;
        self.frames_left = None;
        self.triggers = 0;
    }

    /// Whether frames start on the period's cadence (armed, no trigger mode).
    pub fn free_running(&self) -> bool {
        self.armed && self.trigger_mode == trigger_mode::OFF
    }

    /// Whether a trigger waits for its frame start.
    pub fn triggered(&self) -> bool {
        self.armed && self.trigger_mode == trigger_mode::ON && self.triggers > 0
    }

    /// Whether the acquisition counts its frames (SingleFrame, MultiFrame).
    pub fn counts_frames(&self) -> bool {
        self.frames_left.is_some()
    }

    /// Whether acquisition is armed.
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// A frame started (or a frame start went by as a drop): counts it against the
    /// acquisition's frames and the waiting triggers.
    pub fn count_start(&mut self) {
        self.triggers = self.triggers.saturating_sub(1);
        if let Some(left) = self.frames_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.disarm();
            }
        }
    }

    /// The register at window byte `offset` (4-byte aligned; others read 0).
    pub fn read(&self, offset: u32) -> u32 {
        let string = |text: &[u8], base: u32| -> u32 {
            // CAST: offsets inside a 32-byte string.
            let at = (offset - base) as usize;
            let mut word = [0u8; 4];
            for (i, byte) in word.iter_mut().enumerate() {
                *byte = text.get(at + i).copied().unwrap_or(0);
            }
            u32::from_le_bytes(word)
        };
        match offset {
            o if (address::DEVICE_VENDOR_NAME..address::DEVICE_VENDOR_NAME + 32).contains(&o) => {
                string(identity::VENDOR.as_bytes(), address::DEVICE_VENDOR_NAME)
            }
            o if (address::DEVICE_MODEL_NAME..address::DEVICE_MODEL_NAME + 32).contains(&o) => {
                string(identity::MODEL.as_bytes(), address::DEVICE_MODEL_NAME)
            }
            o if (address::DEVICE_SERIAL_NUMBER..address::DEVICE_SERIAL_NUMBER + 16)
                .contains(&o) =>
            {
                string(&self.serial, address::DEVICE_SERIAL_NUMBER)
            }
            o if (address::DEVICE_VERSION..address::DEVICE_VERSION + 16).contains(&o) => {
                string(identity::VERSION.as_bytes(), address::DEVICE_VERSION)
            }
            address::WIDTH => self.width,
            address::HEIGHT => self.height,
            address::WIDTH_MAX => limits::WIDTH_MAX,
            address::HEIGHT_MAX => limits::HEIGHT_MAX,
            address::PIXEL_FORMAT => self.pixel_format,
            address::PAYLOAD_SIZE => self.payload_size(),
            address::ACQUISITION_MODE => self.mode,
            address::ACQUISITION_FRAME_COUNT => self.frame_count,
            address::ACQUISITION_FRAME_RATE_ENABLE => u32::from(self.rate_enable),
            address::ACQUISITION_FRAME_RATE => self.rate.to_bits(),
            address::TRIGGER_MODE => self.trigger_mode,
            address::TRIGGER_SOURCE => self.trigger_source,
            address::TL_PARAMS_LOCKED => self.tl_params_locked,
            // Commands read 0: executed at once, so GenApi sees them done.
            _ => 0,
        }
    }

    /// Writes `value` to the register at window byte `offset`. `running`: the engine is not
    /// idle, so the image format is fixed and commands act. Values a feature does not accept
    /// are ignored.
    pub fn write(&mut self, offset: u32, value: u32, running: bool) -> Effect {
        let ignored = |what: &str| {
            log::warn!("feature {what} = {value:#x} ignored");
            Effect::None
        };
        match offset {
            address::WIDTH | address::HEIGHT | address::PIXEL_FORMAT if running => {
                ignored("write to the image format while running")
            }
            address::WIDTH if limits::width_ok(value) => {
                self.width = value;
                Effect::None
            }
            address::HEIGHT if limits::height_ok(value) => {
                self.height = value;
                Effect::None
            }
            address::PIXEL_FORMAT if pfnc::bytes_per_pixel(value).is_some() => {
                self.pixel_format = value;
                Effect::None
            }
            address::ACQUISITION_MODE
                if acquisition_mode::ALL.iter().any(|&(_, mode)| mode == value) =>
            {
                self.mode = value;
                Effect::None
            }
            address::ACQUISITION_FRAME_COUNT if (1..=limits::FRAME_COUNT_MAX).contains(&value) => {
                self.frame_count = value;
                Effect::None
            }
            address::ACQUISITION_START if value == 1 => {
                if !running {
                    return ignored("AcquisitionStart while idle");
                }
                self.arm();
                Effect::Armed
            }
            address::ACQUISITION_STOP if value == 1 => {
                self.disarm();
                Effect::None
            }
            address::ACQUISITION_FRAME_RATE_ENABLE if value <= 1 => {
                self.rate_enable = value == 1;
                Effect::Period
            }
            address::ACQUISITION_FRAME_RATE => {
                let rate = f32::from_bits(value);
                if !(limits::FRAME_RATE_MIN..=limits::FRAME_RATE_MAX).contains(&rate) {
                    return ignored("AcquisitionFrameRate");
                }
                self.rate = rate;
                Effect::Period
            }
            address::TRIGGER_MODE if value <= trigger_mode::ON => {
                self.trigger_mode = value;
                self.triggers = 0;
                Effect::None
            }
            address::TRIGGER_SOURCE if value == trigger_source::SOFTWARE => Effect::None,
            address::TRIGGER_SOFTWARE if value == 1 => {
                if !(running && self.armed && self.trigger_mode == trigger_mode::ON) {
                    return ignored("TriggerSoftware while not armed for triggers");
                }
                if self.triggers < MAX_PENDING_TRIGGERS {
                    self.triggers += 1;
                }
                Effect::Triggered
            }
            address::TL_PARAMS_LOCKED if value <= 1 => {
                self.tl_params_locked = value;
                Effect::None
            }
            _ => ignored(&format!("at {offset:#x}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_salts_are_the_definitions() {
        assert_eq!(crate::pattern::MONO8, pfnc::MONO8);
        for &(_, code, _) in pfnc::ALL {
            let salt = crate::pattern::salt(code);
            assert_eq!(salt == 0, code == pfnc::MONO8);
        }
    }

    #[test]
    fn defaults_and_payload() {
        let mut camera = Camera::new("SN1");
        assert_eq!(camera.payload_size(), 2048 * 2048);
        assert_eq!(
            camera.write(address::PIXEL_FORMAT, pfnc::MONO16, false),
            Effect::None
        );
        assert_eq!(camera.read(address::PAYLOAD_SIZE), 2048 * 2048 * 2);
        assert_eq!(
            camera.read(address::DEVICE_VENDOR_NAME),
            u32::from_le_bytes(*b"fgra")
        );
        assert_eq!(
            camera.read(address::DEVICE_SERIAL_NUMBER),
            u32::from_le_bytes(*b"SN1\0")
        );
    }

    #[test]
    fn rejected_values_change_nothing() {
        let mut camera = Camera::new("");
        let before = camera.clone();
        for (offset, value) in [
            (address::WIDTH, 6),
            (address::WIDTH, 4100),
            (address::WIDTH, 642),
            (address::HEIGHT, 3),
            (address::PIXEL_FORMAT, 0x0108_0002),
            (address::ACQUISITION_MODE, 3),
            (address::ACQUISITION_FRAME_COUNT, 0),
            (address::ACQUISITION_FRAME_RATE, 0f32.to_bits()),
            (address::ACQUISITION_FRAME_RATE, f32::NAN.to_bits()),
            (address::WIDTH_MAX, 8),
            (0x800, 1),
        ] {
            camera.write(offset, value, false);
        }
        assert_eq!(camera, before);
        // The image format is fixed while running.
        camera.write(address::WIDTH, 640, true);
        assert_eq!(camera.read(address::WIDTH), 2048);
    }

    #[test]
    fn single_and_multi_frame_count_their_starts() {
        let mut camera = Camera::new("");
        camera.write(
            address::ACQUISITION_MODE,
            acquisition_mode::MULTI_FRAME,
            false,
        );
        camera.write(address::ACQUISITION_FRAME_COUNT, 3, false);
        camera.arm();
        for _ in 0..3 {
            assert!(camera.free_running());
            camera.count_start();
        }
        assert!(!camera.armed());
        assert_eq!(
            camera.write(address::ACQUISITION_START, 1, true),
            Effect::Armed
        );
        assert!(camera.free_running());
        camera.write(address::ACQUISITION_STOP, 1, true);
        assert!(!camera.armed());
    }

    #[test]
    fn triggers_start_one_frame_each() {
        let mut camera = Camera::new("");
        camera.write(address::TRIGGER_MODE, trigger_mode::ON, false);
        camera.arm();
        assert!(!camera.free_running() && !camera.triggered());
        assert_eq!(
            camera.write(address::TRIGGER_SOFTWARE, 1, true),
            Effect::Triggered
        );
        camera.write(address::TRIGGER_SOFTWARE, 1, true);
        assert!(camera.triggered());
        camera.count_start();
        assert!(camera.triggered());
        camera.count_start();
        assert!(!camera.triggered());
        // Not armed: ignored.
        camera.write(address::ACQUISITION_STOP, 1, true);
        assert_eq!(
            camera.write(address::TRIGGER_SOFTWARE, 1, true),
            Effect::None
        );
        assert!(!camera.triggered());
    }

    #[test]
    fn frame_rate_never_beats_the_link() {
        let mut camera = Camera::new("");
        assert_eq!(camera.period_ns(1000), 1000);
        camera.write(address::ACQUISITION_FRAME_RATE_ENABLE, 1, true);
        camera.write(address::ACQUISITION_FRAME_RATE, 100f32.to_bits(), true);
        assert_eq!(camera.period_ns(1000), 10_000_000);
        assert_eq!(camera.period_ns(50_000_000), 50_000_000);
    }
}
