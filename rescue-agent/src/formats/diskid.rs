//! A disk's model and serial number from the identify data its controller
//! returns (ATA IDENTIFY DEVICE, SCSI INQUIRY, NVMe Identify Controller).
//! Bounded and panic-free on any bytes.

#![deny(clippy::indexing_slicing)]

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
        swapped.extend(w.iter().rev());
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

/// The bus a disk sits on, as people name it, from its UEFI device path
/// text (the last messaging node that names one); "PCI" when only the PCI
/// function is known (virtio), "" when nothing is.
pub fn bus_from_path(path: &str) -> &'static str {
    const NODES: [(&str, &str); 7] = [
        ("NVMe(", "NVMe"),
        ("Sata(", "SATA"),
        ("Ata(", "ATA"),
        ("Scsi(", "SCSI"),
        ("USB(", "USB"),
        ("SD(", "SD"),
        ("eMMC(", "eMMC"),
    ];
    NODES
        .iter()
        .filter_map(|(node, bus)| path.rfind(node).map(|at| (at, *bus)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, bus)| bus)
        .unwrap_or(if path.contains("Pci(") { "PCI" } else { "" })
}

/// A size for people: `512 MiB`, `238.5 GiB`, `1.8 TiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut size = 1u128 << 20;
    while bytes as u128 >= size * 1024 && unit + 1 < UNITS.len() {
        size *= 1024;
        unit += 1;
    }
    let tenths = (bytes as u128 * 10 + size / 2) / size;
    let name = UNITS.get(unit).unwrap_or(&"PiB");
    if tenths >= 1000 || tenths.is_multiple_of(10) {
        alloc::format!("{} {name}", (tenths + 5) / 10)
    } else {
        alloc::format!("{}.{} {name}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;

    #[test]
    fn buses_and_sizes_for_people() {
        assert_eq!(bus_from_path("PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x1,0xFFFF,0x0)"), "SATA");
        assert_eq!(bus_from_path("PciRoot(0x0)/Pci(0x3,0x0)/NVMe(0x1,00-00-00-00-00-00-00-00)"), "NVMe");
        assert_eq!(bus_from_path("PciRoot(0x0)/Pci(0x4,0x0)"), "PCI");
        assert_eq!(bus_from_path("PciRoot(0x0)/Pci(0x2,0x0)/USB(0x0,0x0)/Scsi(0x0,0x0)"), "SCSI");
        assert_eq!(bus_from_path(""), "");
        assert_eq!(human_size(512 << 20), "512 MiB");
        assert_eq!(human_size(256_060_514_304), "239 GiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(2 << 40), "2 TiB");
    }

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
