//! The parts of a PE/COFF image that Authenticode touches: the checksum,
//! the certificate-table directory entry, the section table; the image
//! hash per Microsoft's "Windows Authenticode Portable Executable
//! Signature Format", and the PE checksum.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// DllCharacteristics bit: the image runs with data pages non-executable.
pub const NX_COMPAT: u16 = 0x0100;
/// WIN_CERTIFICATE revision 2.0 and type PKCS_SIGNED_DATA.
pub const WIN_CERT_REVISION_2_0: u16 = 0x0200;
pub const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;

/// Offsets and values read from a PE image's headers, all checked to lie
/// inside the file.
#[derive(Debug, Clone)]
pub struct PeInfo {
    /// The COFF machine type (0x8664 x86-64, 0xAA64 ARM64).
    pub machine: u16,
    /// Offset of the 4-byte CheckSum field.
    pub checksum_at: usize,
    /// Offset of the 8-byte certificate-table (security) directory entry.
    pub cert_dir_at: usize,
    pub size_of_headers: usize,
    pub dll_characteristics: u16,
    pub section_alignment: u32,
    pub sections: Vec<Section>,
    /// The certificate table (file offset, size), if the image has one.
    pub cert_table: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub virtual_size: u32,
    pub raw_size: usize,
    pub raw_at: usize,
    pub characteristics: u32,
}

impl Section {
    pub const EXECUTE: u32 = 0x2000_0000;
    pub const WRITE: u32 = 0x8000_0000;
}

fn u16_at(d: &[u8], at: usize) -> Result<u16> {
    d.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).with_context(|| format!("PE: truncated at byte {at}"))
}

fn u32_at(d: &[u8], at: usize) -> Result<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .with_context(|| format!("PE: truncated at byte {at}"))
}

/// Parses the headers of a PE32 or PE32+ image.
pub fn parse(d: &[u8]) -> Result<PeInfo> {
    if d.len() < 0x40 || &d[..2] != b"MZ" {
        bail!("not a PE image (no 'MZ' header)");
    }
    let pe = u32_at(d, 0x3c)? as usize;
    if d.get(pe..pe + 4) != Some(b"PE\0\0") {
        bail!("not a PE image (no 'PE' signature at byte {pe})");
    }
    let coff = pe + 4;
    let nsections = u16_at(d, coff + 2)? as usize;
    let opt_size = u16_at(d, coff + 16)? as usize;
    let opt = coff + 20;
    let magic = u16_at(d, opt)?;
    let (nrva_at, dirs_at) = match magic {
        0x20b => (opt + 108, opt + 112),
        0x10b => (opt + 92, opt + 96),
        m => bail!("PE: unknown optional-header magic {m:#06x}"),
    };
    let nrva = u32_at(d, nrva_at)? as usize;
    if nrva < 5 || dirs_at + 5 * 8 > opt + opt_size {
        bail!("PE: the optional header has no certificate-table directory entry");
    }
    let cert_dir_at = dirs_at + 4 * 8;
    let size_of_headers = u32_at(d, opt + 60)? as usize;
    if size_of_headers > d.len() {
        bail!("PE: SizeOfHeaders ({size_of_headers}) is larger than the file ({})", d.len());
    }
    let mut sections = Vec::with_capacity(nsections);
    let table = opt + opt_size;
    for i in 0..nsections {
        let s = table + i * 40;
        let name_bytes = d.get(s..s + 8).with_context(|| format!("PE: section table truncated at byte {s}"))?;
        let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(8);
        let mut name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        // Names longer than 8 bytes are "/N": offset N into the COFF string
        // table, which follows the symbol table (GNU ld does this for images).
        if let Some(off) = name.strip_prefix('/').and_then(|n| n.parse::<usize>().ok()) {
            let strtab = u32_at(d, coff + 8)? as usize + u32_at(d, coff + 12)? as usize * 18;
            if let Some(tail) = d.get(strtab + off..) {
                let end = tail.iter().take(256).position(|&b| b == 0).unwrap_or(0);
                name = String::from_utf8_lossy(&tail[..end]).into_owned();
            }
        }
        let sec = Section {
            name,
            virtual_size: u32_at(d, s + 8)?,
            raw_size: u32_at(d, s + 16)? as usize,
            raw_at: u32_at(d, s + 20)? as usize,
            characteristics: u32_at(d, s + 36)?,
        };
        if sec.raw_size > 0 && sec.raw_at.checked_add(sec.raw_size).is_none_or(|e| e > d.len()) {
            bail!(
                "PE: section {:?} (bytes {}+{}) lies outside the file ({} bytes)",
                sec.name,
                sec.raw_at,
                sec.raw_size,
                d.len()
            );
        }
        sections.push(sec);
    }
    if table + nsections * 40 > size_of_headers {
        bail!("PE: the section table runs past SizeOfHeaders");
    }
    let (ct_at, ct_size) = (u32_at(d, cert_dir_at)? as usize, u32_at(d, cert_dir_at + 4)? as usize);
    let cert_table = if ct_size == 0 {
        None
    } else if ct_at.checked_add(ct_size) != Some(d.len()) {
        bail!("PE: the certificate table (bytes {ct_at}+{ct_size}) is not at the end of the file ({} bytes)", d.len());
    } else {
        Some((ct_at, ct_size))
    };
    Ok(PeInfo {
        machine: u16_at(d, coff)?,
        checksum_at: opt + 64,
        cert_dir_at,
        size_of_headers,
        dll_characteristics: u16_at(d, opt + 70)?,
        section_alignment: u32_at(d, opt + 32)?,
        sections,
        cert_table,
    })
}

/// The Authenticode SHA-256 image hash: headers without the checksum and
/// the certificate-table entry, then the sections in file order, then any
/// data after them except the certificate table.
pub fn authenticode_sha256(d: &[u8], info: &PeInfo) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&d[..info.checksum_at]);
    h.update(&d[info.checksum_at + 4..info.cert_dir_at]);
    h.update(&d[info.cert_dir_at + 8..info.size_of_headers]);
    let mut sections: Vec<&Section> = info.sections.iter().filter(|s| s.raw_size > 0).collect();
    sections.sort_by_key(|s| s.raw_at);
    let mut hashed = info.size_of_headers;
    for s in sections {
        h.update(&d[s.raw_at..s.raw_at + s.raw_size]);
        hashed += s.raw_size;
    }
    let cert_size = info.cert_table.map_or(0, |c| c.1);
    if d.len() > hashed + cert_size {
        h.update(&d[hashed..d.len() - cert_size]);
    }
    h.finalize().into()
}

/// The PE checksum (as `imagehlp!CheckSumMappedFile` computes it): the
/// 16-bit one's-complement-style sum of the file with the CheckSum field
/// taken as zero, plus the file length.
pub fn checksum(d: &[u8], checksum_at: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, pair) in d.chunks(2).enumerate() {
        let at = i * 2;
        if at >= checksum_at && at < checksum_at + 4 {
            continue;
        }
        let w = pair[0] as u64 | (*pair.get(1).unwrap_or(&0) as u64) << 8;
        sum += w;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(d.len() as u32)
}

/// The bytes of the section named `name`, cut to its VirtualSize.
pub fn section<'a>(d: &'a [u8], info: &PeInfo, name: &str) -> Option<&'a [u8]> {
    let s = info.sections.iter().find(|s| s.name == name)?;
    let len = s.raw_size.min(s.virtual_size as usize);
    d.get(s.raw_at..s.raw_at + len)
}

/// The PKCS#7 blobs in the certificate table (one per WIN_CERTIFICATE of
/// type PKCS_SIGNED_DATA).
pub fn signatures<'a>(d: &'a [u8], info: &PeInfo) -> Result<Vec<&'a [u8]>> {
    let Some((at, size)) = info.cert_table else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut p = at;
    while p + 8 <= at + size {
        let len = u32_at(d, p)? as usize;
        let rev = u16_at(d, p + 4)?;
        let typ = u16_at(d, p + 6)?;
        if len < 8 || p + len > at + size {
            bail!("PE: WIN_CERTIFICATE at byte {p} has a bad length {len}");
        }
        if rev == WIN_CERT_REVISION_2_0 && typ == WIN_CERT_TYPE_PKCS_SIGNED_DATA {
            out.push(&d[p + 8..p + len]);
        }
        p += (len + 7) & !7;
    }
    Ok(out)
}

/// Problems that would make NX-enforcing firmware refuse or break the image.
pub fn nx_problems(info: &PeInfo) -> Vec<String> {
    let mut out = Vec::new();
    if info.dll_characteristics & NX_COMPAT == 0 {
        out.push("the NX_COMPAT flag is not set".to_string());
    }
    if !info.section_alignment.is_multiple_of(4096) {
        out.push(format!("sections are aligned to {} bytes, not to pages", info.section_alignment));
    }
    for s in &info.sections {
        if s.characteristics & Section::EXECUTE != 0 && s.characteristics & Section::WRITE != 0 {
            out.push(format!("section {} is both writable and executable", s.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_known_bytes() {
        // Words 0x0201 + 0x0403 (checksum field elsewhere) + length 4.
        assert_eq!(checksum(&[1, 2, 3, 4], 100), 0x0201 + 0x0403 + 4);
        // Carries fold back into the low 16 bits.
        assert_eq!(checksum(&[0xff, 0xff, 0x02, 0x00], 100), 0x0002 + 4);
        // The checksum field is skipped.
        assert_eq!(checksum(&[1, 0, 9, 9, 9, 9], 2), 1 + 6);
    }

    #[test]
    fn non_pe_is_refused() {
        assert!(parse(b"hello").is_err());
        assert!(parse(&[b'M', b'Z'].iter().copied().chain([0u8; 100]).collect::<Vec<_>>()).is_err());
    }
}
