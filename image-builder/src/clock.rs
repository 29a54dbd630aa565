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

/// 2024-07-19 00:00:00 UTC, the day of the CrowdStrike outage: the date in
/// every image unless `SOURCE_DATE_EPOCH` says otherwise.
pub const IMAGE_EPOCH: i64 = 1_721_347_200;

/// The time written into an image: `SOURCE_DATE_EPOCH` (the reproducible
/// builds convention) when set, else [`IMAGE_EPOCH`]; never the wall clock,
/// so that the same inputs give byte-identical images.
pub fn image_time() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(IMAGE_EPOCH)
}
