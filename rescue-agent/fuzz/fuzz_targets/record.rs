//! MFT records, their attributes, `$FILE_NAME` values, attribute lists, `$LogFile` restart pages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::ntfs::{attrlist, record::Record};

fuzz_target!(|data: &[u8]| {
    let _ = rescue_engine::formats::ntfs::logfile::state(data, 0);
    for size in [1024usize, 4096] {
        let mut buf = data.to_vec();
        buf.resize(size, 0);
        if let Ok(rec) = Record::parse(30, 0x1000, buf) {
            if let Ok(attrs) = rec.attrs(1 << 20) {
                for a in &attrs {
                    if let Some(v) = a.value(&rec.data) {
                        let _ = rescue_engine::formats::ntfs::filename::FileName::parse(v, 0);
                        let _ = attrlist::parse(v, 0);
                    }
                }
            }
            let _ = rec.to_disk();
        }
    }
});
