//! The rescue engine: everything the agent does, as a `no_std` + `alloc`
//! library that runs unchanged on the host (`cargo test`, `rescue apply`) and
//! in the UEFI agent. It sees storage only through [`block::BlockDevice`].
//!
//! Layers, each depending only on the ones above it:
//! - [`util`]: small helpers with no knowledge of any format (checked
//!   little-endian fields, hex, time, CRC-32, GUIDs, glob, Win32 names);
//! - [`block`]: the block-device port and its wrappers;
//! - [`formats`]: one module per on-disk or firmware format (partition
//!   tables, BitLocker, NTFS with its write planner, registry hives, ...),
//!   each a parser (and writer) that knows no policy;
//! - [`rules`]: the profile and what its rules do to one volume (delete
//!   files, set registry values, Safe Mode), all through one commit protocol;
//! - [`run`]: one run over a machine (every disk, every volume, the
//!   verdict and the report), the ports its front ends implement, the
//!   BitLocker prompt and the site keys.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod block;
pub mod formats;
pub mod rules;
pub mod run;
pub mod util;
