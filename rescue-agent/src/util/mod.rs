//! Small helpers that know no format: checked little-endian fields, hex,
//! calendar time, CRC-32, GUIDs, glob patterns, Win32 name checks and
//! allocation that can fail.

pub mod crc32;
pub(crate) mod glob;
pub mod guid;
pub mod hex;
pub(crate) mod le;
pub mod mem;
pub mod time;
pub mod version;
pub mod win32_name;
