//! The BitLocker volumes a sweep left locked, one row per Key ID, ready to
//! look up in AD (`msFVE-RecoveryInformation`) or Entra/Intune. The CSV has
//! an empty `RecoveryKey` column: filled in, it is a key file `rescue keys
//! check` and `rescue build --keys` read (see docs/keys.md).

use super::table::{csv_field, Row};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One Key ID still needed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MissingKey {
    pub key_id: String,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub disk: String,
    pub volume: usize,
    /// When the run that left it locked started.
    pub when: String,
    /// Why it stayed locked (no key on the stick, Esc, timeout, ...).
    pub why: String,
    pub report: String,
}

/// Every Key ID of a volume some run left locked and no run opened; the
/// latest run's details when several runs met it. Sorted by Key ID.
pub fn missing(rows: &[Row]) -> Vec<MissingKey> {
    let opened: BTreeSet<&str> = rows.iter().flat_map(|r| &r.unlocked_key_ids).map(String::as_str).collect();
    let mut out: BTreeMap<&str, MissingKey> = BTreeMap::new();
    // Rows come sorted by start time: a later run overwrites an earlier one.
    for r in rows {
        for l in &r.locked {
            for id in l.key_ids.iter().filter(|id| !opened.contains(id.as_str())) {
                out.insert(
                    id,
                    MissingKey {
                        key_id: id.clone(),
                        serial: r.serial.clone(),
                        manufacturer: r.manufacturer.clone(),
                        model: r.model.clone(),
                        disk: l.disk.clone(),
                        volume: l.volume,
                        when: r.started.clone(),
                        why: l.why.clone(),
                        report: format!("{}/{}", r.source, r.report),
                    },
                );
            }
        }
    }
    out.into_values().collect()
}

/// The CSV header: `KeyID` and `RecoveryKey` are the columns `rescue keys` reads.
pub const HEADER: &str = "KeyID,RecoveryKey,Serial,Manufacturer,Model,Disk,Volume,When,Why,Report";

/// The missing keys as CSV, `RecoveryKey` left empty for the admin to fill in.
pub fn to_csv(keys: &[MissingKey]) -> String {
    let mut out = format!("{HEADER}\r\n");
    for k in keys {
        let cells = [
            k.key_id.as_str(),
            "",
            &k.serial,
            &k.manufacturer,
            &k.model,
            &k.disk,
            &k.volume.to_string(),
            &k.when,
            &k.why,
            &k.report,
        ];
        out += &cells.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
        out += "\r\n";
    }
    out
}
