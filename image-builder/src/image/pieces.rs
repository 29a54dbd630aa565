//! An image as `(offset, bytes)` pieces, the form every image format returns.

/// An image as `(offset, bytes)` pieces over an all-zero file (they do not overlap).
pub type Pieces = Vec<(u64, Vec<u8>)>;
