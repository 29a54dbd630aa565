use rescue_engine::block::MemDisk;
use rescue_engine::formats::ntfs::journal::{self, client, log::CLIENT_RECORD};
use rescue_engine::formats::ntfs::Ntfs;

#[test]
#[ignore]
fn debug() {
    let p = std::env::var("IMG").unwrap();
    let mut d = MemDisk::new(std::fs::read(p).unwrap(), 512);
    let v = Ntfs::open(&mut d).unwrap();
    let j = journal::read(&v, &mut d).unwrap();
    let log = j.log.as_ref().unwrap();
    eprintln!("{:?}", log.restart);
    let cp = log.record(log.restart.client_restart_lsn).unwrap();
    let c = client::parse_checkpoint(&cp.data, 0).unwrap();
    eprintln!("{c:?}");
    if c.dirty_pages.0 != 0 {
        let r = log.record(c.dirty_pages.0).unwrap();
        let u = client::parse_update(&r.data, 0).unwrap();
        for (o, e) in client::table_entries(&u.redo, 0).unwrap() {
            eprintln!("dpt {o:#x}: {:x?}", client::dirty_page(&e, c.major));
        }
        let r = log.record(c.open_attrs.0).unwrap();
        let u = client::parse_update(&r.data, 0).unwrap();
        for (o, e) in client::table_entries(&u.redo, 0).unwrap() {
            eprintln!("oat {o:#x}: {:x?}", client::open_attr(&e, c.major));
        }
    }
    let from: u64 = std::env::var("FROM").ok().map(|x| u64::from_str_radix(&x, 16).unwrap()).unwrap_or(c.start);
    for r in log.records_from(from).unwrap() {
        if r.kind == CLIENT_RECORD {
            let u = client::parse_update(&r.data, 0);
            match u {
                Ok(u) => eprintln!("{:#x} tx {:#x} prev {:#x} undo {:#x} {} / {} attr {:#x} vcn {:#x} lcns {:?} roff {:#x} aoff {:#x} cbo {} redo {} undo {}", r.lsn, r.transaction, r.prev_lsn, r.undo_next_lsn, client::op_name(u.redo_op), client::op_name(u.undo_op), u.target_attr, u.target_vcn, u.lcns, u.record_offset, u.attribute_offset, u.cluster_block_offset, u.redo.len(), u.undo.len()),
                Err(e) => eprintln!("{:#x}: {e} len {}", r.lsn, r.data.len()),
            }
        } else {
            eprintln!("{:#x} checkpoint", r.lsn);
        }
    }
    eprintln!("{:?}", journal::plan_replay(&v, &mut d, &j).map(|o| o.map(|x| x.1)));
}
