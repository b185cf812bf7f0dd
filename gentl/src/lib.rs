//! `fgrab.cti`: a GenICam GenTL 1.6 producer for fgrab frame grabbers.
//!
//! Every exported function is a GenTL entry point with the standard's C signature; the
//! modules of the standard have a file each (System: `system.rs`, Interface, Device, the
//! ports, DataStream and Buffer: `stream.rs`, Event). Every entry point runs its body in
//! [`error::entry`]: nothing unwinds into C, a failure sets the calling thread's
//! `GCGetLastError` message, and handles are looked up in one registry (`handles.rs`)
//! before use. The camera is reached through [`remote::RemoteDevice`] ([`remote::CameraRemote`]
//! over the client's `Features`, writes routed by [`remote::Attachment`]); frames reach
//! announced buffers through [`path::BufferPath`], written there by the card itself
//! ([`zero_copy::ZeroCopyPath`]: one region per announced buffer).

#![deny(missing_docs)]
// GenTL's names.
#![allow(non_snake_case)]

pub mod abi;
pub mod device;
pub mod error;
pub mod event;
pub mod handles;
pub mod info;
pub mod interface;
pub mod path;
pub mod port;
pub mod remote;
pub mod stream;
pub mod system;
pub mod zero_copy;
