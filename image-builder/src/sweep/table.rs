//! The table `rescue collect` builds: one row per agent run, as the CSV and
//! JSON outputs, the fleet page and the missing keys read it. Every text in
//! a row was scrubbed when the row was made (one line, bounded, no key).

use serde::Serialize;

/// A file deleted on a machine.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Deleted {
    pub path: String,
    pub sha256: Option<String>,
}

/// A volume (or file) left alone, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

/// One agent run on one machine.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    /// The stick, image or folder it came from, and the report's name there.
    pub source: String,
    pub report: String,
    pub started: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub outcome: String,
    pub reason: String,
    pub files_deleted: usize,
    /// The files deleted (the first [`MAX_LIST`]).
    pub deleted: Vec<Deleted>,
    pub skipped: Vec<Skipped>,
    /// BitLocker volumes opened, and how ("recovery password for Key ID …", "clear key …").
    pub unlocked: Vec<String>,
    pub errors: Vec<String>,
    pub agent_version: String,
    pub profile: String,
    /// Registry values and Safe Mode elements changed.
    pub registry_changes: usize,
    /// Backups put back by `[[restore]]` rules (files and hives): a restore run.
    pub restored: usize,
    /// What was put back, path by path (the first [`MAX_LIST`]).
    pub restored_paths: Vec<String>,
    /// What happened to NTFS journals: `reset` (emptied; chkdsk at the next
    /// boot), `unclean, left alone`, or empty when every journal was clean.
    pub journal: String,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// BitLocker volumes left locked, with the Key IDs that would open them.
    pub locked: Vec<Locked>,
    /// Key IDs of BitLocker volumes that were opened.
    pub unlocked_key_ids: Vec<String>,
}

/// A BitLocker volume a run left locked.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Locked {
    /// Its recovery-password Key IDs (GUIDs as Windows shows them; only
    /// well-formed ones are kept).
    pub key_ids: Vec<String>,
    /// The disk it is on, as the report names it.
    pub disk: String,
    /// Its index in the run's volumes.
    pub volume: usize,
    /// Why it stayed locked.
    pub why: String,
}

/// A CSV cell. A cell a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`, unless it is a plain
/// number; cells with separators, quotes or line breaks are quoted.
pub fn csv_field(s: &str) -> String {
    let plain_number =
        !s.is_empty() && s.parse::<f64>().is_ok() && s.chars().all(|c| c.is_ascii_digit() || ".-".contains(c));
    // Spreadsheets skip leading spaces before a formula (` =HYPERLINK(…)`).
    let formula = s.trim_start_matches(' ').starts_with(['=', '+', '-', '@', '\t', '\r']);
    let s = if formula && !plain_number { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The table as CSV: one line per report, lists joined with " | ".
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "started,manufacturer,model,serial,outcome,reason,files_deleted,deleted,skipped,bitlocker_unlocked,errors,profile,agent_version,source,report,restored\r\n",
    );
    for r in rows {
        let deleted = r
            .deleted
            .iter()
            .map(|d| format!("{} sha256={}", d.path, d.sha256.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(" | ");
        let skipped = r.skipped.iter().map(|s| format!("{}: {}", s.what, s.reason)).collect::<Vec<_>>().join(" | ");
        let cells = [
            r.started.clone(),
            r.manufacturer.clone(),
            r.model.clone(),
            r.serial.clone(),
            r.outcome.clone(),
            r.reason.clone(),
            r.files_deleted.to_string(),
            deleted,
            skipped,
            r.unlocked.join(" | "),
            r.errors.join(" | "),
            r.profile.clone(),
            r.agent_version.clone(),
            r.source.clone(),
            r.report.clone(),
            r.restored.to_string(),
        ];
        out += &cells.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
        out += "\r\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-5"), "-5");
        assert_eq!(csv_field("-1.5"), "-1.5");
        assert_eq!(csv_field("-1+cmd|' /C calc'!A0"), "'-1+cmd|' /C calc'!A0");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("\r=1"), "\"'\r=1\"");
        assert_eq!(csv_field("  =HYPERLINK(\"http://x\")"), "\"'  =HYPERLINK(\"\"http://x\"\")\"");
    }
}
