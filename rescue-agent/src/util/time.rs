//! Calendar arithmetic for the timestamps the engine and the tool show. No
//! clock: callers bring the time (a FILETIME from disk, the firmware's clock).

use alloc::format;
use alloc::string::String;

/// A UTC date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year, proleptic Gregorian (may be before 1970 or negative).
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 59 (no leap seconds).
    pub second: u8,
}

/// Seconds from 1601-01-01 (Windows FILETIME epoch) to 1970-01-01.
const FILETIME_TO_UNIX: i64 = 11_644_473_600;

/// The UTC date and time `secs` seconds after 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's civil-from-days).
pub fn civil_from_unix(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil { year, month, day, hour: (sod / 3600) as u8, minute: (sod / 60 % 60) as u8, second: (sod % 60) as u8 }
}

/// A UTC date and time as a FILETIME (0 for dates before 1970 or out of range).
pub fn filetime_from_civil(c: &Civil) -> u64 {
    // Days from 1970-01-01 (the inverse of `civil_from_unix`, Howard Hinnant's algorithm).
    let y = c.year - i64::from(c.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(c.month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(c.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(c.hour) * 3600 + i64::from(c.minute) * 60 + i64::from(c.second);
    u64::try_from(secs + FILETIME_TO_UNIX).map_or(0, |s| s.saturating_mul(10_000_000))
}

/// A Windows FILETIME (100 ns ticks since 1601-01-01 UTC) as seconds since
/// 1970 and the remaining 100 ns ticks.
pub fn filetime_to_unix(ft: u64) -> (i64, u32) {
    ((ft / 10_000_000) as i64 - FILETIME_TO_UNIX, (ft % 10_000_000) as u32)
}

/// A FILETIME as RFC 3339 with its full 100 ns precision, e.g.
/// `2024-07-19T04:09:00.0000000Z` (the report's and `rescue ls`'s form).
pub fn filetime_rfc3339(ft: u64) -> String {
    let (unix, frac) = filetime_to_unix(ft);
    let c = civil_from_unix(unix);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac:07}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// A FILETIME for people, e.g. `2024-07-19 04:09:00 UTC`; `-` for zero or a time before 1970.
pub fn filetime_display(ft: u64) -> String {
    let (secs, _) = filetime_to_unix(ft);
    if ft == 0 || secs < 0 {
        return "-".into();
    }
    let c = civil_from_unix(secs);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_unix(0), Civil { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 });
        // The CrowdStrike update: 2024-07-19 04:09 UTC.
        assert_eq!(
            civil_from_unix(1_721_362_140),
            Civil { year: 2024, month: 7, day: 19, hour: 4, minute: 9, second: 0 }
        );
        assert_eq!(civil_from_unix(951_782_400).day, 29); // 2000-02-29
        assert_eq!(filetime_to_unix(116_444_736_000_000_001), (0, 1));
    }

    #[test]
    fn filetime_strings() {
        assert_eq!(filetime_rfc3339(116_444_736_000_000_000), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(filetime_rfc3339(133_658_208_000_000_000), "2024-07-19T00:00:00.0000000Z");
        assert_eq!(filetime_display(133_658_208_000_000_000), "2024-07-19 00:00:00 UTC");
        assert_eq!(filetime_display(0), "-");
    }

    #[test]
    fn civil_to_filetime_is_the_inverse() {
        for secs in [0i64, 951_782_400, 1_721_362_140, 4_102_444_799, 86_399, 1_000_000_007] {
            let ft = filetime_from_civil(&civil_from_unix(secs));
            assert_eq!(filetime_to_unix(ft), (secs, 0), "{secs}");
        }
        assert_eq!(filetime_from_civil(&civil_from_unix(0)), 116_444_736_000_000_000);
    }
}
