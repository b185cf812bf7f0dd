//! The GenTL 1.6 declarations the producer needs: types, codes and command values.
//!
//! Written for this crate from the standard's published values (names as the standard spells
//! them, so that they can be compared with `include/GenTL.h` by name: `tests/header.rs`).

#![allow(missing_docs)]

use std::ffi::c_void;

/// `GC_ERROR`.
pub type GcError = i32;
/// `INFO_DATATYPE`.
pub type InfoDatatype = i32;
/// `bool8_t`.
pub type Bool8 = u8;
/// Every `*_HANDLE` type: an opaque pointer.
pub type Handle = *mut c_void;

pub const GC_ERR_SUCCESS: GcError = 0;
pub const GC_ERR_ERROR: GcError = -1001;
pub const GC_ERR_NOT_INITIALIZED: GcError = -1002;
pub const GC_ERR_NOT_IMPLEMENTED: GcError = -1003;
pub const GC_ERR_RESOURCE_IN_USE: GcError = -1004;
pub const GC_ERR_ACCESS_DENIED: GcError = -1005;
pub const GC_ERR_INVALID_HANDLE: GcError = -1006;
pub const GC_ERR_INVALID_ID: GcError = -1007;
pub const GC_ERR_NO_DATA: GcError = -1008;
pub const GC_ERR_INVALID_PARAMETER: GcError = -1009;
pub const GC_ERR_IO: GcError = -1010;
pub const GC_ERR_TIMEOUT: GcError = -1011;
pub const GC_ERR_ABORT: GcError = -1012;
pub const GC_ERR_INVALID_BUFFER: GcError = -1013;
pub const GC_ERR_NOT_AVAILABLE: GcError = -1014;
pub const GC_ERR_INVALID_ADDRESS: GcError = -1015;
pub const GC_ERR_BUFFER_TOO_SMALL: GcError = -1016;
pub const GC_ERR_INVALID_INDEX: GcError = -1017;
pub const GC_ERR_PARSING_CHUNK_DATA: GcError = -1018;
pub const GC_ERR_INVALID_VALUE: GcError = -1019;
pub const GC_ERR_RESOURCE_EXHAUSTED: GcError = -1020;
pub const GC_ERR_OUT_OF_MEMORY: GcError = -1021;
pub const GC_ERR_BUSY: GcError = -1022;
pub const GC_ERR_AMBIGUOUS: GcError = -1023;

/// `GENTL_INFINITE`: a timeout that never expires.
pub const GENTL_INFINITE: u64 = u64::MAX;

pub const INFO_DATATYPE_UNKNOWN: InfoDatatype = 0;
pub const INFO_DATATYPE_STRING: InfoDatatype = 1;
pub const INFO_DATATYPE_STRINGLIST: InfoDatatype = 2;
pub const INFO_DATATYPE_INT16: InfoDatatype = 3;
pub const INFO_DATATYPE_UINT16: InfoDatatype = 4;
pub const INFO_DATATYPE_INT32: InfoDatatype = 5;
pub const INFO_DATATYPE_UINT32: InfoDatatype = 6;
pub const INFO_DATATYPE_INT64: InfoDatatype = 7;
pub const INFO_DATATYPE_UINT64: InfoDatatype = 8;
pub const INFO_DATATYPE_FLOAT64: InfoDatatype = 9;
pub const INFO_DATATYPE_PTR: InfoDatatype = 10;
pub const INFO_DATATYPE_BOOL8: InfoDatatype = 11;
pub const INFO_DATATYPE_SIZET: InfoDatatype = 12;
pub const INFO_DATATYPE_BUFFER: InfoDatatype = 13;
pub const INFO_DATATYPE_PTRDIFF: InfoDatatype = 14;

pub const TL_CHAR_ENCODING_ASCII: i32 = 0;

pub const TL_INFO_ID: i32 = 0;
pub const TL_INFO_VENDOR: i32 = 1;
pub const TL_INFO_MODEL: i32 = 2;
pub const TL_INFO_VERSION: i32 = 3;
pub const TL_INFO_TLTYPE: i32 = 4;
pub const TL_INFO_NAME: i32 = 5;
pub const TL_INFO_PATHNAME: i32 = 6;
pub const TL_INFO_DISPLAYNAME: i32 = 7;
pub const TL_INFO_CHAR_ENCODING: i32 = 8;
pub const TL_INFO_GENTL_VER_MAJOR: i32 = 9;
pub const TL_INFO_GENTL_VER_MINOR: i32 = 10;

pub const INTERFACE_INFO_ID: i32 = 0;
pub const INTERFACE_INFO_DISPLAYNAME: i32 = 1;
pub const INTERFACE_INFO_TLTYPE: i32 = 2;

pub const DEVICE_INFO_ID: i32 = 0;
pub const DEVICE_INFO_VENDOR: i32 = 1;
pub const DEVICE_INFO_MODEL: i32 = 2;
pub const DEVICE_INFO_TLTYPE: i32 = 3;
pub const DEVICE_INFO_DISPLAYNAME: i32 = 4;
pub const DEVICE_INFO_ACCESS_STATUS: i32 = 5;
pub const DEVICE_INFO_USER_DEFINED_NAME: i32 = 6;
pub const DEVICE_INFO_SERIAL_NUMBER: i32 = 7;
pub const DEVICE_INFO_VERSION: i32 = 8;
pub const DEVICE_INFO_TIMESTAMP_FREQUENCY: i32 = 9;

pub const DEVICE_ACCESS_UNKNOWN: i32 = 0;
pub const DEVICE_ACCESS_NONE: i32 = 1;
pub const DEVICE_ACCESS_READONLY: i32 = 2;
pub const DEVICE_ACCESS_CONTROL: i32 = 3;
pub const DEVICE_ACCESS_EXCLUSIVE: i32 = 4;

pub const DEVICE_ACCESS_STATUS_UNKNOWN: i32 = 0;
pub const DEVICE_ACCESS_STATUS_READWRITE: i32 = 1;
pub const DEVICE_ACCESS_STATUS_READONLY: i32 = 2;
pub const DEVICE_ACCESS_STATUS_NOACCESS: i32 = 3;
pub const DEVICE_ACCESS_STATUS_BUSY: i32 = 4;
pub const DEVICE_ACCESS_STATUS_OPEN_READWRITE: i32 = 5;
pub const DEVICE_ACCESS_STATUS_OPEN_READONLY: i32 = 6;

pub const ACQ_QUEUE_INPUT_TO_OUTPUT: i32 = 0;
pub const ACQ_QUEUE_OUTPUT_DISCARD: i32 = 1;
pub const ACQ_QUEUE_ALL_TO_INPUT: i32 = 2;
pub const ACQ_QUEUE_UNQUEUED_TO_INPUT: i32 = 3;
pub const ACQ_QUEUE_ALL_DISCARD: i32 = 4;

pub const ACQ_START_FLAGS_DEFAULT: i32 = 0;
pub const ACQ_STOP_FLAGS_DEFAULT: i32 = 0;
pub const ACQ_STOP_FLAGS_KILL: i32 = 1;

pub const BUFFER_INFO_BASE: i32 = 0;
pub const BUFFER_INFO_SIZE: i32 = 1;
pub const BUFFER_INFO_USER_PTR: i32 = 2;
pub const BUFFER_INFO_TIMESTAMP: i32 = 3;
pub const BUFFER_INFO_NEW_DATA: i32 = 4;
pub const BUFFER_INFO_IS_QUEUED: i32 = 5;
pub const BUFFER_INFO_IS_ACQUIRING: i32 = 6;
pub const BUFFER_INFO_IS_INCOMPLETE: i32 = 7;
pub const BUFFER_INFO_TLTYPE: i32 = 8;
pub const BUFFER_INFO_SIZE_FILLED: i32 = 9;
pub const BUFFER_INFO_WIDTH: i32 = 10;
pub const BUFFER_INFO_HEIGHT: i32 = 11;
pub const BUFFER_INFO_XOFFSET: i32 = 12;
pub const BUFFER_INFO_YOFFSET: i32 = 13;
pub const BUFFER_INFO_XPADDING: i32 = 14;
pub const BUFFER_INFO_YPADDING: i32 = 15;
pub const BUFFER_INFO_FRAMEID: i32 = 16;
pub const BUFFER_INFO_IMAGEPRESENT: i32 = 17;
pub const BUFFER_INFO_IMAGEOFFSET: i32 = 18;
pub const BUFFER_INFO_PAYLOADTYPE: i32 = 19;
pub const BUFFER_INFO_PIXELFORMAT: i32 = 20;
pub const BUFFER_INFO_PIXELFORMAT_NAMESPACE: i32 = 21;
pub const BUFFER_INFO_DELIVERED_IMAGEHEIGHT: i32 = 22;
pub const BUFFER_INFO_DELIVERED_CHUNKPAYLOADSIZE: i32 = 23;
pub const BUFFER_INFO_CHUNKLAYOUTID: i32 = 24;
pub const BUFFER_INFO_FILENAME: i32 = 25;
pub const BUFFER_INFO_PIXEL_ENDIANNESS: i32 = 26;
pub const BUFFER_INFO_DATA_SIZE: i32 = 27;
pub const BUFFER_INFO_TIMESTAMP_NS: i32 = 28;
pub const BUFFER_INFO_DATA_LARGER_THAN_BUFFER: i32 = 29;
pub const BUFFER_INFO_CONTAINS_CHUNKDATA: i32 = 30;
pub const BUFFER_INFO_IS_COMPOSITE: i32 = 31;

pub const PAYLOAD_TYPE_IMAGE: i32 = 1;

pub const PIXELFORMAT_NAMESPACE_PFNC_32BIT: i32 = 4;

pub const PIXELENDIANNESS_LITTLE: i32 = 1;

pub const STREAM_INFO_ID: i32 = 0;
pub const STREAM_INFO_NUM_DELIVERED: i32 = 1;
pub const STREAM_INFO_NUM_UNDERRUN: i32 = 2;
pub const STREAM_INFO_NUM_ANNOUNCED: i32 = 3;
pub const STREAM_INFO_NUM_QUEUED: i32 = 4;
pub const STREAM_INFO_NUM_AWAIT_DELIVERY: i32 = 5;
pub const STREAM_INFO_NUM_STARTED: i32 = 6;
pub const STREAM_INFO_PAYLOAD_SIZE: i32 = 7;
pub const STREAM_INFO_IS_GRABBING: i32 = 8;
pub const STREAM_INFO_DEFINES_PAYLOADSIZE: i32 = 9;
pub const STREAM_INFO_TLTYPE: i32 = 10;
pub const STREAM_INFO_NUM_CHUNKS_MAX: i32 = 11;
pub const STREAM_INFO_BUF_ANNOUNCE_MIN: i32 = 12;
pub const STREAM_INFO_BUF_ALIGNMENT: i32 = 13;
/// fgrab's own: frames the producer copied into announced buffers (`UINT64`): 0, the card
/// writes them itself (`zero_copy.rs`).
pub const STREAM_INFO_CUSTOM_ID: i32 = 1000;

pub const PORT_INFO_ID: i32 = 0;
pub const PORT_INFO_VENDOR: i32 = 1;
pub const PORT_INFO_MODEL: i32 = 2;
pub const PORT_INFO_TLTYPE: i32 = 3;
pub const PORT_INFO_MODULE: i32 = 4;
pub const PORT_INFO_LITTLE_ENDIAN: i32 = 5;
pub const PORT_INFO_BIG_ENDIAN: i32 = 6;
pub const PORT_INFO_ACCESS_READ: i32 = 7;
pub const PORT_INFO_ACCESS_WRITE: i32 = 8;
pub const PORT_INFO_ACCESS_NA: i32 = 9;
pub const PORT_INFO_ACCESS_NI: i32 = 10;
pub const PORT_INFO_VERSION: i32 = 11;
pub const PORT_INFO_PORTNAME: i32 = 12;

pub const URL_SCHEME_LOCAL: i32 = 0;

pub const URL_INFO_URL: i32 = 0;
pub const URL_INFO_SCHEMA_VER_MAJOR: i32 = 1;
pub const URL_INFO_SCHEMA_VER_MINOR: i32 = 2;
pub const URL_INFO_FILE_VER_MAJOR: i32 = 3;
pub const URL_INFO_FILE_VER_MINOR: i32 = 4;
pub const URL_INFO_FILE_VER_SUBMINOR: i32 = 5;
pub const URL_INFO_FILE_SHA1_HASH: i32 = 6;
pub const URL_INFO_FILE_REGISTER_ADDRESS: i32 = 7;
pub const URL_INFO_FILE_SIZE: i32 = 8;
pub const URL_INFO_SCHEME: i32 = 9;
pub const URL_INFO_FILENAME: i32 = 10;

pub const EVENT_DATA_ID: i32 = 0;
pub const EVENT_DATA_VALUE: i32 = 1;
pub const EVENT_DATA_NUMID: i32 = 2;

pub const EVENT_EVENT_TYPE: i32 = 0;
pub const EVENT_NUM_IN_QUEUE: i32 = 1;
pub const EVENT_NUM_FIRED: i32 = 2;
pub const EVENT_SIZE_MAX: i32 = 3;
pub const EVENT_INFO_DATA_SIZE_MAX: i32 = 4;

pub const EVENT_ERROR: i32 = 0;
pub const EVENT_NEW_BUFFER: i32 = 1;
pub const EVENT_FEATURE_INVALIDATE: i32 = 2;
pub const EVENT_FEATURE_CHANGE: i32 = 3;
pub const EVENT_REMOTE_DEVICE: i32 = 4;
pub const EVENT_MODULE: i32 = 5;

/// `EVENT_NEW_BUFFER_DATA`, packed as the standard declares it.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub struct EventNewBufferData {
    pub buffer_handle: Handle,
    pub user_pointer: *mut c_void,
}

/// `PORT_REGISTER_STACK_ENTRY`, packed.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub struct PortRegisterStackEntry {
    pub address: u64,
    pub buffer: *mut c_void,
    pub size: usize,
}

/// `DS_BUFFER_INFO_STACKED`, packed.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub struct DsBufferInfoStacked {
    pub info_cmd: i32,
    pub info_type: InfoDatatype,
    pub buffer: *mut c_void,
    pub size: usize,
    pub result: GcError,
}

/// `TLTypeCustomName`: the camera sits behind a PCIe card; no standard transport names it.
pub const TL_TYPE: &str = "Custom";

const _: () = assert!(size_of::<EventNewBufferData>() == 16);
const _: () = assert!(size_of::<PortRegisterStackEntry>() == 24);
const _: () = assert!(size_of::<DsBufferInfoStacked>() == 28);
