//! XPRESS Huffman ("LZ77+Huffman") decompression, the format of the
//! `WofCompressedData` chunks of WOF/CompactOS files compressed as XPRESS4K,
//! XPRESS8K or XPRESS16K.
//!
//! Written from the published format, not from anyone's code:
//!
//! - [MS-XCA] "Xpress Compression Algorithm", section 2.1 (the LZ77+Huffman
//!   format) and section 2.2.4 (its decompression pseudocode: each 64 KiB
//!   block reads its table where the previous block's bit reader stopped);
//! - Microsoft's answers on the cifs-protocol list (2022) about blocks: a
//!   match may run past the end of its 64 KiB block;
//! - the 32-bit match length escape (a 16-bit length of 0 is followed by a
//!   32-bit one), as Samba's LZ77+Huffman decoder documents it;
//! - that WOF's XPRESS4K/8K/16K chunks are this format: Microsoft's
//!   `WOF_FILE_COMPRESSION_INFO_V1` documentation (XPRESS in 4, 8 or 16 KiB
//!   chunks) and ntfs-3g-system-compression's description of System
//!   Compressed files.
//!
//! The format, as decoded here. The output is produced in blocks of 65536
//! bytes (the last one shorter). Each block starts with 256 bytes holding the
//! 512 Huffman code lengths, 4 bits each, symbol `2i` in the low nibble of byte
//! `i` and symbol `2i + 1` in the high nibble; codes are canonical (shorter
//! first, then by symbol number). Then comes a bit stream of 16-bit
//! little-endian words read most significant bit first. The reader always
//! holds at least 16 bits: it loads two words at the start of a block and one
//! more whenever a read leaves fewer than 16. Symbols 0..=255 are literal
//! bytes. A symbol `256 + m` is a match: `m & 15` is the length minus 3, 15
//! meaning that the length follows as whole bytes taken from the input at the
//! reader's byte position (one byte `b`: length `15 + b + 3`; if `b` is 255, a
//! 16-bit value `v`, or if that is 0 a 32-bit value `v`: length `v + 3`); `m >>
//! 4` is the bit count `k` of the offset, whose value is `2^k` plus the next `k`
//! bits of the stream. The end-of-data symbol (256) needs no special case: the
//! decoder stops as soon as the output is full.
//!
//! A WOF chunk (at most 16 KiB) is a single block. A chunk whose stored size
//! equals its uncompressed size is stored raw; that is for the caller to check
//! before calling [`decompress`].

use super::{huffman, Corrupt};

/// Output bytes decoded with one Huffman table.
const BLOCK_SIZE: usize = 65536;
/// Bytes of packed code lengths at the start of each block.
const TABLE_BYTES: usize = 256;
/// Symbols in the alphabet: 256 literals and 256 match headers.
const NUM_SYMBOLS: usize = 512;
/// Longest codeword the 4-bit lengths allow.
const MAX_LEN: u32 = 15;
/// Shortest match.
const MIN_MATCH: usize = 3;

const TRUNCATED: Corrupt = Corrupt("input truncated");

/// Decompresses one XPRESS Huffman stream (one WOF chunk) into `out`, whose
/// length is the known uncompressed size.
///
/// On `Ok`, every byte of `out` has been written. On `Err`, the input is
/// corrupt or truncated and `out` holds partial data. It never panics, whatever
/// the input, and runs in time linear in `input.len() + out.len()`. A match
/// that starts before the beginning of `out` or runs past its end is an
/// error. Input left over once `out` is full (such as the end-of-data symbol
/// and padding) is ignored. An empty `out` needs no input.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<(), Corrupt> {
    let mut in_pos = 0usize;
    let mut out_pos = 0;
    while out_pos < out.len() {
        let table_end = in_pos.checked_add(TABLE_BYTES).ok_or(TRUNCATED)?;
        let table = input.get(in_pos..table_end).ok_or(TRUNCATED)?;
        let code = read_code(table)?;
        let mut bits = BitReader::new(input, table_end);
        let block_end = out.len().min(out_pos.saturating_add(BLOCK_SIZE));
        out_pos = decode_block(&code, &mut bits, out, out_pos, block_end)?;
        in_pos = bits.pos;
    }
    Ok(())
}

/// Decodes symbols into `out` from `pos` until at least `block_end`; returns
/// where the output stopped (a final match may run past `block_end`).
fn decode_block(
    code: &Code,
    bits: &mut BitReader,
    out: &mut [u8],
    mut pos: usize,
    block_end: usize,
) -> Result<usize, Corrupt> {
    while pos < block_end {
        let sym = read(code, bits)?;
        if sym < 256 {
            out[pos] = sym as u8;
            pos += 1;
            continue;
        }
        let header = sym - 256;
        let len = match_len(u32::from(header & 15), bits)?;
        let offset_bits = u32::from(header >> 4);
        let offset = (1usize << offset_bits) | bits.read_bits(offset_bits)? as usize;
        pos = copy_match(out, pos, offset, len)?;
    }
    Ok(pos)
}

/// The full length of a match whose symbol carries `short` (0..=15).
fn match_len(short: u32, bits: &mut BitReader) -> Result<usize, Corrupt> {
    if short < 15 {
        return Ok(short as usize + MIN_MATCH);
    }
    let byte = bits.read_byte()?;
    if byte < 255 {
        return Ok(15 + usize::from(byte) + MIN_MATCH);
    }
    let mut len = u64::from(bits.read_u16()?);
    if len == 0 {
        len = u64::from(bits.read_u32()?);
    }
    if len < 15 {
        return Err(Corrupt("match length escape below 15"));
    }
    usize::try_from(len + MIN_MATCH as u64).map_err(|_| Corrupt("match extends past end of output"))
}

/// Copies `len` bytes from `offset` bytes back to `out[pos..]`; returns the
/// new position.
fn copy_match(out: &mut [u8], pos: usize, offset: usize, len: usize) -> Result<usize, Corrupt> {
    if offset > pos {
        return Err(Corrupt("match offset before start of chunk"));
    }
    let end = pos.checked_add(len).filter(|&end| end <= out.len());
    let end = end.ok_or(Corrupt("match extends past end of output"))?;
    let src = pos - offset;
    if offset >= len {
        out.copy_within(src..src + len, pos);
    } else {
        // Overlapping: each byte may be one this match just wrote.
        for i in pos..end {
            out[i] = out[i - offset];
        }
    }
    Ok(end)
}

/// The bit stream of one block: 16-bit little-endian words, most significant
/// bit first, with the [MS-XCA] refill rule (at least 16 bits held after every
/// read). Words past the end of the input read as zeros, but consuming any of
/// those bits is an error: a valid stream never needs them.
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
    fn new(input: &'a [u8], pos: usize) -> Self {
        let mut r = BitReader { input, pos, buf: 0, avail: 0, phantom: 0 };
        r.load_word();
        r.load_word();
        r
    }

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
    fn peek(&self, n: u32) -> u32 {
        let shift = self.avail.saturating_sub(n);
        ((self.buf >> shift) & ((1u64 << n) - 1)) as u32
    }

    fn consume(&mut self, n: u32) -> Result<(), Corrupt> {
        if n + self.phantom > self.avail {
            return Err(TRUNCATED);
        }
        self.avail -= n;
        if self.avail < 16 {
            self.load_word();
        }
        Ok(())
    }

    /// The next `n` (at most 15) bits as a number.
    fn read_bits(&mut self, n: u32) -> Result<u32, Corrupt> {
        let value = self.peek(n);
        self.consume(n)?;
        Ok(value)
    }

    /// Takes `N` whole bytes from the input at the byte position.
    fn read_bytes<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        let end = self.pos.checked_add(N).ok_or(TRUNCATED)?;
        let bytes = self.input.get(self.pos..end).ok_or(TRUNCATED)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        self.pos = end;
        Ok(array)
    }

    fn read_byte(&mut self) -> Result<u8, Corrupt> {
        Ok(self.read_bytes::<1>()?[0])
    }

    fn read_u16(&mut self) -> Result<u16, Corrupt> {
        Ok(u16::from_le_bytes(self.read_bytes()?))
    }

    fn read_u32(&mut self) -> Result<u32, Corrupt> {
        Ok(u32::from_le_bytes(self.read_bytes()?))
    }
}

/// The code of one block: 512 symbols, codewords of at most [`MAX_LEN`] bits.
type Code = huffman::Code<NUM_SYMBOLS, { MAX_LEN as usize }>;

/// Builds a block's code from its 256 bytes of packed 4-bit lengths (symbol
/// `2i` in the low nibble of byte `i`). An empty code cannot be what a
/// compressor wrote for a block that has output.
fn read_code(table: &[u8]) -> Result<Code, Corrupt> {
    let mut lens = [0u8; NUM_SYMBOLS];
    for (pair, &byte) in lens.chunks_exact_mut(2).zip(table) {
        pair[0] = byte & 15;
        pair[1] = byte >> 4;
    }
    let code = Code::new(&lens)?;
    if code.is_empty() {
        return Err(Corrupt("bad Huffman table: no codewords"));
    }
    Ok(code)
}

/// Reads one symbol of `code` from the stream.
fn read(code: &Code, bits: &mut BitReader) -> Result<u16, Corrupt> {
    let (sym, len) = code.decode(bits.peek(MAX_LEN));
    bits.consume(len)?;
    Ok(sym)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Writes bits the way the decoder reads them: 16-bit little-endian
    /// words, most significant bit first, with word slots reserved ahead of
    /// the bytes written between them (as the [MS-XCA] compressor does).
    struct Writer {
        out: Vec<u8>,
        /// Where the current word goes, and the word after it.
        slots: [usize; 2],
        word: u32,
        used: u32,
    }

    impl Writer {
        fn new(lens: &[u8; NUM_SYMBOLS]) -> Self {
            let mut out = Vec::new();
            for pair in lens.chunks(2) {
                out.push(pair[0] | (pair[1] << 4));
            }
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            Writer { out, slots: [at, at + 2], word: 0, used: 0 }
        }

        /// Appends bits. A full word is written out only when the next bit
        /// arrives, as in [MS-XCA]'s WriteBits.
        fn bits(&mut self, value: u32, n: u32) {
            for i in (0..n).rev() {
                if self.used == 16 {
                    self.flush_word();
                }
                self.word = (self.word << 1) | ((value >> i) & 1);
                self.used += 1;
            }
        }

        fn flush_word(&mut self) {
            let at = self.slots[0];
            self.out[at..at + 2].copy_from_slice(&(self.word as u16).to_le_bytes());
            let next = self.out.len();
            self.out.extend_from_slice(&[0, 0]);
            self.slots = [self.slots[1], next];
            self.word = 0;
            self.used = 0;
        }

        fn bytes(&mut self, b: &[u8]) {
            self.out.extend_from_slice(b);
        }

        fn finish(mut self) -> Vec<u8> {
            if self.used > 0 {
                self.word <<= 16 - self.used;
                self.flush_word();
            }
            self.out
        }
    }

    /// Lengths giving all 256 literals 8-bit codes: codeword == byte value.
    fn literal_lens() -> [u8; NUM_SYMBOLS] {
        let mut lens = [0u8; NUM_SYMBOLS];
        lens[..256].fill(8);
        lens
    }

    /// A small complete code: literal 'a' (codeword 0), the end symbol 256
    /// (10) and the match symbol `256 + m` (11), for `m` of 1..=255.
    fn small_lens(m: usize) -> [u8; NUM_SYMBOLS] {
        let mut lens = [0u8; NUM_SYMBOLS];
        lens[usize::from(b'a')] = 1;
        lens[256] = 2;
        lens[256 + m] = 2;
        lens
    }

    #[test]
    fn literals_only() {
        let data = b"Hello, WOF!";
        let mut w = Writer::new(&literal_lens());
        for &b in data {
            w.bits(u32::from(b), 8);
        }
        let input = w.finish();
        let mut out = [0u8; 11];
        decompress(&input, &mut out).unwrap();
        assert_eq!(&out, data);
    }

    #[test]
    fn short_match_overlapping() {
        // 'a', then a match of length 3 + 4 = 7 at offset 1 (0 offset bits).
        let m = 4;
        let mut w = Writer::new(&small_lens(m));
        w.bits(0, 1);
        w.bits(0b11, 2);
        let input = w.finish();
        let mut out = [0u8; 8];
        decompress(&input, &mut out).unwrap();
        assert_eq!(&out, b"aaaaaaaa");
    }

    #[test]
    fn long_match_escapes() {
        // Length byte 200: 15 + 200 + 3 = 218 bytes.
        let m = 15;
        let mut w = Writer::new(&small_lens(m));
        w.bits(0, 1);
        w.bits(0b11, 2);
        w.bytes(&[200]);
        let mut out = vec![0u8; 219];
        decompress(&w.finish(), &mut out).unwrap();
        assert!(out.iter().all(|&b| b == b'a'));

        // 16-bit escape: 255, then 1000: 1003 bytes.
        let mut w = Writer::new(&small_lens(m));
        w.bits(0, 1);
        w.bits(0b11, 2);
        w.bytes(&[255, 0xE8, 0x03]);
        let mut out = vec![0u8; 1004];
        decompress(&w.finish(), &mut out).unwrap();
        assert!(out.iter().all(|&b| b == b'a'));

        // 32-bit escape: 255, 0, then 70000: 70003 bytes, past a block end.
        let mut w = Writer::new(&small_lens(m));
        w.bits(0, 1);
        w.bits(0b11, 2);
        w.bytes(&[255, 0, 0]);
        w.bytes(&70000u32.to_le_bytes());
        let mut out = vec![0u8; 70004];
        decompress(&w.finish(), &mut out).unwrap();
        assert!(out.iter().all(|&b| b == b'a'));

        // A 16-bit escape below 15 is invalid.
        let mut w = Writer::new(&small_lens(m));
        w.bits(0, 1);
        w.bits(0b11, 2);
        w.bytes(&[255, 14, 0]);
        let mut out = [0u8; 18];
        assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt("match length escape below 15")));
    }

    #[test]
    fn offset_bits() {
        // "abcd" as literals, then a match with 2 offset bits: offset 4 + 0.
        let mut lens2 = [0u8; NUM_SYMBOLS];
        // Literals a..d get 3 bits, match (offset bits 2, length 3+1) and
        // symbol 256 get 2 bits: 2 * 1/4 + 4 * 1/8 = 1.
        for b in b"abcd" {
            lens2[usize::from(*b)] = 3;
        }
        lens2[256] = 2;
        lens2[256 + (2 << 4) + 1] = 2;
        // Canonical: 256 = 00, match = 01, a = 100, b = 101, c = 110, d = 111.
        let mut w = Writer::new(&lens2);
        for code in [0b100, 0b101, 0b110, 0b111] {
            w.bits(code, 3);
        }
        w.bits(0b01, 2);
        w.bits(0b00, 2);
        let mut out = [0u8; 8];
        decompress(&w.finish(), &mut out).unwrap();
        assert_eq!(&out, b"abcdabcd");
    }

    #[test]
    fn bad_matches_are_errors() {
        // A match at position 0.
        let mut w = Writer::new(&small_lens(1));
        w.bits(0b11, 2);
        let mut out = [0u8; 4];
        assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt("match offset before start of chunk")));
        // A match running past the end of the output.
        let mut w = Writer::new(&small_lens(4));
        w.bits(0, 1);
        w.bits(0b11, 2);
        let mut out = [0u8; 5];
        assert_eq!(decompress(&w.finish(), &mut out), Err(Corrupt("match extends past end of output")));
    }

    #[test]
    fn bad_tables_are_errors() {
        let mut out = [0u8; 4];
        let input = [0u8; 300];
        assert_eq!(decompress(&input, &mut out), Err(Corrupt("bad Huffman table: no codewords")));
        let mut input = [0u8; 300];
        input[0] = 0x11; // two symbols of length 1...
        input[1] = 0x01; // ...and a third: over-subscribed.
        assert_eq!(decompress(&input, &mut out), Err(Corrupt("bad Huffman table: over-subscribed code")));
        let mut input = [0u8; 300];
        input[0] = 0x01; // a single symbol of length 1: incomplete.
        assert_eq!(decompress(&input, &mut out), Err(Corrupt("bad Huffman table: incomplete code")));
        assert_eq!(decompress(&[0u8; 100], &mut out), Err(TRUNCATED));
        assert_eq!(decompress(&[], &mut []), Ok(()));
    }

    #[test]
    fn long_codewords_use_the_slow_path() {
        // 256 literals, lengths 1, 2, ..., 14, 15, 15 for the first 16 and
        // the rest unused... (Kraft: 1/2 + ... + 1/2^15 + 1/2^15 = 1).
        let mut lens = [0u8; NUM_SYMBOLS];
        for (i, len) in lens.iter_mut().take(15).enumerate() {
            *len = i as u8 + 1;
        }
        lens[15] = 15;
        let mut w = Writer::new(&lens);
        // Symbol s < 15 has codeword 1...10 (s ones then a zero); 14 and 15
        // have fifteen bits: 14 ones then 0 or 1.
        let data: Vec<u8> = (0..16).chain((0..16).rev()).collect();
        for &s in &data {
            let s = u32::from(s);
            if s < 15 {
                w.bits(((1 << s) - 1) << 1, s + 1);
            } else {
                w.bits((1 << 15) - 1, 15);
            }
        }
        let input = w.finish();
        let mut out = vec![0u8; data.len()];
        decompress(&input, &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn second_block_starts_after_the_readers_words() {
        // 65536 + 5 literals: block 1 uses 32768 words, and the reader holds
        // one more word (padding) when it stops; block 2 follows that.
        let data: Vec<u8> = (0..65541u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut input = Vec::new();
        for block in data.chunks(BLOCK_SIZE) {
            let mut w = Writer::new(&literal_lens());
            for &b in block {
                w.bits(u32::from(b), 8);
            }
            let mut bytes = w.finish();
            // The writer ends with two reserved (zero) word slots: the
            // reader's look-ahead takes the first, and the next block's
            // table starts where the second would be.
            bytes.truncate(bytes.len() - 2);
            input.extend_from_slice(&bytes);
        }
        let mut out = vec![0u8; data.len()];
        decompress(&input, &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn truncation_is_an_error() {
        let data = b"Hello, truncated WOF chunk!";
        let mut w = Writer::new(&literal_lens());
        for &b in data {
            w.bits(u32::from(b), 8);
        }
        let input = w.finish();
        let mut out = [0u8; 27];
        // Every bit is needed up to the last literal's word.
        let needed = 256 + 28;
        for cut in 0..needed {
            assert!(decompress(&input[..cut], &mut out).is_err(), "cut at {cut}");
        }
        decompress(&input[..needed], &mut out).unwrap();
        assert_eq!(&out, data);
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
        let mut w = Writer::new(&small_lens(0x3f));
        let mut expected = Vec::new();
        for i in 0..200u32 {
            w.bits(0, 1);
            expected.push(b'a');
            if i % 3 == 0 && i >= 9 {
                w.bits(0b11, 2);
                w.bytes(&[(i % 7) as u8 * 3]);
                w.bits(0, 3);
                expected.extend(core::iter::repeat_n(b'a', 15 + (i % 7) as usize * 3 + 3));
            }
        }
        let input = w.finish();
        let mut out = vec![0u8; expected.len()];
        decompress(&input, &mut out).unwrap();
        assert_eq!(out, expected);

        let mut state = 0x1234_5678_9abc_def0u64;
        for round in 0..4000 {
            let mut bad = input.clone();
            for _ in 0..1 + round % 4 {
                let at = (xorshift(&mut state) as usize) % bad.len();
                bad[at] ^= 1 << (xorshift(&mut state) % 8);
            }
            let cut = if round % 5 == 0 { (xorshift(&mut state) as usize) % bad.len() } else { bad.len() };
            let _ = decompress(&bad[..cut], &mut out);
        }
        for _ in 0..2000 {
            let len = (xorshift(&mut state) % 600) as usize;
            let mut junk: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            // Give some of the junk a valid table so decoding gets further.
            if len >= 256 && xorshift(&mut state).is_multiple_of(2) {
                let lens = literal_lens();
                for (i, pair) in lens.chunks(2).enumerate() {
                    junk[i] = pair[0] | (pair[1] << 4);
                }
                junk[(xorshift(&mut state) % 256) as usize] = 0x88;
                if xorshift(&mut state).is_multiple_of(2) {
                    junk[128..256].fill(0x5a);
                }
            }
            let mut out = vec![0u8; (xorshift(&mut state) % 70000) as usize];
            let _ = decompress(&junk, &mut out);
        }
    }
}
