//! Just enough DER (ITU-T X.690) to write and read Authenticode's PKCS#7:
//! definite lengths, single-byte tags, values kept as raw byte slices so
//! that what was signed can be hashed exactly as it was encoded.

use anyhow::{bail, Result};

pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;

/// Context-specific tag `[n]`, constructed.
pub const fn ctx(n: u8) -> u8 {
    0xA0 | n
}

/// Context-specific tag `[n]`, primitive (IMPLICIT over a primitive type).
pub const fn ctx_prim(n: u8) -> u8 {
    0x80 | n
}

/// One tag-length-value, with `contents` as given.
pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let n = contents.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// A constructed value from the concatenation of already-encoded parts.
pub fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// An OBJECT IDENTIFIER from its dotted form (a constant in this crate, so
/// a malformed one is a programming error caught by the unit tests).
pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().expect("OID arc")).collect();
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(OID, &body)
}

/// A DER SET OF: the elements sorted by their encodings (X.690 11.6).
pub fn set_of(tag: u8, mut elements: Vec<Vec<u8>>) -> Vec<u8> {
    elements.sort();
    tlv(tag, &elements.concat())
}

/// One parsed element: its tag, its contents, and its whole encoding.
#[derive(Clone, Copy, Debug)]
pub struct Element<'a> {
    pub tag: u8,
    pub contents: &'a [u8],
    pub raw: &'a [u8],
}

impl<'a> Element<'a> {
    /// The elements inside a constructed value.
    pub fn children(&self) -> Result<Vec<Element<'a>>> {
        let mut r = Reader::new(self.contents);
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(r.read()?);
        }
        Ok(out)
    }

    /// Requires this element to carry `tag`.
    pub fn expect(self, tag: u8, what: &str) -> Result<Element<'a>> {
        if self.tag != tag {
            bail!("{what}: expected DER tag {tag:#04x}, found {:#04x}", self.tag);
        }
        Ok(self)
    }
}

/// Reads consecutive DER elements from a byte slice; never panics on bad input.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next element.
    pub fn read(&mut self) -> Result<Element<'a>> {
        let start = self.pos;
        let d = self.data;
        let Some(&tag) = d.get(start) else { bail!("DER: unexpected end of data at byte {start}") };
        if tag & 0x1f == 0x1f {
            bail!("DER: multi-byte tags are not supported (byte {start})");
        }
        let Some(&first) = d.get(start + 1) else { bail!("DER: truncated length at byte {}", start + 1) };
        let (len, hdr) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                bail!("DER: unsupported length form {first:#04x} at byte {}", start + 1);
            }
            let Some(bytes) = d.get(start + 2..start + 2 + n) else { bail!("DER: truncated length at byte {}", start + 2) };
            (bytes.iter().fold(0usize, |a, &b| (a << 8) | b as usize), 2 + n)
        };
        let end = start.checked_add(hdr).and_then(|x| x.checked_add(len));
        let Some(end) = end.filter(|&e| e <= d.len()) else {
            bail!("DER: element at byte {start} runs past the end of its container")
        };
        self.pos = end;
        Ok(Element { tag, contents: &d[start + hdr..end], raw: &d[start..end] })
    }
}

/// Parses exactly one element that fills `data`.
pub fn parse(data: &[u8]) -> Result<Element<'_>> {
    let mut r = Reader::new(data);
    let e = r.read()?;
    if !r.is_empty() {
        bail!("DER: {} trailing byte(s) after the value", data.len() - e.raw.len());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_encoding_matches_known_bytes() {
        // sha256 2.16.840.1.101.3.4.2.1
        assert_eq!(oid("2.16.840.1.101.3.4.2.1"), [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]);
        // SPC_INDIRECT_DATA 1.3.6.1.4.1.311.2.1.4
        assert_eq!(oid("1.3.6.1.4.1.311.2.1.4"), [0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04]);
    }

    #[test]
    fn long_lengths_round_trip() {
        for n in [0usize, 1, 127, 128, 255, 256, 70000] {
            let v = tlv(OCTET_STRING, &vec![7u8; n]);
            let e = parse(&v).unwrap();
            assert_eq!(e.contents.len(), n);
            assert_eq!(e.raw, &v[..]);
        }
        assert_eq!(&tlv(OCTET_STRING, &[0; 200])[..3], &[0x04, 0x81, 200]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(&[0x30]).is_err());
        assert!(parse(&[0x30, 0x05, 1]).is_err());
        assert!(parse(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_err());
        assert!(parse(&[0x04, 0x00, 0x00]).is_err());
    }
}
