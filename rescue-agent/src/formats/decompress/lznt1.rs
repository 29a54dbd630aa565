//! LZNT1, the compression of NTFS compressed files ([MS-XCA] section 2.5).
//!
//! A compression unit (16 clusters) holds a sequence of chunks, each
//! decompressing to at most 4096 bytes. A chunk starts with a 16-bit header:
//! bits 0–11 are its stored length minus 3 (header included), bit 15 says
//! whether it is compressed, and a zero header ends the unit. A compressed
//! chunk is a series of flag bytes, each governing eight tokens: a clear bit
//! is a literal byte, a set bit a 16-bit back reference whose split between
//! offset and length bits depends on how far into the 4096-byte chunk the
//! output is. As in Windows and ntfs-3g, a chunk that decompresses to fewer
//! than 4096 bytes is followed by zeros up to 4096, and everything after
//! the last chunk reads as zeros.

use super::Corrupt;

/// Bytes one chunk decompresses to (at most).
const CHUNK: usize = 4096;

/// Decompresses one compression unit `input` into `out`, filling all of it
/// (zeros after the last chunk). Errors when a chunk header or token lies
/// beyond `input`, a back reference reaches before the chunk start, or the
/// data would not fit `out`. Never panics, never allocates.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<(), Corrupt> {
    let mut i = 0usize;
    let mut o = 0usize;
    while o < out.len() {
        let Some(h) = input.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]])) else { break };
        if h == 0 {
            break;
        }
        let stored = (h & 0x0FFF) as usize + 1; // bytes after the header
        let body = input.get(i + 2..i + 2 + stored).ok_or(Corrupt("LZNT1 chunk runs past the compressed data"))?;
        let room = (out.len() - o).min(CHUNK);
        let chunk = &mut out[o..o + room];
        let n = if h & 0x8000 == 0 {
            // Stored chunk: the bytes as they are.
            if stored > room {
                return Err(Corrupt("LZNT1 stored chunk larger than its output"));
            }
            chunk[..stored].copy_from_slice(body);
            stored
        } else {
            chunk_decompress(body, chunk)?
        };
        chunk[n..].fill(0);
        o += room;
        i += 2 + stored;
    }
    out[o..].fill(0);
    Ok(())
}

/// Decompresses one compressed chunk body into `out` (at most 4096 bytes);
/// returns how many bytes it produced.
fn chunk_decompress(body: &[u8], out: &mut [u8]) -> Result<usize, Corrupt> {
    let mut i = 0usize;
    let mut o = 0usize;
    while i < body.len() {
        let flags = body[i];
        i += 1;
        for bit in 0..8 {
            if i >= body.len() {
                break;
            }
            if flags >> bit & 1 == 0 {
                *out.get_mut(o).ok_or(Corrupt("LZNT1 chunk decompresses to more than 4096 bytes"))? = body[i];
                i += 1;
                o += 1;
                continue;
            }
            let t = body.get(i..i + 2).ok_or(Corrupt("LZNT1 back reference cut short"))?;
            let token = u16::from_le_bytes([t[0], t[1]]) as usize;
            i += 2;
            if o == 0 {
                return Err(Corrupt("LZNT1 back reference before any output"));
            }
            // The offset field grows with the position: 4 bits up to 16 bytes
            // in, one more bit each time the position doubles.
            let mut len_bits = 12u32;
            let mut p = o - 1;
            while p >= 0x10 {
                len_bits -= 1;
                p >>= 1;
            }
            let dist = (token >> len_bits) + 1;
            let len = (token & ((1 << len_bits) - 1)) + 3;
            if dist > o {
                return Err(Corrupt("LZNT1 back reference before the chunk start"));
            }
            if o + len > out.len() {
                return Err(Corrupt("LZNT1 chunk decompresses to more than 4096 bytes"));
            }
            // Byte by byte: a reference may overlap its own output (runs).
            for k in o..o + len {
                out[k] = out[k - dist];
            }
            o += len;
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A compressed chunk: header with `body`'s length and the compressed bit.
    fn chunk(body: &[u8], compressed: bool) -> Vec<u8> {
        let h = (body.len() - 1) as u16 | if compressed { 0xB000 } else { 0x3000 };
        let mut v = h.to_le_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn literals_and_an_overlapping_run() {
        // "abc" then a reference 3 back, 9 long: "abcabcabcabc".
        let token: u16 = ((3 - 1) << 12) | (9 - 3);
        let mut body = vec![0b0000_1000, b'a', b'b', b'c'];
        body.extend_from_slice(&token.to_le_bytes());
        let mut out = [0xEEu8; 8192];
        decompress(&chunk(&body, true), &mut out).unwrap();
        assert_eq!(&out[..12], b"abcabcabcabc");
        assert!(out[12..].iter().all(|&b| b == 0), "short chunk and end of unit read as zeros");
    }

    #[test]
    fn stored_chunks_follow_each_other() {
        let a = vec![7u8; 4096];
        let mut input = chunk(&a, false);
        input.extend(chunk(b"xyz", false));
        let mut out = [0u8; 8192];
        decompress(&input, &mut out).unwrap();
        assert!(out[..4096].iter().all(|&b| b == 7));
        assert_eq!(&out[4096..4099], b"xyz");
    }

    #[test]
    fn reference_before_the_start_is_corrupt() {
        let token: u16 = (4 - 1) << 12; // 4 back after 1 byte
        let mut body = vec![0b10, b'a'];
        body.extend_from_slice(&token.to_le_bytes());
        assert!(decompress(&chunk(&body, true), &mut [0u8; 4096]).is_err());
    }

    #[test]
    fn truncated_chunk_is_corrupt() {
        let c = chunk(b"abcdef", true);
        assert!(decompress(&c[..5], &mut [0u8; 4096]).is_err());
    }

    #[test]
    fn never_panics_on_noise() {
        let mut seed = 0x1234_5678u32;
        for len in 0..600 {
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let mut out = [0u8; 65536];
            let _ = decompress(&input, &mut out);
            let _ = decompress(&input, &mut out[..100]);
        }
    }
}
