//! Small helpers that know no format: checked little-endian fields, hex,
//! calendar time, CRC-32, GUIDs, glob patterns and Win32 name checks.

pub mod crc32;
pub(crate) mod glob;
pub mod guid;
pub mod hex;
pub(crate) mod le;
pub mod time;
pub mod version;
pub mod win32_name;
