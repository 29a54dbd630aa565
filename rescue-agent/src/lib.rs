//! The rescue engine: everything the agent does, as a `no_std` + `alloc`
//! library that runs unchanged on the host (`cargo test`, `rescue apply`) and
//! in the UEFI agent. It sees storage only through [`block::BlockDevice`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod banner;
pub mod bitlocker;
pub mod block;
pub mod bootopt;
pub mod crc32;
pub mod decompress;
pub mod diskid;
pub mod embed;
mod glob;
pub mod hex;
pub mod keyring;
mod le;
pub mod ntfs;
pub mod partition;
pub mod ports;
pub mod profile;
pub mod prompt;
pub mod registry;
pub mod registry_rules;
pub mod remediate;
pub mod session;
pub mod sitekeys;
pub mod smbios;
pub mod stick;
pub mod time;
pub mod version;
pub mod win32_name;
