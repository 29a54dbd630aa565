//! LZX decompression, in the variant WIM files and WOF/CompactOS (the LZX
//! format of `WofCompressedData`) use.
//!
//! Written from the published descriptions, not from anyone's code:
//!
//! - the bit stream, block types, trees and match coding: [MS-PATCH] "LZX
//!   DELTA Compression and Decompression", section 2 (without the LZX DELTA
//!   extensions: no reference data, no long matches);
//! - how WIM and WOF restrict it: wimlib's documentation of the WIM variant
//!   (the window is the chunk, at most 32 KiB, and every chunk stands alone;
//!   E8 translation is always on with a translation size of 12000000; a block
//!   header's size is one bit meaning 32768, or that bit clear and a 16-bit
//!   size; the uncompressed block's alignment rule);
//! - that WOF's LZX chunks are this variant with 32 KiB chunks: Microsoft's
//!   `WOF_FILE_COMPRESSION_INFO_V1` documentation and ntfs-3g-system-compression's
//!   description of System Compressed files.
//!
//! The format, as decoded here. The input is a stream of 16-bit little-endian
//! words read most significant bit first. It holds one or more blocks, each
//! starting with a 3-bit type (1 verbatim, 2 aligned offset, 3 uncompressed)
//! and its output size. Verbatim and aligned blocks then carry their Huffman
//! codes: for aligned blocks first 8 three-bit lengths of the aligned offset
//! code, then the main code (256 literals, then 8 length headers for each of
//! the 30 offset slots of a 32 KiB window) in two runs and the length code
//! (249 symbols), each run of lengths coded with its own 20-symbol pretree
//! as changes from the lengths the previous block of the chunk used (zero in
//! the first). A match's length is 2 plus its header, or plus 7 and a length
//! symbol when the header is 7; slots 0..=2 reuse the last three offsets
//! (R0, R1, R2, all 1 at the start of a chunk), higher slots give a base and
//! extra bits (in aligned blocks the low 3 of 3 or more extra bits come from
//! the aligned code) minus 2. Uncompressed blocks skip to the next 16-bit
//! boundary (16 bits if already there), then hold R0..R2 as three
//! little-endian u32 and the raw bytes, plus one pad byte if their count is
//! odd. Finally, 0xE8 bytes (x86 CALL) at positions below `len - 10` had the
//! following 32-bit target made absolute before compression; that is undone.
//!
//! A WOF chunk whose stored size equals its uncompressed size is stored raw;
//! that is for the caller to check before calling [`decompress`].

use super::{huffman, Corrupt};

/// The window: the largest chunk, and what sizes the main code.
const WINDOW_SIZE: usize = 32768;
/// Output of a block whose header says "default size".
const DEFAULT_BLOCK_SIZE: usize = 32768;
/// Literal symbols at the start of the main code.
const NUM_CHARS: usize = 256;
/// Offset slots a 32 KiB window uses.
const NUM_SLOTS: usize = 30;
/// Main code symbols: literals, then 8 length headers per offset slot.
const MAIN_SYMBOLS: usize = NUM_CHARS + 8 * NUM_SLOTS;
/// Length code symbols.
const LENGTH_SYMBOLS: usize = 249;
/// Aligned offset code symbols.
const ALIGNED_SYMBOLS: usize = 8;
/// Pretree symbols.
const PRETREE_SYMBOLS: usize = 20;
/// Longest codeword of any code.
const MAX_LEN: u32 = 16;
/// Shortest match.
const MIN_MATCH: usize = 2;
/// The E8 translation size WIM and WOF always use.
const E8_FILE_SIZE: i32 = 12_000_000;

const VERBATIM: u32 = 1;
const ALIGNED: u32 = 2;
const UNCOMPRESSED: u32 = 3;

/// Extra offset bits of each slot.
const EXTRA_BITS: [u8; NUM_SLOTS] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

/// First formatted offset (offset + 2) of each slot.
const SLOT_BASE: [u32; NUM_SLOTS] = {
    let mut base = [0u32; NUM_SLOTS];
    let mut slot = 1;
    while slot < NUM_SLOTS {
        base[slot] = base[slot - 1] + (1 << EXTRA_BITS[slot - 1]);
        slot += 1;
    }
    base
};

const TRUNCATED: Corrupt = Corrupt("input truncated");

/// Decompresses one LZX chunk (WIM/WOF variant) into `out`, whose length is
/// the known uncompressed size (at most 32768).
///
/// On `Ok`, every byte of `out` has been written. On `Err`, the input is
/// corrupt or truncated and `out` holds partial data. It never panics, whatever
/// the input, and runs in time linear in `input.len() + out.len()`. A match
/// that starts before the beginning of `out` or runs past the end of its block
/// is an error, as is a block running past the end of `out`. Input left over
/// once `out` is full is ignored. An empty `out` needs no input.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<(), Corrupt> {
    if out.len() > WINDOW_SIZE {
        return Err(Corrupt("LZX chunk larger than the 32 KiB window"));
    }
    let mut bits = BitReader { input, pos: 0, buf: 0, avail: 0, phantom: 0 };
    let mut state = State { main_lens: [0; MAIN_SYMBOLS], length_lens: [0; LENGTH_SYMBOLS], recent: [1; 3] };
    let mut pos = 0;
    while pos < out.len() {
        pos = decode_block(&mut bits, &mut state, out, pos)?;
    }
    undo_e8(out);
    Ok(())
}

/// What carries over from one block of a chunk to the next.
struct State {
    /// Main code lengths of the previous block (the base of the deltas).
    main_lens: [u8; MAIN_SYMBOLS],
    /// Length code lengths of the previous block.
    length_lens: [u8; LENGTH_SYMBOLS],
    /// R0, R1, R2: the most recent match offsets.
    recent: [u32; 3],
}

/// Decodes the block starting at output position `pos`; returns where it ends.
fn decode_block(bits: &mut BitReader, state: &mut State, out: &mut [u8], pos: usize) -> Result<usize, Corrupt> {
    let kind = bits.read_bits(3)?;
    let size = if bits.read_bits(1)? == 1 { DEFAULT_BLOCK_SIZE } else { bits.read_bits(16)? as usize };
    let end = pos.checked_add(size).filter(|&end| end <= out.len());
    let end = end.ok_or(Corrupt("block extends past end of output"))?;
    match kind {
        VERBATIM | ALIGNED => {
            let aligned = if kind == ALIGNED { Some(read_aligned_code(bits)?) } else { None };
            read_lengths(bits, &mut state.main_lens[..NUM_CHARS])?;
            read_lengths(bits, &mut state.main_lens[NUM_CHARS..])?;
            let main = Code::new(&state.main_lens)?;
            read_lengths(bits, &mut state.length_lens)?;
            let length = Code::new(&state.length_lens)?;
            let codes = Codes { main, length, aligned };
            decode_matches(bits, &codes, &mut state.recent, out, pos, end)?;
        }
        UNCOMPRESSED => copy_uncompressed(bits, &mut state.recent, &mut out[pos..end])?,
        _ => return Err(Corrupt("bad block type")),
    }
    Ok(end)
}

/// The codes of a verbatim or aligned offset block.
struct Codes {
    main: Code<MAIN_SYMBOLS>,
    length: Code<LENGTH_SYMBOLS>,
    /// Only in aligned offset blocks.
    aligned: Option<Code<ALIGNED_SYMBOLS>>,
}

/// Reads the 8 three-bit lengths of the aligned offset code.
fn read_aligned_code(bits: &mut BitReader) -> Result<Code<ALIGNED_SYMBOLS>, Corrupt> {
    let mut lens = [0u8; ALIGNED_SYMBOLS];
    for len in &mut lens {
        *len = bits.read_bits(3)? as u8;
    }
    Code::new(&lens)
}

/// Reads a pretree, then with it the new lengths of `lens` (which holds the
/// previous block's lengths, or zeros).
fn read_lengths(bits: &mut BitReader, lens: &mut [u8]) -> Result<(), Corrupt> {
    let mut pre_lens = [0u8; PRETREE_SYMBOLS];
    for len in &mut pre_lens {
        *len = bits.read_bits(4)? as u8;
    }
    let pretree = Code::new(&pre_lens)?;
    let mut i = 0;
    while i < lens.len() {
        let (run, len) = match read(&pretree, bits)? {
            // A change from the previous length, modulo 17.
            sym @ 0..=16 => (1, delta(lens[i], sym)),
            17 => (4 + bits.read_bits(4)? as usize, 0),
            18 => (20 + bits.read_bits(5)? as usize, 0),
            _ => {
                // 19: 4 or 5 copies of one changed length.
                let run = 4 + bits.read_bits(1)? as usize;
                let sym = read(&pretree, bits)?;
                if sym > 16 {
                    return Err(Corrupt("bad pretree symbol after a run"));
                }
                (run, delta(lens[i], sym))
            }
        };
        let run = lens.get_mut(i..i + run).ok_or(Corrupt("code length run overruns the table"))?;
        run.fill(len);
        i += run.len();
    }
    Ok(())
}

/// The length `sym` encodes given the previous length `prev` (both 0..=16).
fn delta(prev: u8, sym: u16) -> u8 {
    ((u16::from(prev) + 17 - sym) % 17) as u8
}

/// Decodes literals and matches into `out[pos..end]`.
fn decode_matches(
    bits: &mut BitReader,
    codes: &Codes,
    recent: &mut [u32; 3],
    out: &mut [u8],
    mut pos: usize,
    end: usize,
) -> Result<(), Corrupt> {
    while pos < end {
        let sym = usize::from(read(&codes.main, bits)?);
        if sym < NUM_CHARS {
            out[pos] = sym as u8;
            pos += 1;
            continue;
        }
        let header = sym - NUM_CHARS;
        let mut len = header & 7;
        if len == 7 {
            len += usize::from(read(&codes.length, bits)?);
        }
        len += MIN_MATCH;
        let offset = match_offset(bits, codes, recent, header >> 3)? as usize;
        if len > end - pos {
            return Err(Corrupt("match extends past end of block"));
        }
        if offset > pos {
            return Err(Corrupt("match offset before start of chunk"));
        }
        copy_match(out, pos, offset, len);
        pos += len;
    }
    Ok(())
}

/// Decodes the offset of a match in `slot`, updating R0..R2.
fn match_offset(bits: &mut BitReader, codes: &Codes, recent: &mut [u32; 3], slot: usize) -> Result<u32, Corrupt> {
    if slot < 3 {
        // R0 stays; R1 or R2 swaps places with R0.
        recent.swap(0, slot);
        return Ok(recent[0]);
    }
    // The main code has no symbols beyond the last slot.
    let extra = u32::from(EXTRA_BITS[slot]);
    let mut formatted = SLOT_BASE[slot];
    match &codes.aligned {
        Some(aligned) if extra >= 3 => {
            formatted += bits.read_bits(extra - 3)? << 3;
            formatted += u32::from(read(aligned, bits)?);
        }
        _ => formatted += bits.read_bits(extra)?,
    }
    let offset = formatted - 2;
    *recent = [offset, recent[0], recent[1]];
    Ok(offset)
}

/// Copies a match the caller has checked: `offset <= pos`, `pos + len <= out.len()`.
fn copy_match(out: &mut [u8], pos: usize, offset: usize, len: usize) {
    let src = pos - offset;
    if offset >= len {
        out.copy_within(src..src + len, pos);
    } else {
        // Overlapping: each byte may be one this match just wrote.
        for i in pos..pos + len {
            out[i] = out[i - offset];
        }
    }
}

/// Reads the rest of an uncompressed block (after its type and size) into `dst`.
fn copy_uncompressed(bits: &mut BitReader, recent: &mut [u32; 3], dst: &mut [u8]) -> Result<(), Corrupt> {
    bits.align()?;
    let header = bits.take(12)?;
    for (r, le) in recent.iter_mut().zip(header.chunks_exact(4)) {
        *r = u32::from_le_bytes([le[0], le[1], le[2], le[3]]);
    }
    if recent.contains(&0) {
        return Err(Corrupt("zero match offset in uncompressed block"));
    }
    dst.copy_from_slice(bits.take(dst.len())?);
    if dst.len() % 2 == 1 {
        // The pad byte; it may be missing after the last block.
        bits.pos = bits.pos.saturating_add(1);
    }
    Ok(())
}

/// Undoes the E8 (x86 CALL target) translation over the whole chunk.
fn undo_e8(out: &mut [u8]) {
    if out.len() <= 10 {
        return;
    }
    let limit = out.len() - 10;
    let mut i = 0;
    while i < limit {
        if out[i] != 0xE8 {
            i += 1;
            continue;
        }
        // `i < 32758`, so it fits, and the target lies before `out.len() - 5`.
        let pos = i as i32;
        let target = &mut out[i + 1..i + 5];
        let abs = i32::from_le_bytes([target[0], target[1], target[2], target[3]]);
        if abs >= -pos && abs < E8_FILE_SIZE {
            let rel = if abs >= 0 { abs - pos } else { abs + E8_FILE_SIZE };
            target.copy_from_slice(&rel.to_le_bytes());
        }
        i += 5;
    }
}

/// The bit stream: 16-bit little-endian words, most significant bit first,
/// loaded only when needed. Words past the end of the input read as zeros
/// (a peek may look past the last codeword), but consuming any of those bits
/// is an error: a valid stream never needs them.
struct BitReader<'a> {
    input: &'a [u8],
    /// Next byte to load (words already loaded lie before it).
    pos: usize,
    /// Loaded bits, the next one at bit `avail - 1`.
    buf: u64,
    /// Bits loaded and not consumed yet.
    avail: u32,
    /// How many of the last `avail` bits lie past the end of the input.
    phantom: u32,
}

impl<'a> BitReader<'a> {
    fn load_word(&mut self) {
        let lo = self.input.get(self.pos).copied();
        let hi = self.input.get(self.pos.saturating_add(1)).copied();
        if hi.is_none() {
            self.phantom += 16;
        }
        let word = u16::from_le_bytes([lo.unwrap_or(0), hi.unwrap_or(0)]);
        self.buf = (self.buf << 16) | u64::from(word);
        self.avail += 16;
        self.pos = self.pos.saturating_add(2);
    }

    /// The next `n` (at most 16) bits, without consuming them.
    fn peek(&mut self, n: u32) -> u32 {
        while self.avail < n {
            self.load_word();
        }
        ((self.buf >> (self.avail - n)) & ((1u64 << n) - 1)) as u32
    }

    fn consume(&mut self, n: u32) -> Result<(), Corrupt> {
        if n + self.phantom > self.avail {
            return Err(TRUNCATED);
        }
        self.avail -= n;
        Ok(())
    }

    /// The next `n` (at most 16) bits as a number.
    fn read_bits(&mut self, n: u32) -> Result<u32, Corrupt> {
        let value = self.peek(n);
        self.consume(n)?;
        Ok(value)
    }

    /// Skips to the next 16-bit boundary, or 16 bits if already on one, and
    /// switches to reading whole bytes from there.
    fn align(&mut self) -> Result<(), Corrupt> {
        match self.avail % 16 {
            0 => {
                self.peek(16);
                self.consume(16)?;
            }
            partial => self.consume(partial)?,
        }
        // What is left is one whole word not yet consumed, or nothing.
        self.pos = self.pos.saturating_sub((self.avail / 8) as usize);
        self.buf = 0;
        self.avail = 0;
        self.phantom = 0;
        Ok(())
    }

    /// The next `n` whole bytes (only right after [`Self::align`]).
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self.pos.checked_add(n).ok_or(TRUNCATED)?;
        let bytes = self.input.get(self.pos..end).ok_or(TRUNCATED)?;
        self.pos = end;
        Ok(bytes)
    }
}

/// A code of this format: codewords of at most [`MAX_LEN`] bits.
type Code<const N: usize> = huffman::Code<N, { MAX_LEN as usize }>;

/// Reads one symbol of `code` from the stream (an empty code has none to read).
fn read<const N: usize>(code: &Code<N>, bits: &mut BitReader) -> Result<u16, Corrupt> {
    if code.is_empty() {
        return Err(Corrupt("symbol read from an empty Huffman code"));
    }
    let (sym, len) = code.decode(bits.peek(MAX_LEN));
    bits.consume(len)?;
    Ok(sym)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Writes 16-bit little-endian words, most significant bit first.
    #[derive(Default)]
    struct Writer {
        out: Vec<u8>,
        word: u32,
        used: u32,
        /// Bits written since the start.
        total: usize,
    }

    impl Writer {
        fn bits(&mut self, value: u32, n: u32) {
            for i in (0..n).rev() {
                self.word = (self.word << 1) | ((value >> i) & 1);
                self.used += 1;
                self.total += 1;
                if self.used == 16 {
                    self.out.extend_from_slice(&(self.word as u16).to_le_bytes());
                    self.word = 0;
                    self.used = 0;
                }
            }
        }

        /// The uncompressed block's padding: to the next boundary, or a whole
        /// word if already on one.
        fn align(&mut self) {
            let pad = 16 - self.used;
            self.bits(0, pad);
        }

        fn bytes(&mut self, b: &[u8]) {
            assert_eq!(self.used, 0);
            self.out.extend_from_slice(b);
        }

        fn finish(mut self) -> Vec<u8> {
            if self.used > 0 {
                let pad = 16 - self.used;
                self.bits(0, pad);
            }
            self.out
        }

        fn header(&mut self, kind: u32, size: usize) {
            self.bits(kind, 3);
            if size == DEFAULT_BLOCK_SIZE {
                self.bits(1, 1);
            } else {
                self.bits(0, 1);
                self.bits(size as u32, 16);
            }
        }

        fn uncompressed(&mut self, recent: [u32; 3], data: &[u8]) {
            self.header(UNCOMPRESSED, data.len());
            self.align();
            for r in recent {
                self.bytes(&r.to_le_bytes());
            }
            self.bytes(data);
            if data.len() % 2 == 1 {
                self.bytes(&[0]);
            }
        }

        /// Writes `lens` as changes from `prev` with a fixed pretree that
        /// has every symbol (0..=11: 4 bits, 12..=19: 5 bits), using the
        /// run symbols where they fit.
        fn lengths(&mut self, prev: &[u8], lens: &[u8]) {
            let pre_lens: Vec<u8> = (0..20).map(|s| if s < 12 { 4 } else { 5 }).collect();
            for &l in &pre_lens {
                self.bits(u32::from(l), 4);
            }
            let pre = codewords(&pre_lens);
            let mut i = 0;
            while i < lens.len() {
                let zeros = lens[i..].iter().take_while(|&&l| l == 0).count();
                let same = lens[i..].iter().take_while(|&&l| l == lens[i]).count();
                let sym = |j: usize| u32::from((prev[j] + 17 - lens[j]) % 17);
                if zeros >= 20 {
                    let run = zeros.min(51);
                    self.code(&pre, 18);
                    self.bits(run as u32 - 20, 5);
                    i += run;
                } else if zeros >= 4 {
                    self.code(&pre, 17);
                    self.bits(zeros as u32 - 4, 4);
                    i += zeros;
                } else if same >= 4 {
                    let run = same.min(5);
                    self.code(&pre, 19);
                    self.bits(run as u32 - 4, 1);
                    self.code(&pre, sym(i) as usize);
                    i += run;
                } else {
                    self.code(&pre, sym(i) as usize);
                    i += 1;
                }
            }
        }

        fn code(&mut self, codes: &[(u32, u32)], sym: usize) {
            let (code, len) = codes[sym];
            assert!(len > 0, "symbol {sym} has no codeword");
            self.bits(code, len);
        }
    }

    /// Canonical codewords `(code, length)` for `lens`.
    fn codewords(lens: &[u8]) -> Vec<(u32, u32)> {
        let mut out = vec![(0, 0); lens.len()];
        let mut code = 0u32;
        for len in 1..=16u32 {
            for (sym, &l) in lens.iter().enumerate() {
                if u32::from(l) == len {
                    out[sym] = (code, len);
                    code += 1;
                }
            }
            code <<= 1;
        }
        out
    }

    /// One step of a test stream.
    #[derive(Clone, Copy)]
    enum Op {
        Literal(u8),
        /// Main symbol header, extra length symbol (if header 7), extra
        /// verbatim bits, aligned symbol.
        Match {
            slot: usize,
            header: usize,
            length_sym: usize,
            verbatim: u32,
            aligned: u32,
        },
    }

    /// A verbatim or aligned block's codes and the ops coded with them.
    struct Block {
        main_lens: Vec<u8>,
        length_lens: Vec<u8>,
        aligned_lens: Option<Vec<u8>>,
        ops: Vec<Op>,
        size: usize,
    }

    fn write_block(w: &mut Writer, prev_main: &[u8], prev_length: &[u8], b: &Block) {
        let kind = if b.aligned_lens.is_some() { ALIGNED } else { VERBATIM };
        w.header(kind, b.size);
        if let Some(aligned) = &b.aligned_lens {
            for &l in aligned {
                w.bits(u32::from(l), 3);
            }
        }
        w.lengths(&prev_main[..256], &b.main_lens[..256]);
        w.lengths(&prev_main[256..], &b.main_lens[256..]);
        w.lengths(prev_length, &b.length_lens);
        let main = codewords(&b.main_lens);
        let length = codewords(&b.length_lens);
        let aligned = b.aligned_lens.as_ref().map(|l| codewords(l));
        for op in &b.ops {
            match *op {
                Op::Literal(c) => w.code(&main, usize::from(c)),
                Op::Match { slot, header, length_sym, verbatim, aligned: a } => {
                    w.code(&main, 256 + slot * 8 + header);
                    if header == 7 {
                        w.code(&length, length_sym);
                    }
                    if slot >= 3 {
                        let extra = u32::from(EXTRA_BITS[slot]);
                        match &aligned {
                            Some(codes) if extra >= 3 => {
                                w.bits(verbatim, extra - 3);
                                w.code(codes, a as usize);
                            }
                            _ => w.bits(verbatim, extra),
                        }
                    }
                }
            }
        }
    }

    /// A main code with literals 'a'..='d' and the given match symbols,
    /// lengths chosen to make it complete (there must be 4 of them).
    fn main_lens(matches: &[(usize, usize)]) -> Vec<u8> {
        let mut lens = vec![0u8; MAIN_SYMBOLS];
        for c in b"abcd" {
            lens[usize::from(*c)] = 3;
        }
        assert_eq!(matches.len(), 4);
        for &(slot, header) in matches {
            lens[256 + slot * 8 + header] = 3;
        }
        lens
    }

    /// `start`, then each `(offset, len)` copy, or the literal `len` if
    /// `offset` is 0.
    fn expand(start: &[u8], steps: &[(usize, usize)]) -> Vec<u8> {
        let mut out = start.to_vec();
        for &(offset, len) in steps {
            if offset == 0 {
                out.push(len as u8);
            }
            for _ in 0..if offset == 0 { 0 } else { len } {
                out.push(out[out.len() - offset]);
            }
        }
        out
    }

    /// A length code with symbols 0 and 5, one bit each.
    fn length_lens() -> Vec<u8> {
        let mut lens = vec![0u8; LENGTH_SYMBOLS];
        lens[0] = 1;
        lens[5] = 1;
        lens
    }

    #[test]
    fn uncompressed_blocks() {
        let mut w = Writer::default();
        w.uncompressed([1, 1, 1], b"Hello");
        w.uncompressed([1, 2, 3], b", LZX!");
        let mut out = [0u8; 11];
        decompress(&w.finish(), &mut out).unwrap();
        assert_eq!(&out, b"Hello, LZX!");
    }

    #[test]
    fn verbatim_block_with_recent_offsets() {
        let b = Block {
            main_lens: main_lens(&[(0, 1), (1, 2), (3, 0), (4, 7)]),
            length_lens: length_lens(),
            aligned_lens: None,
            ops: vec![
                Op::Literal(b'a'),
                Op::Literal(b'b'),
                Op::Literal(b'c'),
                Op::Literal(b'd'),
                // Slot 4, extra bit 1: offset 4 + 1 - 2 = 3; length 7 + 5 + 2.
                Op::Match { slot: 4, header: 7, length_sym: 5, verbatim: 1, aligned: 0 },
                // Slot 3: offset 1, length 2. R = [1, 3, 1].
                Op::Match { slot: 3, header: 0, length_sym: 0, verbatim: 0, aligned: 0 },
                Op::Literal(b'a'),
                // R1 (3), length 4. R = [3, 1, 1].
                Op::Match { slot: 1, header: 2, length_sym: 0, verbatim: 0, aligned: 0 },
                // R0 (3), length 3.
                Op::Match { slot: 0, header: 1, length_sym: 0, verbatim: 0, aligned: 0 },
            ],
            size: 4 + 14 + 2 + 1 + 4 + 3,
        };
        let mut w = Writer::default();
        write_block(&mut w, &[0; MAIN_SYMBOLS], &[0; LENGTH_SYMBOLS], &b);
        let mut out = vec![0u8; b.size];
        decompress(&w.finish(), &mut out).unwrap();
        assert_eq!(out, expand(b"abcd", &[(3, 14), (1, 2), (0, b'a' as usize), (3, 4), (3, 3)]));
    }

    #[test]
    fn aligned_block_and_deltas_across_blocks() {
        // Block 1 (verbatim) makes 64 bytes of "abcd..."; block 2 (aligned,
        // other main lengths, coded as changes) copies from far back.
        let first = Block {
            main_lens: main_lens(&[(0, 1), (1, 2), (3, 0), (4, 7)]),
            length_lens: length_lens(),
            aligned_lens: None,
            ops: (0..64).map(|i| Op::Literal(b"abcd"[i % 4])).collect(),
            size: 64,
        };
        let second = Block {
            main_lens: main_lens(&[(6, 2), (8, 0), (10, 7), (2, 1)]),
            length_lens: length_lens(),
            aligned_lens: Some(vec![3; 8]),
            ops: vec![
                // Slot 8 (3 extra bits, all aligned): 16 + 5 - 2 = 19; length 2.
                Op::Match { slot: 8, header: 0, length_sym: 0, verbatim: 0, aligned: 5 },
                // Slot 10 (4 extra: 1 verbatim, 3 aligned): 32 + 8 + 2 - 2 = 40.
                Op::Match { slot: 10, header: 7, length_sym: 0, verbatim: 1, aligned: 2 },
                // Slot 6 (2 extra, verbatim even in an aligned block): 8 + 3 - 2 = 9.
                Op::Match { slot: 6, header: 2, length_sym: 0, verbatim: 3, aligned: 0 },
                // R2 = 19, length 3.
                Op::Match { slot: 2, header: 1, length_sym: 0, verbatim: 0, aligned: 0 },
                Op::Literal(b'd'),
            ],
            size: 2 + 9 + 4 + 3 + 1,
        };
        let mut w = Writer::default();
        write_block(&mut w, &[0; MAIN_SYMBOLS], &[0; LENGTH_SYMBOLS], &first);
        write_block(&mut w, &first.main_lens, &first.length_lens, &second);
        let mut out = vec![0u8; 64 + second.size];
        decompress(&w.finish(), &mut out).unwrap();
        let start: Vec<u8> = (0..64).map(|i| b"abcd"[i % 4]).collect();
        assert_eq!(out, expand(&start, &[(19, 2), (40, 9), (9, 4), (19, 3), (0, b'd' as usize)]));
    }

    #[test]
    fn uncompressed_block_sets_recent_offsets_for_the_next_block() {
        let mut w = Writer::default();
        w.uncompressed([3, 2, 1], b"xyz");
        let b = Block {
            main_lens: main_lens(&[(0, 1), (1, 2), (3, 0), (4, 7)]),
            length_lens: length_lens(),
            aligned_lens: None,
            ops: vec![Op::Match { slot: 0, header: 1, length_sym: 0, verbatim: 0, aligned: 0 }],
            size: 3,
        };
        write_block(&mut w, &[0; MAIN_SYMBOLS], &[0; LENGTH_SYMBOLS], &b);
        let mut out = [0u8; 6];
        decompress(&w.finish(), &mut out).unwrap();
        assert_eq!(&out, b"xyzxyz");
    }

    #[test]
    fn uncompressed_block_on_a_boundary_skips_a_whole_word() {
        // Find a number of literals that leaves the next block's header
        // ending exactly on a 16-bit boundary.
        for n in 1..=16 {
            let b = Block {
                main_lens: main_lens(&[(0, 1), (1, 2), (3, 0), (4, 7)]),
                length_lens: length_lens(),
                aligned_lens: None,
                ops: vec![Op::Literal(b'c'); n],
                size: n,
            };
            let mut w = Writer::default();
            write_block(&mut w, &[0; MAIN_SYMBOLS], &[0; LENGTH_SYMBOLS], &b);
            if (w.total + 20) % 16 != 0 {
                continue;
            }
            w.uncompressed([1, 1, 1], b"!!");
            assert_eq!(w.used, 0);
            let mut out = vec![0u8; n + 2];
            decompress(&w.finish(), &mut out).unwrap();
            assert_eq!(&out[n..], b"!!");
            return;
        }
        panic!("no literal count lands on a boundary");
    }

    #[test]
    fn e8_translation() {
        let mut data = vec![0x90u8; 64];
        data[5] = 0xE8; // absolute 100 at 5: relative 95
        data[6..10].copy_from_slice(&100i32.to_le_bytes());
        data[20] = 0xE8; // absolute -10 at 20: relative 12000000 - 10
        data[21..25].copy_from_slice(&(-10i32).to_le_bytes());
        data[30] = 0xE8; // absolute -31 at 30: out of range, unchanged
        data[31..35].copy_from_slice(&(-31i32).to_le_bytes());
        data[40] = 0xE8; // absolute 12000000: out of range, unchanged
        data[41..45].copy_from_slice(&E8_FILE_SIZE.to_le_bytes());
        data[54] = 0xE8; // at len - 10: never translated
        data[55..59].copy_from_slice(&100i32.to_le_bytes());
        let mut w = Writer::default();
        w.uncompressed([1, 1, 1], &data);
        let mut out = vec![0u8; 64];
        decompress(&w.finish(), &mut out).unwrap();
        let mut expected = data.clone();
        expected[6..10].copy_from_slice(&95i32.to_le_bytes());
        expected[21..25].copy_from_slice(&(E8_FILE_SIZE - 10).to_le_bytes());
        assert_eq!(out, expected);

        // The four bytes after a translated E8 are skipped, even if E8.
        let mut data = vec![0u8; 16];
        data[0] = 0xE8;
        data[1] = 0xE8;
        let mut w = Writer::default();
        w.uncompressed([1, 1, 1], &data);
        let mut out = [0u8; 16];
        decompress(&w.finish(), &mut out).unwrap();
        assert_eq!(out[..5], [0xE8, 0xE8, 0, 0, 0]);

        // Chunks of 10 bytes or less are left alone.
        let mut data = [0u8; 10];
        data[0] = 0xE8;
        data[1] = 5;
        let mut w = Writer::default();
        w.uncompressed([1, 1, 1], &data);
        let mut out = [0u8; 10];
        decompress(&w.finish(), &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn default_block_size() {
        let data: Vec<u8> = (0..32768u32).map(|i| (i % 200) as u8).collect();
        let mut w = Writer::default();
        w.uncompressed([1, 1, 1], &data);
        let mut out = vec![0u8; 32768];
        decompress(&w.finish(), &mut out).unwrap();
        assert_eq!(out, data);
        // One byte more than the window.
        let mut out = vec![0u8; 32769];
        assert_eq!(decompress(&[], &mut out), Err(Corrupt("LZX chunk larger than the 32 KiB window")));
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let mut out = [0u8; 8];
        for kind in [0, 4, 5, 6, 7] {
            let mut w = Writer::default();
            w.header(kind, 8);
            assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt("bad block type")));
        }
        let mut w = Writer::default();
        w.uncompressed([1, 1, 1], b"123456789");
        assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt("block extends past end of output")));
        let mut w = Writer::default();
        w.uncompressed([1, 0, 1], b"12345678");
        assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt("zero match offset in uncompressed block")));
        assert_eq!(decompress(&[], &mut out), Err(TRUNCATED));
        assert_eq!(decompress(&[], &mut []), Ok(()));

        // A match before the start, and one past the end of its block.
        for (ops, size, err) in [
            (
                vec![Op::Match { slot: 3, header: 0, length_sym: 0, verbatim: 0, aligned: 0 }],
                2,
                "match offset before start of chunk",
            ),
            (
                vec![Op::Literal(b'a'), Op::Match { slot: 3, header: 1, length_sym: 0, verbatim: 0, aligned: 0 }],
                3,
                "match extends past end of block",
            ),
        ] {
            let b = Block {
                main_lens: main_lens(&[(0, 1), (1, 2), (3, 0), (3, 1)]),
                length_lens: length_lens(),
                aligned_lens: None,
                ops,
                size,
            };
            let mut w = Writer::default();
            write_block(&mut w, &[0; MAIN_SYMBOLS], &[0; LENGTH_SYMBOLS], &b);
            let mut out = vec![0u8; size];
            assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt(err)));
        }

        // A run of zeros past the end of the 256 literal lengths.
        let mut w = Writer::default();
        w.header(VERBATIM, 8);
        for s in 0..20 {
            w.bits(if s < 12 { 4 } else { 5 }, 4);
        }
        let pre = codewords(&(0..20).map(|s| if s < 12 { 4 } else { 5 }).collect::<Vec<u8>>());
        for _ in 0..5 {
            w.code(&pre, 18);
            w.bits(31, 5); // 51 zeros each: 255 in all
        }
        w.code(&pre, 17);
        w.bits(0, 4); // 4 more: 259
        assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt("code length run overruns the table")));
    }

    #[test]
    fn truncation_is_an_error() {
        let mut w = Writer::default();
        w.uncompressed([1, 1, 1], b"Hello, LZX");
        let input = w.finish();
        let mut out = [0u8; 10];
        for cut in 0..input.len() {
            assert!(decompress(&input[..cut], &mut out).is_err(), "cut at {cut}");
        }
        decompress(&input, &mut out).unwrap();
    }

    /// A small pseudo-random generator for the fuzz loops.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn never_panics_on_mutated_input() {
        let first = Block {
            main_lens: main_lens(&[(0, 1), (1, 2), (3, 0), (4, 7)]),
            length_lens: length_lens(),
            aligned_lens: None,
            ops: (0..64).map(|i| Op::Literal(b"abcd"[i % 4])).collect(),
            size: 64,
        };
        let second = Block {
            main_lens: main_lens(&[(6, 2), (8, 0), (10, 7), (2, 1)]),
            length_lens: length_lens(),
            aligned_lens: Some(vec![3; 8]),
            ops: (0..40)
                .map(|i| Op::Match {
                    slot: 8 + 2 * (i % 2),
                    header: 7 * (i % 2),
                    length_sym: 5,
                    verbatim: 1,
                    aligned: 3,
                })
                .collect(),
            size: 20 * 2 + 20 * 14,
        };
        let mut w = Writer::default();
        write_block(&mut w, &[0; MAIN_SYMBOLS], &[0; LENGTH_SYMBOLS], &first);
        write_block(&mut w, &first.main_lens, &first.length_lens, &second);
        w.uncompressed([7, 8, 9], &[0xE8; 33]);
        let input = w.finish();
        let mut out = vec![0u8; 64 + second.size + 33];
        decompress(&input, &mut out).unwrap();

        let mut state = 0x0fed_cba9_8765_4321u64;
        for round in 0..4000 {
            let mut bad = input.clone();
            for _ in 0..1 + round % 4 {
                let at = (xorshift(&mut state) as usize) % bad.len();
                bad[at] ^= 1 << (xorshift(&mut state) % 8);
            }
            let cut = if round % 5 == 0 { (xorshift(&mut state) as usize) % bad.len() } else { bad.len() };
            let _ = decompress(&bad[..cut], &mut out);
        }
        for _ in 0..3000 {
            let len = (xorshift(&mut state) % 400) as usize;
            let junk: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            let mut out = vec![0u8; (xorshift(&mut state) % 32769) as usize];
            let _ = decompress(&junk, &mut out);
        }
    }
}
