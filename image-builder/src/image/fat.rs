//! FAT file systems for the stick's boot partition, built with `fatfs`.
//!
//! `fatfs` 0.3.6 writes a new folder's `..` entry before `.` (upstream issue
//! rafalh/rust-fatfs#117); [`fix_dot_entries`] puts them back in the order the
//! FAT specification and `fsck.fat` require.

use super::stick::StickFiles;
use anyhow::{bail, Context, Result};
use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};
use rescue_engine::util::time::Civil;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};

/// Which FAT variant to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// FAT32, as UEFI requires for an EFI System Partition on a hard disk or stick.
    Fat32,
    /// Whatever fits the size (FAT12/16 for the small El Torito image of an ISO).
    Auto,
}

/// The fewest clusters a FAT32 volume may have (below this, readers take it for FAT16).
const FAT32_MIN_CLUSTERS: u64 = 65_525;

/// The one time every entry of an image carries, so that the same inputs
/// give the same bytes (fatfs would otherwise stamp the wall clock).
#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// `stamp` as a FAT date and time (FAT counts years 1980 to 2107).
fn fat_time(stamp: &Civil) -> fatfs::DateTime {
    let year = stamp.year.clamp(1980, 2107) as u16;
    fatfs::DateTime {
        date: fatfs::Date { year, month: stamp.month as u16, day: stamp.day as u16 },
        time: fatfs::Time { hour: stamp.hour as u16, min: stamp.minute as u16, sec: stamp.second as u16, millis: 0 },
    }
}

/// Builds a FAT volume of `size` bytes holding `files`, in memory. Every
/// file and folder is dated `stamp`: the result depends on its inputs only.
pub fn build(files: &StickFiles, size: u64, variant: Variant, volume_id: u32, stamp: &Civil) -> Result<Vec<u8>> {
    let mut opts = FormatVolumeOptions::new().volume_label(*b"RESCUE     ").volume_id(volume_id);
    if variant == Variant::Fat32 {
        // Largest cluster that still leaves a valid FAT32 cluster count (with margin for the FATs).
        let cluster = [4096u64, 2048, 1024, 512]
            .into_iter()
            .find(|c| size / c >= FAT32_MIN_CLUSTERS + FAT32_MIN_CLUSTERS / 32)
            .with_context(|| format!("{} MiB is too small for FAT32; use at least 34 MiB", size >> 20))?;
        opts = opts.fat_type(FatType::Fat32).bytes_per_cluster(cluster as u32);
    }
    let mut img = Cursor::new(vec![0u8; size as usize]);
    fatfs::format_volume(&mut img, opts).context("formatting the FAT file system")?;
    {
        // fatfs wants a provider that lives forever; one small leak per image built.
        let time: &'static FixedTime = Box::leak(Box::new(FixedTime(fat_time(stamp))));
        let fs = FileSystem::new(&mut img, FsOptions::new().time_provider(time))
            .context("opening the new FAT file system")?;
        for d in files.dirs() {
            fs.root_dir().create_dir(&d).with_context(|| format!("creating folder {d}"))?;
        }
        for (path, bytes) in files.files() {
            let mut f = fs.root_dir().create_file(path).with_context(|| format!("creating {path}"))?;
            f.truncate()?;
            f.write_all(bytes).with_context(|| match variant {
                Variant::Fat32 => format!("writing {path} ({} KiB): the partition is too small; raise --size", bytes.len() >> 10),
                Variant::Auto => format!(
                    "writing {path} ({} KiB): the files do not fit an ISO's boot image (32 MiB at most); build a USB image instead",
                    bytes.len() >> 10
                ),
            })?;
        }
        fs.unmount().context("closing the FAT file system")?;
    }
    let mut img = img.into_inner();
    fix_dot_entries(&mut img, files)?;
    if variant == Variant::Fat32 {
        Geometry::read(&img)?.set_free_count(&mut img);
    }
    Ok(img)
}

/// Repairs the `.` and `..` entries `fatfs` writes in every new folder: it
/// precedes each with a long-name entry (so `.` is not in the first slot) and
/// points a top-level folder's `..` at the FAT32 root cluster instead of 0.
fn fix_dot_entries(img: &mut [u8], files: &StickFiles) -> Result<()> {
    let geo = Geometry::read(img)?;
    for d in files.dirs() {
        let at = geo.cluster_offset(geo.first_cluster_of(img, &d)?);
        let slot = |i: usize| at + 32 * i;
        let is_lfn = |img: &[u8], i: usize| img[slot(i) + 11] == 0x0F;
        if !(is_lfn(img, 0)
            && &img[slot(1)..slot(1) + 11] == b".          "
            && is_lfn(img, 2)
            && &img[slot(3)..slot(3) + 11] == b"..         ")
        {
            bail!("unexpected layout of folder {d} written by fatfs");
        }
        img.copy_within(slot(1)..slot(2), slot(0));
        img.copy_within(slot(3)..slot(4), slot(1));
        if !d.contains('/') {
            // `..` of a top-level folder is cluster 0 (the root), per the FAT specification.
            img[slot(1) + 20..slot(1) + 22].fill(0);
            img[slot(1) + 26..slot(1) + 28].fill(0);
        }
        img[slot(2)..slot(4)].fill(0);
        img[slot(2)] = 0xE5; // deleted
        img[slot(3)] = 0xE5;
    }
    Ok(())
}

/// Just enough of a FAT boot sector to follow folders by first cluster.
struct Geometry {
    bytes_per_sector: usize,
    reserved: usize,
    fat_size: usize,
    total_sectors: usize,
    sectors_per_cluster: usize,
    first_data_sector: usize,
    root_dir_sector: usize,
    root_entries: usize,
    root_cluster: u32,
    fat32: bool,
}

impl Geometry {
    fn read(img: &[u8]) -> Result<Geometry> {
        let u16_at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]) as usize;
        let bps = u16_at(11);
        let spc = img[13] as usize;
        let reserved = u16_at(14);
        let fats = img[16] as usize;
        let root_entries = u16_at(17);
        let fat_size = match u16_at(22) {
            0 => u32::from_le_bytes(img[36..40].try_into()?) as usize,
            n => n,
        };
        let root_dir_sectors = (root_entries * 32).div_ceil(bps);
        let root_dir_sector = reserved + fats * fat_size;
        let total_sectors = match u16_at(19) {
            0 => u32::from_le_bytes(img[32..36].try_into()?) as usize,
            n => n,
        };
        Ok(Geometry {
            bytes_per_sector: bps,
            reserved,
            fat_size,
            total_sectors,
            sectors_per_cluster: spc,
            first_data_sector: root_dir_sector + root_dir_sectors,
            root_dir_sector,
            root_entries,
            root_cluster: u32::from_le_bytes(img[44..48].try_into()?),
            fat32: root_entries == 0,
        })
    }

    /// Records the free-cluster count and next free cluster in the FAT32
    /// FSInfo sector (fatfs leaves them "unknown", which makes every reader
    /// scan the whole FAT).
    fn set_free_count(&self, img: &mut [u8]) {
        let clusters = (self.total_sectors - self.first_data_sector) / self.sectors_per_cluster;
        let fat = &img[self.reserved * self.bytes_per_sector..][..self.fat_size * self.bytes_per_sector];
        let entry = |c: usize| u32::from_le_bytes(fat[4 * c..4 * c + 4].try_into().unwrap()) & 0x0FFF_FFFF;
        let free: Vec<usize> = (2..clusters + 2).filter(|&c| entry(c) == 0).collect();
        let info = u16::from_le_bytes([img[48], img[49]]) as usize * self.bytes_per_sector;
        if img[info..info + 4] == 0x4161_5252u32.to_le_bytes() {
            img[info + 488..info + 492].copy_from_slice(&(free.len() as u32).to_le_bytes());
            img[info + 492..info + 496].copy_from_slice(&(free.first().copied().unwrap_or(2) as u32).to_le_bytes());
        }
    }

    fn cluster_offset(&self, cluster: u32) -> usize {
        (self.first_data_sector + (cluster as usize - 2) * self.sectors_per_cluster) * self.bytes_per_sector
    }

    /// The clusters of the chain that starts at `first`, in order (at most
    /// as many as the volume has).
    fn chain(&self, img: &[u8], first: u32) -> Result<Vec<u32>> {
        let clusters = (self.total_sectors - self.first_data_sector) / self.sectors_per_cluster;
        let fat = self.reserved * self.bytes_per_sector;
        let mut out = vec![first];
        loop {
            let c = *out.last().unwrap_or(&first) as usize;
            // (entry, first end-of-chain value) for FAT32, FAT12 and FAT16.
            let (next, end) = if self.fat32 {
                (u32::from_le_bytes(img[fat + 4 * c..fat + 4 * c + 4].try_into()?) & 0x0FFF_FFFF, 0x0FFF_FFF8)
            } else if clusters < 4085 {
                let v = u16::from_le_bytes([img[fat + c * 3 / 2], img[fat + c * 3 / 2 + 1]]);
                (u32::from(if c.is_multiple_of(2) { v & 0x0FFF } else { v >> 4 }), 0xFF8)
            } else {
                (u32::from(u16::from_le_bytes([img[fat + 2 * c], img[fat + 2 * c + 1]])), 0xFFF8)
            };
            if next >= end {
                return Ok(out);
            }
            if next < 2 || next as usize >= clusters + 2 || out.len() > clusters {
                bail!("the new FAT image's cluster chain from {first} is broken");
            }
            out.push(next);
        }
    }

    /// The entries of a folder: the root (`None`) or the one at `cluster`, every cluster of it.
    fn folder_bytes(&self, img: &[u8], dir: Option<u32>) -> Result<Vec<u8>> {
        let per = self.sectors_per_cluster * self.bytes_per_sector;
        if let (None, false) = (dir, self.fat32) {
            let at = self.root_dir_sector * self.bytes_per_sector;
            return Ok(img[at..at + self.root_entries * 32].to_vec());
        }
        let first = dir.unwrap_or(self.root_cluster);
        let chain = self.chain(img, first)?;
        Ok(chain.iter().flat_map(|&c| img[self.cluster_offset(c)..self.cluster_offset(c) + per].to_vec()).collect())
    }

    /// First cluster of folder `path`, each component matched by its long
    /// name (case-insensitive) or, without one, its 8.3 name.
    fn first_cluster_of(&self, img: &[u8], path: &str) -> Result<u32> {
        let mut dir: Option<u32> = None; // None = root
        for name in path.split('/') {
            let entries = self.folder_bytes(img, dir)?;
            let mut long: Vec<(u8, Vec<u16>)> = Vec::new();
            let mut found = None;
            for e in entries.chunks_exact(32) {
                if e[0] == 0 {
                    break;
                }
                if e[0] == 0xE5 {
                    long.clear();
                    continue;
                }
                if e[11] == 0x0F {
                    let units = [&e[1..11], &e[14..26], &e[28..32]].concat();
                    long.push((e[0] & 0x3F, units.chunks_exact(2).map(|u| u16::from_le_bytes([u[0], u[1]])).collect()));
                    continue;
                }
                long.sort_by_key(|l| l.0);
                let units: Vec<u16> = long.drain(..).flat_map(|l| l.1).take_while(|&u| u != 0).collect();
                let lfn = String::from_utf16_lossy(&units);
                let same = if units.is_empty() { e[..11] == short_name(name) } else { lfn.eq_ignore_ascii_case(name) };
                if same && e[11] & 0x10 != 0 {
                    let hi = u16::from_le_bytes([e[20], e[21]]) as u32;
                    let lo = u16::from_le_bytes([e[26], e[27]]) as u32;
                    found = Some(hi << 16 | lo);
                    break;
                }
            }
            dir = Some(found.with_context(|| format!("folder {path} not found in the new FAT image"))?);
        }
        dir.context("empty folder path")
    }
}

/// The 8.3 short name `fatfs` gives a name that already fits 8.3.
fn short_name(name: &str) -> [u8; 11] {
    let mut out = [b' '; 11];
    let (base, ext) = name.split_once('.').unwrap_or((name, ""));
    for (o, b) in out[..8].iter_mut().zip(base.bytes()) {
        *o = b.to_ascii_uppercase();
    }
    for (o, b) in out[8..].iter_mut().zip(ext.bytes()) {
        *o = b.to_ascii_uppercase();
    }
    out
}

/// A file found on a FAT volume.
#[derive(Debug)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub is_dir: bool,
}

/// Opens the FAT volume in `dev` (any seekable stream over the partition) read-only.
pub fn open<T: Read + Write + Seek>(dev: T) -> Result<FileSystem<T>> {
    FileSystem::new(dev, FsOptions::new()).context("the partition does not hold a readable FAT file system")
}

/// Most entries [`walk`] lists before it calls a volume damaged.
const MAX_ENTRIES: usize = 100_000;
/// Longest path [`walk`] follows.
const MAX_PATH: usize = 1024;
/// Deepest folder [`walk`] enters (a stick's deepest backup is about 12 levels).
const MAX_DEPTH: usize = 48;

/// Lists every file and folder, depth first, with `/` paths. Bounded: a
/// looping folder is an error, not an endless walk.
pub fn walk<T: Read + Write + Seek>(fs: &FileSystem<T>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), fs.root_dir(), 0usize)];
    while let Some((prefix, dir, depth)) = stack.pop() {
        for e in dir.iter() {
            let e = e.context("reading a FAT folder")?;
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            // A damaged (or crafted) volume can loop a folder's cluster chain:
            // every entry counts, and paths cannot grow without bound.
            if out.len() >= MAX_ENTRIES || path.len() > MAX_PATH {
                bail!("more than {MAX_ENTRIES} entries or a path deeper than {MAX_PATH} bytes on the FAT volume: is it damaged?");
            }
            out.push(Entry { path: path.clone(), size: e.len(), is_dir: e.is_dir() });
            if e.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    bail!("folders nested deeper than {MAX_DEPTH} levels on the FAT volume: is it damaged?");
                }
                stack.push((path, e.to_dir(), depth + 1));
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Reads a whole file from a FAT volume; a file larger than `cap` bytes is
/// an error (sizes on a stick are data, not something to allocate blindly).
pub fn read_file<T: Read + Write + Seek>(fs: &FileSystem<T>, path: &str, cap: u64) -> Result<Vec<u8>> {
    let f = fs.root_dir().open_file(path).with_context(|| format!("{path} not found"))?;
    let mut v = Vec::new();
    f.take(cap + 1).read_to_end(&mut v).with_context(|| format!("reading {path}"))?;
    if v.len() as u64 > cap {
        bail!("{path} is larger than {cap} bytes: not a file rescue wrote");
    }
    Ok(v)
}

/// The SHA-256 of a file on a FAT volume, read in chunks (any size).
pub fn sha256<T: Read + Write + Seek>(fs: &FileSystem<T>, path: &str) -> Result<[u8; 32]> {
    use sha2::Digest;
    let mut f = fs.root_dir().open_file(path).with_context(|| format!("{path} not found"))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {path}"))?;
    Ok(h.finalize().into())
}

/// A read-only window `start..start+len` of a file, as a stream `fatfs` can open.
pub struct Window<'a> {
    file: &'a std::fs::File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Window<'a> {
    pub fn new(file: &'a std::fs::File, start: u64, len: u64) -> Self {
        Window { file, start, len, pos: 0 }
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        crate::fileio::read_exact_at(self.file, &mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start"));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root folder whose cluster chain loops back to itself (a crafted
    /// stick) makes the walk fail after a bounded number of entries.
    #[test]
    fn looping_folder_is_an_error_not_an_endless_walk() {
        let mut files = StickFiles::default();
        for i in 0..20 {
            files.file(&format!("f{i}.txt"), vec![b'x'; 10]);
        }
        let stamp = rescue_engine::util::time::civil_from_unix(0);
        let mut img = build(&files, 40 << 20, Variant::Fat32, 1, &stamp).unwrap();
        assert_eq!(walk(&open(Cursor::new(img.clone())).unwrap()).unwrap().len(), 20);
        let geo = Geometry::read(&img).unwrap();
        let entry = geo.reserved * geo.bytes_per_sector + 4 * geo.root_cluster as usize;
        img[entry..entry + 4].copy_from_slice(&geo.root_cluster.to_le_bytes());
        let err = walk(&open(Cursor::new(img)).unwrap()).unwrap_err().to_string();
        assert!(err.contains("is it damaged"), "{err}");
    }

    /// Every single-byte change to the boot sector, the FAT and the folders
    /// of a real stick image ends in a bounded listing or an error (never an
    /// endless walk; how fast is for the benchmark, not this test).
    #[test]
    fn single_byte_corruptions_are_bounded() {
        let mut files = StickFiles::new(&[(crate::image::stick::AGENT_PATH, b"MZ agent")], "name = \"x\"\n");
        files.file("rescue/reports/pc-1.json", vec![b'{'; 300]);
        files.file("rescue/backups/0011/run/Windows/x.sys", vec![1; 5000]);
        let stamp = rescue_engine::util::time::civil_from_unix(0);
        let img = build(&files, 2 << 20, Variant::Auto, 7, &stamp).unwrap();
        let geo = Geometry::read(&img).unwrap();
        let data_start = geo.first_data_sector * geo.bytes_per_sector;
        for at in (0..data_start + 16 * 512).step_by(3) {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = img.clone();
                bad[at] ^= flip;
                if let Ok(fs) = open(Cursor::new(bad)) {
                    if let Ok(list) = walk(&fs) {
                        assert!(list.len() <= MAX_ENTRIES);
                    }
                }
            }
        }
    }
}
