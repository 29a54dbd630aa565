//! Site recovery-key files as administrators export them, read into the
//! engine's [`SiteKeys`]: CSV from Active Directory (`msFVE-RecoveryInformation`
//! objects), Entra ID / Intune and MBAM exports, and the plain
//! `KeyID,RecoveryKey` form. See docs/keys.md for the accepted formats.
//!
//! Every recovery password is checked block by block before it is taken;
//! problems name the file and line. Nothing here prints a key: problems,
//! summaries and `Debug` output carry Key IDs, line numbers and device names only.

use anyhow::{bail, Context, Result};
use rescue_engine::formats::bitlocker::keys::parse_recovery_password;
use rescue_engine::formats::bitlocker::BitLockerError;
use rescue_engine::formats::keyring::{self, parse_guid, SiteKeys};
use rescue_engine::util::guid::Guid;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Largest key file read (a fleet of 100 000 machines fits in far less).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Header names (lower case, without spaces, `-`, `_`, `.`) of the column holding the Key ID.
const ID_COLUMNS: &[&str] = &[
    "keyid",
    "recoverykeyid",
    "bitlockerkeyid",
    "bitlockerrecoverykeyid",
    "recoverypasswordid",
    "passwordid",
    "keyidentifier",
    "protectorid",
    "keyprotectorid",
    "id",
];
/// … the recovery password.
const KEY_COLUMNS: &[&str] = &[
    "recoverykey",
    "recoverypassword",
    "msfverecoverypassword",
    "bitlockerrecoverykey",
    "bitlockerrecoverypassword",
    "bitlockerkey",
    "numericalpassword",
    "key",
    "password",
];
/// … an AD object's name or DN, which ends in `{Key ID}` (Active Directory exports).
const NAME_COLUMNS: &[&str] = &["name", "cn", "distinguishedname", "dn"];
/// … the device (shown in problems, never needed).
const DEVICE_COLUMNS: &[&str] =
    &["devicename", "computername", "computer", "machinename", "machine", "device", "hostname", "displayname"];

/// What kind of export a file was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Active Directory `msFVE-RecoveryInformation` (Key ID from the object's name or DN).
    ActiveDirectory,
    /// A header naming a Key ID column and a key column (Entra ID, Intune, MBAM, plain).
    Columns,
    /// Two columns without a header: Key ID, recovery password.
    Headerless,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::ActiveDirectory => "Active Directory export (Key ID from the object name)",
            Kind::Columns => "CSV with Key ID and recovery key columns",
            Kind::Headerless => "two columns without a header (Key ID, recovery key)",
        })
    }
}

/// How bad a problem is: errors stop `rescue build` and fail `rescue keys check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

/// A problem on one line of a key file (or the file itself, line 0).
#[derive(Clone, Debug)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        if self.line == 0 {
            write!(f, "{}: {sev}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {sev}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// One valid key line.
pub struct Entry {
    pub file: PathBuf,
    pub line: usize,
    pub key_id: Guid,
    pub device: Option<String>,
    key: Zeroizing<[u8; 16]>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entry({}:{} {{{}}} {:?})", self.file.display(), self.line, self.key_id, self.device)
    }
}

/// Keys read from one or more files, merged: one key per Key ID.
#[derive(Debug, Default)]
pub struct KeySet {
    /// Every valid line, in file order (duplicates included).
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
    /// Files read, with what they were recognised as and how many data rows they had.
    pub files: Vec<(PathBuf, Kind, usize)>,
}

impl KeySet {
    /// Reads and checks `path`, adding its keys and problems to the set.
    /// Duplicates (same Key ID, same key) are warnings; conflicts (same Key
    /// ID, another key) are errors, within a file and across files.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read key file {}", path.display()))?;
        if meta.is_dir() {
            bail!("{} is a folder, not a key file", path.display());
        }
        if meta.len() > MAX_FILE_BYTES {
            bail!("{}: {} bytes is too large for a key file (at most {MAX_FILE_BYTES})", path.display(), meta.len());
        }
        let bytes =
            Zeroizing::new(std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?);
        self.add_bytes(path, &bytes);
        Ok(())
    }

    /// Like [`KeySet::add_file`] on bytes already read.
    pub fn add_bytes(&mut self, path: &Path, bytes: &[u8]) {
        let mut problem = |line: usize, severity: Severity, message: String| {
            self.problems.push(Problem { file: path.to_path_buf(), line, severity, message });
        };
        let text = match crate::text::decode(bytes) {
            Ok(t) => t,
            Err(m) => {
                problem(0, Severity::Error, m);
                return;
            }
        };
        let records = match split_records(&text) {
            Ok(r) => r,
            Err((line, m)) => {
                problem(line, Severity::Error, m);
                return;
            }
        };
        let (kind, rows) = match read_table(&records) {
            Ok(t) => t,
            Err((line, m)) => {
                problem(line, Severity::Error, m);
                return;
            }
        };
        let mut new_entries = Vec::new();
        let mut row_count = 0;
        for row in rows {
            row_count += 1;
            match row.result {
                Ok((key_id, key)) => new_entries.push(Entry {
                    file: path.to_path_buf(),
                    line: row.line,
                    key_id,
                    device: row.device,
                    key,
                }),
                Err(m) => self.problems.push(Problem {
                    file: path.to_path_buf(),
                    line: row.line,
                    severity: Severity::Error,
                    message: m,
                }),
            }
        }
        if row_count == 0 {
            self.problems.push(Problem {
                file: path.to_path_buf(),
                line: 0,
                severity: Severity::Error,
                message: "no key lines".into(),
            });
        }
        self.files.push((path.to_path_buf(), kind, row_count));
        // Duplicates and conflicts, against everything read so far.
        let kept_before = self.entries.len();
        let mut seen: HashMap<[u8; 16], usize> =
            self.entries.iter().enumerate().map(|(i, e)| (e.key_id.0, i)).collect();
        for e in new_entries {
            if let Some(&i) = seen.get(&e.key_id.0) {
                let first = &self.entries[i];
                let same = first.key[..] == e.key[..];
                let at = if first.file == e.file {
                    format!("line {}", first.line)
                } else {
                    format!("{}:{}", first.file.display(), first.line)
                };
                self.problems.push(Problem {
                    file: e.file.clone(),
                    line: e.line,
                    severity: if same { Severity::Warning } else { Severity::Error },
                    message: if same {
                        format!("Key ID {{{}}} again, with the same key as {at} (duplicate, ignored)", e.key_id)
                    } else {
                        format!(
                            "Key ID {{{}}} has a different recovery key than {at} (conflict: which one is right?)",
                            e.key_id
                        )
                    },
                });
                continue;
            }
            seen.insert(e.key_id.0, self.entries.len());
            self.entries.push(e);
        }
        // One limit for `keys check` and `build`: what fits one stick.
        if kept_before <= keyring::MAX_KEYS && self.entries.len() > keyring::MAX_KEYS {
            let max = keyring::MAX_KEYS;
            self.problems.push(Problem {
                file: path.to_path_buf(),
                line: 0,
                severity: Severity::Error,
                message: format!(
                    "more than {max} distinct Key IDs in all: at most {max} fit one stick; split the site"
                ),
            });
        }
    }

    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.severity == Severity::Error).count()
    }

    /// The keys, one per Key ID, as the engine seals them.
    pub fn site_keys(&self) -> Result<SiteKeys> {
        let mut keys = SiteKeys::new();
        for e in &self.entries {
            keys.insert(e.key_id, &e.key).with_context(|| format!("{}:{}", e.file.display(), e.line))?;
        }
        Ok(keys)
    }
}

/// Reads, checks and merges key files; fails (listing every problem) when
/// any file has an error. Warnings go to stderr.
pub fn load(paths: &[PathBuf]) -> Result<(SiteKeys, KeySet)> {
    let mut set = KeySet::default();
    for p in paths {
        set.add_file(p)?;
    }
    let mut errors = Vec::new();
    for p in &set.problems {
        match p.severity {
            Severity::Warning => say_err!("{p}"),
            Severity::Error => errors.push(p.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("{} problem(s) in the key file(s); nothing was built:\n  {}", errors.len(), errors.join("\n  "));
    }
    if set.entries.is_empty() {
        bail!("the key file(s) hold no keys");
    }
    let keys = set.site_keys()?;
    Ok((keys, set))
}

/// Most fields one line may have (exports have a handful; a line of
/// commas must not become millions of empty fields in memory).
const MAX_FIELDS: usize = 256;

/// A CSV record: its fields and the line it starts on (1-based).
struct Record {
    line: usize,
    fields: Vec<Zeroizing<String>>,
}

/// Splits CSV text into records: `,`, `;` or tab separated (taken from the
/// first record), fields optionally in double quotes (`""` for a quote,
/// line breaks allowed inside), CRLF or LF. Skips blank lines and `#`
/// lines before the header (PowerShell's `#TYPE ...`).
fn split_records(text: &str) -> std::result::Result<Vec<Record>, (usize, String)> {
    let delim = detect_delimiter(text);
    let mut out = Vec::new();
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let mut field = Zeroizing::new(String::new());
    let mut fields: Vec<Zeroizing<String>> = Vec::new();
    let mut start_line = 1usize;
    let mut in_quotes = false;
    let mut quoted_start = 0usize;
    let mut at_field_start = true;
    let push_record = |fields: &mut Vec<Zeroizing<String>>, start_line: usize, out: &mut Vec<Record>| {
        let blank = fields.iter().all(|f| f.trim().is_empty());
        let comment = out.is_empty() && fields.first().is_some_and(|f| f.trim_start().starts_with('#'));
        if !blank && !comment {
            out.push(Record { line: start_line, fields: std::mem::take(fields) });
        } else {
            fields.clear();
        }
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start || field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
                quoted_start = line;
                at_field_start = false;
            }
            c if c == delim => {
                if fields.len() >= MAX_FIELDS {
                    return Err((line, format!("more than {MAX_FIELDS} fields on one line: not a key export")));
                }
                fields.push(std::mem::replace(&mut field, Zeroizing::new(String::new())));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                fields.push(std::mem::replace(&mut field, Zeroizing::new(String::new())));
                push_record(&mut fields, start_line, &mut out);
                line += 1;
                start_line = line;
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err((quoted_start, "a quoted field is never closed (missing \")".into()));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        push_record(&mut fields, start_line, &mut out);
    }
    Ok(out)
}

/// The separator of the first non-comment line: the most frequent of `,` `;` tab outside quotes.
fn detect_delimiter(text: &str) -> char {
    let first = text.lines().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).unwrap_or("");
    let mut counts = [(',', 0usize), (';', 0), ('\t', 0)];
    let mut q = false;
    for c in first.chars() {
        if c == '"' {
            q = !q;
        } else if !q {
            for (d, n) in counts.iter_mut() {
                if c == *d {
                    *n += 1;
                }
            }
        }
    }
    counts.iter().max_by_key(|(d, n)| (*n, *d == ',')).map(|(d, _)| *d).unwrap_or(',')
}

/// A header name as compared: lower case, without BOM, spaces, `-`, `_`, `.`, quotes.
fn norm(h: &str) -> String {
    h.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.' | '"' | '\u{feff}' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn find_column(header: &[String], names: &[&str]) -> Option<usize> {
    // Earlier names win over later ones ("recoverykeyid" before "id").
    names.iter().find_map(|n| header.iter().position(|h| h == n))
}

struct Row {
    line: usize,
    device: Option<String>,
    result: std::result::Result<(Guid, Zeroizing<[u8; 16]>), String>,
}

/// Finds the columns and reads every data row.
fn read_table(records: &[Record]) -> std::result::Result<(Kind, Vec<Row>), (usize, String)> {
    let Some(first) = records.first() else {
        return Err((0, "the file is empty".into()));
    };
    // Headerless two-column form: the first row already is a Key ID and a key.
    let looks_like_data = first.fields.len() >= 2 && parse_guid(&first.fields[0]).is_some();
    let (kind, id_col, key_col, name_col, dn_col, dev_col, data) = if looks_like_data {
        (Kind::Headerless, Some(0), 1, None, None, None, records)
    } else {
        let header: Vec<String> = first.fields.iter().map(|f| norm(f)).collect();
        let key_col = find_column(&header, KEY_COLUMNS).ok_or_else(|| {
            (first.line, format!(
                "no recovery key column in the header (looked for e.g. RecoveryKey, RecoveryPassword, msFVE-RecoveryPassword, Key); header is: {}",
                first.fields.iter().map(|f| shown(f.trim())).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let id_col = find_column(&header, ID_COLUMNS).filter(|&c| c != key_col);
        let name_col = find_column(&header, NAME_COLUMNS);
        if id_col.is_none() && name_col.is_none() {
            return Err((first.line, "no Key ID column in the header (looked for e.g. KeyID, RecoveryKeyId, Id, or an AD Name/DistinguishedName holding {Key ID})".into()));
        }
        let kind = if id_col.is_none() { Kind::ActiveDirectory } else { Kind::Columns };
        (
            kind,
            id_col,
            key_col,
            name_col,
            find_column(&header, &["distinguishedname", "dn"]),
            find_column(&header, DEVICE_COLUMNS),
            &records[1..],
        )
    };
    let mut rows = Vec::new();
    for r in data {
        let get = |c: usize| r.fields.get(c).map(|f| f.trim()).unwrap_or("");
        let device = dev_col
            .map(get)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .or_else(|| dn_col.and_then(|c| ad_computer(get(c))))
            .or_else(|| name_col.and_then(|c| ad_computer(get(c))));
        let result = (|| {
            let key_id = match id_col {
                Some(c) => {
                    let t = get(c);
                    if t.is_empty() {
                        return Err("the Key ID is empty".to_string());
                    }
                    parse_guid(t).ok_or_else(|| format!("the Key ID {:?} is not a GUID", shown(t)))?
                }
                None => {
                    let t = name_col.map(get).unwrap_or("");
                    let (by_name, by_dn) = (ad_key_id(t), dn_col.and_then(|c| ad_key_id(get(c))));
                    if let (Some(a), Some(b)) = (by_name, by_dn) {
                        if a != b {
                            return Err(format!(
                                "the Name holds Key ID {{{a}}} but the DistinguishedName {{{b}}}: which one is right?"
                            ));
                        }
                    }
                    by_name.or(by_dn).ok_or_else(|| format!("no {{Key ID}} in the object name {:?}", shown(t)))?
                }
            };
            // Excel's "treat as text" apostrophe is not part of the key.
            let pw = get(key_col).strip_prefix('\'').unwrap_or(get(key_col)).trim();
            if pw.is_empty() {
                return Err(format!("Key ID {{{key_id}}}: the recovery key is empty"));
            }
            let key = parse_recovery_password(pw).map_err(|e| match e {
                BitLockerError::RecoveryPasswordBlock { block } => {
                    format!("Key ID {{{key_id}}}: block {block} of the recovery key fails the check (each block is a multiple of 11 below 720896): a digit is wrong")
                }
                _ => format!("Key ID {{{key_id}}}: the recovery key is not 48 digits in 8 blocks of 6"),
            })?;
            Ok((key_id, key))
        })();
        let result = result.map_err(|m| match &device {
            Some(d) => format!("{m} (device {})", shown(d)),
            None => m,
        });
        rows.push(Row { line: r.line, device, result });
    }
    Ok((kind, rows))
}

/// Text from a key file made safe to show: cut to 80 characters, and every
/// run of 6 or more digits (with the `-` or spaces between them) hidden, so
/// that no recovery key, or part of one, is ever echoed.
fn shown(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().filter(char::is_ascii_digit).count() >= 6 {
            out.push_str("[digits hidden]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() || (!run.is_empty() && (c == '-' || c == ' ')) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    let mut t: String = out.chars().take(80).collect();
    if out.chars().count() > 80 {
        t.push('…');
    }
    t
}

/// The Key ID in an AD recovery object's name or DN:
/// `CN=2024-07-19T10:11:12-08:00{GUID},CN=PC01,...` or `2024-07-19T10:11:12-08:00{GUID}`.
/// Taken from the first RDN only, so a GUID elsewhere in the DN is never used.
fn ad_key_id(name: &str) -> Option<Guid> {
    let rdn = first_rdn(name);
    let open = rdn.rfind('{')?;
    let close = open + rdn[open..].find('}')?;
    parse_guid(&rdn[open..=close])
}

fn first_rdn(name: &str) -> &str {
    let s = name.trim();
    let s = s.strip_prefix("CN=").or_else(|| s.strip_prefix("cn=")).unwrap_or(s);
    // An unescaped comma ends the RDN.
    let mut prev = '\0';
    for (i, c) in s.char_indices() {
        if c == ',' && prev != '\\' {
            return &s[..i];
        }
        prev = c;
    }
    s
}

/// The computer in an AD recovery object's DN (`...,CN=PC01,OU=...`).
fn ad_computer(dn: &str) -> Option<String> {
    let s = dn.trim();
    let rest = &s[first_rdn(s).len() + if s.starts_with("CN=") || s.starts_with("cn=") { 3 } else { 0 }..];
    let rest = rest.strip_prefix(',')?;
    let comp = first_rdn(rest);
    (!comp.is_empty()).then(|| comp.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_names_and_dns() {
        let g = "B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB";
        let dn = format!("CN=2024-07-19T10:11:12-08:00{{{g}}},CN=PC01,OU=Laptops,DC=corp,DC=example");
        assert_eq!(ad_key_id(&dn).map(|k| k.to_string()), Some(g.to_string()));
        assert_eq!(ad_key_id(&format!("2024-07-19T10:11:12-08:00{{{g}}}")).map(|k| k.to_string()), Some(g.to_string()));
        assert_eq!(ad_computer(&dn).as_deref(), Some("PC01"));
        assert_eq!(ad_key_id("CN=PC01,OU=x{B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB}"), None);
    }

    #[test]
    fn shown_text_never_holds_a_key() {
        let key = "466895-217492-569250-069608-104434-135707-527241-083622";
        assert_eq!(shown(&format!("PC01,{key}")), "PC01,[digits hidden]");
        assert_eq!(shown("466895-21749"), "[digits hidden]");
        assert_eq!(shown(&key.replace('-', "")), "[digits hidden]");
        assert_eq!(shown("KeyID, RecoveryKey"), "KeyID, RecoveryKey");
        assert_eq!(shown("PC-12345"), "PC-12345");
    }

    fn problems_of(text: &str) -> Vec<String> {
        let mut set = KeySet::default();
        set.add_bytes(Path::new("k.csv"), text.as_bytes());
        set.problems.iter().filter(|p| p.severity == Severity::Error).map(|p| p.to_string()).collect()
    }

    /// A valid recovery password whose blocks encode `n` (each block 11 × something).
    fn password(n: u32) -> String {
        let b = |i: u32| format!("{:06}", 11 * ((n >> (i * 2)) & 0xFFFF));
        (0..8).map(b).collect::<Vec<_>>().join("-")
    }

    #[test]
    fn hostile_key_files_are_bounded_errors() {
        // A line of commas is refused, not split into millions of fields.
        let commas = format!("KeyID,RecoveryKey\n{}\n", ",".repeat(100_000));
        assert!(problems_of(&commas).iter().any(|p| p.contains("fields on one line")), "{:?}", problems_of(&commas));
        // An AD row whose Name and DN name different Key IDs.
        let (a, b) = ("B5D1E0A1-6C0F-4E7E-9A4B-0123456789AB", "00000000-6C0F-4E7E-9A4B-0123456789AB");
        let ad = format!(
            "Name,DistinguishedName,msFVE-RecoveryPassword\n\"2024-07-19T10:11:12-08:00{{{a}}}\",\"CN=2024-07-19T10:11:12-08:00{{{b}}},CN=PC01,DC=x\",{}\n",
            password(1)
        );
        assert!(problems_of(&ad).iter().any(|p| p.contains("which one is right")), "{:?}", problems_of(&ad));
        // One more key than a stick holds: an error for `keys check` as for `build`.
        let mut many = String::from("KeyID,RecoveryKey\n");
        for i in 0..=keyring::MAX_KEYS as u32 {
            many += &format!("{{{i:08X}-0000-0000-0000-000000000000}},{}\n", password(i));
        }
        let p = problems_of(&many);
        assert_eq!(p.len(), 1, "{:?}", &p[..p.len().min(3)]);
        assert!(p[0].contains("fit one stick"), "{p:?}");
    }

    #[test]
    fn delimiters() {
        assert_eq!(detect_delimiter("KeyID;RecoveryKey\n"), ';');
        assert_eq!(detect_delimiter("\"a,b\";c\n"), ';');
        assert_eq!(detect_delimiter("KeyID\tRecoveryKey\n"), '\t');
        assert_eq!(detect_delimiter("KeyID,RecoveryKey\n"), ',');
    }
}
