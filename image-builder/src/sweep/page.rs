//! The fleet page: one self-contained HTML file an admin opens after a
//! sweep — counts at a glance, outcomes by make and model, runs over time,
//! the failed PCs first with their reasons, the BitLocker keys still
//! missing (as a CSV to copy or save), and every PC in a table to sort and
//! filter. Readable on a laptop, printable.
//!
//! Guarantees: nothing is fetched from anywhere (inline CSS and SVG, a few
//! lines of plain JavaScript); every text from a report is HTML-escaped, and
//! the page's Content-Security-Policy lets only its own script run (by hash)
//! and loads nothing, so hostile text from a report can neither run nor
//! call home even if it got through. The script reads the table it sorts;
//! no report data is ever placed inside it.

use super::missing_keys::{self, MissingKey};
use super::table::Row;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The outcomes in the order shown, with their colours.
const OUTCOMES: [(&str, &str, &str); 4] = [
    ("FIXED", "fixed", "#2e7d32"),
    ("NOTHING TO DO", "nothing", "#1565c0"),
    ("FAILED", "failed", "#c62828"),
    ("SAFE MODE SET", "safemode", "#9a5000"),
];

/// Sorting and filtering the table; reads only the page's own elements.
const SCRIPT: &str = r#"
document.body.setAttribute('data-script', 'ran');
document.querySelectorAll('th[data-sort]').forEach(function (th) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], i = th.cellIndex;
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    th.closest('tr').querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var key = function (r) { var c = r.cells[i]; return c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent; };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), nx = Number(x), ny = Number(y);
      var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
var filter = document.getElementById('filter');
filter.addEventListener('change', function () {
  var shown = 0;
  document.querySelectorAll('tr.pc').forEach(function (r) {
    r.hidden = filter.value !== '' && r.getAttribute('data-outcome') !== filter.value;
    if (!r.hidden) { shown++; }
  });
  document.getElementById('shown').textContent = shown;
});
"#;

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, "DejaVu Sans", sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin: 0; font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.sub { color: #666; margin: .2em 0 1em; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 8em; }
.card b { display: block; font-size: 2em; }
.fixed b { color: #2e7d32; } .nothing b { color: #1565c0; } .failed b { color: #c62828; } .safemode b { color: #9a5000; } .locked b, .undelivered b { color: #e65100; }
table { border-collapse: collapse; width: 100%; font-size: 13px; } td { overflow-wrap: anywhere; } th, td { border-bottom: 1px solid #eee; padding: .3em .5em; text-align: left; vertical-align: top; }
th[data-sort] { cursor: pointer; } th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
td.n { text-align: right; } tr.pc[data-outcome=FAILED] td:nth-child(5) { color: #c62828; font-weight: bold; }
ol.failed li { margin-bottom: .4em; } .why { color: #c62828; }
textarea { width: 100%; height: 8em; font-family: monospace; }
.none { color: #666; font-style: italic; }
@media print { .noprint { display: none; } body { max-width: none; } tr.pc[hidden] { display: table-row; } }
"#;

/// HTML-escapes `s` for text and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (for the script's hash in the page's CSP).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            let c = if i <= chunk.len() { A[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' };
            out.push(c);
        }
    }
    out
}

/// Percent-encodes `s` for a `data:` URL.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Seconds since 1970 of a report's `started` (`YYYY-MM-DDTHH:MM:SS…`), if it is one.
fn seconds(started: &str) -> Option<i64> {
    use rescue_engine::util::time::{filetime_from_civil, filetime_to_unix, Civil};
    let b = started.as_bytes();
    let num = |r: std::ops::Range<usize>| started.get(r)?.parse::<u8>().ok();
    if b.len() < 19 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let year = started.get(0..4)?.parse::<i64>().ok()?;
    let (month, day) = (num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let ft = filetime_from_civil(&Civil { year, month, day, hour, minute, second });
    (ft != 0).then(|| filetime_to_unix(ft).0)
}

/// True when a run's report says something it had to deliver did not arrive.
fn undelivered(r: &Row) -> bool {
    let hit = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("not delivered") || s.contains("no report was kept")
    };
    hit(&r.reason) || r.errors.iter().any(|e| hit(e))
}

/// The counts shown at the top: (id, label, count).
pub fn counts(rows: &[Row]) -> Vec<(&'static str, &'static str, usize)> {
    let mut out: Vec<(&str, &str, usize)> =
        OUTCOMES.iter().map(|&(word, id, _)| (id, word, rows.iter().filter(|r| r.outcome == word).count())).collect();
    out.push(("locked", "PCs left locked", rows.iter().filter(|r| !r.locked.is_empty()).count()));
    out.push(("undelivered", "not delivered", rows.iter().filter(|r| undelivered(r)).count()));
    out
}

fn colour(outcome: &str) -> &'static str {
    OUTCOMES.iter().find(|o| o.0 == outcome).map_or("#777", |o| o.2)
}

/// One bar per outcome.
fn outcome_bars(rows: &[Row]) -> String {
    let max = OUTCOMES.iter().map(|o| rows.iter().filter(|r| r.outcome == o.0).count()).max().unwrap_or(0).max(1);
    let mut svg =
        String::from(r#"<svg role="img" aria-label="PCs per outcome" width="520" height="130" viewBox="0 0 520 130">"#);
    for (i, &(word, _, fill)) in OUTCOMES.iter().enumerate() {
        let n = rows.iter().filter(|r| r.outcome == word).count();
        let y = 8 + i * 30;
        let w = 360 * n / max;
        let _ = write!(
            svg,
            r#"<text x="0" y="{}" font-size="13">{word}</text><rect x="120" y="{y}" width="{w}" height="20" fill="{fill}"/><text x="{}" y="{}" font-size="13">{n}</text>"#,
            y + 15,
            126 + w,
            y + 15
        );
    }
    svg + "</svg>"
}

/// Outcomes per make and model, with a stacked bar each.
fn by_model(rows: &[Row]) -> String {
    let mut models: BTreeMap<(String, String), [usize; OUTCOMES.len()]> = BTreeMap::new();
    for r in rows {
        let counts = models.entry((r.manufacturer.clone(), r.model.clone())).or_default();
        if let Some(i) = OUTCOMES.iter().position(|o| o.0 == r.outcome) {
            counts[i] += 1;
        }
    }
    let mut html = String::from(
        "<table><thead><tr><th>Make</th><th>Model</th><th>FIXED</th><th>NOTHING TO DO</th><th>FAILED</th><th>SAFE MODE SET</th><th>PCs</th><th></th></tr></thead><tbody>",
    );
    let widest = models.values().map(|c| c.iter().sum::<usize>()).max().unwrap_or(0).max(1);
    for ((make, model), c) in &models {
        let total: usize = c.iter().sum();
        let mut bar = String::from(r#"<svg width="200" height="14" viewBox="0 0 200 14">"#);
        let mut x = 0;
        for (i, n) in c.iter().enumerate() {
            let w = 200 * n / widest;
            let _ = write!(bar, r#"<rect x="{x}" y="0" width="{w}" height="14" fill="{}"/>"#, OUTCOMES[i].2);
            x += w;
        }
        bar += "</svg>";
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{total}</td><td>{bar}</td></tr>"#,
            esc(or_unknown(make)),
            esc(or_unknown(model)),
            c[0],
            c[1],
            c[2],
            c[3]
        );
    }
    html + "</tbody></table>"
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "(unknown)"
    } else {
        s
    }
}

/// Runs over time: one dot per run, coloured by outcome.
fn timeline(rows: &[Row]) -> String {
    let times: Vec<(i64, &Row)> = rows.iter().filter_map(|r| Some((seconds(&r.started)?, r))).collect();
    let (Some(first), Some(last)) = (times.iter().map(|t| t.0).min(), times.iter().map(|t| t.0).max()) else {
        return String::from(r#"<p class="none">No run carries a start time.</p>"#);
    };
    let span = (last - first).max(1);
    let mut svg = String::from(
        r##"<svg role="img" aria-label="runs over time" width="820" height="90" viewBox="0 0 820 90"><line x1="10" y1="50" x2="810" y2="50" stroke="#999"/>"##,
    );
    for (t, r) in &times {
        let x = 10 + 800 * (t - first) / span;
        let y = 16 + 8 * OUTCOMES.iter().position(|o| o.0 == r.outcome).unwrap_or(4) as i64;
        let _ = write!(
            svg,
            r#"<circle cx="{x}" cy="{y}" r="4" fill="{}"><title>{} {}</title></circle>"#,
            colour(&r.outcome),
            esc(&r.started),
            esc(&r.outcome)
        );
    }
    let first_label = rows.iter().find(|r| seconds(&r.started) == Some(first)).map_or("", |r| r.started.as_str());
    let last_label = rows.iter().find(|r| seconds(&r.started) == Some(last)).map_or("", |r| r.started.as_str());
    let _ = write!(
        svg,
        r#"<text x="10" y="78" font-size="12">{}</text><text x="810" y="78" font-size="12" text-anchor="end">{}</text></svg>"#,
        esc(first_label),
        esc(last_label)
    );
    svg
}

/// The PCs whose run failed, each with its reason.
fn failed_list(rows: &[Row]) -> String {
    let failed: Vec<&Row> = rows.iter().filter(|r| r.outcome == "FAILED").collect();
    if failed.is_empty() {
        return String::from(r#"<p class="none">No PC failed.</p>"#);
    }
    let mut html = String::from(r#"<ol class="failed">"#);
    for r in failed {
        let why = if r.reason.is_empty() { "no reason given" } else { r.reason.as_str() };
        let _ = write!(
            html,
            r#"<li><b>{}</b> ({} {}), {}: <span class="why">{}</span></li>"#,
            esc(or_unknown(&r.serial)),
            esc(&r.manufacturer),
            esc(&r.model),
            esc(&r.started),
            esc(why)
        );
    }
    html + "</ol>"
}

/// The missing keys: a table, and the CSV to copy or save.
fn keys_section(keys: &[MissingKey]) -> String {
    if keys.is_empty() {
        return String::from(r#"<p class="none">No BitLocker volume was left locked.</p>"#);
    }
    let mut html = String::from(
        "<table><thead><tr><th>Key ID</th><th>Serial</th><th>Make</th><th>Model</th><th>Disk</th><th>When</th><th>Why</th></tr></thead><tbody>",
    );
    for k in keys {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.key_id),
            esc(&k.serial),
            esc(&k.manufacturer),
            esc(&k.model),
            esc(&k.disk),
            esc(&k.when),
            esc(&k.why)
        );
    }
    let csv = missing_keys::to_csv(keys);
    let _ = write!(
        html,
        r#"</tbody></table><p class="noprint"><a download="missing-keys.csv" href="data:text/csv;charset=utf-8,{}">Download missing-keys.csv</a> — look the keys up in AD or Entra, fill in <code>RecoveryKey</code>, check with <code>rescue keys check</code>, and build a keyed stick for the second round (docs/keys.md).</p><textarea class="noprint" readonly aria-label="missing keys as CSV">{}</textarea>"#,
        percent(&csv),
        esc(&csv)
    );
    html
}

/// Every PC, failed ones first, then by start time.
fn pc_table(rows: &[Row]) -> String {
    let mut order: Vec<&Row> = rows.iter().collect();
    order.sort_by_key(|r| r.outcome != "FAILED");
    let mut html = String::from(
        r#"<p class="noprint"><label>Show <select id="filter"><option value="">every outcome</option><option>FIXED</option><option>NOTHING TO DO</option><option>FAILED</option><option>SAFE MODE SET</option></select></label> — <span id="shown">"#,
    );
    let _ = write!(html, "{}</span> PC(s) shown; click a column to sort.</p>", rows.len());
    html.push_str("<table id=\"pcs\"><thead><tr>");
    for col in [
        "Started",
        "Make",
        "Model",
        "Serial",
        "Outcome",
        "Reason",
        "Files deleted",
        "Registry changes",
        "Restored",
        "Journal",
        "Duration (s)",
        "Report",
    ] {
        let _ = write!(html, r#"<th data-sort>{col}</th>"#);
    }
    html.push_str("</tr></thead><tbody>");
    for r in order {
        let _ = write!(
            html,
            r#"<tr class="pc" data-outcome="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td><td class="n" data-v="{}">{:.1}</td><td>{}</td></tr>"#,
            esc(&r.outcome),
            esc(&r.started),
            esc(&r.manufacturer),
            esc(&r.model),
            esc(&r.serial),
            esc(&r.outcome),
            esc(&r.reason),
            r.files_deleted,
            r.registry_changes,
            r.restored,
            esc(&r.journal),
            r.duration_ms,
            r.duration_ms as f64 / 1000.0,
            esc(&format!("{}/{}", r.source, r.report))
        );
    }
    html + "</tbody></table>"
}

/// The whole page for `rows` (as `collect` sorted them), made at `generated`.
pub fn render(rows: &[Row], generated: &str) -> String {
    let keys = missing_keys::missing(rows);
    let hash = base64(&Sha256::digest(SCRIPT.as_bytes()));
    let mut html = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{hash}'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rescue sweep: {} PC(s)</title><style>{STYLE}</style></head><body>
<h1>Rescue sweep</h1><p class="sub"><span id="count-total">{}</span> PC(s) reported · page made {}</p>
<div class="cards">"#,
        rows.len(),
        rows.len(),
        esc(generated)
    );
    for (id, label, n) in counts(rows) {
        let _ = write!(html, r#"<div class="card {id}"><b id="count-{id}">{n}</b>{label}</div>"#);
    }
    html.push_str("</div>");
    let _ = write!(html, "<h2>Outcomes</h2>{}", outcome_bars(rows));
    let _ = write!(html, "<h2>Failed PCs</h2>{}", failed_list(rows));
    let _ = write!(html, "<h2>BitLocker keys still missing ({})</h2>{}", keys.len(), keys_section(&keys));
    let _ = write!(html, "<h2>By make and model</h2>{}", by_model(rows));
    let _ = write!(html, "<h2>Runs over time</h2>{}", timeline(rows));
    let _ = write!(html, "<h2>Every PC</h2>{}", pc_table(rows));
    let _ = writeln!(html, "<script>{SCRIPT}</script></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_encodings() {
        assert_eq!(
            esc(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(percent("a,b\r\n{é}"), "a%2Cb%0D%0A%7B%C3%A9%7D");
        assert_eq!(seconds("1970-01-02T00:00:01Z"), Some(86_401));
        assert_eq!(seconds("2024-07-19T04:09:00"), Some(1_721_362_140));
        assert_eq!(seconds("20240719-040900"), None);
    }
}
