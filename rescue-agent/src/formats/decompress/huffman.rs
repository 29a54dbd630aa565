//! Canonical Huffman codes, as XPRESS Huffman and LZX both use them: a code
//! is given by its codeword lengths alone (shorter codewords first, then by
//! symbol number). Decoded with a table for codewords of up to
//! [`TABLE_BITS`] bits and bit by bit for longer ones.

use super::Corrupt;

/// Bits the lookup table decodes at once.
pub(super) const TABLE_BITS: u32 = 10;

/// A canonical Huffman code over `N` symbols whose codewords are at most
/// `MAX` bits long.
pub(super) struct Code<const N: usize, const MAX: usize> {
    /// How many codewords have each length (index 0 unused).
    counts: [u16; 17],
    /// The used symbols in canonical order: by length, then by number.
    symbols: [u16; N],
    /// Indexed by the next `TABLE_BITS` bits: `symbol << 4 | length`, or 0
    /// when the codeword is longer than `TABLE_BITS`.
    fast: [u16; 1 << TABLE_BITS],
    /// No symbol has a codeword.
    empty: bool,
}

impl<const N: usize, const MAX: usize> Code<N, MAX> {
    /// Builds the code from its codeword lengths (0 = unused). An
    /// over-subscribed code is ambiguous and an incomplete one is never
    /// written by Windows or wimlib: both are errors. A code with no symbols
    /// at all is built ([`Code::is_empty`]); whether it may be used is the
    /// format's rule.
    pub(super) fn new(lens: &[u8; N]) -> Result<Self, Corrupt> {
        let mut counts = [0u16; 17];
        for &len in lens {
            if usize::from(len) > MAX {
                return Err(Corrupt("bad Huffman table: codeword too long"));
            }
            counts[usize::from(len)] += 1;
        }
        counts[0] = 0;
        let mut left: i32 = 1;
        for &count in &counts[1..=MAX] {
            left = 2 * left - i32::from(count);
            if left < 0 {
                return Err(Corrupt("bad Huffman table: over-subscribed code"));
            }
        }
        let empty = left == 1 << MAX;
        if left > 0 && !empty {
            return Err(Corrupt("bad Huffman table: incomplete code"));
        }
        let mut next = [0usize; 17];
        for len in 1..MAX {
            next[len + 1] = next[len] + usize::from(counts[len]);
        }
        let mut symbols = [0u16; N];
        for (sym, &len) in lens.iter().enumerate() {
            if len != 0 {
                symbols[next[usize::from(len)]] = sym as u16;
                next[usize::from(len)] += 1;
            }
        }
        let mut code = Code { counts, symbols, fast: [0; 1 << TABLE_BITS], empty };
        code.fill_fast_table();
        Ok(code)
    }

    /// True when no symbol has a codeword.
    pub(super) fn is_empty(&self) -> bool {
        self.empty
    }

    /// Fills `fast` with every codeword of up to `TABLE_BITS` bits, each
    /// repeated for all values of the bits that follow it.
    fn fill_fast_table(&mut self) {
        let mut codeword = 0usize;
        let mut index = 0usize;
        for len in 1..=TABLE_BITS.min(MAX as u32) {
            for _ in 0..self.counts[len as usize] {
                let span = 1usize << (TABLE_BITS - len);
                let start = codeword * span;
                let entry = (self.symbols[index] << 4) | len as u16;
                self.fast[start..start + span].fill(entry);
                codeword += 1;
                index += 1;
            }
            codeword <<= 1;
        }
    }

    /// The symbol whose codeword starts `window` (the next `MAX` bits, most
    /// significant first), and the codeword's length.
    pub(super) fn decode(&self, window: u32) -> (u16, u32) {
        let max = MAX as u32;
        let entry = self.fast[(window >> (max - TABLE_BITS)) as usize];
        if entry != 0 {
            return (entry >> 4, u32::from(entry & 15));
        }
        // Canonical decoding, one bit at a time: at each length the codewords
        // are consecutive numbers starting at `first`.
        let (mut codeword, mut first, mut index) = (0u32, 0u32, 0usize);
        for len in 1..=max {
            codeword |= (window >> (max - len)) & 1;
            let count = u32::from(self.counts[len as usize]);
            if codeword - first < count {
                return (self.symbols[index + (codeword - first) as usize], len);
            }
            index += count as usize;
            first = (first + count) << 1;
            codeword <<= 1;
        }
        // A complete code always matches some codeword.
        (0, max)
    }
}
