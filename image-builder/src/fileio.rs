//! Reads and writes at a position of a file, on every platform (Unix
//! `pread`/`pwrite`, Windows `ReadFile`/`WriteFile` with an offset).

use std::fs::File;
use std::io::{Error, ErrorKind, Result};

/// Fills `buf` from byte `offset` of `f`; an end of file first is an error.
pub fn read_exact_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
        match read_at(f, buf, offset) {
            Ok(0) => return Err(Error::new(ErrorKind::UnexpectedEof, "end of file")),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at byte `offset` of `f`.
pub fn write_all_at(f: &File, mut buf: &[u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
        match write_at(f, buf, offset) {
            Ok(0) => return Err(Error::new(ErrorKind::WriteZero, "nothing written")),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, offset)
}

#[cfg(unix)]
fn write_at(f: &File, buf: &[u8], offset: u64) -> Result<usize> {
    std::os::unix::fs::FileExt::write_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, offset)
}

#[cfg(windows)]
fn write_at(f: &File, buf: &[u8], offset: u64) -> Result<usize> {
    std::os::windows::fs::FileExt::seek_write(f, buf, offset)
}
