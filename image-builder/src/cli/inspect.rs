//! `rescue inspect`: what an image holds — never any secret.

use crate::image::read::{inspect, inspect_efi, is_efi_binary};
use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `rescue inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A USB image, ISO, a flashed stick's block device, or a network-boot rescue.efi
    pub image: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Runs `rescue inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    if is_efi_binary(&args.image) {
        return efi(args);
    }
    let r = inspect(&args.image)?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    say!("image:    {}", args.image.display());
    say!("format:   {}", r.format);
    say!("size:     {} bytes ({} MiB)", r.size, r.size >> 20);
    for a in &r.agents {
        let arch = a.arch.map_or("unknown architecture", |a| a.name());
        say!("agent:    {} ({arch}): rescue-agent {}", a.path, a.version.as_deref().unwrap_or("(unknown version)"));
    }
    match &r.profile {
        Some(p) => {
            say!("profile:  {} — {}", p.name, p.description);
            for a in &p.actions {
                say!("          {a}");
            }
        }
        None => say!("profile:  (none)"),
    }
    let i = &r.integrity;
    match &i.error {
        Some(e) => say!("binding:  NONE: {e} (the agent trusts whatever profile is on the stick)"),
        None => {
            let profile = if i.profile_matches {
                "rescue/profile.toml matches it"
            } else {
                "rescue/profile.toml DIFFERS: the stick was altered, the agent will refuse to run"
            };
            say!("binding:  profile embedded in the agent; {profile}");
            say!("          {}", i.protection);
            match i.keys_match {
                None => {}
                Some(true) => say!("          key file bound to the agent; it matches"),
                Some(false) if i.keys_bound => {
                    say!("          key file bound to the agent; the stick's key file DIFFERS or is missing: not used")
                }
                Some(false) => say!("          the stick holds a key file the agent was not built with: not used"),
            }
        }
    }
    say!("signatures:");
    for f in &r.efi_signatures {
        if !f.signed {
            say!("  {:<26} not signed (Secure Boot refuses it unless its hash is in db)", f.path);
        }
        for s in &f.signatures {
            let verdict = if s.ok() { "signature matches the image" } else { "SIGNATURE DOES NOT MATCH" };
            say!("  {:<26} signed by {}: {verdict}", f.path, s.signer_subject.as_deref().unwrap_or("(unknown signer)"));
            if let Some(i) = &s.signer_issuer {
                say!("  {:<26}   issuer {i}", "");
            }
            if let Some(fp) = &s.signer_sha256 {
                say!("  {:<26}   certificate SHA-256 {fp}", "");
            }
            for p in &s.problems {
                say!("  {:<26}   {p}", "");
            }
        }
    }
    for c in &r.mok_certificates {
        say!("MOK cert: {} {:?}", c.path, c.subject);
        say!("          SHA-1 {} (compare in MokManager before enrolling)", c.sha1);
        say!("          SHA-256 {}", c.sha256);
    }
    match &r.keys {
        None => say!("keys:     none (BitLocker volumes need a typed recovery key)"),
        Some(k) if k.error.is_some() => {
            say!("keys:     {}: UNREADABLE: {}", k.path, k.error.as_deref().unwrap_or_default())
        }
        Some(k) => {
            let how = if k.sealed {
                format!("sealed with a PIN ({})", k.kdf.as_deref().unwrap_or_default())
            } else {
                "UNSEALED: anyone with the stick can read them".to_string()
            };
            say!("keys:     {} recovery key(s) in {}, {how}", k.count, k.path);
            for id in &k.key_ids {
                say!("          Key ID {{{id}}}");
            }
        }
    }
    say!("partitions:");
    for p in &r.partitions {
        say!("  {:>2}  at {:>10} bytes  {:>10} bytes  {}", p.number, p.offset, p.size, p.kind);
    }
    say!("files on the boot partition (at byte {}):", r.boot_partition_offset);
    for f in &r.files {
        match &f.sha256 {
            Some(h) => say!("  {:<40} {:>10}  sha256 {h}", f.path, f.size),
            None => say!("  {:<40} {:>10}", format!("{}/", f.path), "folder"),
        }
    }
    Ok(())
}

/// `rescue inspect rescue.efi`: what a network-boot binary carries.
fn efi(args: &InspectArgs) -> Result<()> {
    let r = inspect_efi(&args.image)?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    say!("file:     {} (network-boot EFI binary)", args.image.display());
    let arch = r.arch.map_or("unknown architecture", |a| a.name());
    say!("agent:    rescue-agent {} ({arch})", r.agent_version.as_deref().unwrap_or("(unknown version)"));
    match (&r.profile, &r.error) {
        (Some(p), _) => {
            say!("profile:  {} — {} (embedded)", p.name, p.description);
            for a in &p.actions {
                say!("          {a}");
            }
        }
        (None, Some(e)) => say!("profile:  NONE: {e}"),
        (None, None) => say!("profile:  (none)"),
    }
    match r.profile.as_ref().and_then(|p| p.report_url.as_ref()) {
        Some(u) => say!("reports:  {u}/<run id>/report.json and backups/ (HTTP PUT)"),
        None => say!("reports:  shown on screen only (no [report] url)"),
    }
    match &r.keys {
        None => say!("keys:     none (BitLocker volumes need a typed recovery key)"),
        Some(k) => say!(
            "keys:     {} recovery key(s) carried, {}",
            k.count,
            if k.sealed { "sealed with a PIN" } else { "UNSEALED" }
        ),
    }
    if r.signatures.is_empty() {
        say!("signed:   no (Secure Boot refuses it unless its hash is in db)");
    }
    for s in &r.signatures {
        let verdict = if s.ok() { "signature matches" } else { "SIGNATURE DOES NOT MATCH" };
        say!("signed:   by {}: {verdict}", s.signer_subject.as_deref().unwrap_or("(unknown signer)"));
    }
    Ok(())
}
