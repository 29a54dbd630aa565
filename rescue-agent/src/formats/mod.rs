//! On-disk and firmware formats, one module each: parsers that validate
//! every field they read (and writers that keep the format's invariants).
//! Nothing here knows a profile or a run.

pub mod bitlocker;
pub mod bootopt;
pub mod decompress;
pub mod dhcp;
pub mod diskid;
pub mod embed;
pub mod keyring;
pub mod ntfs;
pub mod partition;
pub mod registry;
pub mod smbios;
pub mod stick;
