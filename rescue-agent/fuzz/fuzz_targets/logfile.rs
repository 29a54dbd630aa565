//! A `$LogFile` through the journal reader: both restart areas, the tail
//! copies, every record from the checkpoint's start (pages, spans, wraps),
//! each decoded as an update or a checkpoint with its restart tables. Never
//! panics, never loops (the walk is bounded by the log's size). The replay
//! planner itself is fuzzed through the `volume` target (replay is the
//! default policy).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_engine::formats::ntfs::journal::{client, log::CLIENT_RESTART, Log};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(log)) = Log::read(data, 0) else { return };
    let Ok(cp) = log.record(log.restart.client_restart_lsn) else { return };
    let start = match client::parse_checkpoint(&cp.data, 0) {
        Ok(c) if cp.kind == CLIENT_RESTART => {
            for at in [c.open_attrs, c.names, c.dirty_pages, c.transactions] {
                if let Ok(r) = log.record(at.0) {
                    if let Ok(u) = client::parse_update(&r.data, 0) {
                        let t = u.redo.unwrap_or_default();
                        for e in client::table_entries(&t, 0).unwrap_or_default().values() {
                            let _ = (client::open_attr(e, c.major), client::dirty_page(e, c.major), client::transaction(e));
                        }
                    }
                }
            }
            c.start
        }
        _ => log.restart.client_restart_lsn,
    };
    if let Ok(records) = log.records_from(start) {
        assert!(records.windows(2).all(|w| w[0].lsn < w[1].lsn), "records out of order");
        for r in records {
            let _ = client::parse_update(&r.data, 0);
        }
    }
});
