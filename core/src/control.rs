//! The link control lines: the strings peers say to each other on a sync link besides
//! updates, with one encoder ([`Control::encode`]) and one decoder
//! ([`Control::decode`]) for all of them.
//!
//! On a `json` link each is a JSON string after the digest (scuttlebutt ignores strings
//! other than `"SYNC"`); on a `postcard` link `SYNC`, `PING` and `PONG` have records of
//! their own and the rest travel as control strings. The lines:
//!
//! | line | meaning |
//! |---|---|
//! | `SYNC` | the history is sent (scuttlebutt's own marker) |
//! | `PING`, `PONG` | liveness and round trip; a `PING` is answered by a `PONG` |
//! | `BYE` | the sender is leaving the room: drop the link now |
//! | `CLOCK {"<source>":<ts>,..}` | what the sender has now: send what it lacks |
//! | `LINKS [..]`, `LINKS+ [..]`, `LINKS- [..]` | the writers the sender hears directly: all, gained, lost |
//! | `SUMS {"<source>":[ts,count,"<sum>"],..}` | secured rooms, once synced: per source, what the sender holds of it (see [`SourceSum`]) |
//! | `WANT ["<key>",..]` | secured rooms: a removal voided these keys here; send what you hold of them |
//!
//! ```
//! use rtc_mesh_core::control::{Control, LinksChange};
//! use rtc_mesh_core::Limits;
//!
//! let line = Control::Links(LinksChange::Gained, vec!["a.1".into()]).encode();
//! assert_eq!(line, r#"LINKS+ ["a.1"]"#);
//! assert_eq!(Control::decode(&line, &Limits::default()), Ok(Control::Links(LinksChange::Gained, vec!["a.1".into()])));
//! assert_eq!(Control::decode("hello", &Limits::default()), Ok(Control::Other("hello".into())));
//! ```

use std::borrow::Cow;

use crate::limits::Limits;
use crate::value::{write_json, Object, Value};

/// Which writers a `LINKS` line reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinksChange {
    /// `LINKS`: every writer the sender hears directly.
    All,
    /// `LINKS+`: writers it now hears directly too.
    Gained,
    /// `LINKS-`: writers it no longer hears directly.
    Lost,
}

impl LinksChange {
    fn prefix(self) -> &'static str {
        match self {
            LinksChange::All => "LINKS ",
            LinksChange::Gained => "LINKS+ ",
            LinksChange::Lost => "LINKS- ",
        }
    }
}

/// Lanes of a [`SourceSum`]: a signature's 64 bytes as 16 little-endian `u32`s.
pub const SUM_LANES: usize = 16;

/// What a replica holds of one source, for `SUMS`: its clock, how many keys the
/// source's writes hold, and the lane-wise sums (mod 2^32) of those writes'
/// signatures.
///
/// Per-source clocks trust a writer's updates to arrive in order; a relay can break
/// that in a secured room by delivering a writer's later update first, and where the
/// earlier ones had not arrived yet the clock then says they have (and a write a removal
/// voided leaves the clock of the write it had overwritten). A replica whose sums of a
/// source differ from the remote's, while the remote's clock covers every write of it
/// the replica holds and its own clock covers the remote's, sends the remote every write
/// of that source it holds (see `Session`), and late writes land when they win their key.
/// The sums are of signatures, which no one but the writer can choose: a relay that
/// picks which of a writer's updates to withhold cannot make two different sets sum
/// alike.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSum {
    /// The source id.
    pub source: String,
    /// Its clock at the sender.
    pub ts: f64,
    /// Keys whose winning write is this source's (deletes included).
    pub count: u64,
    /// Lane-wise sums of those writes' signatures.
    pub lanes: [u32; SUM_LANES],
}

impl SourceSum {
    /// The sums as one 64-byte string, base64url (86 characters).
    fn lanes_text(&self) -> String {
        let bytes: Vec<u8> = self.lanes.iter().flat_map(|l| l.to_le_bytes()).collect();
        crate::security::b64url(&bytes)
    }

    fn parse_lanes(text: &str) -> Option<[u32; SUM_LANES]> {
        let bytes = crate::security::from_b64url(text).filter(|b| b.len() == SUM_LANES * 4)?;
        let mut lanes = [0u32; SUM_LANES];
        for (lane, word) in lanes.iter_mut().zip(bytes.chunks_exact(4)) {
            *lane = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        Some(lanes)
    }
}

/// A link control line.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// `SYNC`.
    Sync,
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `BYE`.
    Bye,
    /// `CLOCK {..}`: per source, the latest timestamp the sender has (entries that are
    /// not numbers are left out).
    Clock(Vec<(String, f64)>),
    /// `LINKS`, `LINKS+`, `LINKS-` and the writers' source ids (entries that are not
    /// strings are left out).
    Links(LinksChange, Vec<String>),
    /// `SUMS {..}`: what the sender holds per source (entries that are not
    /// `[ts, count, "<86 base64url>"]` are left out).
    Sums(Vec<SourceSum>),
    /// `WANT [..]`: keys the sender lacks (entries that are not strings are left out).
    Want(Vec<String>),
    /// Any other string: passed on to the user, never an error.
    Other(String),
}

/// A control line of a known kind whose payload is not what the kind takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad {kind} control line: {why}")]
pub struct ControlError {
    /// `CLOCK`, `LINKS`, `SUMS` or `WANT`.
    pub kind: &'static str,
    /// What was wrong.
    pub why: String,
}

/// A control line's JSON object, read within `limits`.
fn object_payload(kind: &'static str, json: &str, limits: &Limits) -> Result<Object, ControlError> {
    match Value::from_json_with(json.as_bytes(), limits) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ControlError {
            kind,
            why: "not an object".into(),
        }),
        Err(e) => Err(ControlError {
            kind,
            why: e.to_string(),
        }),
    }
}

/// A control line's JSON array of strings, read within `limits` (items that are not
/// strings are left out).
fn strings_payload(
    kind: &'static str,
    json: &str,
    limits: &Limits,
) -> Result<Vec<String>, ControlError> {
    match Value::from_json_with(json.as_bytes(), limits) {
        Ok(Value::Array(items)) => Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.to_string()),
                _ => None,
            })
            .collect()),
        Ok(_) => Err(ControlError {
            kind,
            why: "not an array".into(),
        }),
        Err(e) => Err(ControlError {
            kind,
            why: e.to_string(),
        }),
    }
}

impl Control {
    /// Decodes a control line; the payloads are JSON read within `limits`.
    pub fn decode(text: &str, limits: &Limits) -> Result<Control, ControlError> {
        match text {
            "SYNC" => return Ok(Control::Sync),
            "PING" => return Ok(Control::Ping),
            "PONG" => return Ok(Control::Pong),
            "BYE" => return Ok(Control::Bye),
            _ => {}
        }
        if let Some(json) = text.strip_prefix("CLOCK ") {
            let o = object_payload("CLOCK", json, limits)?;
            return Ok(Control::Clock(
                o.iter()
                    .filter_map(|(s, t)| match t {
                        Value::Number(t) => Some((s.to_owned(), *t)),
                        _ => None,
                    })
                    .collect(),
            ));
        }
        if let Some(json) = text.strip_prefix("SUMS ") {
            let o = object_payload("SUMS", json, limits)?;
            return Ok(Control::Sums(
                o.iter()
                    .filter_map(|(s, v)| match v {
                        Value::Array(a) => match a.as_slice() {
                            [Value::Number(ts), Value::Number(count), Value::String(sum)]
                                if *count >= 0.0 && count.fract() == 0.0 =>
                            {
                                Some(SourceSum {
                                    source: s.to_owned(),
                                    ts: *ts,
                                    count: *count as u64,
                                    lanes: SourceSum::parse_lanes(sum)?,
                                })
                            }
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
            ));
        }
        if let Some(json) = text.strip_prefix("WANT ") {
            return Ok(Control::Want(strings_payload("WANT", json, limits)?));
        }
        for change in [LinksChange::All, LinksChange::Gained, LinksChange::Lost] {
            if let Some(json) = text.strip_prefix(change.prefix()) {
                let items = strings_payload("LINKS", json, limits)?;
                return Ok(Control::Links(change, items));
            }
        }
        Ok(Control::Other(text.to_owned()))
    }

    /// The line's text (borrowed for the fixed lines: `PING` and `PONG` go out every
    /// second on every link).
    pub fn encode(&self) -> Cow<'static, str> {
        match self {
            Control::Sync => "SYNC".into(),
            Control::Ping => "PING".into(),
            Control::Pong => "PONG".into(),
            Control::Bye => "BYE".into(),
            Control::Clock(entries) => {
                let mut o = Object::new();
                for (s, t) in entries {
                    o.insert(s, Value::Number(*t));
                }
                let mut text = String::from("CLOCK ");
                write_json(&Value::Object(o), &mut text, false);
                text.into()
            }
            Control::Links(change, ids) => {
                let mut text = String::from(change.prefix());
                let v = Value::Array(ids.iter().map(|i| Value::from(i.as_str())).collect());
                write_json(&v, &mut text, false);
                text.into()
            }
            Control::Sums(sums) => {
                let mut o = Object::new();
                for sum in sums {
                    let entry = vec![
                        Value::Number(sum.ts),
                        Value::Number(sum.count as f64),
                        Value::from(sum.lanes_text().as_str()),
                    ];
                    o.insert(&sum.source, Value::Array(entry));
                }
                let mut text = String::from("SUMS ");
                write_json(&Value::Object(o), &mut text, false);
                text.into()
            }
            Control::Want(keys) => {
                let mut text = String::from("WANT ");
                let v = Value::Array(keys.iter().map(|k| Value::from(k.as_str())).collect());
                write_json(&v, &mut text, false);
                text.into()
            }
            Control::Other(text) => text.clone().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_round_trips() {
        let limits = Limits::default();
        for c in [
            Control::Sync,
            Control::Ping,
            Control::Pong,
            Control::Bye,
            Control::Clock(vec![("a.1".into(), 1_795_713_876_272.5), ("b".into(), 2.0)]),
            Control::Clock(Vec::new()),
            Control::Links(LinksChange::All, vec!["a".into(), "b|c".into()]),
            Control::Links(LinksChange::Lost, Vec::new()),
            Control::Sums(vec![SourceSum {
                source: "a.1".into(),
                ts: 1_795_713_876_272.5,
                count: 3,
                lanes: [7, u32::MAX, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
            }]),
            Control::Sums(Vec::new()),
            Control::Want(vec!["k".into(), "users/a/b".into()]),
            Control::Other("hello".into()),
        ] {
            assert_eq!(
                Control::decode(&c.encode(), &limits),
                Ok(c.clone()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn bad_payloads_are_errors_and_odd_entries_are_left_out() {
        let limits = Limits::default();
        assert_eq!(
            Control::decode(r#"CLOCK {"a":1,"b":"x"}"#, &limits),
            Ok(Control::Clock(vec![("a".into(), 1.0)]))
        );
        assert_eq!(
            Control::decode(r#"LINKS- ["a",1,null]"#, &limits),
            Ok(Control::Links(LinksChange::Lost, vec!["a".into()]))
        );
        let z = "A".repeat(86);
        assert_eq!(
            Control::decode(
                &format!(r#"SUMS {{"a":[1,2,"{z}"],"b":[1,-1,"{z}"],"c":[1,2,"AA"],"d":5}}"#),
                &limits
            ),
            Ok(Control::Sums(vec![SourceSum {
                source: "a".into(),
                ts: 1.0,
                count: 2,
                lanes: [0; SUM_LANES]
            }]))
        );
        for bad in [
            "CLOCK [1]",
            "CLOCK {",
            "LINKS {}",
            "LINKS+ x",
            "SUMS []",
            "WANT {}",
        ] {
            assert!(Control::decode(bad, &limits).is_err(), "{bad}");
        }
        // Near misses are other strings.
        for other in ["CLOCK", "LINKS", "SUMS", "WANT", "ping", "BYE!"] {
            assert_eq!(
                Control::decode(other, &limits),
                Ok(Control::Other(other.into()))
            );
        }
    }
}
