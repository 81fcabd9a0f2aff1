//! A durable member's log (`persist`): every change the store makes becomes one record;
//! the log read back restores the store; and any prefix of the log (a crash anywhere)
//! restores a state the store was in.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rtc_mesh_core::persist::{encode_header, read_segment, SegmentHeader, Tail, FORMAT};
use rtc_mesh_core::{Limits, Object, Store, StoreConfig, Update, Value};

const EPOCH: f64 = 1_795_713_876_272.0;

fn durable(id: &str, t0: Instant) -> Store {
    let mut c = StoreConfig::new(id, EPOCH, t0);
    c.persist_from = Some(1);
    Store::new(c).unwrap()
}

/// One thing that happens to the store.
#[derive(Clone, Debug)]
enum Op {
    /// A local write (`None` deletes).
    Set(u8, Option<i32>),
    /// A peer's update: its source, key and value, and how far ahead it is stamped.
    Remote(u8, u8, i32, u16),
    /// Time passes.
    Wait(u16),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, proptest::option::of(-5i32..5)).prop_map(|(k, v)| Op::Set(k, v)),
        (0u8..3, 0u8..6, -5i32..5, 0u16..2000).prop_map(|(s, k, v, d)| Op::Remote(s, k, v, d)),
        (0u16..500).prop_map(Op::Wait),
    ]
}

/// Runs `ops` on a durable store; returns the log (header and records), and the dump
/// after each record (index k: the state the first k records restore).
fn run(ops: &[Op], t0: Instant) -> (Store, Vec<u8>, Vec<Object>) {
    let mut s = durable("me.0000000000000001", t0);
    let mut now = t0;
    let mut log = Vec::new();
    encode_header(
        &SegmentHeader {
            format: FORMAT,
            store_id: s.id().to_owned(),
            first_seq: 1,
        },
        &mut log,
    );
    let mut states = vec![s.dump()];
    let mut next = 1;
    for op in ops {
        match op {
            Op::Set(k, Some(v)) => {
                let _ = s.set(now, &format!("k{k}"), &Value::from(f64::from(*v)));
            }
            Op::Set(k, None) => {
                let _ = s.delete(now, &format!("k{k}"));
            }
            Op::Remote(src, k, v, ahead) => {
                let u = Update {
                    key: format!("k{k}").into(),
                    value: rtc_mesh_core::EncodedValue::from_value(&Value::from(f64::from(*v))),
                    ts: s.wall_ms(now) + f64::from(*ahead),
                    source: format!("peer{src}.0000000000000001").into(),
                    sig: None,
                };
                s.apply(now, u);
            }
            Op::Wait(ms) => now += Duration::from_millis(u64::from(*ms)),
        }
        while s.poll_event().is_some() {}
        if let Some(b) = s.poll_persist() {
            // One change, one record, numbered on from the last.
            assert_eq!((b.first_seq, b.last_seq), (next, next));
            next += 1;
            log.extend(b.bytes);
            states.push(s.dump());
        }
    }
    (s, log, states)
}

/// The store that `bytes` (a last segment) restore.
fn restore(bytes: &[u8], t0: Instant) -> (Store, usize) {
    let seg = read_segment(bytes, Tail::Last, 0, &Limits::default()).unwrap();
    // Another life: a new source id (the rule for `process` durability).
    let mut s = Store::new(StoreConfig::new("me.0000000000000002", EPOCH, t0)).unwrap();
    for u in &seg.updates {
        s.restore(t0, u.update.as_ref());
    }
    (s, seg.updates.len())
}

#[test]
fn a_restored_store_is_the_store_that_logged_and_writes_after_it() {
    let t0 = Instant::now();
    let ops = [
        Op::Set(1, Some(1)),
        Op::Remote(0, 2, 5, 0),
        Op::Wait(10),
        Op::Set(2, Some(3)),
        Op::Remote(1, 1, 4, 1500),
        Op::Set(3, None),
        // Stale: no change, no record.
        Op::Remote(0, 2, 9, 0),
    ];
    let (s, log, states) = run(&ops, t0);
    let (mut r, n) = restore(&log, t0);
    assert_eq!(n, states.len() - 1);
    assert_eq!(r.dump(), s.dump());
    // The clocks of every source it had, ours of the last life included.
    for (src, t) in s.clock().iter() {
        assert_eq!(r.clock().get(src), Some(t), "{src}");
    }
    // A new write wins over every restored one, even one stamped ahead of our clock.
    let later = r.set(t0, "k1", &Value::from(7.0)).unwrap();
    assert!(s.entry("k1").is_some_and(|e| later.ts > e.ts));
    assert!(r.poll_event().is_some(), "a new write is news");
}

#[test]
fn restoring_reports_nothing_and_logs_nothing() {
    let t0 = Instant::now();
    let (_, log, _) = run(&[Op::Set(1, Some(1)), Op::Remote(0, 2, 5, 0)], t0);
    let seg = read_segment(&log, Tail::Sealed, 0, &Limits::default()).unwrap();
    let mut r = durable("me.0000000000000002", t0);
    for u in &seg.updates {
        assert!(r.restore(t0, u.update.as_ref()));
        // Twice (a record kept across a snapshot): changes nothing.
        assert!(!r.restore(t0, u.update.as_ref()));
    }
    assert_eq!(r.poll_event(), None);
    assert_eq!(r.poll_persist(), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Cut the log anywhere (a crash in the middle of a write): what reads back is a
    /// whole number of records, and restores exactly the state the store was in after
    /// them.
    #[test]
    fn any_prefix_of_the_log_is_a_state_the_store_was_in(
        ops in prop::collection::vec(arb_op(), 1..40),
        cut in any::<prop::sample::Index>(),
    ) {
        let t0 = Instant::now();
        let (_, log, states) = run(&ops, t0);
        let at = cut.index(log.len() + 1);
        let (r, n) = restore(&log[..at], t0);
        prop_assert_eq!(r.dump(), states[n].clone());
    }
}

/// A durable mesh: its store's changes come out as log records (`Mesh::poll_persist`),
/// and a mesh given that log back (`MeshConfig::durable`) starts with the store it had,
/// numbering its changes on from the log's, under a new source id.
#[test]
fn a_mesh_given_its_log_back_starts_with_its_store() {
    use rtc_mesh_core::mesh::{Mesh, MeshConfig};
    use rtc_mesh_core::persist::recover;
    let t0 = Instant::now();
    let config = |inc: &str| MeshConfig::without_room("me", inc, EPOCH, t0);
    let mut c = config("0000000000000001");
    c.durable = Some(recover(None, &[], false, &Limits::default()).unwrap());
    let mut a = Mesh::new(c).unwrap();
    a.set(t0, "k", &Value::from(1.0)).unwrap();
    a.set(t0, "j", &Value::from(2.0)).unwrap();
    let mut log = Vec::new();
    encode_header(
        &SegmentHeader {
            format: FORMAT,
            store_id: a.store().id().to_owned(),
            first_seq: 1,
        },
        &mut log,
    );
    let batch = a.poll_persist().unwrap();
    assert_eq!((batch.first_seq, batch.last_seq), (1, 2));
    log.extend(batch.bytes);
    assert_eq!(a.poll_persist(), None);

    let mut c = config("0000000000000002");
    c.durable = Some(recover(None, &[&log], false, &Limits::default()).unwrap());
    let mut b = Mesh::new(c).unwrap();
    assert_eq!(b.store().dump(), a.store().dump());
    assert_eq!(b.store().id(), "me.0000000000000002");
    assert_eq!(b.poll_persist(), None, "restoring logs nothing");
    b.set(t0, "k", &Value::from(3.0)).unwrap();
    let next = b.poll_persist().unwrap();
    assert_eq!((next.first_seq, next.last_seq), (3, 3));
    // An in-memory mesh records nothing.
    let mut m = Mesh::new(config("0000000000000003")).unwrap();
    m.set(t0, "k", &Value::from(1.0)).unwrap();
    assert_eq!(m.poll_persist(), None);
}

/// Runs `ops` on a durable store that snapshots itself all the time, a couple of
/// entries per step (`snap_every`: a step after every so many ops). Returns the last
/// whole snapshot (bytes and `from_seq`, `last_seq`), the log records from its
/// `from_seq` on as a segment (with each record's end), and the dump after each record.
#[allow(clippy::type_complexity)]
fn run_snapshotting(
    ops: &[Op],
    snap_every: usize,
    t0: Instant,
) -> (
    Option<(Vec<u8>, u64, u64)>,
    Vec<(u64, Vec<u8>)>,
    Vec<Object>,
) {
    let mut c = StoreConfig::new("me.0000000000000001", EPOCH, t0);
    c.persist_from = Some(1);
    c.snapshots.min_log = 0;
    c.snapshots.entries_per_step = 2;
    let mut s = Store::new(c).unwrap();
    let mut now = t0;
    let mut records = Vec::new();
    let mut states = vec![s.dump()];
    let mut building: Option<(Vec<u8>, u64)> = None;
    let mut whole = None;
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut s, &mut now, op);
        while s.poll_event().is_some() {}
        while let Some(b) = s.poll_persist() {
            // One change, one record: split the batch's bytes back into records.
            let mut at = 0;
            for seq in b.first_seq..=b.last_seq {
                let len = 9 + u32::from_le_bytes(b.bytes[at..at + 4].try_into().unwrap()) as usize;
                records.push((seq, b.bytes[at..at + len].to_vec()));
                at += len;
            }
            states.push(s.dump());
        }
        if i % snap_every == 0 {
            if let Some(p) = s.poll_snapshot() {
                if p.first {
                    building = Some((Vec::new(), p.from_seq));
                }
                let (bytes, from) = building.as_mut().unwrap();
                bytes.extend(&p.bytes);
                if let Some(last) = p.last_seq {
                    whole = Some((std::mem::take(bytes), *from, last));
                    building = None;
                }
            }
        }
    }
    (whole, records, states)
}

fn apply_op(s: &mut Store, now: &mut Instant, op: &Op) {
    match op {
        Op::Set(k, Some(v)) => {
            let _ = s.set(*now, &format!("k{k}"), &Value::from(f64::from(*v)));
        }
        Op::Set(k, None) => {
            let _ = s.delete(*now, &format!("k{k}"));
        }
        Op::Remote(src, k, v, ahead) => {
            let u = Update {
                key: format!("k{k}").into(),
                value: rtc_mesh_core::EncodedValue::from_value(&Value::from(f64::from(*v))),
                ts: s.wall_ms(*now) + f64::from(*ahead),
                source: format!("peer{src}.0000000000000001").into(),
                sig: None,
            };
            s.apply(*now, u);
        }
        Op::Wait(ms) => *now += Duration::from_millis(u64::from(*ms)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A snapshot taken while the store goes on changing, then the log from its
    /// `from_seq` on cut anywhere after the records it depends on: restores exactly the
    /// state the store was in after the records kept.
    #[test]
    fn a_snapshot_and_any_prefix_of_the_log_after_it_are_a_state_the_store_was_in(
        ops in prop::collection::vec(arb_op(), 1..60),
        snap_every in 1usize..4,
        cut in any::<prop::sample::Index>(),
    ) {
        use rtc_mesh_core::persist::recover;
        let t0 = Instant::now();
        let (whole, records, states) = run_snapshotting(&ops, snap_every, t0);
        let (snap, from, last) = match &whole {
            Some((b, f, l)) => (Some(b.as_slice()), *f, *l),
            None => (None, 1, 0),
        };
        let mut seg = Vec::new();
        encode_header(
            &SegmentHeader { format: FORMAT, store_id: "me.0000000000000001".into(), first_seq: from },
            &mut seg,
        );
        let mut ends = vec![(from - 1, seg.len())];
        for (seq, r) in records.iter().filter(|(seq, _)| *seq >= from) {
            seg.extend(r);
            ends.push((*seq, seg.len()));
        }
        // Anywhere from the end of the record `last_seq` on.
        let floor = ends.iter().find(|(seq, _)| *seq >= last).map_or(seg.len(), |e| e.1);
        let at = floor + cut.index(seg.len() - floor + 1);
        let r = recover(snap, &[&seg[..at]], false, &Limits::default()).unwrap();
        let kept = ends.iter().filter(|(_, end)| *end <= at).map(|(seq, _)| *seq).max().unwrap();
        prop_assert_eq!(r.next_seq, kept + 1);
        let mut s = Store::new(StoreConfig::new("me.0000000000000002", EPOCH, t0)).unwrap();
        s.restore_recovered(t0, &r);
        prop_assert_eq!(s.dump(), states[kept as usize].clone());
        // Built as the files are read, a file at a time: the same store, numbered on
        // from the same record.
        let mut files = Files { snap: snap.map(<[u8]>::to_vec), segs: vec![seg[..at].to_vec()], repair: false };
        let c = StoreConfig::new("me.0000000000000002", EPOCH, t0);
        let streamed = Store::from_log(c, &mut files).unwrap();
        prop_assert_eq!(streamed.dump(), states[kept as usize].clone());
        prop_assert_eq!(streamed.persist_seqs(), Some((kept, kept)));
    }
}

/// A log read back a file at a time ([`Recovery`]), each update handed on as it is
/// decoded: as a runtime's reader thread does.
struct Files {
    snap: Option<Vec<u8>>,
    segs: Vec<Vec<u8>>,
    repair: bool,
}

impl rtc_mesh_core::persist::LogSource for Files {
    type Error = rtc_mesh_core::persist::RecoverError;
    fn read(
        &mut self,
        update: &mut dyn FnMut(rtc_mesh_core::persist::LogUpdate),
    ) -> Result<rtc_mesh_core::persist::Recovered, Self::Error> {
        let mut r =
            rtc_mesh_core::persist::Recovery::new(self.segs.len(), self.repair, &Limits::default());
        if let Some(b) = &self.snap {
            r.snapshot(b, &mut *update)?;
        }
        for b in &self.segs {
            if !r.wants_segment() {
                break;
            }
            r.segment(b, &mut *update)?;
        }
        r.finish()
    }
}

/// A snapshot's pieces come only once the log has taken its records; it is due once
/// the records replaced are half the live data and at least `min_log` (a log of live
/// records, however long, is no reason); and a damaged snapshot, or one whose log does
/// not reach its end, is refused (and set aside by repair).
#[test]
fn snapshots_are_due_by_the_garbage_and_checked_whole() {
    use rtc_mesh_core::persist::{recover, Damage, RecoverError, SnapshotPolicy};
    let t0 = Instant::now();
    let mut c = StoreConfig::new("me.0000000000000001", EPOCH, t0);
    c.persist_from = Some(1);
    c.snapshots.min_log = 1000;
    let mut s = Store::new(c).unwrap();
    for k in 0..5 {
        s.set(t0, &format!("k{k}"), &Value::from(1.0)).unwrap();
    }
    let b = s.poll_persist().unwrap();
    assert!(b.bytes.len() < 1000);
    assert_eq!(s.poll_snapshot(), None, "not due below min_log");
    for k in 5..40 {
        s.set(t0, &format!("k{k}"), &Value::from(1.0)).unwrap();
    }
    let _ = s.poll_persist().unwrap();
    assert_eq!(s.poll_snapshot(), None, "a log of live records");
    // 26 of the 40 records replaced: over half the live data.
    for k in 0..26 {
        s.set(t0, &format!("k{k}"), &Value::from(1.5)).unwrap();
    }
    assert_eq!(s.poll_snapshot(), None, "the log first");
    let b2 = s.poll_persist().unwrap();
    let p = s.poll_snapshot().expect("due by the garbage");
    assert!(p.first && !s.snapshotting());
    assert_eq!(
        (p.from_seq, p.last_seq),
        (b2.last_seq + 1, Some(b2.last_seq))
    );
    assert_eq!(s.poll_snapshot(), None, "not due again at once");
    for k in 40..50 {
        s.set(t0, &format!("k{k}"), &Value::from(1.0)).unwrap();
    }
    for k in 0..10 {
        s.set(t0, &format!("k{k}"), &Value::from(2.0)).unwrap();
    }
    let _ = s.poll_persist().unwrap();
    assert_eq!(
        s.poll_snapshot(),
        None,
        "a log below the snapshot, little garbage"
    );
    for k in 10..30 {
        s.set(t0, &format!("k{k}"), &Value::from(2.0)).unwrap();
    }
    let _ = s.poll_persist().unwrap();
    let again = s.poll_snapshot().expect("due by the garbage");
    assert_eq!(again.last_seq, Some(again.from_seq - 1));
    // The rule itself, by figures.
    let policy = |snapshot_bytes, log_bytes, garbage_bytes| SnapshotPolicy {
        snapshot_bytes,
        log_bytes,
        garbage_bytes,
        min_log: 1000,
        ..SnapshotPolicy::default()
    };
    assert!(!policy(10_000, 3_000, 2_000).due());
    assert!(policy(10_000, 5_000, 6_000).due());
    assert!(
        !policy(10_000, 1 << 30, 0).due(),
        "a log of live records is no reason"
    );
    assert!(!policy(0, 999, 0).due());
    let snap = p.bytes;
    let mut seg = Vec::new();
    encode_header(
        &SegmentHeader {
            format: FORMAT,
            store_id: "me.0000000000000001".into(),
            first_seq: p.from_seq,
        },
        &mut seg,
    );
    let limits = Limits::default();
    let r = recover(Some(&snap), &[&seg], false, &limits).unwrap();
    assert_eq!((r.updates.len(), r.next_seq), (40, p.from_seq));
    assert_eq!(r.snapshot_bytes, snap.len() as u64);
    // A flipped byte: damage, by offset; repair sets it aside with the log.
    let mut bad = snap.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x10;
    let e = recover(Some(&bad), &[&seg], false, &limits).unwrap_err();
    assert!(matches!(e, RecoverError::Snapshot { .. }), "{e:?}");
    let r = recover(Some(&bad), &[&seg], true, &limits).unwrap();
    assert!(r.updates.is_empty() && r.snapshot_cut.is_some() && r.dropped == 1);
    // Read as a store is built from it, a damaged snapshot hands its first entries on
    // before the damage shows: the store keeps none of them.
    let mut files = Files {
        snap: Some(bad.clone()),
        segs: vec![seg.clone()],
        repair: true,
    };
    let c = StoreConfig::new("me.0000000000000002", EPOCH, t0);
    let s2 = Store::from_log(c.clone(), &mut files).unwrap();
    assert_eq!((s2.len(), s2.persist_seqs()), (0, Some((0, 0))));
    files.repair = false;
    let e = Store::from_log(c, &mut files).unwrap_err();
    assert!(
        matches!(
            e,
            rtc_mesh_core::store::FromLogError::Log(RecoverError::Snapshot { .. })
        ),
        "{e:?}"
    );
    // Cut short: its end record is missing.
    let e = recover(Some(&snap[..n - 1]), &[&seg], false, &limits).unwrap_err();
    assert!(matches!(e, RecoverError::Snapshot { .. }), "{e:?}");
    // A snapshot that depends on records the log does not have: taken in pieces
    // while writes went on, then given only a log that stops before them.
    let mut c = StoreConfig::new("me.0000000000000003", EPOCH, t0);
    c.persist_from = Some(1);
    c.snapshots.garbage_bytes = u64::MAX;
    c.snapshots.entries_per_step = 1;
    let mut s = Store::new(c).unwrap();
    s.set(t0, "a", &Value::from(1.0)).unwrap();
    s.set(t0, "b", &Value::from(1.0)).unwrap();
    let _ = s.poll_persist().unwrap();
    let first = s.poll_snapshot().unwrap();
    assert!(first.first && first.last_seq.is_none() && s.snapshotting());
    s.set(t0, "c", &Value::from(1.0)).unwrap();
    assert_eq!(s.poll_snapshot(), None, "the log first");
    let _ = s.poll_persist().unwrap();
    let mut bytes = first.bytes;
    let last = loop {
        let p = s.poll_snapshot().unwrap();
        bytes.extend(p.bytes);
        if let Some(l) = p.last_seq {
            break l;
        }
    };
    assert_eq!((first.from_seq, last), (3, 3));
    let mut empty = Vec::new();
    encode_header(
        &SegmentHeader {
            format: FORMAT,
            store_id: "me.0000000000000003".into(),
            first_seq: 3,
        },
        &mut empty,
    );
    let e = recover(Some(&bytes), &[&empty], false, &limits).unwrap_err();
    assert_eq!(
        e,
        RecoverError::Snapshot {
            offset: 0,
            damage: Damage::Behind
        }
    );
}
