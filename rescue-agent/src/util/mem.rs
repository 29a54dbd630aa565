//! Allocation that can fail. Sizes read from a disk or a file decide how
//! much memory is asked for, and firmware memory is small: a buffer that
//! cannot be had is `None` for the caller to report, never an abort.

use alloc::vec::Vec;

/// `len` zero bytes, or `None` when the memory is not there.
pub fn zeroed(len: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0);
    Some(v)
}

/// A copy of `bytes`, or `None` when the memory is not there.
pub fn copy(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len()).ok()?;
    v.extend_from_slice(bytes);
    Some(v)
}
