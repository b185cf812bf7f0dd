// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The camera half of the interface (`docs/hardware.md` §3.8, §12): the feature register
//! window a camera user sets and reads, and the card's own GenICam XML description of it.
//!
//! As on a GenICam camera, the window is a port address space of its own: feature
//! addresses here and in the XML count from the window's start, wherever BAR0 puts it
//! ([`super::regs::FEATURE_WINDOW_OFFSET`]). The XML (`hw/genicam/fgrab.xml`) names these
//! registers by address; `hw/tests/genicam.rs` checks it against [`FEATURES`], and the
//! client library maps names to registers from [`FEATURES`] too, never by parsing XML.

/// Where the model puts the feature window in BAR0 (the card says so in
/// [`super::regs::FEATURE_WINDOW_OFFSET`]; a driver reads that, not this).
pub const WINDOW_OFFSET: u32 = 0x1000;
/// Size of the feature window: one 4 KiB page of BAR0, and the largest a driver accepts.
pub const WINDOW_SIZE: u32 = 0x1000;
/// Where the model puts its GenICam XML in BAR0 ([`super::regs::XML_OFFSET`]).
pub const XML_OFFSET: u32 = 0x2000;
/// Most bytes of XML BAR0 has room for: from [`XML_OFFSET`] to the MSI-X table.
pub const XML_MAX_SIZE: u32 = super::msix::TABLE_OFFSET - XML_OFFSET;

/// PFNC pixel format codes (GenICam Pixel Format Naming Convention) the card produces.
pub mod pfnc {
    /// 8-bit monochrome.
    pub const MONO8: u32 = 0x0108_0001;
    /// 16-bit monochrome, little endian.
    pub const MONO16: u32 = 0x0110_0007;
    /// 8-bit Bayer, RGGB mosaic (red at pixel 0 of even rows).
    pub const BAYER_RG8: u32 = 0x0108_0009;
    /// Every format: (SFNC name, PFNC code, bytes per pixel).
    pub const ALL: &[(&str, u32, u32)] = &[
        ("Mono8", MONO8, 1),
        ("Mono16", MONO16, 2),
        ("BayerRG8", BAYER_RG8, 1),
    ];

    /// Bytes per pixel of `code`, `None` for a format the card does not produce.
    pub const fn bytes_per_pixel(code: u32) -> Option<u32> {
        let mut i = 0;
        while i < ALL.len() {
            if ALL[i].1 == code {
                return Some(ALL[i].2);
            }
            i += 1;
        }
        None
    }
}

/// Limits of the image geometry.
pub mod limits {
    /// `WidthMax`: widest image, in pixels.
    pub const WIDTH_MAX: u32 = 4096;
    /// `HeightMax`: tallest image, in lines.
    pub const HEIGHT_MAX: u32 = 3072;
    /// Narrowest image.
    pub const WIDTH_MIN: u32 = 8;
    /// Shortest image.
    pub const HEIGHT_MIN: u32 = 2;
    /// Width steps: 4 pixels (32-bit aligned lines in every format).
    pub const WIDTH_INC: u32 = 4;
    /// Height steps: 2 lines (whole Bayer quads).
    pub const HEIGHT_INC: u32 = 2;
    /// Width after reset.
    pub const WIDTH_DEFAULT: u32 = 2048;
    /// Height after reset (2048 x 2048 Mono8 is the model's default 4 MiB frame).
    pub const HEIGHT_DEFAULT: u32 = 2048;
    /// Most frames `AcquisitionFrameCount` asks for.
    pub const FRAME_COUNT_MAX: u32 = 65535;
    /// Slowest `AcquisitionFrameRate`, in Hz.
    pub const FRAME_RATE_MIN: f32 = 0.1;
    /// Fastest `AcquisitionFrameRate`, in Hz (the link's rate may be slower).
    pub const FRAME_RATE_MAX: f32 = 100_000.0;
    /// `AcquisitionFrameRate` after reset, in Hz.
    pub const FRAME_RATE_DEFAULT: f32 = 30.0;

    /// Whether `width` is a width the card accepts.
    pub const fn width_ok(width: u32) -> bool {
        width >= WIDTH_MIN && width <= WIDTH_MAX && width % WIDTH_INC == 0
    }

    /// Whether `height` is a height the card accepts.
    pub const fn height_ok(height: u32) -> bool {
        height >= HEIGHT_MIN && height <= HEIGHT_MAX && height % HEIGHT_INC == 0
    }
}

/// `AcquisitionMode` values.
pub mod acquisition_mode {
    /// Frames until `AcquisitionStop`.
    pub const CONTINUOUS: u32 = 0;
    /// One frame, then acquisition stops.
    pub const SINGLE_FRAME: u32 = 1;
    /// `AcquisitionFrameCount` frames, then acquisition stops.
    pub const MULTI_FRAME: u32 = 2;
    /// Every value: (SFNC entry name, value).
    pub const ALL: &[(&str, u32)] = &[
        ("Continuous", CONTINUOUS),
        ("SingleFrame", SINGLE_FRAME),
        ("MultiFrame", MULTI_FRAME),
    ];
}

/// `TriggerMode` values.
pub mod trigger_mode {
    /// Frames start on their own, at the frame rate.
    pub const OFF: u32 = 0;
    /// A frame starts for each trigger.
    pub const ON: u32 = 1;
    /// Every value: (SFNC entry name, value).
    pub const ALL: &[(&str, u32)] = &[("Off", OFF), ("On", ON)];
}

/// `TriggerSource` values.
pub mod trigger_source {
    /// `TriggerSoftware` executions.
    pub const SOFTWARE: u32 = 0;
    /// Every value: (SFNC entry name, value).
    pub const ALL: &[(&str, u32)] = &[("Software", SOFTWARE)];
}

/// How a feature's register is read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    Ro,
    /// Read and write (commands read 0: executed at once, so done).
    Rw,
}

/// What a feature's register holds, as the XML types it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Unsigned 32-bit integer (`IntReg` under an `Integer`).
    Integer,
    /// 0 or 1 (`IntReg` under a `Boolean`).
    Boolean,
    /// One of the listed (entry name, value) pairs (`IntReg` under an `Enumeration`).
    Enumeration(&'static [(&'static str, u32)]),
    /// A command: writing 1 executes it (`IntReg` under a `Command`).
    Command,
    /// IEEE 754 single precision (`FloatReg` under a `Float`).
    Float,
    /// NUL-padded ASCII of the register's length (`StringReg`).
    String,
}

/// One feature: its SFNC name, address in the window, length, access and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Name as GenICam SFNC spells it (and the XML's node name).
    pub name: &'static str,
    /// Byte address in the feature window (4-byte aligned).
    pub address: u32,
    /// Bytes (4, or a multiple of 4 for strings).
    pub length: u32,
    /// Access.
    pub access: Access,
    /// Type.
    pub kind: Kind,
}

/// Feature register addresses (bytes from the window's start).
pub mod address {
    /// `DeviceVendorName`, 32 bytes.
    pub const DEVICE_VENDOR_NAME: u32 = 0x000;
    /// `DeviceModelName`, 32 bytes.
    pub const DEVICE_MODEL_NAME: u32 = 0x020;
    /// `DeviceSerialNumber`, 16 bytes.
    pub const DEVICE_SERIAL_NUMBER: u32 = 0x040;
    /// `DeviceVersion`, 16 bytes.
    pub const DEVICE_VERSION: u32 = 0x050;
    /// `Width`.
    pub const WIDTH: u32 = 0x100;
    /// `Height`.
    pub const HEIGHT: u32 = 0x104;
    /// `WidthMax`.
    pub const WIDTH_MAX: u32 = 0x108;
    /// `HeightMax`.
    pub const HEIGHT_MAX: u32 = 0x10c;
    /// `PixelFormat`.
    pub const PIXEL_FORMAT: u32 = 0x110;
    /// `PayloadSize`.
    pub const PAYLOAD_SIZE: u32 = 0x114;
    /// `AcquisitionMode`.
    pub const ACQUISITION_MODE: u32 = 0x118;
    /// `AcquisitionFrameCount`.
    pub const ACQUISITION_FRAME_COUNT: u32 = 0x11c;
    /// `AcquisitionStart`.
    pub const ACQUISITION_START: u32 = 0x120;
    /// `AcquisitionStop`.
    pub const ACQUISITION_STOP: u32 = 0x124;
    /// `AcquisitionFrameRateEnable`.
    pub const ACQUISITION_FRAME_RATE_ENABLE: u32 = 0x128;
    /// `AcquisitionFrameRate`.
    pub const ACQUISITION_FRAME_RATE: u32 = 0x12c;
    /// `TriggerMode`.
    pub const TRIGGER_MODE: u32 = 0x130;
    /// `TriggerSource`.
    pub const TRIGGER_SOURCE: u32 = 0x134;
    /// `TriggerSoftware`.
    pub const TRIGGER_SOFTWARE: u32 = 0x138;
    /// `TLParamsLocked`.
    pub const TL_PARAMS_LOCKED: u32 = 0x13c;
}

/// The registers that set the frame's size: written while the card streams, the card
/// ignores them and the driver answers `EBUSY`.
pub const SIZE_FEATURES: &[u32] = &[address::WIDTH, address::HEIGHT, address::PIXEL_FORMAT];

/// Whether bytes `offset..offset + size` of the window touch a register of [`SIZE_FEATURES`].
pub const fn touches_size(offset: u32, size: u32) -> bool {
    let mut i = 0;
    while i < SIZE_FEATURES.len() {
        let register = SIZE_FEATURES[i];
        // Both ranges are inside the window: no overflow.
        if offset < register + 4 && register < offset + size {
            return true;
        }
        i += 1;
    }
    false
}

const fn feature(
    name: &'static str,
    address: u32,
    length: u32,
    access: Access,
    kind: Kind,
) -> Feature {
    Feature {
        name,
        address,
        length,
        access,
        kind,
    }
}

/// Every feature, in address order.
pub const FEATURES: &[Feature] = &[
    feature(
        "DeviceVendorName",
        address::DEVICE_VENDOR_NAME,
        32,
        Access::Ro,
        Kind::String,
    ),
    feature(
        "DeviceModelName",
        address::DEVICE_MODEL_NAME,
        32,
        Access::Ro,
        Kind::String,
    ),
    feature(
        "DeviceSerialNumber",
        address::DEVICE_SERIAL_NUMBER,
        16,
        Access::Ro,
        Kind::String,
    ),
    feature(
        "DeviceVersion",
        address::DEVICE_VERSION,
        16,
        Access::Ro,
        Kind::String,
    ),
    feature("Width", address::WIDTH, 4, Access::Rw, Kind::Integer),
    feature("Height", address::HEIGHT, 4, Access::Rw, Kind::Integer),
    feature("WidthMax", address::WIDTH_MAX, 4, Access::Ro, Kind::Integer),
    feature(
        "HeightMax",
        address::HEIGHT_MAX,
        4,
        Access::Ro,
        Kind::Integer,
    ),
    feature(
        "PixelFormat",
        address::PIXEL_FORMAT,
        4,
        Access::Rw,
        Kind::Enumeration(PIXEL_FORMATS),
    ),
    feature(
        "PayloadSize",
        address::PAYLOAD_SIZE,
        4,
        Access::Ro,
        Kind::Integer,
    ),
    feature(
        "AcquisitionMode",
        address::ACQUISITION_MODE,
        4,
        Access::Rw,
        Kind::Enumeration(acquisition_mode::ALL),
    ),
    feature(
        "AcquisitionFrameCount",
        address::ACQUISITION_FRAME_COUNT,
        4,
        Access::Rw,
        Kind::Integer,
    ),
    feature(
        "AcquisitionStart",
        address::ACQUISITION_START,
        4,
        Access::Rw,
        Kind::Command,
    ),
    feature(
        "AcquisitionStop",
        address::ACQUISITION_STOP,
        4,
        Access::Rw,
        Kind::Command,
    ),
    feature(
        "AcquisitionFrameRateEnable",
        address::ACQUISITION_FRAME_RATE_ENABLE,
        4,
        Access::Rw,
        Kind::Boolean,
    ),
    feature(
        "AcquisitionFrameRate",
        address::ACQUISITION_FRAME_RATE,
        4,
        Access::Rw,
        Kind::Float,
    ),
    feature(
        "TriggerMode",
        address::TRIGGER_MODE,
        4,
        Access::Rw,
        Kind::Enumeration(trigger_mode::ALL),
    ),
    feature(
        "TriggerSource",
        address::TRIGGER_SOURCE,
        4,
        Access::Rw,
        Kind::Enumeration(trigger_source::ALL),
    ),
    feature(
        "TriggerSoftware",
        address::TRIGGER_SOFTWARE,
        4,
        Access::Rw,
        Kind::Command,
    ),
    feature(
        "TLParamsLocked",
        address::TL_PARAMS_LOCKED,
        4,
        Access::Rw,
        Kind::Integer,
    ),
];

/// `PixelFormat` entries: (SFNC name, PFNC code).
pub const PIXEL_FORMATS: &[(&str, u32)] = &[
    ("Mono8", pfnc::MONO8),
    ("Mono16", pfnc::MONO16),
    ("BayerRG8", pfnc::BAYER_RG8),
];

/// What the identification strings read on the model.
pub mod identity {
    /// `DeviceVendorName`.
    pub const VENDOR: &str = "fgrab";
    /// `DeviceModelName`.
    pub const MODEL: &str = "fgrab emulated camera";
    /// `DeviceVersion`.
    pub const VERSION: &str = "1.0";
}

const _: () = {
    let mut i = 0;
    while i < FEATURES.len() {
        let f = FEATURES[i];
        assert!(f.address % 4 == 0 && f.length % 4 == 0 && f.length > 0);
        assert!(f.address + f.length <= WINDOW_SIZE);
        // In address order, without overlap.
        assert!(i == 0 || FEATURES[i - 1].address + FEATURES[i - 1].length <= f.address);
        i += 1;
    }
    assert!(PIXEL_FORMATS.len() == pfnc::ALL.len());
    assert!(XML_OFFSET >= WINDOW_OFFSET + WINDOW_SIZE);
    // CAST: u32 to usize, widening.
    assert!(WINDOW_OFFSET as usize >= super::REGISTER_BLOCK_SIZE);
    assert!(limits::width_ok(limits::WIDTH_DEFAULT) && limits::height_ok(limits::HEIGHT_DEFAULT));
};
