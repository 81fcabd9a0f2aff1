//! The switchboard driven as a runtime drives it, by a random history of connections,
//! frames and time. It never panics, and after every step:
//!
//! - it sends, pings and closes only connections it holds (open, not closed by it);
//! - every text goes to a member of a room, except `/roominfo`, which goes to the
//!   announcer with its room's member count;
//! - a client's text is relayed verbatim, never back to its sender, only within the
//!   sender's room (before or after the message), a `/to` to its target only; any
//!   other text is a `/leave` of a connection that was in the recipient's room;
//! - pings and dead closes follow the idle times we track; an abuse close is of the
//!   sender, a replacement of a connection with the announcer's id and room;
//! - the counters (connections, members, rooms, frames out, closes) match what we saw.
//!
//! Input: one configuration byte, then operations of two bytes, `op` and `arg`:
//! `op >> 4` picks one of [`SLOTS`] connection slots, `op & 0x0f` the operation
//! (the `OPEN`.. constants; `RAW` and above send the next `arg` bytes as text).
//! `src/bin/make-seeds.rs` writes seeds in this format.
#![no_main]
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::signal::{Part, Signal, SignalLimits};
use rtc_mesh_core::switchboard::{
    Admission,
    CloseReason, ConnId, SwitchOutput, Switchboard, SwitchboardConfig,
};
use rtc_mesh_core::Value;

const SLOTS: usize = 6;
const IDS: [&str; 5] = ["peerA", "peerB", "c", "d.1", "e~"];
const ROOMS: [&str; 4] = ["r6", "r1", "r2", "x|y"];
const DIRECTED: [&str; 4] = ["mesh:sdp", "mesh:candidates", "announce", "hello"];
const BROADCAST_CMDS: [&str; 4] = ["hello", "custom", "ping", "mesh:ping"];

const OPEN: u8 = 0;
const CLOSE: u8 = 1;
const ANNOUNCE: u8 = 2;
const TO: u8 = 3;
const BROADCAST: u8 = 4;
const LEAVE: u8 = 5;
const BINARY: u8 = 6;
const ACTIVITY: u8 = 7;
/// Time passes by `arg` × 100 ms, then one `handle_timeout` (a late runtime).
const SLEEP: u8 = 8;
/// Time passes by `arg` × 100 ms, with `handle_timeout` at every `Timeout` instant.
const TICK: u8 = 9;
/// A `/roominfo`, which only the server may send.
const ROOMINFO: u8 = 10;
const RAW: u8 = 11;

/// A connection as the runtime sees it.
struct Conn {
    id: ConnId,
    /// The switchboard holds it (has not closed it).
    live: bool,
    last_seen: Instant,
    pinged: bool,
}

struct Harness {
    sb: Switchboard,
    now: Instant,
    /// The instant of the last drain's `Timeout`.
    next: Instant,
    slots: [Option<Conn>; SLOTS],
    next_conn: u64,
    sends: u64,
    closes: u64,
}

/// What the switchboard knew of each connection before an operation.
type Before = BTreeMap<ConnId, (Option<String>, Option<String>)>;

impl Harness {
    fn conn(&mut self, c: ConnId) -> Option<&mut Conn> {
        self.slots.iter_mut().flatten().find(|x| x.id == c)
    }

    fn live(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().flatten().filter(|c| c.live)
    }

    fn room(&self, c: ConnId) -> Option<String> {
        self.sb.conn_room(c).map(str::to_owned)
    }

    fn before(&self) -> Before {
        self.live()
            .map(|c| {
                let id = self.sb.conn_id(c.id).map(str::to_owned);
                (c.id, (id, self.room(c.id)))
            })
            .collect()
    }

    fn touch(&mut self, c: ConnId) {
        let now = self.now;
        if let Some(x) = self.conn(c).filter(|x| x.live) {
            x.last_seen = now;
            x.pinged = false;
        }
    }

    /// Drains the outputs of one operation by `sender` (with the text it sent) and
    /// checks them and the state after it.
    fn drain(&mut self, before: &Before, sender: Option<ConnId>, input: Option<&str>) {
        let config = self.sb.config().clone();
        let directed = input
            .and_then(|t| Signal::parse(t, &SignalLimits::default()).ok())
            .and_then(|s| s.to);
        let sender_rooms = sender.map(|s| {
            let b = before.get(&s).and_then(|b| b.1.clone());
            (b, self.room(s))
        });
        let mut relays_directed = 0;
        loop {
            match self.sb.poll_output() {
                SwitchOutput::Timeout(t) => {
                    self.next = t;
                    break;
                }
                SwitchOutput::Send(to, text) => {
                    self.sends += 1;
                    assert!(
                        self.conn(to).is_some_and(|c| c.live),
                        "sent to {to:?}, which is not open: {text}"
                    );
                    let to_room = self.room(to);
                    let roominfo = text.starts_with("/roominfo|");
                    assert!(
                        to_room.is_some() || roominfo,
                        "sent to {to:?}, which is in no room: {text}"
                    );
                    if input == Some(&*text) {
                        let (b, a) = sender_rooms.clone().expect("a relay has a sender");
                        assert_ne!(Some(to), sender, "echoed to its sender: {text}");
                        assert!(
                            to_room == b || to_room == a,
                            "relayed out of the sender's room ({b:?}, {a:?}) to {to_room:?}: {text}"
                        );
                        if let Some(target) = &directed {
                            relays_directed += 1;
                            assert_eq!(
                                self.sb.conn_id(to),
                                Some(target.as_str()),
                                "{text} sent to another"
                            );
                        }
                    } else if roominfo {
                        assert_eq!(Some(to), sender, "roominfo to another: {text}");
                        let s = Signal::parse(&text, &SignalLimits::default()).expect("parses");
                        let n = s.object().and_then(|o| o.get("memberCount")).cloned();
                        let room = to_room.clone().expect("an announcer has a room");
                        let members = self.sb.room_members(&room).len();
                        assert_eq!(n, Some(Value::from(members as f64)), "{text}");
                    } else {
                        let s = Signal::parse(&text, &SignalLimits::default())
                            .unwrap_or_else(|e| panic!("we sent a bad message {text:?}: {e}"));
                        assert_eq!(s.command, "leave", "unexpected message {text}");
                        let id = s.sender.clone().expect("a leave has a sender");
                        let body = s.object().expect("a leave has a body");
                        assert_eq!(body.get("id"), Some(&Value::from(id.as_str())));
                        assert!(s.args.len() == 1 && matches!(s.args[0], Part::Json(_)));
                        let left = before.iter().any(|(&c, (cid, croom))| {
                            c != to && cid.as_deref() == Some(&id) && *croom == to_room
                        });
                        assert!(left, "leave of {id}, which was not in {to_room:?}: {text}");
                    }
                }
                SwitchOutput::Ping(to) => {
                    let now = self.now;
                    let c = self.conn(to).expect("pinged an unknown connection");
                    assert!(c.live, "pinged {to:?}, which is closed");
                    assert!(!c.pinged, "pinged {to:?} twice");
                    assert!(now - c.last_seen >= config.ping_after);
                    c.pinged = true;
                }
                SwitchOutput::Close(to, reason) => {
                    self.closes += 1;
                    let now = self.now;
                    let c = self.conn(to).expect("closed an unknown connection");
                    assert!(c.live, "closed {to:?} twice");
                    c.live = false;
                    let idle = now - c.last_seen;
                    match reason {
                        CloseReason::Dead => assert!(idle >= config.dead_after),
                        CloseReason::Abuse => assert_eq!(Some(to), sender),
                        CloseReason::Replaced => {
                            let s = sender.expect("replaced by an announce");
                            assert_ne!(s, to);
                            let (id, room) = before.get(&to).cloned().unwrap_or_default();
                            assert!(id.is_some() && room.is_some());
                            assert_eq!(id.as_deref(), self.sb.conn_id(s), "replaced by another id");
                            assert_eq!(room, self.room(s), "replaced from another room");
                        }
                    }
                }
            }
        }
        assert!(
            relays_directed <= 1,
            "a /to delivered {relays_directed} times"
        );
        self.check();
    }

    fn check(&self) {
        let counters = self.sb.counters();
        let config = self.sb.config();
        let live: Vec<&Conn> = self.live().collect();
        assert_eq!(counters.connections as usize, live.len(), "connections");
        assert_eq!(counters.frames_out, self.sends, "frames_out");
        assert_eq!(
            counters.closed_abuse + counters.closed_dead + counters.replaced,
            self.closes,
            "closes"
        );
        if !live.is_empty() {
            // A sweep is due (not the idle wake-up of a switchboard with nothing to do).
            assert!(
                self.next < self.now + Duration::from_secs(3000),
                "open connections, no timer"
            );
        }
        let mut rooms = BTreeSet::new();
        for c in &live {
            if let Some(room) = self.sb.conn_room(c.id) {
                let id = self.sb.conn_id(c.id).expect("a member has an id");
                assert!(
                    self.sb.room_members(room).contains(&id),
                    "{id} not in {room}"
                );
                rooms.insert(room);
            }
        }
        assert_eq!(
            counters.members as usize,
            live.iter()
                .filter(|c| self.sb.conn_room(c.id).is_some())
                .count(),
            "members"
        );
        assert_eq!(counters.rooms as usize, rooms.len(), "rooms");
        assert!(rooms.len() <= config.max_rooms);
        for r in rooms {
            assert!(self.sb.room_members(r).len() <= config.max_members);
        }
    }

    /// After a sweep at `now`: no connection is past its dead time, and every one past
    /// its ping time has been pinged.
    fn check_swept(&self) {
        let config = self.sb.config();
        for c in self.live() {
            let idle = self.now - c.last_seen;
            assert!(
                idle < config.dead_after,
                "{:?} idle {idle:?} and open",
                c.id
            );
            assert!(
                idle < config.ping_after || c.pinged,
                "{:?} idle {idle:?}, not pinged",
                c.id
            );
        }
    }

    fn sweep(&mut self) {
        let before = self.before();
        let due = self.next <= self.now;
        self.sb.handle_timeout(self.now);
        self.drain(&before, None, None);
        if due {
            self.check_swept();
        }
    }
}

/// A text built from the tables: mostly valid, sometimes spoofed or malformed.
fn message(kind: u8, arg: u8, me: &str) -> String {
    let who = if arg & 0x80 != 0 {
        IDS[arg as usize % IDS.len()]
    } else {
        me
    };
    let a = (arg & 0x7f) as usize;
    let other = IDS[a % IDS.len()];
    match kind {
        ANNOUNCE => {
            let room = ROOMS[a % ROOMS.len()];
            match (a / ROOMS.len()) % 12 {
                0..=4 => format!(r#"/announce|{who}|{{"id":"{who}","room":"{room}"}}"#),
                5 => format!(
                    r#"/announce|{who}|{{"browser":"node","browserVersion":"20.20.2","agent":"signaller@6.3.0","id":"{who}","room":"{room}"}}"#
                ),
                6 => format!(r#"/announce|{who}|{{"id":"{other}","room":"{room}"}}"#),
                7 => format!(r#"/announce|{who}|{{"id":"{who}"}}"#),
                8 => format!(r#"/announce|{who}|{{"id":"{who}","room":7}}"#),
                9 => format!(r#"/announce|{who}|{{"id":"{who}","room":""}}"#),
                10 => format!(r#"/announce|{who}|{{"agent":"a|b","id":"{who}","room":"{room}"}}"#),
                _ => format!(r#"/to|{other}|/announce|{who}|{{"id":"{who}","room":"{room}"}}"#),
            }
        }
        TO => {
            let cmd = DIRECTED[(a / IDS.len()) % DIRECTED.len()];
            match (a / 20) % 3 {
                0 => format!(
                    r#"/to|{other}|/{cmd}|{who}|{{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}}"#
                ),
                1 => format!(r#"/to|{other}|/{cmd}|{who}|{{"x":1}}|text"#),
                _ => {
                    format!(r#"/to|{other}|/{cmd}|{who}|[{{"candidate":"a|b","sdpMLineIndex":0}}]"#)
                }
            }
        }
        BROADCAST => {
            let cmd = BROADCAST_CMDS[a % BROADCAST_CMDS.len()];
            match (a / BROADCAST_CMDS.len()) % 4 {
                0 => format!(r#"/{cmd}|{who}|{{"y":2}}"#),
                1 => format!("/{cmd}|{who}"),
                2 => format!(r#"/{cmd}|{who}|{{"k":"v"}}|plain text part"#),
                _ => format!("/{cmd}"),
            }
        }
        LEAVE => format!(r#"/leave|{who}|{{"id":"{who}"}}"#),
        _ => {
            debug_assert_eq!(kind, ROOMINFO);
            format!(r#"/roominfo|{{"memberCount":{a}}}"#)
        }
    }
}

fn config(b: u8) -> SwitchboardConfig {
    let mut config = SwitchboardConfig::default();
    if b & 1 != 0 {
        config.max_members = 1 + (b >> 1) as usize % 4;
        config.max_rooms = 1 + (b >> 3) as usize % 3;
    }
    if b & 0x20 != 0 {
        config.max_strikes = 4.0;
        config.burst = 6.0;
        config.rate_per_sec = 5.0;
    }
    if b & 0x40 != 0 {
        config.max_frame = 120;
    }
    config
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, ops)) = data.split_first() else {
        return;
    };
    let start = Instant::now();
    let mut h = Harness {
        sb: Switchboard::new(config(cfg), start),
        now: start,
        next: start + Duration::from_secs(3600),
        slots: Default::default(),
        next_conn: 0,
        sends: 0,
        closes: 0,
    };
    let mut bytes = ops.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        let slot = (op >> 4) as usize % SLOTS;
        let kind = op & 0x0f;
        let step = Duration::from_millis(arg as u64 * 100);
        if kind == SLEEP {
            h.now += step;
            h.sweep();
            continue;
        }
        if kind == TICK {
            let end = h.now + step;
            while h.next <= end {
                h.now = h.now.max(h.next);
                h.sweep();
            }
            h.now = end;
            continue;
        }
        let before = h.before();
        let Some(c) = h.slots[slot].as_ref().map(|c| c.id) else {
            if kind == OPEN {
                let id = ConnId(h.next_conn);
                h.next_conn += 1;
                h.sb.handle_open(h.now, id, Admission::ungated());
                h.slots[slot] = Some(Conn {
                    id,
                    live: true,
                    last_seen: h.now,
                    pinged: false,
                });
                h.drain(&before, Some(id), None);
            }
            continue;
        };
        let text = match kind {
            OPEN => None,
            CLOSE => {
                // The runtime reports the end of the socket, also of one the
                // switchboard closed itself.
                h.sb.handle_close(h.now, c);
                h.slots[slot] = None;
                h.drain(&before, Some(c), None);
                None
            }
            BINARY => {
                h.sb.handle_binary(h.now, c);
                h.touch(c);
                h.drain(&before, Some(c), None);
                None
            }
            ACTIVITY => {
                h.sb.handle_activity(h.now, c);
                h.touch(c);
                h.drain(&before, Some(c), None);
                None
            }
            RAW..=u8::MAX => {
                let raw: Vec<u8> = bytes.by_ref().take(arg as usize).collect();
                Some(String::from_utf8_lossy(&raw).into_owned())
            }
            _ => {
                let me = h.sb.conn_id(c).unwrap_or(IDS[slot % IDS.len()]).to_owned();
                Some(message(kind, arg, &me))
            }
        };
        if let Some(t) = text {
            h.sb.handle_text(h.now, c, &t);
            h.touch(c);
            h.drain(&before, Some(c), Some(&t));
        }
    }
});
