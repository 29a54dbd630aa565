//! After a sweep: what `rescue collect` makes of a folder of reports for the
//! admin — the fleet page ([`page`]) and the BitLocker keys still missing
//! ([`missing_keys`]). Both read the rows `collect` built (every text in
//! them already scrubbed and on one line) and add nothing from elsewhere.

pub mod missing_keys;
pub mod page;
