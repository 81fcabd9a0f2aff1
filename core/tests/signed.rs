//! Signed updates in secured stores: every write is its writer's, checked before it
//! touches anything; the write rules; the time bound; strikes for a link that forges.

mod common;

use std::time::{Duration, Instant};

use common::wires::{connect, run};
use rtc_mesh_core::security::updates::{UpdateGuard, UpdateRefusal, MAX_FUTURE};
use rtc_mesh_core::security::Identity;
use rtc_mesh_core::store::Rejection;
use rtc_mesh_core::{
    Codec, Decoder, EncodedValue, Encoder, Framing, Message, Replica, ReplicaEvent, ReplicaOutput,
    Store, StoreConfig, StoreError, Update, Value, Verdict,
};

const EPOCH: f64 = 1_795_713_876_272.0;
const ROOM: [u8; 16] = [9; 16];

struct Member {
    me: Identity,
    source: String,
}

fn member(seed: u8) -> Member {
    let me = Identity::from_seed(&[seed; 32]);
    let source = format!("{}.00000000000000{seed:02x}", me.peer_id());
    Member { me, source }
}

fn store(m: &Member, t0: Instant) -> Store {
    let mut c = StoreConfig::new(m.source.clone(), EPOCH, t0);
    c.guard = Some(UpdateGuard::new(ROOM, m.me.clone()));
    Store::new(c).unwrap()
}

/// An update of `source`, signed by `by` for `room`.
fn signed(by: &Member, room: [u8; 16], key: &str, v: Value, ts: f64, source: &str) -> Update {
    let mut u = Update {
        key: key.into(),
        value: EncodedValue::from_value(&v),
        ts,
        source: source.into(),
        sig: None,
    };
    u.sig = Some(UpdateGuard::new(room, by.me.clone()).sign(u.as_ref()));
    u
}

fn refused(r: UpdateRefusal) -> Verdict {
    Verdict::Rejected(Rejection::Refused(r))
}

/// `updates` encoded with `codec` over `framing` and put into `r`'s `link` at `at`.
fn feed<'a>(
    r: &mut Replica,
    link: rtc_mesh_core::LinkId,
    (codec, framing): (Codec, Framing),
    updates: impl IntoIterator<Item = &'a Update>,
    at: Instant,
) {
    let mut e = Encoder::new(codec, framing);
    for u in updates {
        e.update(u.as_ref());
    }
    while let Some(f) = e.poll_transmit() {
        r.handle_input(at, link, &f);
    }
}

/// The reasons of the `Misbehaved` events `r` reports now (its other outputs drained).
fn misbehaved(r: &mut Replica) -> Vec<&'static str> {
    let mut out = Vec::new();
    loop {
        match r.poll_output() {
            ReplicaOutput::Event(ReplicaEvent::Misbehaved { reason, .. }) => out.push(reason),
            ReplicaOutput::Timeout(_) => return out,
            _ => {}
        }
    }
}

#[test]
fn signed_writes_replicate_with_their_signatures_over_both_codecs_and_through_a_relay() {
    let (a, b, c) = (member(1), member(2), member(3));
    for codec in [Codec::Json, Codec::Postcard] {
        let t0 = Instant::now();
        let mut ra = Replica::new(store(&a, t0));
        let mut rb = Replica::new(store(&b, t0));
        let mut rc = Replica::new(store(&c, t0));
        ra.set(t0, "shared", &1.0.into()).unwrap();
        let mine = format!("users/{}/name", a.me.peer_id());
        ra.set(t0, &mine, &"A".into()).unwrap();
        ra.set(t0, "big", &"x".repeat(40_000).into()).unwrap();
        let ab = connect(&mut ra, &mut rb, codec);
        let bc = connect(&mut rb, &mut rc, codec);
        run(
            &mut [&mut ra, &mut rb, &mut rc],
            &[(0, 1, &ab), (1, 2, &bc)],
            t0,
        );
        for (name, r) in [("b", &rb), ("c", &rc)] {
            let s = r.store();
            assert_eq!(s.get("shared"), Some(1.0.into()), "{name} {codec}");
            assert_eq!(s.get(&mine), Some("A".into()), "{name} {codec}");
            assert_eq!(s.get("big").unwrap().to_json().len(), 40_002);
            // Kept as signed, and relayed as signed: c checked what b forwarded.
            assert_eq!(
                s.entry("shared").unwrap().sig,
                ra.store().entry("shared").unwrap().sig
            );
            assert!(s.entry("shared").unwrap().sig.is_some());
            assert_eq!(s.stats().rejected, 0, "{name} {codec}");
        }
    }
}

#[test]
fn forged_unsigned_mutated_and_replayed_updates_change_nothing() {
    let t0 = Instant::now();
    let (a, m, v) = (member(1), member(6), member(2));
    let mut sa = store(&a, t0);
    let mut sv = store(&v, t0);
    let genuine = sa.set(t0, "k", &1.0.into()).unwrap();
    let ts = genuine.ts;
    // Forged: a's name, m's signature.
    let forged = signed(&m, ROOM, "k", 2.0.into(), ts, &a.source);
    assert_eq!(sv.apply(t0, forged), refused(UpdateRefusal::BadSignature));
    // Unsigned.
    let unsigned = Update {
        sig: None,
        ..genuine.clone()
    };
    assert_eq!(sv.apply(t0, unsigned), refused(UpdateRefusal::Unsigned));
    // Each part mutated by a relay.
    let mut mutated = Vec::new();
    for f in 0..4 {
        let mut u = genuine.clone();
        match f {
            0 => u.key = "j".into(),
            1 => u.value = EncodedValue::from_value(&3.0.into()),
            2 => u.ts = ts + 1.0,
            _ => u.source = m.source.as_str().into(),
        }
        mutated.push(u);
    }
    for u in mutated {
        assert_eq!(sv.apply(t0, u), refused(UpdateRefusal::BadSignature));
    }
    // Signed for another room (same identity).
    let elsewhere = signed(&a, [8; 16], "k", 1.0.into(), ts, &a.source);
    assert_eq!(
        sv.apply(t0, elsewhere),
        refused(UpdateRefusal::BadSignature)
    );
    // A source that names no key.
    let nobody = Update {
        source: "alice.0123456789abcdef".into(),
        ..genuine.clone()
    };
    assert_eq!(sv.apply(t0, nobody), refused(UpdateRefusal::BadSource));
    // Nothing of it reached the store or the clocks.
    assert_eq!(sv.get("k"), None);
    assert_eq!(sv.clock().get(&a.source), None);
    let st = sv.stats();
    assert_eq!(
        (st.bad_signatures, st.unsigned, st.bad_sources, st.rejected),
        (6, 1, 1, 8)
    );
    // The genuine one applies; the same bytes again are stale.
    assert_eq!(sv.apply(t0, genuine.clone()), Verdict::Applied);
    assert_eq!(sv.apply(t0, genuine), Verdict::Stale);
    assert_eq!(sv.get("k"), Some(1.0.into()));
}

#[test]
fn a_relay_flipping_zero_and_minus_zero_changes_nothing() {
    let t0 = Instant::now();
    let (a, v) = (member(1), member(2));
    let mut sa = store(&a, t0);
    let u = sa.set(t0, "z", &Value::from(0.0)).unwrap();
    let mut e = Encoder::new(Codec::Json, Framing::Stream);
    e.update(u.as_ref());
    let line = String::from_utf8(e.poll_transmit().unwrap()).unwrap();
    let flipped = line.replacen(",0],", ",-0],", 1);
    assert_ne!(line, flipped);
    let mut d = Decoder::new(Codec::Json, Framing::Stream, Default::default());
    d.push(flipped.as_bytes());
    let Some(Ok(Message::Update(got))) = d.poll_message() else {
        panic!("an update")
    };
    assert_eq!(got, u, "-0 reads as 0: the same update, the same signature");
    let mut sv = store(&v, t0);
    assert_eq!(sv.apply(t0, got), Verdict::Applied);
}

#[test]
fn a_member_s_users_space_is_its_own() {
    let t0 = Instant::now();
    let (a, m, v) = (member(1), member(6), member(2));
    let mut sv = store(&v, t0);
    let ts = EPOCH + 10.0;
    let theirs = format!("users/{}/profile", a.me.peer_id());
    // m, signing as itself, writes and deletes in a's space: refused.
    let write = signed(&m, ROOM, &theirs, "m was here".into(), ts, &m.source);
    assert_eq!(sv.apply(t0, write), refused(UpdateRefusal::NotOwner));
    let delete = signed(&m, ROOM, &theirs, Value::Null, ts + 1.0, &m.source);
    assert_eq!(sv.apply(t0, delete), refused(UpdateRefusal::NotOwner));
    assert_eq!(sv.stats().not_owner, 2);
    // Its own space and shared keys are fine; a's own write to its space too.
    let own = format!("users/{}/profile", m.me.peer_id());
    assert_eq!(
        sv.apply(t0, signed(&m, ROOM, &own, 1.0.into(), ts + 2.0, &m.source)),
        Verdict::Applied
    );
    assert_eq!(
        sv.apply(t0, signed(&a, ROOM, &theirs, "A".into(), ts, &a.source)),
        Verdict::Applied
    );
    assert_eq!(sv.get(&theirs), Some("A".into()));
    // Locally, a clear error before anything is written.
    let mut sm = store(&m, t0);
    assert_eq!(
        sm.set(t0, &theirs, &1.0.into()),
        Err(StoreError::NotOwner(theirs.clone()))
    );
    assert_eq!(sm.clock().get(&m.source), None);
    // A store's source must be its identity's.
    let mut c = StoreConfig::new("someone.0123456789abcdef", EPOCH, t0);
    c.guard = Some(UpdateGuard::new(ROOM, m.me.clone()));
    assert!(matches!(Store::new(c), Err(StoreError::NotTheIdentity(_))));
}

#[test]
fn a_far_future_write_is_held_until_its_time_and_an_honest_one_wins_meanwhile() {
    let t0 = Instant::now();
    let (a, m) = (member(1), member(6));
    let year = Duration::from_secs(365 * 86_400);
    let future = EPOCH + year.as_millis() as f64;
    let mut sb = store(&member(2), t0);
    let mut sc = store(&member(3), t0);
    let mut sa = store(&a, t0);
    for s in [&mut sb, &mut sc] {
        let grab = signed(&m, ROOM, "k", "mine forever".into(), future, &m.source);
        assert_eq!(s.apply(t0, grab.clone()), Verdict::Held);
        // Offered again (another link): held once.
        assert_eq!(s.apply(t0, grab), Verdict::Held);
        assert_eq!((s.held_len(), s.stats().held), (1, 2));
        assert_eq!(s.get("k"), None);
        assert_eq!(
            s.clock().get(&m.source),
            None,
            "the writer's clock is unchanged"
        );
        while s.poll_event().is_some() {}
    }
    // Within the bound: applied at once.
    let near = signed(&m, ROOM, "near", 1.0.into(), EPOCH + 59_000.0, &m.source);
    assert_eq!(sb.apply(t0, near), Verdict::Applied);
    // The honest write of now wins meanwhile, on every replica.
    let honest = sa.set(t0, "k", &"honest".into()).unwrap();
    for s in [&mut sb, &mut sc] {
        assert_eq!(s.apply(t0, honest.clone()), Verdict::Applied);
        assert_eq!(s.get("k"), Some("honest".into()));
        while s.poll_event().is_some() {}
    }
    // Due when its stamp is within the bound of the clock, and not before.
    let due = sb.next_held_due().unwrap();
    // (A microsecond after, so that rounding never wakes a driver early.)
    assert_eq!(due, t0 + year - MAX_FUTURE + Duration::from_micros(1));
    assert_eq!(sb.release_held(due - Duration::from_millis(1)), 0);
    for s in [&mut sb, &mut sc] {
        assert_eq!(s.release_held(due), 1);
        assert_eq!(
            s.get("k"),
            Some("mine forever".into()),
            "then it is the latest"
        );
        assert_eq!(s.held_len(), 0);
        assert!(s.poll_event().is_some_and(|e| &*e.key == "k"));
    }
}

#[test]
fn a_link_sending_forgeries_is_closed_after_sixteen_and_costs_no_more_checks() {
    let t0 = Instant::now();
    let (a, m, v) = (member(1), member(6), member(2));
    let mut rv = Replica::new(store(&v, t0));
    let link = rv.open_link(Codec::Postcard, Framing::Messages);
    let send = |rv: &mut Replica, n: u32, from: u32, at: Instant| {
        let forged: Vec<Update> = (from..from + n)
            .map(|i| {
                let (v, ts) = (f64::from(i), EPOCH + f64::from(i));
                signed(&m, ROOM, "k", v.into(), ts, &a.source)
            })
            .collect();
        feed(rv, link, (Codec::Postcard, Framing::Messages), &forged, at);
    };
    // 15, then 4 s later one more: one strike forgiven, still open.
    send(&mut rv, 15, 1, t0);
    send(&mut rv, 1, 100, t0 + Duration::from_secs(4));
    assert!(misbehaved(&mut rv).is_empty());
    // Then a flood: reported once, at the sixteenth strike, and nothing more checked.
    send(&mut rv, 100_000, 1000, t0 + Duration::from_secs(4));
    assert_eq!(misbehaved(&mut rv), ["bad_sig"]);
    let st = rv.store().stats();
    assert_eq!(st.bad_signatures, 15 + 1 + 1, "{st:?}");
    assert_eq!(rv.link_stats(link).unwrap().refused, 17);
    assert_eq!(rv.store().get("k"), None);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The decisions of a secured store, as vectors the browser client is held to
/// (`web/tests/updates.test.mjs`): updates applied in order to member 2's store at the
/// epoch, each with the verdict core gives (a refusal by its code), and the signing
/// input and signature of each signed one.
#[test]
fn the_accept_and_refuse_vectors_are_what_the_store_decides() {
    use serde_json::{json, Value as J};
    let t0 = Instant::now();
    let (a, m, v) = (member(1), member(6), member(2));
    let theirs = format!("users/{}/x", a.me.peer_id());
    let small_order = format!("{}.0123456789abcdef", "A".repeat(43));
    let genuine = signed(&a, ROOM, "k", 1.0.into(), EPOCH + 1.0, &a.source);
    let mut cases: Vec<(&str, Update)> = vec![
        ("genuine", genuine.clone()),
        ("the same again", genuine.clone()),
        (
            "forged",
            signed(&m, ROOM, "k", 2.0.into(), EPOCH + 2.0, &a.source),
        ),
        (
            "unsigned",
            Update {
                sig: None,
                ts: EPOCH + 3.0,
                ..genuine.clone()
            },
        ),
    ];
    let g2 = signed(&a, ROOM, "k2", "v".into(), EPOCH + 4.0, &a.source);
    cases.push((
        "key changed",
        Update {
            key: "k3".into(),
            ..g2.clone()
        },
    ));
    cases.push((
        "value changed",
        Update {
            value: EncodedValue::from_value(&"w".into()),
            ..g2.clone()
        },
    ));
    cases.push((
        "ts changed",
        Update {
            ts: EPOCH + 4.5,
            ..g2.clone()
        },
    ));
    cases.push((
        "source changed",
        Update {
            source: m.source.as_str().into(),
            ..g2.clone()
        },
    ));
    cases.push((
        "another room",
        signed(&a, [8; 16], "k4", 1.0.into(), EPOCH + 5.0, &a.source),
    ));
    let mut high_s = g2.clone();
    high_s.sig.as_mut().unwrap()[32..].fill(0xff);
    cases.push(("S not reduced", high_s));
    cases.push((
        "no key",
        Update {
            source: "alice.0123456789abcdef".into(),
            ..g2.clone()
        },
    ));
    cases.push((
        "a source that is not base64url",
        Update {
            source: format!("{}a.0123456789abcdef", "\u{e9}".repeat(21)).into(),
            sig: None,
            ..g2.clone()
        },
    ));
    cases.push((
        "a small-order key",
        Update {
            source: small_order.as_str().into(),
            ..g2.clone()
        },
    ));
    cases.push((
        "into another's space",
        signed(&m, ROOM, &theirs, 1.0.into(), EPOCH + 6.0, &m.source),
    ));
    cases.push((
        "deleting in another's space",
        signed(&m, ROOM, &theirs, Value::Null, EPOCH + 7.0, &m.source),
    ));
    cases.push((
        "into its own space",
        signed(&a, ROOM, &theirs, 1.0.into(), EPOCH + 8.0, &a.source),
    ));
    cases.push((
        "the room's (no admins)",
        signed(&a, ROOM, "room/name", "mine".into(), EPOCH + 8.5, &a.source),
    ));
    cases.push((
        "a year ahead",
        signed(&m, ROOM, "k", "mine".into(), EPOCH + 3.2e10, &m.source),
    ));
    cases.push((
        "59 s ahead",
        signed(&m, ROOM, "near", 1.0.into(), EPOCH + 59_000.0, &m.source),
    ));
    cases.push((
        "zero",
        signed(&a, ROOM, "z", 0.0.into(), EPOCH + 9.0, &a.source),
    ));
    // Below the writer's clock: a relay reordered them. Lands if it wins its key.
    cases.push((
        "an older write of a writer already newer (late)",
        g2.clone(),
    ));
    cases.push(("the late one again", g2));
    cases.push((
        "an older write of a writer already newer, losing its key",
        signed(&a, ROOM, "z", 5.0.into(), EPOCH + 5.0, &a.source),
    ));
    let mut s = store(&v, t0);
    let mut out = Vec::new();
    for (name, u) in cases {
        let verdict = match s.apply(t0, u.clone()) {
            Verdict::Applied => "applied".to_owned(),
            Verdict::Superseded => "superseded".to_owned(),
            Verdict::Stale => "stale".to_owned(),
            Verdict::Held => "held".to_owned(),
            Verdict::Rejected(Rejection::Refused(r)) => r.code().to_owned(),
            other => panic!("{other:?}"),
        };
        let input = rtc_mesh_core::security::updates::signing_input(&ROOM, u.as_ref());
        out.push(json!({
            "name": name,
            "key": u.key.as_str(),
            "json": u.value.to_json(),
            "ts": u.ts,
            "source": u.source.as_str(),
            "sig": u.sig.map(|s| J::from(hex(&s))).unwrap_or(J::Null),
            "input": hex(&input),
            "verdict": verdict,
        }));
    }
    let doc = json!({
        "room_id": hex(&ROOM),
        "epoch_ms": EPOCH,
        "store_seed": hex(&[2; 32]),
        "store_source": v.source,
        "signers": [hex(&[1; 32]), hex(&[6; 32])],
        "cases": out,
        "stats": {
            "unsigned": s.stats().unsigned,
            "bad_signatures": s.stats().bad_signatures,
            "bad_sources": s.stats().bad_sources,
            "not_owner": s.stats().not_owner,
            "held": s.stats().held,
            "late": s.stats().late,
        },
        // The SUMS line this store sends once synced.
        "sums": rtc_mesh_core::control::Control::Sums(s.sums()).encode(),
        "snapshot": J::from(s.dump().iter().map(|(k, v)| (k.to_owned(), J::from(v.to_json()))).collect::<serde_json::Map<_, _>>()),
    });
    common::check_or_write("updates.json", &doc, true);
}

/// A secured mesh member of the room "team".
fn mesh(seed: u8, now: Instant) -> rtc_mesh_core::mesh::Mesh {
    use rtc_mesh_core::mesh::{Mesh, MeshConfig, Security};
    use rtc_mesh_core::security::{Entropy, RoomKey, RoomSecret};
    let identity = Identity::from_seed(&[seed; 32]);
    let secret = RoomSecret::parse("rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
    let key = RoomKey::derive("team", &secret);
    let mut c = MeshConfig::new(
        identity.peer_id(),
        "team",
        format!("{seed:016x}"),
        EPOCH,
        now,
    );
    c.security = Some(Security::new(key, identity, Entropy::from_seed([seed; 32])));
    let mut m = Mesh::new(c).unwrap();
    m.handle_signal_connected(now);
    m.start(now);
    m
}

#[test]
fn a_mesh_closes_the_link_of_a_peer_that_forges_and_tells_it_why() {
    use rtc_mesh_core::mesh::{LinkCommand, MeshEvent, MeshOutput};
    let now = Instant::now();
    let mut a = mesh(1, now);
    let mut b = mesh(2, now);
    let aid = Identity::from_seed(&[1; 32]).peer_id().to_owned();
    let bid = Identity::from_seed(&[2; 32]).peer_id().to_owned();
    // Drains `m`: signals, data for the peer, events, link commands.
    fn drain(
        m: &mut rtc_mesh_core::mesh::Mesh,
    ) -> (Vec<String>, Vec<Vec<u8>>, Vec<MeshEvent>, Vec<LinkCommand>) {
        let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        loop {
            match m.poll_output() {
                MeshOutput::Signal(t) => out.0.push(t),
                MeshOutput::Transmit { data, .. } => out.1.push(data),
                MeshOutput::Event(e) => out.2.push(e),
                MeshOutput::Link(c) => out.3.push(c),
                MeshOutput::Timeout(_) => return out,
                _ => {}
            }
        }
    }
    // The switchboard's part: every signal to the other.
    for _ in 0..4 {
        for t in drain(&mut a).0 {
            b.handle_signal(now, &t);
        }
        for t in drain(&mut b).0 {
            a.handle_signal(now, &t);
        }
    }
    a.link_open(now, &bid, Codec::Postcard);
    b.link_open(now, &aid, Codec::Postcard);
    for _ in 0..8 {
        for d in drain(&mut a).1 {
            b.link_data(now, &aid, &d);
        }
        for d in drain(&mut b).1 {
            a.link_data(now, &bid, &d);
        }
    }
    // A genuine write crosses.
    a.set(now, "k", &1.0.into()).unwrap();
    for d in drain(&mut a).1 {
        b.link_data(now, &aid, &d);
    }
    assert_eq!(b.store().get("k"), Some(1.0.into()));
    // Then a's link carries forgeries in another member's name.
    let (victim, forger) = (member(3), member(6));
    let mut e = Encoder::new(Codec::Postcard, Framing::Messages);
    for i in 0..20 {
        let u = signed(
            &forger,
            [0; 16],
            "k",
            f64::from(i).into(),
            EPOCH + 100.0 + f64::from(i),
            &victim.source,
        );
        e.update(u.as_ref());
    }
    while let Some(f) = e.poll_transmit() {
        b.link_data(now, &aid, &f);
    }
    let (_, to_a, events, commands) = drain(&mut b);
    let misbehaved: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, MeshEvent::PeerMisbehaved { peer, reason } if peer.as_str() == aid.as_str() && reason == "bad_sig"))
        .collect();
    assert_eq!(misbehaved.len(), 1, "{events:?}");
    assert!(commands
        .iter()
        .any(|c| matches!(c, LinkCommand::Close { peer } if peer.as_str() == aid.as_str())));
    assert_eq!(b.store().stats().bad_signatures, 16);
    assert_eq!(b.store().get("k"), Some(1.0.into()));
    // a hears why before the link goes.
    for d in to_a {
        a.link_data(now, &bid, &d);
    }
    let (_, _, events, _) = drain(&mut a);
    assert!(events.iter().any(|e| matches!(e, MeshEvent::RefusedByPeer { peer, reason } if peer.as_str() == bid.as_str() && reason == "bad_sig")), "{events:?}");
}

#[test]
fn a_held_update_that_came_due_is_applied_before_a_newer_one_of_its_writer() {
    let t0 = Instant::now();
    let (m, v) = (member(6), member(2));
    let mut rv = Replica::new(store(&v, t0));
    let link = rv.open_link(Codec::Postcard, Framing::Messages);
    let send = |rv: &mut Replica, u: &Update, at: Instant| {
        feed(rv, link, (Codec::Postcard, Framing::Messages), [u], at)
    };
    let ahead = signed(&m, ROOM, "a", 1.0.into(), EPOCH + 61_000.0, &m.source);
    send(&mut rv, &ahead, t0);
    assert_eq!(rv.store().held_len(), 1);
    // Two seconds on, no timer has run yet, and the writer's next update arrives.
    let later = t0 + Duration::from_secs(2);
    let next = signed(&m, ROOM, "b", 2.0.into(), EPOCH + 61_500.0, &m.source);
    send(&mut rv, &next, later);
    assert_eq!(
        rv.store().get("a"),
        Some(1.0.into()),
        "released first, not stale"
    );
    assert_eq!(rv.store().get("b"), Some(2.0.into()));
    assert_eq!(rv.store().stats().stale, 0);
}

#[test]
fn on_a_stream_only_forgeries_count_against_the_peer() {
    let t0 = Instant::now();
    let (a, m, v) = (member(1), member(6), member(2));
    let mut rv = Replica::new(store(&v, t0));
    let link = rv.open_link(Codec::Json, Framing::Stream);
    // A stock scuttlebutt relay's own writes: no key, no signature. Not strikes here.
    let mut updates: Vec<Update> = (0..40)
        .map(|i| Update {
            key: format!("js{i}").into(),
            value: EncodedValue::from_value(&1.0.into()),
            ts: EPOCH + f64::from(i),
            source: "js-relay".into(),
            sig: None,
        })
        .collect();
    // Forgeries are.
    updates.extend((0..16).map(|i| {
        let ts = EPOCH + 100.0 + f64::from(i);
        signed(&m, ROOM, "k", 1.0.into(), ts, &a.source)
    }));
    feed(&mut rv, link, (Codec::Json, Framing::Stream), &updates, t0);
    assert_eq!(
        misbehaved(&mut rv),
        ["bad_sig"],
        "at the 16th forgery, not before"
    );
    assert_eq!(rv.store().stats().bad_sources, 40);
    assert_eq!(rv.link_stats(link).unwrap().refused, 56);
}

/// A relay delivers a writer's later update ahead of its earlier one (each genuine).
/// Per-source clocks would call the earlier one stale where it arrives second; in a
/// secured store it lands when it wins its key (and is passed on though the links'
/// clocks say they have it), and where only the later one ever arrived, the `SUMS`
/// exchange after a sync finds the source and repairs it.
#[test]
fn a_relay_that_reorders_a_writer_s_updates_cannot_hide_the_earlier_ones() {
    let (w, h, x) = (member(1), member(2), member(3));
    let t0 = Instant::now();
    let mut rw = Replica::new(store(&w, t0));
    let u1 = rw.set(t0, "a", &1.0.into()).unwrap();
    let u2 = rw.set(t0, "b", &2.0.into()).unwrap();
    assert!(u1.ts < u2.ts);
    let raw = (Codec::Json, Framing::Messages);

    // Live: the later one first, then the earlier one, through the same relay.
    let mut rh = Replica::new(store(&h, t0));
    let mut rx = Replica::new(store(&x, t0));
    let hx = connect(&mut rh, &mut rx, Codec::Postcard);
    let relay = rh.open_link(raw.0, raw.1);
    run(&mut [&mut rh, &mut rx], &[(0, 1, &hx)], t0);
    feed(&mut rh, relay, raw, [&u2], t0);
    run(&mut [&mut rh, &mut rx], &[(0, 1, &hx)], t0);
    feed(&mut rh, relay, raw, [&u1], t0);
    run(&mut [&mut rh, &mut rx], &[(0, 1, &hx)], t0);
    for (name, r) in [("h", &rh), ("x", &rx)] {
        assert_eq!(r.store().get("a"), Some(1.0.into()), "{name}");
        assert_eq!(r.store().get("b"), Some(2.0.into()), "{name}");
        assert_eq!(r.store().stats().late, 1, "{name}");
    }
    // Equal stores compare equal: nothing to repair.
    assert_eq!(rh.link_stats(hx.a).unwrap().repairs, 0);
    // A copy of what it has is still stale.
    feed(&mut rh, relay, raw, [&u1, &u2], t0);
    assert_eq!(rh.store().stats().late, 1);
    assert_eq!(rh.store().stats().stale, 2);

    // Only the later one ever arrived at h2; x2 has both. Their clocks agree, so the
    // digests send nothing, but their sums differ: each sends the other all of w's.
    let mut rh2 = Replica::new(store(&h, t0));
    let mut rx2 = Replica::new(store(&x, t0));
    let l = rh2.open_link(raw.0, raw.1);
    feed(&mut rh2, l, raw, [&u2], t0);
    let l = rx2.open_link(raw.0, raw.1);
    feed(&mut rx2, l, raw, [&u1, &u2], t0);
    for codec in [Codec::Json, Codec::Postcard] {
        let mut h3 = Replica::new(store(&h, t0));
        let l = h3.open_link(raw.0, raw.1);
        feed(&mut h3, l, raw, [&u2], t0);
        let wire = connect(&mut h3, &mut rx2, codec);
        run(&mut [&mut h3, &mut rx2], &[(0, 1, &wire)], t0);
        assert_eq!(h3.store().get("a"), Some(1.0.into()), "{codec}");
        assert_eq!(h3.store().stats().late, 1, "{codec}");
        assert_eq!(h3.link_stats(wire.a).unwrap().repairs, 1, "{codec}");
        assert_eq!(rx2.link_stats(wire.b).unwrap().repairs, 1, "{codec}");
        // x2 sent its two writes of w; h3 its one.
        assert_eq!(rx2.link_stats(wire.b).unwrap().repaired, 2, "{codec}");
        assert_eq!(h3.link_stats(wire.a).unwrap().repaired, 1, "{codec}");
        rx2.close_link(wire.b);
    }
    let _ = rh2;
}

/// A write overwritten before it reached a replica never reaches it, and nor does its
/// timestamp: the writer's clocks stay apart for good. The `SUMS` repair does not need
/// them equal, only each covering the other's side: here x holds w's earlier write `a`
/// that h never got (h's clock of w passed it: it got a later write of w first, since
/// overwritten); the digests send nothing, x's sums find it and send it.
#[test]
fn sums_repair_a_source_whose_clocks_stay_apart() {
    let (w, z, h, x) = (member(1), member(4), member(2), member(3));
    let t0 = Instant::now();
    let raw = (Codec::Json, Framing::Messages);
    let a = signed(&w, ROOM, "a", 1.0.into(), EPOCH + 10.0, &w.source);
    let b = signed(&w, ROOM, "b", 2.0.into(), EPOCH + 20.0, &w.source);
    let c = signed(&w, ROOM, "c", 3.0.into(), EPOCH + 30.0, &w.source);
    let zb = signed(&z, ROOM, "b", 4.0.into(), EPOCH + 40.0, &z.source);
    let zc = signed(&z, ROOM, "c", 5.0.into(), EPOCH + 50.0, &z.source);
    // h: w's `b` only (its `a` withheld by a relay), then z overwrites it.
    let mut rh = Replica::new(store(&h, t0));
    let l = rh.open_link(raw.0, raw.1);
    feed(&mut rh, l, raw, [&b, &zb], t0);
    // x: w's `a` and `c`, then z's two writes (`c` overwritten).
    let mut rx = Replica::new(store(&x, t0));
    let l = rx.open_link(raw.0, raw.1);
    feed(&mut rx, l, raw, [&a, &c, &zb, &zc], t0);
    let clock = |r: &Replica| {
        r.store()
            .clock()
            .iter()
            .find(|(s, _)| *s == w.source.as_str())
            .map(|(_, t)| t)
    };
    assert_eq!(
        (clock(&rh), clock(&rx)),
        (Some(EPOCH + 20.0), Some(EPOCH + 30.0))
    );
    for codec in [Codec::Json, Codec::Postcard] {
        let mut h2 = Replica::new(store(&h, t0));
        let l = h2.open_link(raw.0, raw.1);
        feed(&mut h2, l, raw, [&b, &zb], t0);
        let wire = connect(&mut h2, &mut rx, codec);
        run(&mut [&mut h2, &mut rx], &[(0, 1, &wire)], t0);
        assert_eq!(h2.store().get("a"), Some(1.0.into()), "{codec}");
        assert_eq!(h2.store().dump(), rx.store().dump(), "{codec}");
        // x repaired w (its one write of it); h, whose clock of w is behind x's, did
        // not send x its w writes for nothing.
        assert_eq!(rx.link_stats(wire.b).unwrap().repaired, 1, "{codec}");
        assert_eq!(h2.link_stats(wire.a).unwrap().repairs, 0, "{codec}");
        rx.close_link(wire.b);
    }
    let _ = rh;
}

/// A store of member `m` in a room whose invite names `admins`.
fn store_with_admins(m: &Member, t0: Instant, admins: &[&Member]) -> Store {
    let mut c = StoreConfig::new(m.source.clone(), EPOCH, t0);
    let ids = admins.iter().map(|a| a.me.peer_id().to_owned()).collect();
    c.guard = Some(UpdateGuard::new(ROOM, m.me.clone()).with_admins(ids));
    Store::new(c).unwrap()
}

/// Admins write anywhere; an admin's `room/revoked/<id>` removes a member: its updates
/// stamped after the removal are refused everywhere (no strike: relays may still pass
/// them on), those that landed before the removal arrived are voided there, and the
/// keys get back what they had superseded (the sums after the voiding find it).
#[test]
fn an_admin_removes_a_member_and_its_later_writes_go_everywhere() {
    let (admin, h, x, r) = (member(1), member(2), member(3), member(4));
    let t0 = Instant::now();
    let admins = [&admin];
    let mut ra = Replica::new(store_with_admins(&admin, t0, &admins));
    let mut rr = Replica::new(store_with_admins(&r, t0, &admins));
    let mut rh = Replica::new(store_with_admins(&h, t0, &admins));
    let mut rx = Replica::new(store_with_admins(&x, t0, &admins));
    let raw = (Codec::Json, Framing::Messages);

    // Admins may write room/ and others' users/ space; members may not.
    let theirs = format!("users/{}/name", r.me.peer_id());
    let by_admin = [
        ra.set(t0, "room/title", &"T".into()).unwrap(),
        ra.set(t0, &theirs, &"moderated".into()).unwrap(),
    ];
    assert!(matches!(
        rx.set(t0, "room/title", &"mine".into()),
        Err(StoreError::NotOwner(_))
    ));
    let hx = connect(&mut rh, &mut rx, Codec::Postcard);
    let from_a = rh.open_link(raw.0, raw.1);
    feed(&mut rh, from_a, raw, &by_admin, t0);
    rx.set(t0, "k", &"x".into()).unwrap();
    run(&mut [&mut rh, &mut rx], &[(0, 1, &hx)], t0);
    assert_eq!(rx.store().get("room/title"), Some("T".into()));
    assert_eq!(rx.store().get(&theirs), Some("moderated".into()));

    // r writes k over x's, and another key: both reach h before the removal does.
    let t1 = t0 + Duration::from_millis(5);
    let early = rr.set(t0, "early", &1.0.into()).unwrap();
    let mut late = Vec::new();
    for (k, v) in [("k", "r"), ("only-r", "r")] {
        late.push(rr.set(t1, k, &v.into()).unwrap());
    }
    let removal = revoke(&mut ra, t1, &r, early.ts);
    let from_r = rh.open_link(raw.0, raw.1);
    feed(&mut rh, from_r, raw, [&early].into_iter().chain(&late), t1);
    assert_eq!(rh.store().get("k"), Some("r".into()));
    // x hears of the removal first; then the link runs both ways.
    let x_from_a = rx.open_link(raw.0, raw.1);
    feed(&mut rx, x_from_a, raw, [&removal], t1);
    run(&mut [&mut rh, &mut rx], &[(0, 1, &hx)], t1);
    for (name, rep) in [("h", &rh), ("x", &rx)] {
        let s = rep.store();
        assert_eq!(s.get("k"), Some("x".into()), "{name}");
        assert_eq!(s.get("only-r"), None, "{name}");
        assert_eq!(
            s.get("early"),
            Some(1.0.into()),
            "{name}: before the removal"
        );
        assert_eq!(
            s.revoked().collect::<Vec<_>>(),
            vec![(r.me.peer_id(), early.ts)]
        );
    }
    assert_eq!(rh.store().stats().voided, 2);
    assert_eq!(rx.store().stats().revoked, 2);
    assert_eq!(rh.store().dump(), rx.store().dump());
    // Refused without strikes; and the removed member cannot write any more.
    assert!(misbehaved(&mut rx).is_empty());
    assert_eq!(rx.link_stats(hx.b).unwrap().refused, 2);
    let r_from_a = rr.open_link(raw.0, raw.1);
    feed(&mut rr, r_from_a, raw, [&removal], t1);
    assert!(matches!(
        rr.set(t1, "after", &1.0.into()),
        Err(StoreError::Revoked)
    ));
    // An admin cannot be removed: the record removes no one.
    let nobody = ra
        .set(
            t1,
            &format!("room/revoked/{}", admin.me.peer_id()),
            &Value::from_json("{\"after\":0}").unwrap(),
        )
        .unwrap();
    feed(&mut rx, x_from_a, raw, [&nobody], t1);
    assert_eq!(rx.store().revoked().count(), 1);
}

/// Writes (or checks) `core/tests/vectors/admins.json`: an invite naming admins, the room
/// it derives, and what a store of that room decides for admin writes, a removal (and
/// the write it voids) and a removed member's later ones; the browser client must agree
/// (`web/tests/updates.test.mjs`), and refuse the same damaged invites.
#[test]
fn the_admin_and_removal_vectors_are_what_the_store_decides() {
    use rtc_mesh_core::security::{RoomKey, RoomSecret};
    use serde_json::{json, Value as J};
    let (creator, other, v, m) = (member(1), member(6), member(2), member(3));
    let plain = RoomSecret::parse(&format!("rm1_{}", "BQ".repeat(21) + "A")).unwrap();
    let invite = plain
        .with_admins(&creator.me, &[other.me.peer_id().to_owned()])
        .unwrap();
    let text = invite.to_text().to_string();
    let key = RoomKey::derive("team", &invite);
    let room = *key.room_id();
    let t0 = Instant::now();
    let mut c = StoreConfig::new(v.source.clone(), EPOCH, t0);
    c.guard = Some(UpdateGuard::for_room(&key, v.me.clone()));
    let mut s = Store::new(c).unwrap();
    let revoke = |id: &str, after: f64| {
        (
            format!("room/revoked/{id}"),
            Value::from_json(&format!("{{\"after\":{after}}}")).unwrap(),
        )
    };
    let t = |d: f64| EPOCH + d;
    let mid = m.me.peer_id();
    let (rk, rv) = revoke(mid, t(5.0));
    let (ak, av) = revoke(creator.me.peer_id(), 0.0);
    let cases = vec![
        (
            "an admin writes room/",
            signed(
                &creator,
                room,
                "room/title",
                "T".into(),
                t(1.0),
                &creator.source,
            ),
        ),
        (
            "a member writes room/",
            signed(&m, room, "room/x", 1.0.into(), t(2.0), &m.source),
        ),
        (
            "an admin moderates users/",
            signed(
                &other,
                room,
                &format!("users/{mid}/name"),
                "x".into(),
                t(3.0),
                &other.source,
            ),
        ),
        (
            "the member writes before it is removed",
            signed(&m, room, "v", 1.0.into(), t(10.0), &m.source),
        ),
        (
            "an admin removes it after t+5: the write at t+10 is voided",
            signed(&creator, room, &rk, rv, t(11.0), &creator.source),
        ),
        (
            "the removed member writes after",
            signed(&m, room, "w", 1.0.into(), t(20.0), &m.source),
        ),
        (
            "its write from before the removal",
            signed(&m, room, "early", 1.0.into(), t(4.0), &m.source),
        ),
        (
            "an admin cannot be removed",
            signed(&other, room, &ak, av, t(12.0), &other.source),
        ),
        (
            "the creator still writes",
            signed(&creator, room, "c", 1.0.into(), t(30.0), &creator.source),
        ),
    ];
    let mut out = Vec::new();
    for (name, u) in cases {
        let verdict = match s.apply(t0, u.clone()) {
            Verdict::Applied => "applied".to_owned(),
            Verdict::Stale => "stale".to_owned(),
            Verdict::Superseded => "superseded".to_owned(),
            Verdict::Rejected(Rejection::Refused(r)) => r.code().to_owned(),
            other => panic!("{other:?}"),
        };
        out.push(json!({
            "name": name,
            "key": u.key.as_str(),
            "json": u.value.to_json(),
            "ts": u.ts,
            "source": u.source.as_str(),
            "sig": u.sig.map(|s| J::from(hex(&s))).unwrap_or(J::Null),
            "verdict": verdict,
        }));
    }
    // Damaged invites: each is refused (bad_admins) however it was damaged.
    let (head, tail) = text.split_at(4 + 43 + 1 + 86);
    let bad = vec![
        format!("{text}.{}", m.me.peer_id()),
        format!("{head}.{}", creator.me.peer_id()),
        format!("{head}.{}.{}", other.me.peer_id(), creator.me.peer_id()),
        format!("{}AA{tail}", &head[..head.len() - 2]),
        format!("{head}.x"),
        format!("{}.", &text[..4 + 43]),
    ];
    for b in &bad {
        assert!(RoomSecret::parse(b).is_err(), "{b}");
    }
    let doc = json!({
        "room": "team",
        "invite": text,
        "plain": plain.to_text().as_str(),
        "admins": key.admins(),
        "room_id": hex(&room),
        "tag": key.tag(),
        "plain_tag": RoomKey::derive("team", &plain).tag(),
        "epoch_ms": EPOCH,
        "store_seed": hex(&[2; 32]),
        "store_source": v.source,
        "creator_seed": hex(&[1; 32]),
        "cases": out,
        "stats": {
            "not_owner": s.stats().not_owner,
            "revoked": s.stats().revoked,
            "voided": s.stats().voided,
        },
        "removed": s.revoked().map(|(id, after)| json!([id, after])).collect::<Vec<_>>(),
        "snapshot": J::from(s.dump().iter().map(|(k, v)| (k.to_owned(), J::from(v.to_json()))).collect::<serde_json::Map<_, _>>()),
        "bad_invites": bad,
    });
    common::check_or_write("admins.json", &doc, true);
}

/// A durable member restores a removed member's writes and the removal in whatever
/// order its snapshot and log hold them: the writes stamped after the removal are void
/// either way (a snapshot may hold a write taken before the removal voided it, and the
/// log after the snapshot may bring it again).
#[test]
fn a_restored_removal_voids_the_removed_member_s_later_writes_in_any_order() {
    let (admin, h, r) = (member(1), member(2), member(4));
    let t0 = Instant::now();
    let admins = [&admin];
    let mut ra = Replica::new(store_with_admins(&admin, t0, &admins));
    let mut rr = Replica::new(store_with_admins(&r, t0, &admins));
    let t1 = t0 + Duration::from_millis(5);
    let early = rr.set(t0, "early", &1.0.into()).unwrap();
    let late = rr.set(t1, "late", &2.0.into()).unwrap();
    let removal = revoke(&mut ra, t1, &r, early.ts);
    let orders = [
        vec![&early, &late, &removal],
        vec![&removal, &early, &late],
        vec![&late, &removal, &late, &early],
    ];
    let mut dumps = Vec::new();
    for order in orders {
        let mut s = store_with_admins(&h, t0, &admins);
        for u in order {
            s.restore(t1, u.as_ref());
        }
        assert_eq!(s.get("late"), None);
        assert_eq!(s.get("early"), Some(1.0.into()));
        assert!(s.is_removed(r.me.peer_id()));
        assert_eq!(s.poll_event(), None, "restored, not news");
        dumps.push(s.dump());
    }
    assert!(dumps.windows(2).all(|w| w[0] == w[1]));
}

/// The admin's replica `admin` removes `who` at `now`, its writes after `after` void.
fn revoke(admin: &mut Replica, now: Instant, who: &Member, after: f64) -> Update {
    admin
        .set(
            now,
            &format!("room/revoked/{}", who.me.peer_id()),
            &Value::from_json(&format!("{{\"after\":{after}}}")).unwrap(),
        )
        .unwrap()
}
