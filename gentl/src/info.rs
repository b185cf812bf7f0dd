//! Typed answers to the `*GetInfo` calls, written with the standard's size contract: the
//! caller passes its buffer and `*piSize`; with a NULL buffer only the size is reported;
//! a buffer smaller than the value fails with `GC_ERR_BUFFER_TOO_SMALL` (and `*piSize` says
//! how much is needed). Strings are NUL-terminated and counted with the NUL.

use crate::abi::*;
use crate::error::{fail, Result};
use std::ffi::{c_char, c_void};

/// One info value with its `INFO_DATATYPE`.
#[derive(Debug, Clone, PartialEq)]
pub enum Info {
    /// `INFO_DATATYPE_STRING`.
    String(String),
    /// `INFO_DATATYPE_INT32`.
    I32(i32),
    /// `INFO_DATATYPE_UINT32`.
    U32(u32),
    /// `INFO_DATATYPE_UINT64`.
    U64(u64),
    /// `INFO_DATATYPE_BOOL8`.
    Bool(bool),
    /// `INFO_DATATYPE_SIZET`.
    Size(usize),
    /// `INFO_DATATYPE_PTR`.
    Ptr(usize),
}

impl Info {
    /// A string value.
    pub fn string(text: impl Into<String>) -> Self {
        Info::String(text.into())
    }

    /// The value's `INFO_DATATYPE`.
    pub fn datatype(&self) -> InfoDatatype {
        match self {
            Info::String(_) => INFO_DATATYPE_STRING,
            Info::I32(_) => INFO_DATATYPE_INT32,
            Info::U32(_) => INFO_DATATYPE_UINT32,
            Info::U64(_) => INFO_DATATYPE_UINT64,
            Info::Bool(_) => INFO_DATATYPE_BOOL8,
            Info::Size(_) => INFO_DATATYPE_SIZET,
            Info::Ptr(_) => INFO_DATATYPE_PTR,
        }
    }

    /// The value's bytes as the caller receives them (native endianness).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Info::String(text) => {
                let mut bytes: Vec<u8> = text.bytes().filter(|&byte| byte != 0).collect();
                bytes.push(0);
                bytes
            }
            Info::I32(value) => value.to_ne_bytes().to_vec(),
            Info::U32(value) => value.to_ne_bytes().to_vec(),
            Info::U64(value) => value.to_ne_bytes().to_vec(),
            Info::Bool(value) => vec![u8::from(*value)],
            Info::Size(value) | Info::Ptr(value) => value.to_ne_bytes().to_vec(),
        }
    }
}

/// The size contract on plain slices: `Ok(needed)` after copying `value` into `out` (or
/// without copying when there is no `out`).
pub fn fill(value: &[u8], out: Option<&mut [u8]>) -> std::result::Result<usize, usize> {
    match out {
        None => Ok(value.len()),
        Some(out) if out.len() < value.len() => Err(value.len()),
        Some(out) => {
            out[..value.len()].copy_from_slice(value);
            Ok(value.len())
        }
    }
}

/// Writes `value` to the caller's `(*piType, pBuffer, *piSize)`.
///
/// # Safety
///
/// `datatype` must be null or writable; `buffer` null or writable for `*size` bytes; `size`
/// null or valid for reads and writes.
pub unsafe fn write(
    value: &Info,
    datatype: *mut InfoDatatype,
    buffer: *mut c_void,
    size: *mut usize,
) -> Result<()> {
    if !datatype.is_null() {
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { datatype.write_unaligned(value.datatype()) };
    }
    // SAFETY: forwarded caller contract.
    unsafe { write_bytes(&value.bytes(), buffer, size) }
}

/// Writes a string with the size contract (for IDs, URLs and error texts).
///
/// # Safety
///
/// As [`write`].
pub unsafe fn write_string(text: &str, buffer: *mut c_char, size: *mut usize) -> Result<()> {
    // SAFETY: forwarded caller contract.
    unsafe { write_bytes(&Info::string(text).bytes(), buffer.cast(), size) }
}

/// # Safety
///
/// As [`write`].
unsafe fn write_bytes(value: &[u8], buffer: *mut c_void, size: *mut usize) -> Result<()> {
    if size.is_null() {
        return fail(GC_ERR_INVALID_PARAMETER, "piSize is NULL");
    }
    // SAFETY: non-null and valid (caller contract); any alignment.
    let capacity = unsafe { size.read_unaligned() };
    let out = if buffer.is_null() {
        None
    } else {
        // SAFETY: `buffer` is writable for `capacity` bytes (caller contract) and not
        // otherwise referenced during this call.
        Some(unsafe { std::slice::from_raw_parts_mut(buffer.cast::<u8>(), capacity) })
    };
    let result = fill(value, out);
    let needed = match result {
        Ok(needed) | Err(needed) => needed,
    };
    // SAFETY: as above.
    unsafe { size.write_unaligned(needed) };
    match result {
        Ok(_) => Ok(()),
        Err(needed) => fail(
            GC_ERR_BUFFER_TOO_SMALL,
            format!("the value needs {needed} bytes, the buffer has {capacity}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_buffer_reports_the_size_only() {
        let mut size = 0usize;
        let mut datatype = 0;
        // SAFETY: valid pointers.
        unsafe {
            write(
                &Info::string("fgrab"),
                &mut datatype,
                std::ptr::null_mut(),
                &mut size,
            )
        }
        .unwrap();
        assert_eq!((size, datatype), (6, INFO_DATATYPE_STRING));
    }

    #[test]
    fn small_buffer_fails_with_the_needed_size() {
        let mut out = [0xaau8; 4];
        let mut size = out.len();
        // SAFETY: `out` has `size` bytes.
        let error = unsafe {
            write(
                &Info::string("fgrab"),
                std::ptr::null_mut(),
                out.as_mut_ptr().cast(),
                &mut size,
            )
        }
        .unwrap_err();
        assert_eq!(error.code, GC_ERR_BUFFER_TOO_SMALL);
        assert_eq!(size, 6);
        assert_eq!(out, [0xaa; 4], "nothing written");
    }

    #[test]
    fn values_are_written_with_their_type_and_size() {
        let cases = [
            (Info::U32(7), INFO_DATATYPE_UINT32, 4),
            (Info::U64(1 << 40), INFO_DATATYPE_UINT64, 8),
            (Info::I32(-1), INFO_DATATYPE_INT32, 4),
            (Info::Bool(true), INFO_DATATYPE_BOOL8, 1),
            (Info::Size(3), INFO_DATATYPE_SIZET, size_of::<usize>()),
            (Info::Ptr(0x1000), INFO_DATATYPE_PTR, size_of::<usize>()),
        ];
        for (value, expected_type, expected_size) in cases {
            let mut out = [0u8; 16];
            let mut size = out.len();
            let mut datatype = 0;
            // SAFETY: `out` has `size` bytes.
            unsafe { write(&value, &mut datatype, out.as_mut_ptr().cast(), &mut size) }.unwrap();
            assert_eq!(
                (datatype, size),
                (expected_type, expected_size),
                "{value:?}"
            );
            assert_eq!(&out[..size], &value.bytes()[..]);
        }
    }

    #[test]
    fn null_size_is_an_invalid_parameter() {
        // SAFETY: null pointers are allowed by the contract.
        let error = unsafe {
            write(
                &Info::U32(1),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        }
        .unwrap_err();
        assert_eq!(error.code, GC_ERR_INVALID_PARAMETER);
    }

    #[test]
    fn strings_drop_interior_nuls_and_end_with_one() {
        assert_eq!(Info::string("a\0b").bytes(), b"ab\0");
    }
}
