//! The log reader (`persist::read_segment`): any bytes, in each position a segment can
//! have. It never panics; repair always keeps a prefix; what it keeps is exactly what
//! the last-segment reading keeps up to there (a torn tail cuts no earlier than
//! damage), and written again it reads back the same. The snapshot reader
//! (`persist::read_snapshot`) on the same bytes: it never panics, and a snapshot it
//! reads, written again, reads back the same. Read as a whole log (`persist::recover`),
//! the bytes give what the last-segment reading gives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::persist::{
    encode_header, encode_snapshot_clock, encode_snapshot_end, encode_snapshot_entry,
    encode_snapshot_header, encode_update, read_segment, read_snapshot, recover, Tail,
};
use rtc_mesh_core::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(snap) = read_snapshot(data, &limits) {
        let mut again = Vec::new();
        encode_snapshot_header(&snap.header, &mut again);
        for e in &snap.entries {
            encode_snapshot_entry(e.as_ref(), &mut again);
        }
        for (source, ts) in &snap.clocks {
            encode_snapshot_clock(source, *ts, &mut again);
        }
        let (entries, clocks) = (snap.entries.len() as u64, snap.clocks.len() as u64);
        encode_snapshot_end(entries, clocks, snap.last_seq, &mut again);
        assert_eq!(read_snapshot(&again, &limits).as_ref(), Ok(&snap));
    }
    let sealed = read_segment(data, Tail::Sealed, 0, &limits);
    let last = read_segment(data, Tail::Last, 0, &limits);
    let repair = read_segment(data, Tail::Repair, 0, &limits);
    if let Ok(s) = &sealed {
        // Whole: the same in every position.
        assert_eq!(s.valid_len, data.len());
        assert_eq!(last.as_ref().ok(), Some(s));
        assert_eq!(repair.as_ref().ok(), Some(s));
    }
    // Read back as a log of that one segment (`recover`, on `Recovery`): what the last
    // segment's reading keeps.
    let log = recover(None, &[data], false, &limits);
    assert_eq!(log.is_ok(), last.is_ok());
    if let (Ok(log), Ok(l)) = (&log, &last) {
        assert_eq!(log.updates, l.updates);
        assert_eq!(log.valid_lens, [l.valid_len]);
    }
    let Ok(r) = repair else {
        // Only an unknown format stops a repair.
        assert!(matches!(repair, Err(rtc_mesh_core::persist::LogError::Format(_))));
        return;
    };
    if let Ok(l) = &last {
        assert_eq!(l.updates, r.updates);
        assert_eq!(l.valid_len, r.valid_len);
    }
    // What was kept, written again, reads back the same.
    if r.valid_len > 0 {
        let mut again = Vec::new();
        encode_header(&r.header, &mut again);
        for u in &r.updates {
            encode_update(u.seq, u.update.as_ref(), &mut again);
        }
        let back = read_segment(&again, Tail::Sealed, 0, &limits).expect("our own bytes read back");
        assert_eq!(back.updates, r.updates);
        assert_eq!(back.header, r.header);
    }
});
