//! The wall clock, read in one place.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since 1970 now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Now as a Windows FILETIME (100 ns ticks since 1601-01-01 UTC).
pub fn now_filetime() -> u64 {
    (unix_now() as u64 + 11_644_473_600) * 10_000_000
}
