//! The switchboard fed a random history of connections and frames: never panics,
//! sends only to open connections, relays only to announced members, and its
//! connection count matches ours.
#![no_main]
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::switchboard::{ConnId, SwitchOutput, Switchboard, SwitchboardConfig};

fuzz_target!(|data: &[u8]| {
    let mut config = SwitchboardConfig::default();
    config.max_strikes = 6.0;
    config.max_members = 4;
    config.max_rooms = 3;
    let mut sb = Switchboard::new(config);
    let mut now = Instant::now();
    let mut open = BTreeSet::new();
    let ids = ["a", "b", "c", "d", "e"];
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let c = (op >> 4) as u64 % 6;
        let arg = bytes.next().unwrap_or(0);
        let id = ids[arg as usize % ids.len()];
        let other = ids[(arg >> 3) as usize % ids.len()];
        let room = format!("r{}", (arg >> 6) % 4);
        let text = match op & 0x0f {
            0 => {
                if open.insert(c) {
                    sb.open(ConnId(c), now);
                }
                None
            }
            1 => {
                if open.remove(&c) {
                    sb.close(ConnId(c), now);
                }
                None
            }
            2 => Some(format!(r#"/announce|{id}|{{"id":"{id}","room":"{room}"}}"#)),
            3 => Some(format!("/to|{other}|/x|{id}|{{\"k\":{arg}}}")),
            4 => Some(format!("/x|{id}|t")),
            5 => Some(format!(r#"/leave|{id}|{{"id":"{id}"}}"#)),
            6 => {
                if open.contains(&c) {
                    sb.binary(ConnId(c), now);
                }
                None
            }
            7 => {
                now += Duration::from_millis(arg as u64 * 200);
                sb.handle_timeout(now);
                None
            }
            _ => {
                // Raw bytes: the next `arg % 32` bytes as text.
                let raw: Vec<u8> = bytes.by_ref().take(arg as usize % 32).collect();
                Some(String::from_utf8_lossy(&raw).into_owned())
            }
        };
        if let Some(t) = text {
            if open.contains(&c) {
                sb.text(ConnId(c), now, &t);
            }
        }
        while let Some(o) = sb.poll_output() {
            match o {
                SwitchOutput::Send(to, text) => {
                    assert!(open.contains(&to.0), "sent to a closed connection");
                    assert!(
                        sb.conn_room(to).is_some() || text.starts_with("/roominfo"),
                        "delivered to an unannounced connection: {text}"
                    );
                }
                SwitchOutput::Close(to, _) => {
                    open.remove(&to.0);
                }
                SwitchOutput::Ping(to) => assert!(open.contains(&to.0)),
            }
        }
        assert_eq!(sb.counters().connections as usize, open.len());
    }
});
