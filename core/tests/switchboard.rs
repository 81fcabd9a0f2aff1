//! The switchboard's rules, one test each, and a proptest over random sequences.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rtc_mesh_core::switchboard::{
    Admission, CloseReason, ConnId, SwitchOutput, Switchboard, SwitchboardConfig,
};

/// A switchboard with its outputs sorted by connection.
struct Board {
    sb: Switchboard,
    now: Instant,
    inbox: BTreeMap<u64, Vec<String>>,
    closed: Vec<(u64, CloseReason)>,
    pings: Vec<u64>,
}

impl Board {
    fn new(config: SwitchboardConfig) -> Self {
        let now = Instant::now();
        Board {
            sb: Switchboard::new(config, now),
            now,
            inbox: BTreeMap::new(),
            closed: Vec::new(),
            pings: Vec::new(),
        }
    }
    fn open(&mut self, c: u64) {
        self.sb
            .handle_open(self.now, ConnId(c), Admission::ungated());
    }
    fn send(&mut self, c: u64, text: &str) {
        self.sb.handle_text(self.now, ConnId(c), text);
        self.drain();
    }
    fn close(&mut self, c: u64) {
        self.sb.handle_close(self.now, ConnId(c));
        self.drain();
    }
    fn drain(&mut self) {
        loop {
            match self.sb.poll_output() {
                SwitchOutput::Timeout(_) => return,
                SwitchOutput::Send(c, t) => self.inbox.entry(c.0).or_default().push(t.to_string()),
                SwitchOutput::Ping(c) => self.pings.push(c.0),
                SwitchOutput::Close(c, r) => self.closed.push((c.0, r)),
            }
        }
    }
    /// What `c` received since the last call.
    fn got(&mut self, c: u64) -> Vec<String> {
        self.inbox.remove(&c).unwrap_or_default()
    }
    fn announce(&mut self, c: u64, id: &str, room: &str) {
        self.send(c, &ann(id, room));
    }
}

fn ann(id: &str, room: &str) -> String {
    format!(r#"/announce|{id}|{{"id":"{id}","room":"{room}"}}"#)
}

fn config(f: impl FnOnce(&mut SwitchboardConfig)) -> SwitchboardConfig {
    let mut c = SwitchboardConfig::default();
    f(&mut c);
    c
}

fn board() -> Board {
    Board::new(SwitchboardConfig::default())
}

#[test]
fn roominfo_goes_to_the_announcer_before_the_announce_is_relayed() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    assert_eq!(b.got(1), [r#"/roominfo|{"memberCount":1}"#]);
    b.announce(2, "b", "r");
    assert_eq!(b.got(2), [r#"/roominfo|{"memberCount":2}"#]);
    assert_eq!(b.got(1), [ann("b", "r")]);
    assert_eq!(b.sb.room_members("r"), ["a", "b"]);
}

#[test]
fn directed_messages_reach_only_their_target_in_the_same_room() {
    let mut b = board();
    for c in 1..=4 {
        b.open(c);
    }
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.announce(3, "c", "r");
    b.announce(4, "d", "other");
    for c in 1..=4 {
        b.got(c);
    }
    let m = r#"/to|b|/mesh:sdp|a|{"type":"offer","sdp":"v=0"}"#;
    b.send(1, m);
    assert_eq!(b.got(2), [m]);
    assert!(b.got(3).is_empty() && b.got(4).is_empty() && b.got(1).is_empty());
    // Another room's member and an unknown id are out of reach.
    b.send(1, "/to|d|/x|a");
    b.send(1, "/to|zz|/x|a");
    assert!((1..=4).all(|c| b.got(c).is_empty()));
    assert_eq!(b.sb.counters().dropped_no_target, 2);
    assert_eq!(b.sb.counters().directed, 1);
}

#[test]
fn broadcasts_stay_in_the_room_and_skip_the_sender() {
    let mut b = board();
    for c in 1..=3 {
        b.open(c);
    }
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.announce(3, "c", "s");
    for c in 1..=3 {
        b.got(c);
    }
    b.send(2, r#"/custom|b|{"k":"v"}|plain text part"#);
    assert_eq!(b.got(1), [r#"/custom|b|{"k":"v"}|plain text part"#]);
    assert!(b.got(2).is_empty() && b.got(3).is_empty());
}

#[test]
fn nothing_is_delivered_for_a_connection_that_has_not_announced() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.got(1);
    b.send(2, r#"/hello|x|{"x":0}"#);
    b.send(2, "/to|a|/hello|x");
    assert!(b.got(1).is_empty());
    assert_eq!(b.sb.counters().dropped_unannounced, 2);
}

#[test]
fn a_sender_other_than_the_announced_id_is_dropped() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(1);
    b.got(2);
    b.send(2, "/to|a|/mesh:sdp|c|{}");
    b.send(2, "/hello|a");
    b.send(2, &ann("a", "r"));
    b.send(2, r#"/roominfo|{"memberCount":9}"#);
    assert!(b.got(1).is_empty() && b.got(2).is_empty());
    assert_eq!(b.sb.counters().dropped_spoofed, 4);
    // An announce whose attributes name another id is refused too.
    b.open(3);
    b.send(3, r#"/announce|c|{"id":"a","room":"r"}"#);
    assert!(b.got(1).is_empty() && b.got(3).is_empty());
    assert_eq!(b.sb.room_members("r"), ["a", "b"]);
}

#[test]
fn a_closed_connection_is_announced_as_left_with_reason_disconnected() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(1);
    b.close(2);
    assert_eq!(b.got(1), [r#"/leave|b|{"id":"b","reason":"disconnected"}"#]);
    b.close(1);
    assert_eq!(b.sb.counters().rooms, 0, "empty rooms are removed");
    assert_eq!(b.sb.counters().members, 0);
    assert_eq!(b.sb.counters().connections, 0);
}

#[test]
fn joining_another_room_leaves_the_first_and_it_hears_so() {
    let mut b = board();
    for c in 1..=3 {
        b.open(c);
    }
    b.announce(1, "a", "r1");
    b.announce(2, "b", "r1");
    b.announce(3, "c", "r2");
    for c in 1..=3 {
        b.got(c);
    }
    b.announce(1, "a", "r2");
    assert_eq!(b.got(2), [r#"/leave|a|{"id":"a"}"#]);
    assert_eq!(b.got(1), [r#"/roominfo|{"memberCount":2}"#]);
    assert_eq!(b.got(3), [ann("a", "r2")]);
    assert_eq!(b.sb.room_members("r1"), ["b"]);
}

#[test]
fn a_new_connection_with_the_same_id_replaces_the_old_one_silently() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(1);
    b.got(2);
    b.open(3);
    b.announce(3, "b", "r");
    assert_eq!(b.closed, [(2, CloseReason::Replaced)]);
    assert_eq!(b.got(3), [r#"/roominfo|{"memberCount":2}"#]);
    assert_eq!(b.got(1), [ann("b", "r")], "no /leave for the replaced one");
    // The old connection's close, when the runtime reports it, says nothing.
    b.close(2);
    assert!(b.got(1).is_empty());
    b.send(1, "/to|b|/x|a");
    assert_eq!(b.got(3), ["/to|b|/x|a"]);
}

#[test]
fn a_client_leave_is_relayed_and_ends_membership() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(1);
    b.send(2, r#"/leave|b|{"id":"b"}"#);
    assert_eq!(b.got(1), [r#"/leave|b|{"id":"b"}"#]);
    b.send(2, "/after-leave|b");
    assert!(b.got(1).is_empty());
    b.close(2);
    assert!(b.got(1).is_empty(), "no second leave");
}

#[test]
fn room_and_member_limits_refuse_announces() {
    let mut b = Board::new(config(|c| {
        c.max_members = 2;
        c.max_rooms = 2;
    }));
    for c in 1..=5 {
        b.open(c);
    }
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.announce(3, "c", "r");
    assert!(b.got(3).is_empty());
    assert_eq!(b.sb.counters().refused_room_full, 1);
    b.announce(3, "c", "s");
    b.announce(4, "d", "t");
    assert!(b.got(4).is_empty());
    assert_eq!(b.sb.counters().refused_rooms, 1);
    // A member's re-announce into its full room is still fine.
    b.got(1);
    b.announce(1, "a", "r");
    assert_eq!(b.got(1), [r#"/roominfo|{"memberCount":2}"#]);
}

#[test]
fn bad_frames_are_counted_and_repeated_abuse_closes() {
    let mut b = Board::new(config(|c| {
        c.max_frame = 100;
        c.max_strikes = 5.0;
    }));
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(1);
    b.sb.handle_binary(b.now, ConnId(2));
    b.send(2, "hello world");
    b.send(2, &format!("/x|b|{}", "y".repeat(200)));
    b.send(2, &format!("/x|b|{}1{}", "[".repeat(40), "]".repeat(40)));
    let c = b.sb.counters().clone();
    assert_eq!(
        (c.dropped_binary, c.dropped_malformed, c.dropped_oversize),
        (1, 2, 1)
    );
    assert!(b.closed.is_empty());
    b.send(2, "nope");
    assert_eq!(b.closed, [(2, CloseReason::Abuse)]);
    assert_eq!(b.got(1), [r#"/leave|b|{"id":"b","reason":"disconnected"}"#]);
    // Strikes are forgiven over time: one a second.
    b.now += Duration::from_secs(10);
    for _ in 0..4 {
        b.send(1, "nope");
    }
    b.now += Duration::from_secs(2);
    for _ in 0..2 {
        b.send(1, "nope");
    }
    assert_eq!(b.closed.len(), 1);
}

#[test]
fn the_token_bucket_allows_a_burst_then_the_rate() {
    let mut b = Board::new(config(|c| {
        c.rate_per_sec = 10.0;
        c.burst = 20.0;
        c.max_strikes = 1000.0;
    }));
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(2);
    for _ in 0..30 {
        b.send(1, "/x|a");
    }
    assert_eq!(b.got(2).len(), 19, "burst of 20, less the announce");
    assert_eq!(b.sb.counters().dropped_rate, 11);
    b.now += Duration::from_millis(500);
    for _ in 0..10 {
        b.send(1, "/x|a");
    }
    assert_eq!(b.got(2).len(), 5);
}

#[test]
fn idle_connections_are_pinged_and_dead_ones_closed_and_announced_left() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(1);
    let step = Duration::from_secs(1);
    for _ in 0..12 {
        b.now += step;
        // Connection 1 answers everything; 2 is silent.
        b.sb.handle_activity(b.now, ConnId(1));
        let SwitchOutput::Timeout(t) = b.sb.poll_output() else {
            panic!("drained")
        };
        if t <= b.now {
            b.sb.handle_timeout(b.now);
        }
        b.drain();
    }
    assert_eq!(b.pings, [2]);
    assert!(b.closed.is_empty());
    for _ in 0..20 {
        b.now += step;
        b.sb.handle_activity(b.now, ConnId(1));
        b.sb.handle_timeout(b.now);
        b.drain();
    }
    assert_eq!(b.closed, [(2, CloseReason::Dead)]);
    assert_eq!(b.got(1), [r#"/leave|b|{"id":"b","reason":"disconnected"}"#]);
    assert_eq!(b.sb.counters().closed_dead, 1);
}

#[derive(Clone, Debug)]
enum Op {
    Open(u8),
    Close(u8),
    Announce(u8, u8, u8),
    To(u8, u8, u8),
    Broadcast(u8, u8),
    Leave(u8, u8),
    Garbage(u8, Vec<u8>),
    Binary(u8),
    Tick(u16),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let c = 0u8..6;
    let id = 0u8..5;
    let room = 0u8..3;
    prop_oneof![
        c.clone().prop_map(Op::Open),
        c.clone().prop_map(Op::Close),
        (c.clone(), id.clone(), room).prop_map(|(c, i, r)| Op::Announce(c, i, r)),
        (c.clone(), id.clone(), id.clone()).prop_map(|(c, i, t)| Op::To(c, i, t)),
        (c.clone(), id.clone()).prop_map(|(c, i)| Op::Broadcast(c, i)),
        (c.clone(), id).prop_map(|(c, i)| Op::Leave(c, i)),
        (c.clone(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(c, b)| Op::Garbage(c, b)),
        c.prop_map(Op::Binary),
        (0u16..5000).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/switchboard.txt"),
        )),
        ..ProptestConfig::default()
    })]

    /// Random opens, closes, valid and malformed frames: nothing crosses rooms, nothing
    /// is delivered for an unannounced connection, no panic.
    #[test]
    fn nothing_crosses_rooms(ops in prop::collection::vec(arb_op(), 0..80)) {
        let mut now = Instant::now();
        let mut sb = Switchboard::new(config(|c| c.max_strikes = 8.0), now);
        // Our model: which connections are open, and the room each is in.
        let mut open: BTreeMap<u8, Option<u8>> = BTreeMap::new();
        let ids = ["a", "b", "c", "d", "e"];
        for op in ops {
            // The room of the sending connection before this op (for the check).
            let mut sender: Option<u8> = None;
            match &op {
                Op::Open(c) => {
                    if open.contains_key(c) { continue; }
                    sb.handle_open(now, ConnId(*c as u64), Admission::ungated());
                    open.insert(*c, None);
                }
                Op::Close(c) => {
                    if open.remove(c).is_none() { continue; }
                    sb.handle_close(now, ConnId(*c as u64));
                }
                Op::Announce(c, i, r) => {
                    if !open.contains_key(c) { continue; }
                    sender = Some(*c);
                    sb.handle_text(now, ConnId(*c as u64), &ann(ids[*i as usize], &format!("r{r}")));
                }
                Op::To(c, i, t) => {
                    if !open.contains_key(c) { continue; }
                    sender = Some(*c);
                    sb.handle_text(now, ConnId(*c as u64), &format!("/to|{}|/x|{}|{{}}", ids[*t as usize], ids[*i as usize]));
                }
                Op::Broadcast(c, i) => {
                    if !open.contains_key(c) { continue; }
                    sender = Some(*c);
                    sb.handle_text(now, ConnId(*c as u64), &format!("/x|{}|t", ids[*i as usize]));
                }
                Op::Leave(c, i) => {
                    if !open.contains_key(c) { continue; }
                    sender = Some(*c);
                    sb.handle_text(now, ConnId(*c as u64), &format!("/leave|{}|{{}}", ids[*i as usize]));
                }
                Op::Garbage(c, bytes) => {
                    if !open.contains_key(c) { continue; }
                    sb.handle_text(now, ConnId(*c as u64), &String::from_utf8_lossy(bytes));
                }
                Op::Binary(c) => {
                    if !open.contains_key(c) { continue; }
                    sb.handle_binary(now, ConnId(*c as u64));
                }
                Op::Tick(ms) => {
                    now += Duration::from_millis(*ms as u64 * 10);
                    sb.handle_timeout(now);
                }
            }
            // Each connection's room after the op, as the switchboard sees it.
            let room_of = |sb: &Switchboard, c: u8| -> Option<String> {
                let room = sb.conn_room(ConnId(c as u64))?;
                let id = sb.conn_id(ConnId(c as u64))?;
                assert!(sb.room_members(room).contains(&id), "member lists agree");
                Some(room.to_owned())
            };
            let sender_room_before = sender.and_then(|c| open.get(&c).copied().flatten());
            loop {
                match sb.poll_output() {
                    SwitchOutput::Timeout(_) => break,
                    SwitchOutput::Send(to, text) => {
                        let to = to.0 as u8;
                        prop_assert!(open.contains_key(&to), "sent to a closed connection");
                        let to_room = room_of(&sb, to);
                        prop_assert!(to_room.is_some() || text.starts_with("/roominfo"),
                            "delivered to an unannounced connection: {text}");
                        if !text.starts_with("/roominfo") && !text.starts_with("/leave") {
                            // A relayed message: the sender was announced, in the recipient's room.
                            let s = sender.expect("relay without a sender");
                            let s_room = room_of(&sb, s).or(sender_room_before.map(|r| format!("r{r}")));
                            prop_assert_eq!(s_room, to_room, "crossed rooms: {}", text);
                        }
                    }
                    SwitchOutput::Close(c, _) => {
                        open.remove(&(c.0 as u8));
                    }
                    SwitchOutput::Ping(_) => {}
                }
            }
            // Refresh the model's rooms.
            let keys: Vec<u8> = open.keys().copied().collect();
            for c in keys {
                let r = room_of(&sb, c).map(|r| r[1..].parse().unwrap());
                open.insert(c, r);
            }
            let counters = sb.counters();
            prop_assert_eq!(counters.connections as usize, open.len());
        }
    }
}

#[test]
fn arguments_that_only_look_like_json_are_relayed_unchanged() {
    let mut b = board();
    b.open(1);
    b.open(2);
    b.announce(1, "a", "r");
    b.announce(2, "b", "r");
    b.got(1);
    b.send(2, "/chat|b|[bot] hi|{not json");
    assert_eq!(b.got(1), ["/chat|b|[bot] hi|{not json"]);
}

#[test]
fn the_turn_password_is_coturns_rest_api_hmac() {
    // `printf %s 1700000000:alice | openssl dgst -sha1 -hmac s3cret -binary | base64`
    assert_eq!(
        rtc_mesh_core::switchboard::turn_password("s3cret", "1700000000:alice"),
        "TtElzSjT0GdnTQ9xdcRNxx96yQs="
    );
}

#[test]
fn a_turn_offer_goes_to_each_connection_once_after_its_first_announce() {
    use rtc_mesh_core::switchboard::{turn_password, TurnOffer};
    let mut config = SwitchboardConfig::default();
    let start = Instant::now();
    let mut offer = TurnOffer::new(
        vec!["turn:198.51.100.1:3478".into()],
        "s3cret".into(),
        start,
        1_700_000_000,
    );
    offer.ttl = Duration::from_secs(600);
    config.turn = Some(offer);
    let mut b = Board::new(config);
    b.now = start + Duration::from_secs(5);
    b.open(1);
    b.open(2);
    b.announce(1, "alice", "r");
    let got = b.got(1);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("/roominfo|"), "{got:?}");
    let user = "1700000605:alice";
    let expected = format!(
        r#"/mesh:ice|{{"iceServers":[{{"urls":["turn:198.51.100.1:3478"],"username":"{user}","credential":"{}"}}],"ttl":600}}"#,
        turn_password("s3cret", user)
    );
    assert_eq!(got[1], expected);
    // Not relayed to the room, and not again on a re-announce.
    b.announce(2, "bob", "r");
    assert!(b.got(1).iter().all(|t| !t.contains("mesh:ice")));
    assert_eq!(
        b.got(2).iter().filter(|t| t.contains("mesh:ice")).count(),
        1
    );
    b.announce(1, "alice", "r");
    assert!(b.got(1).iter().all(|t| !t.contains("mesh:ice")));
}

#[test]
fn without_a_turn_offer_nothing_changes() {
    let mut b = Board::new(SwitchboardConfig::default());
    b.open(1);
    b.announce(1, "alice", "r");
    let got = b.got(1);
    assert_eq!(got.len(), 1, "{got:?}");
}

mod gate {
    use std::net::IpAddr;

    use super::*;
    use rtc_mesh_core::security::token::{Claims, TokenError, TokenKey};
    use rtc_mesh_core::security::{signing, Identity};
    use rtc_mesh_core::switchboard::{Refusal, TokenGate};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    impl Board {
        fn admit(&mut self, from: &str, token: Option<&str>) -> Result<Admission, Refusal> {
            self.sb.admit(self.now, ip(from), token)
        }
    }

    #[test]
    fn one_address_gets_so_many_connections_and_loopback_is_exempt() {
        let mut b = Board::new(config(|c| c.max_per_ip = 3));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(b.admit("10.0.0.1", None).unwrap());
        }
        let r = b.admit("10.0.0.1", None).unwrap_err();
        assert_eq!(r, Refusal::TooMany(ip("10.0.0.1")));
        assert_eq!(r.status(), "429 Too Many Requests");
        // Others are not affected; loopback is not limited.
        let other = b.admit("10.0.0.2", None).unwrap();
        for _ in 0..10 {
            let a = b.admit("127.0.0.1", None).unwrap();
            b.sb.release(a);
            let _ = b.admit("::1", None).unwrap();
        }
        // A released admission and a closed connection give their place back.
        b.sb.release(held.pop().unwrap());
        let a = b.admit("10.0.0.1", None).unwrap();
        b.sb.handle_open(b.now, ConnId(1), a);
        assert!(b.admit("10.0.0.1", None).is_err());
        b.close(1);
        let a = b.admit("10.0.0.1", None).unwrap();
        b.sb.handle_open(b.now, ConnId(2), a);
        // A replaced connection too.
        b.sb.handle_open(b.now, ConnId(3), other);
        b.announce(2, "a", "r");
        b.announce(3, "a", "r");
        assert_eq!(b.closed, [(2, CloseReason::Replaced)]);
        let _ = b.admit("10.0.0.1", None).unwrap();
        assert_eq!(b.sb.counters().refused_per_ip, 2);
        let mut strict = Board::new(config(|c| {
            c.max_per_ip = 1;
            c.limit_loopback = true;
        }));
        let _ = strict.admit("127.0.0.1", None).unwrap();
        assert!(strict.admit("127.0.0.1", None).is_err());
        // The same address through a dual-stack socket.
        assert!(strict.admit("::ffff:127.0.0.1", None).is_err());
    }

    #[test]
    fn tokens_admit_their_room_only() {
        let key = TokenKey::new(&[9; 32]).unwrap();
        let gate = TokenGate::new(key.clone(), Instant::now(), 1_000);
        let mut b = Board::new(config(|c| c.tokens = Some(gate)));
        let token = |room: &str, exp| {
            key.issue(&Claims {
                room: room.into(),
                exp,
            })
        };
        assert_eq!(b.admit("10.0.0.1", None), Err(Refusal::NoToken));
        assert_eq!(
            b.admit("10.0.0.1", Some(&token("r", 1_000))),
            Err(Refusal::Token(TokenError::Expired))
        );
        let other = TokenKey::new(&[8; 32]).unwrap().issue(&Claims {
            room: "r".into(),
            exp: 2_000,
        });
        assert_eq!(
            b.admit("10.0.0.1", Some(&other)),
            Err(Refusal::Token(TokenError::Signature))
        );
        assert_eq!(
            b.admit(
                "10.0.0.1",
                Some("eyJhbGciOiJub25lIn0.eyJyb29tIjoiciIsImV4cCI6MjAwMH0.")
            ),
            Err(Refusal::Token(TokenError::Algorithm("none".into())))
        );
        assert_eq!(Refusal::NoToken.status(), "401 Unauthorized");
        assert_eq!(b.sb.counters().refused_token, 4);
        let a = b.admit("10.0.0.1", Some(&token("r", 2_000))).unwrap();
        b.sb.handle_open(b.now, ConnId(1), a);
        b.announce(1, "a", "elsewhere");
        assert_eq!(b.got(1), [r#"/mesh:refused|{"reason":"token_room"}"#]);
        assert!(b.sb.room_members("elsewhere").is_empty());
        b.announce(1, "a", "r");
        assert_eq!(b.got(1), [r#"/roominfo|{"memberCount":1}"#]);
        // A connection no gate saw is refused at the announce.
        b.open(2);
        b.announce(2, "b", "r");
        assert_eq!(b.got(2), [r#"/mesh:refused|{"reason":"token_required"}"#]);
        assert_eq!(b.sb.counters().refused_token_room, 2);
        assert_eq!(b.sb.room_members("r"), ["a"]);
    }

    /// A secured member's announce into `room` at `ts`, signed by `by`.
    fn signed(id: &str, room: &str, ts: u64, by: &Identity) -> String {
        let sig = by.sign_text(&signing::announce(room, id, ts, "SEALED"));
        format!(
            r#"/announce|{id}|{{"id":"{id}","room":"{room}","sec":1,"ts":{ts},"sig":"{sig}","v":1,"sealed":"SEALED"}}"#
        )
    }

    #[test]
    fn a_key_form_id_needs_its_holders_proof_and_a_later_one_to_replace() {
        let me = Identity::from_seed(&[1; 32]);
        let thief = Identity::from_seed(&[2; 32]);
        let id = me.peer_id().to_owned();
        let mut b = board();
        for c in 1..=6 {
            b.open(c);
        }
        b.announce(5, "watcher", "t");
        b.send(1, &signed(&id, "t", 10, &me));
        assert_eq!(b.got(1), [r#"/roominfo|{"memberCount":2}"#]);
        b.got(5);
        // The id without a proof, with another key's, for another room, or an older
        // or equal timestamp (a replay): refused, the member keeps its connection.
        let refused = r#"/mesh:refused|{"reason":"unproven"}"#;
        for text in [
            ann(&id, "t"),
            signed(&id, "t", 11, &thief),
            signed(&id, "other", 11, &me).replace("\"other\"", "\"t\""),
            signed(&id, "t", 10, &me),
            signed(&id, "t", 9, &me),
            signed(&id, "t", 11, &me).replace(r#""ts":11"#, r#""ts":11.5"#),
        ] {
            b.send(2, &text);
            assert_eq!(b.got(2), [refused], "{text}");
        }
        assert_eq!(b.sb.counters().refused_unproven, 6);
        assert!(b.closed.is_empty());
        assert!(b.got(5).is_empty(), "no impostor announce relayed");
        assert_eq!(b.sb.conn_id(ConnId(1)), Some(id.as_str()));
        // The member itself, reconnecting with a later announce, replaces its old
        // connection; and may re-announce on it.
        b.send(3, &signed(&id, "t", 11, &me));
        assert_eq!(b.closed, [(1, CloseReason::Replaced)]);
        b.send(3, &signed(&id, "t", 12, &me));
        assert_eq!(b.got(3).len(), 2);
        b.send(3, &signed(&id, "t", 12, &me));
        assert_eq!(b.got(3), [refused]);
        // Ids of other forms are as before; a 43-character id that is no key is
        // nobody's and cannot be proven.
        b.announce(4, "plain-id", "t");
        assert_eq!(b.got(4), [r#"/roominfo|{"memberCount":3}"#]);
        b.announce(6, &"A".repeat(43), "t");
        assert_eq!(b.got(6), [refused]);
    }
}
