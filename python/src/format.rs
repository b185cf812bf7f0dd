//! What a frame holds: its geometry and pixel format, read from the card's features.

use crate::errors::IntoPy;
use fgrab::{Card, SharedStream};
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

/// Where features are read and written: the card before a stream exists, the stream (whose
/// file owns the card) after.
pub(crate) enum Access<'c> {
    Card(&'c mut Card),
    Stream(&'c SharedStream<'static>),
}

impl Access<'_> {
    /// The format the card would stream now.
    pub fn format(&mut self) -> PyResult<FrameFormat> {
        let info = match self {
            Access::Card(card) => card.info().py_err()?,
            Access::Stream(stream) => {
                return Ok(FrameFormat {
                    width: stream.geometry().frame_bytes(),
                    height: 1,
                    pixel_format: "Mono8",
                    dtype: "u1",
                    bytes_per_pixel: 1,
                });
            }
        };
        Ok(FrameFormat {
            width: info.frame_bytes,
            height: 1,
            pixel_format: "Mono8",
            dtype: "u1",
            bytes_per_pixel: 1,
        })
    }
}
