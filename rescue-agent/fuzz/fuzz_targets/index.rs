//! Index blocks (INDX) and index roots, parsed and edited.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::ntfs::index::{entry_bytes, Node};

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    buf.resize(4096, 0);
    if let Ok(mut n) =
        Node::block(buf, u64::from_le_bytes(data.get(0x10..0x18).and_then(|b| b.try_into().ok()).unwrap_or([0; 8])), 0)
    {
        if let Ok(es) = n.entries() {
            if es.len() >= 2 {
                let e = es[0].clone();
                if let Ok(b) = entry_bytes(&n, &e, None) {
                    let _ = n.splice(e.off, e.len, &b);
                    let _ = n.entries();
                }
            }
        }
    }
    // The same bytes as a view-index block ($ObjId:$O keys are raw bytes).
    let mut buf = data.to_vec();
    buf.resize(4096, 0);
    if let Ok(mut n) =
        Node::block(buf, u64::from_le_bytes(data.get(0x10..0x18).and_then(|b| b.try_into().ok()).unwrap_or([0; 8])), 0)
    {
        n.view = true;
        let _ = n.entries();
    }
    if let Ok((mut n, _)) = Node::root(data.to_vec(), 0) {
        if let Ok(es) = n.entries() {
            let e = es[0].clone();
            let _ = n.splice(e.off, e.len, &[]);
            let _ = n.entries();
        }
    }
});
