//! The camera's features (`docs/client.md`, "Camera features"): typed access by SFNC name to
//! the card's feature window, its GenICam XML, and the raw port for GenTL producers.
//!
//! Names map to registers through the card's definition (`fgrab_hw::camera::FEATURES`, the
//! table the XML is checked against), never by parsing XML. [`Features`] takes `&self` and
//! is `Sync`: a thread may execute `TriggerSoftware` while another waits for a frame. It
//! sends its commands on a small ring of its own (made at first use) on the card's file, so
//! it never waits behind frame traffic.

use crate::raw;
use crate::uring::Uring;
use crate::{Error, Result};
use fgrab_hw::camera::{self as card, limits, Access, Kind};
use fgrab_uapi::MAX_PORT_BYTES;
use std::os::fd::RawFd;
use std::sync::Mutex;

/// Entries of the feature port's ring: one command at a time.
const PORT_RING_ENTRIES: u32 = 4;

/// A pixel format the card produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// 8-bit monochrome.
    Mono8,
    /// 16-bit monochrome, little endian.
    Mono16,
    /// 8-bit Bayer, RGGB.
    BayerRG8,
}

impl PixelFormat {
    /// Every format.
    pub const ALL: [PixelFormat; 3] = [Self::Mono8, Self::Mono16, Self::BayerRG8];

    /// The PFNC code.
    pub fn pfnc(self) -> u32 {
        match self {
            Self::Mono8 => card::pfnc::MONO8,
            Self::Mono16 => card::pfnc::MONO16,
            Self::BayerRG8 => card::pfnc::BAYER_RG8,
        }
    }

    /// The format of PFNC code `code`, if the card produces it.
    pub fn from_pfnc(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.pfnc() == code)
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> u32 {
        card::pfnc::bytes_per_pixel(self.pfnc()).unwrap_or(1)
    }

    /// The SFNC name (`"Mono8"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mono8 => "Mono8",
            Self::Mono16 => "Mono16",
            Self::BayerRG8 => "BayerRG8",
        }
    }

    /// The format named `name` (SFNC spelling).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.name() == name)
    }
}

/// A feature's value, typed as the GenICam XML types the feature.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum FeatureValue {
    /// `Integer`.
    Int(i64),
    /// `Float`.
    Float(f64),
    /// `Boolean`.
    Bool(bool),
    /// `Enumeration`: the entry's name.
    Enum(String),
    /// `String`.
    Str(String),
}

/// The camera features of one card file: made by [`crate::Card::features`],
/// [`crate::Stream::features`] and [`crate::SharedStream::features`].
pub struct Features {
    fd: RawFd,
    /// Made at first use: most programs never touch features.
    ring: Mutex<Option<Uring>>,
}

impl std::fmt::Debug for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Features")
            .field("fd", &self.fd)
            .finish_non_exhaustive()
    }
}

/// The definition's entry for `name`.
fn lookup(name: &str) -> Result<&'static card::Feature> {
    card::FEATURES
        .iter()
        .find(|feature| feature.name == name)
        .ok_or_else(|| Error::NoSuchFeature { name: name.into() })
}

fn invalid(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidValue {
        name: name.into(),
        reason: reason.into(),
    }
}

impl Features {
    /// Features of the card file `fd` (which must outlive this).
    pub(crate) fn new(fd: RawFd) -> Self {
        Self {
            fd,
            ring: Mutex::new(None),
        }
    }

    /// Every feature name, in address order.
    pub fn feature_names() -> impl Iterator<Item = &'static str> {
        card::FEATURES.iter().map(|feature| feature.name)
    }

    /// Sends one command built for a heap buffer of `len` bytes (`build` gets its
    /// address), returns the result and the buffer. The buffer is leaked if no answer came:
    /// the driver may still use it.
    fn command(
        &self,
        name: &'static str,
        mut buffer: Vec<u8>,
        build: impl FnOnce(RawFd, *mut u8) -> io_uring::squeue::Entry128,
    ) -> Result<(i32, Vec<u8>)> {
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if ring.is_none() {
            *ring = Some(Uring::with_entries(self.fd, false, PORT_RING_ENTRIES)?);
        }
        let Some(ring) = ring.as_mut() else {
            unreachable!("made above");
        };
        let entry = build(self.fd, buffer.as_mut_ptr());
        match ring.command(entry) {
            Ok(res) if res == -libc::EOPNOTSUPP => Err(Error::NoCamera),
            Ok(res) if res < 0 => Err(Error::command(name, res)),
            Ok(res) => Ok((res, buffer)),
            Err(error) => {
                std::mem::forget(buffer);
                Err(error)
            }
        }
    }

    /// Reads `out.len()` bytes of the feature window at `offset` (both multiples of 4):
    /// the GenICam port "Device", for GenTL producers.
    ///
    /// # Errors
    ///
    /// [`Error::NoCamera`]; [`Error::Command`] (`EINVAL`) for bytes outside the window or
    /// misaligned; [`Error::Ring`].
    pub fn read_port(&self, offset: u32, out: &mut [u8]) -> Result<()> {
        let mut done = 0;
        for chunk in out.chunks_mut(MAX_PORT_BYTES as usize) {
            let at = offset
                .checked_add(u32::try_from(done).map_err(|_| invalid("port", "offset"))?)
                .ok_or_else(|| invalid("port", "offset overflows"))?;
            // CAST: at most MAX_PORT_BYTES.
            let size = chunk.len() as u32;
            let (_, bytes) = self.command("FEATURE_READ", vec![0; chunk.len()], |fd, addr| {
                raw::FeatureRead::new(fd, at, addr, size).build()
            })?;
            chunk.copy_from_slice(&bytes);
            done += chunk.len();
        }
        Ok(())
    }

    /// Writes `data` into the feature window at `offset` (both multiples of 4).
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] if the write touches the image format while streaming or another
    /// file owns the stream; otherwise as [`Self::read_port`].
    pub fn write_port(&self, offset: u32, data: &[u8]) -> Result<()> {
        self.write_named("port", offset, data)
    }

    fn write_named(&self, name: &str, offset: u32, data: &[u8]) -> Result<()> {
        let mut done = 0;
        for chunk in data.chunks(MAX_PORT_BYTES as usize) {
            let at = offset
                .checked_add(u32::try_from(done).map_err(|_| invalid(name, "offset"))?)
                .ok_or_else(|| invalid(name, "offset overflows"))?;
            // CAST: at most MAX_PORT_BYTES.
            let size = chunk.len() as u32;
            match self.command("FEATURE_WRITE", chunk.to_vec(), |fd, addr| {
                raw::FeatureWrite::new(fd, at, addr, size).build()
            }) {
                Err(Error::Command { errno, .. }) if errno == libc::EBUSY => {
                    return Err(Error::Busy {
                        name: name.into(),
                        reason: "the stream runs (the image format is fixed) or another \
                                 file owns it",
                    })
                }
                Err(error) => return Err(error),
                Ok(_) => {}
            }
            done += chunk.len();
        }
        Ok(())
    }

    /// The card's GenICam XML, whole.
    ///
    /// # Errors
    ///
    /// [`Error::NoCamera`], [`Error::Command`], [`Error::Ring`].
    pub fn genicam_xml(&self) -> Result<Vec<u8>> {
        let (size, _) = self.command("XML_READ", Vec::new(), |fd, addr| {
            raw::XmlRead::new(fd, 0, addr, 0).build()
        })?;
        // CAST: non-negative, checked by `command`.
        let size = size as usize;
        let mut xml = Vec::with_capacity(size);
        while xml.len() < size {
            let want = (size - xml.len()).min(MAX_PORT_BYTES as usize);
            // CAST: below the XML's size, an i32.
            let offset = xml.len() as u32;
            let (got, bytes) = self.command("XML_READ", vec![0; want], |fd, addr| {
                raw::XmlRead::new(fd, offset, addr, want as u32).build()
            })?;
            if got == 0 {
                break;
            }
            // CAST: non-negative.
            xml.extend_from_slice(&bytes[..got as usize]);
        }
        Ok(xml)
    }

    fn read_u32(&self, address: u32) -> Result<u32> {
        let mut word = [0u8; 4];
        self.read_port(address, &mut word)?;
        Ok(u32::from_le_bytes(word))
    }

    /// The value of feature `name`.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchFeature`]; [`Error::InvalidValue`] for a command (it has no value);
    /// those of [`Self::read_port`].
    pub fn feature(&self, name: &str) -> Result<FeatureValue> {
        let feature = lookup(name)?;
        if feature.kind == Kind::String {
            // CAST: strings are at most 32 bytes.
            let mut bytes = vec![0u8; feature.length as usize];
            self.read_port(feature.address, &mut bytes)?;
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            return Ok(FeatureValue::Str(
                String::from_utf8_lossy(&bytes[..end]).into_owned(),
            ));
        }
        let raw = self.read_u32(feature.address)?;
        Ok(match feature.kind {
            Kind::Integer => FeatureValue::Int(raw.into()),
            Kind::Boolean => FeatureValue::Bool(raw != 0),
            Kind::Float => FeatureValue::Float(f32::from_bits(raw).into()),
            Kind::Enumeration(entries) => FeatureValue::Enum(
                entries
                    .iter()
                    .find(|&&(_, value)| value == raw)
                    .map_or_else(|| format!("{raw:#x}"), |&(entry, _)| entry.to_string()),
            ),
            Kind::Command => return Err(invalid(name, "a command has no value: execute it")),
            Kind::String => unreachable!("answered above"),
        })
    }

    /// Sets feature `name`. The value is checked against the feature's type and range
    /// before it is written.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchFeature`]; [`Error::InvalidValue`] for a read-only feature, a
    /// command, or a value the feature does not take; [`Error::Busy`]; those of
    /// [`Self::write_port`].
    pub fn set_feature(&self, name: &str, value: FeatureValue) -> Result<()> {
        let feature = lookup(name)?;
        if feature.access == Access::Ro {
            return Err(invalid(name, "read only"));
        }
        let raw = match (feature.kind, &value) {
            (Kind::Integer, FeatureValue::Int(v)) => {
                let v =
                    u32::try_from(*v).map_err(|_| invalid(name, format!("{v} out of range")))?;
                let ok = match feature.address {
                    card::address::WIDTH => limits::width_ok(v),
                    card::address::HEIGHT => limits::height_ok(v),
                    card::address::ACQUISITION_FRAME_COUNT => {
                        (1..=limits::FRAME_COUNT_MAX).contains(&v)
                    }
                    card::address::TL_PARAMS_LOCKED => v <= 1,
                    _ => true,
                };
                if !ok {
                    return Err(invalid(name, format!("{v} is not a value it takes")));
                }
                v
            }
            (Kind::Boolean, FeatureValue::Bool(v)) => u32::from(*v),
            (Kind::Float, FeatureValue::Float(v)) => {
                let range = f64::from(limits::FRAME_RATE_MIN)..=f64::from(limits::FRAME_RATE_MAX);
                if !range.contains(v) {
                    return Err(invalid(name, format!("{v} outside {range:?}")));
                }
                // CAST: inside f32 range, checked above.
                (*v as f32).to_bits()
            }
            (Kind::Enumeration(entries), FeatureValue::Enum(entry)) => entries
                .iter()
                .find(|&&(known, _)| known == entry)
                .map(|&(_, value)| value)
                .ok_or_else(|| invalid(name, format!("no entry {entry:?}")))?,
            (Kind::Command, _) => return Err(invalid(name, "a command: execute it")),
            (kind, value) => return Err(invalid(name, format!("{value:?} for a {kind:?}"))),
        };
        self.write_named(name, feature.address, &raw.to_le_bytes())
    }

    /// Executes command `name` (`AcquisitionStart`, `AcquisitionStop`, `TriggerSoftware`).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchFeature`]; [`Error::InvalidValue`] if it is not a command; those of
    /// [`Self::write_port`].
    pub fn execute(&self, name: &str) -> Result<()> {
        let feature = lookup(name)?;
        if feature.kind != Kind::Command {
            return Err(invalid(name, "not a command"));
        }
        self.write_named(name, feature.address, &1u32.to_le_bytes())
    }

    /// `Width`, in pixels.
    ///
    /// # Errors
    ///
    /// As [`Self::feature`].
    pub fn width(&self) -> Result<u32> {
        self.read_u32(card::address::WIDTH)
    }

    /// `Height`, in lines.
    ///
    /// # Errors
    ///
    /// As [`Self::feature`].
    pub fn height(&self) -> Result<u32> {
        self.read_u32(card::address::HEIGHT)
    }

    /// `PayloadSize`: bytes of one image.
    ///
    /// # Errors
    ///
    /// As [`Self::feature`].
    pub fn payload_size(&self) -> Result<u32> {
        self.read_u32(card::address::PAYLOAD_SIZE)
    }

    /// `PixelFormat`.
    ///
    /// # Errors
    ///
    /// As [`Self::feature`]; [`Error::InvalidValue`] for a code the library does not know.
    pub fn pixel_format(&self) -> Result<PixelFormat> {
        let code = self.read_u32(card::address::PIXEL_FORMAT)?;
        PixelFormat::from_pfnc(code)
            .ok_or_else(|| invalid("PixelFormat", format!("unknown PFNC code {code:#010x}")))
    }

    /// Sets `Width`.
    ///
    /// # Errors
    ///
    /// As [`Self::set_feature`].
    pub fn set_width(&self, width: u32) -> Result<()> {
        self.set_feature("Width", FeatureValue::Int(width.into()))
    }

    /// Sets `Height`.
    ///
    /// # Errors
    ///
    /// As [`Self::set_feature`].
    pub fn set_height(&self, height: u32) -> Result<()> {
        self.set_feature("Height", FeatureValue::Int(height.into()))
    }

    /// Sets `PixelFormat`.
    ///
    /// # Errors
    ///
    /// As [`Self::set_feature`].
    pub fn set_pixel_format(&self, format: PixelFormat) -> Result<()> {
        self.set_feature("PixelFormat", FeatureValue::Enum(format.name().into()))
    }

    /// Executes `TriggerSoftware`.
    ///
    /// # Errors
    ///
    /// As [`Self::execute`].
    pub fn trigger_software(&self) -> Result<()> {
        self.execute("TriggerSoftware")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_formats_are_the_definitions() {
        for format in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_pfnc(format.pfnc()), Some(format));
            assert_eq!(PixelFormat::from_name(format.name()), Some(format));
            assert!(card::PIXEL_FORMATS.contains(&(format.name(), format.pfnc())));
        }
        assert_eq!(PixelFormat::Mono16.bytes_per_pixel(), 2);
        assert_eq!(
            PixelFormat::from_pfnc(0x0108_0001),
            Some(PixelFormat::Mono8)
        );
    }

    #[test]
    fn bad_names_and_values_fail_before_any_command() {
        // fd -1: any command would fail with a ring error, so these must not send one.
        let features = Features::new(-1);
        assert!(matches!(
            features.feature("Gain"),
            Err(Error::NoSuchFeature { .. })
        ));
        for (name, value) in [
            ("Width", FeatureValue::Int(6)),
            ("Width", FeatureValue::Int(-4)),
            ("Height", FeatureValue::Int(3)),
            ("PixelFormat", FeatureValue::Enum("RGB8".into())),
            ("PayloadSize", FeatureValue::Int(4)),
            ("AcquisitionFrameRate", FeatureValue::Float(0.0)),
            ("TriggerMode", FeatureValue::Int(1)),
            ("TriggerSoftware", FeatureValue::Int(1)),
        ] {
            assert!(
                matches!(
                    features.set_feature(name, value.clone()),
                    Err(Error::InvalidValue { .. })
                ),
                "{name} = {value:?}"
            );
        }
        assert!(matches!(
            features.execute("Width"),
            Err(Error::InvalidValue { .. })
        ));
        assert!(Features::feature_names().any(|name| name == "TriggerSoftware"));
    }
}
