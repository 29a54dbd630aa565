//! Little-endian fields of on-disk structures, checked: reading outside the
//! buffer gives `None` and writing outside it changes nothing, never a panic.
//! The one reader/writer every parser in the engine uses.

/// The `N` bytes at `o`, if they are inside `b`.
fn bytes<const N: usize>(b: &[u8], o: usize) -> Option<[u8; N]> {
    b.get(o..o.checked_add(N)?)?.try_into().ok()
}

/// The little-endian u16 at byte `o`.
pub fn le16(b: &[u8], o: usize) -> Option<u16> {
    bytes(b, o).map(u16::from_le_bytes)
}

/// The little-endian u32 at byte `o`.
pub fn le32(b: &[u8], o: usize) -> Option<u32> {
    bytes(b, o).map(u32::from_le_bytes)
}

/// The little-endian u64 at byte `o`.
pub fn le64(b: &[u8], o: usize) -> Option<u64> {
    bytes(b, o).map(u64::from_le_bytes)
}

/// Writes `v` at byte `o`; returns false (and writes nothing) when it does not fit.
pub fn put16(b: &mut [u8], o: usize, v: u16) -> bool {
    put(b, o, &v.to_le_bytes())
}

/// Writes `v` at byte `o`; returns false (and writes nothing) when it does not fit.
pub fn put32(b: &mut [u8], o: usize, v: u32) -> bool {
    put(b, o, &v.to_le_bytes())
}

/// Writes `v` at byte `o`; returns false (and writes nothing) when it does not fit.
pub fn put64(b: &mut [u8], o: usize, v: u64) -> bool {
    put(b, o, &v.to_le_bytes())
}

fn put(b: &mut [u8], o: usize, v: &[u8]) -> bool {
    match o.checked_add(v.len()).and_then(|end| b.get_mut(o..end)) {
        Some(s) => {
            s.copy_from_slice(v);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_and_out_of_range() {
        let mut b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(le16(&b, 0), Some(0x0201));
        assert_eq!(le32(&b, 4), Some(0x0807_0605));
        assert_eq!(le64(&b, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(le16(&b, 7), None);
        assert_eq!(le64(&b, 1), None);
        assert_eq!(le32(&b, usize::MAX), None);
        assert!(put16(&mut b, 6, 0xAABB));
        assert_eq!(b[6..], [0xBB, 0xAA]);
        assert!(!put32(&mut b, 6, 0) && b[6..] == [0xBB, 0xAA]);
        assert!(!put16(&mut b, usize::MAX, 0));
    }
}
