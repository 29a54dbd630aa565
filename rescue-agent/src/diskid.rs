//! A disk's model and serial number from the identify data its controller
//! returns (ATA IDENTIFY DEVICE, SCSI INQUIRY, NVMe Identify Controller).
//! Bounded and panic-free on any bytes.

use alloc::string::String;

/// Printable ASCII of `b`, trimmed; empty when there is none.
fn text(b: &[u8]) -> String {
    let s: String = b.iter().map(|&c| if (0x20..0x7F).contains(&c) { c as char } else { ' ' }).collect();
    String::from(s.trim())
}

/// ATA strings are stored as 16-bit words, each with its two characters swapped.
fn ata_string(b: &[u8]) -> String {
    let mut swapped = alloc::vec::Vec::with_capacity(b.len());
    for w in b.chunks_exact(2) {
        swapped.push(w[1]);
        swapped.push(w[0]);
    }
    text(&swapped)
}

/// (model, serial) from ATA IDENTIFY DEVICE data (512 bytes).
pub fn ata(identify: &[u8]) -> Option<(String, String)> {
    let serial = identify.get(20..40)?;
    let model = identify.get(54..94)?;
    Some((ata_string(model), ata_string(serial)))
}

/// (model, serial) from an NVMe Identify Controller structure.
pub fn nvme(identify: &[u8]) -> Option<(String, String)> {
    Some((text(identify.get(24..64)?), text(identify.get(4..24)?)))
}

/// (vendor and product, "") from standard SCSI INQUIRY data.
pub fn scsi(inquiry: &[u8]) -> Option<(String, String)> {
    let vendor = text(inquiry.get(8..16)?);
    let product = text(inquiry.get(16..32)?);
    let model = match (vendor.is_empty(), product.is_empty()) {
        (true, _) => product,
        (_, true) => vendor,
        _ => alloc::format!("{vendor} {product}"),
    };
    Some((model, String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ata_words_are_swapped() {
        let mut id = [0u8; 512];
        let put = |id: &mut [u8], at: usize, s: &str| {
            for (i, pair) in s.as_bytes().chunks(2).enumerate() {
                id[at + 2 * i] = *pair.get(1).unwrap_or(&b' ');
                id[at + 2 * i + 1] = pair[0];
            }
        };
        put(&mut id, 20, "QM00005             ");
        put(&mut id, 54, "QEMU HARDDISK                           ");
        assert_eq!(ata(&id), Some(("QEMU HARDDISK".into(), "QM00005".into())));
        assert_eq!(ata(&id[..30]), None);
        let mut inq = [0u8; 36];
        inq[8..16].copy_from_slice(b"QEMU    ");
        inq[16..32].copy_from_slice(b"QEMU HARDDISK   ");
        assert_eq!(scsi(&inq), Some(("QEMU QEMU HARDDISK".into(), String::new())));
    }
}
