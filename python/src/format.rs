//! What a frame holds: its geometry and pixel format, read from the card's features.

use crate::errors::IntoPy;
use fgrab::Features;
use pyo3::prelude::*;

/// Geometry and pixel format of the frames of one stream, fixed while it is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FrameFormat {
    pub width: u32,
    pub height: u32,
    /// PFNC name (`Mono8`, `Mono16`, `BayerRG8`).
    pub pixel_format: &'static str,
    /// numpy dtype string of one pixel.
    pub dtype: &'static str,
    pub bytes_per_pixel: u32,
}

impl FrameFormat {
    /// Bytes of one frame (`PayloadSize`).
    pub fn payload(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.bytes_per_pixel)
    }
}

/// The format the card streams now, `None` for a card without camera features.
pub(crate) fn read(features: &Features) -> PyResult<Option<FrameFormat>> {
    let format = match features.pixel_format() {
        Err(fgrab::Error::NoCamera) => return Ok(None),
        format => format.py_err()?,
    };
    Ok(Some(FrameFormat {
        width: features.width().py_err()?,
        height: features.height().py_err()?,
        pixel_format: format.name(),
        dtype: match format.bytes_per_pixel() {
            2 => "<u2",
            _ => "u1",
        },
        bytes_per_pixel: format.bytes_per_pixel(),
    }))
}

/// The format of a card without camera features: lines of `frame_bytes` bytes, one row
/// of Mono8 "pixels" per frame.
pub(crate) fn raw_lines(frame_bytes: u32) -> FrameFormat {
    FrameFormat {
        width: frame_bytes,
        height: 1,
        pixel_format: "Mono8",
        dtype: "u1",
        bytes_per_pixel: 1,
    }
}
