//! `rescue bitlocker info`.

use crate::host::volume::find_bitlocker;
use anyhow::Result;
use clap::Subcommand;
use rescue_engine::formats::bitlocker::{self, BitLocker};
use rescue_engine::util::time::filetime_display;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum BitLockerCommand {
    /// Show a BitLocker volume's metadata and key protectors (no secrets)
    Info {
        /// Disk, partition image or block device
        volume: PathBuf,
        /// Use this partition number instead of the first BitLocker one
        #[arg(long)]
        partition: Option<u32>,
        /// Print JSON (no secrets)
        #[arg(long)]
        json: bool,
    },
}

/// Runs `rescue bitlocker …`.
pub fn run(c: &BitLockerCommand) -> Result<()> {
    match c {
        BitLockerCommand::Info { volume, partition, json } => info(volume, *partition, *json),
    }
}

fn info(volume: &Path, number: Option<u32>, json: bool) -> Result<()> {
    let (p, dev) = find_bitlocker(volume, false, number)?;
    let bl = BitLocker::open(dev)?;
    let m = &bl.metadata;
    let h = &bl.header;
    if json {
        let v = serde_json::json!({
            "offset": p.offset,
            "size": p.size,
            "partition": p.number,
            "volume_guid": m.volume_guid.to_string(),
            "metadata_version": m.version,
            "encryption": m.method.to_string(),
            "sector_size": h.sector_size,
            "state": m.current_state.to_string(),
            "encrypted_size": m.encrypted_size,
            "created": filetime_display(m.created),
            "description": m.description,
            "protectors": bl.protectors().iter().map(|pr| serde_json::json!({
                "key_id": pr.key_id.to_string(),
                "kind": pr.kind.to_string(),
                "name": pr.name,
                "modified": filetime_display(pr.modified),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    say!(
        "BitLocker volume at byte {} ({} bytes){}",
        p.offset,
        p.size,
        if p.number > 0 { format!(", partition {}", p.number) } else { String::new() }
    );
    say!(
        "  flavour:        {}",
        match h.flavour {
            bitlocker::header::Flavour::Fixed => "fixed/OS volume",
            bitlocker::header::Flavour::ToGo => "BitLocker To Go",
        }
    );
    say!("  volume GUID:    {}", m.volume_guid);
    say!("  metadata:       version {}", m.version);
    say!("  encryption:     {} ({:#06x})", m.method, m.method.code());
    say!("  sector size:    {}", h.sector_size);
    say!(
        "  state:          {} (next: {}){}",
        m.current_state,
        m.next_state,
        if h.encrypt_on_write() { ", used space only (encrypt-on-write)" } else { "" }
    );
    say!("  encrypted size: {} bytes", m.encrypted_size);
    say!("  created:        {}", filetime_display(m.created));
    if let Some(d) = &m.description {
        say!("  description:    {d}");
    }
    for i in 0..3 {
        say!(
            "  metadata copy {}: byte {} {:?}{}",
            i + 1,
            h.metadata_offsets[i],
            m.copies[i],
            if m.copy_used == i { " (used)" } else { "" }
        );
    }
    say!("  boot sectors:   relocated to byte {} ({} bytes)", m.volume_header_offset, m.volume_header_size);
    say!("  key protectors:");
    for pr in bl.protectors() {
        say!(
            "    Key ID {{{}}}  {}{}  modified {}{}",
            pr.key_id,
            pr.kind,
            pr.name.as_deref().map(|n| format!(" \"{n}\"")).unwrap_or_default(),
            filetime_display(pr.modified),
            if pr.kind == bitlocker::ProtectorKind::RecoveryPassword {
                format!("  (recovery screen shows Key ID {})", pr.short_key_id())
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
