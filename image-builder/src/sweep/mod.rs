//! After a sweep: the table of runs `rescue collect` builds from a folder of
//! reports ([`table`]: rows, CSV) and what the admin reads from it — the
//! fleet page ([`page`]) and the BitLocker keys still missing
//! ([`missing_keys`]). They read the rows (every text in them already
//! scrubbed and on one line) and add nothing from elsewhere.

pub mod missing_keys;
pub mod page;
pub mod table;
