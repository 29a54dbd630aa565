//! Little-endian fields of on-disk structures, checked: reading outside the
//! buffer gives `None` and writing outside it changes nothing, never a panic.
//! The one reader/writer every parser in the engine uses.

/// The `N` bytes at `o`, if they are inside `b`.
pub fn array<const N: usize>(b: &[u8], o: usize) -> Option<[u8; N]> {
    b.get(o..o.checked_add(N)?)?.try_into().ok()
}

/// UTF-16LE code units of `b` (an odd last byte is ignored).
pub fn utf16_units(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).filter_map(|c| le16(c, 0))
}

/// The byte at `o`.
pub fn byte(b: &[u8], o: usize) -> Option<u8> {
    b.get(o).copied()
}

/// The little-endian u16 at byte `o`.
pub fn le16(b: &[u8], o: usize) -> Option<u16> {
    array(b, o).map(u16::from_le_bytes)
}

/// The little-endian u32 at byte `o`.
pub fn le32(b: &[u8], o: usize) -> Option<u32> {
    array(b, o).map(u32::from_le_bytes)
}

/// The little-endian u64 at byte `o`.
pub fn le64(b: &[u8], o: usize) -> Option<u64> {
    array(b, o).map(u64::from_le_bytes)
}

/// A field that does not fit inside the buffer it was to be written into:
/// nothing was written. Callers turn it into their format's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Byte offset of the field in the buffer.
    pub offset: usize,
    /// The field's length.
    pub len: usize,
}

/// Writes `v` at byte `o`, or nothing when it does not fit.
pub fn put16(b: &mut [u8], o: usize, v: u16) -> Result<(), OutOfBounds> {
    put(b, o, &v.to_le_bytes())
}

/// Writes `v` at byte `o`, or nothing when it does not fit.
pub fn put32(b: &mut [u8], o: usize, v: u32) -> Result<(), OutOfBounds> {
    put(b, o, &v.to_le_bytes())
}

/// Writes `v` at byte `o`, or nothing when it does not fit.
pub fn put64(b: &mut [u8], o: usize, v: u64) -> Result<(), OutOfBounds> {
    put(b, o, &v.to_le_bytes())
}

fn put(b: &mut [u8], o: usize, v: &[u8]) -> Result<(), OutOfBounds> {
    let field = o.checked_add(v.len()).and_then(|end| b.get_mut(o..end));
    field.ok_or(OutOfBounds { offset: o, len: v.len() })?.copy_from_slice(v);
    Ok(())
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
        assert_eq!(put16(&mut b, 6, 0xAABB), Ok(()));
        assert_eq!(b[6..], [0xBB, 0xAA]);
        assert_eq!(put32(&mut b, 6, 0), Err(OutOfBounds { offset: 6, len: 4 }));
        assert_eq!(b[6..], [0xBB, 0xAA]);
        assert!(put16(&mut b, usize::MAX, 0).is_err());
    }
}
