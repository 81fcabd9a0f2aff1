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
    /// Any other string: passed on to the user, never an error.
    Other(String),
}

/// A control line of a known kind whose payload is not what the kind takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad {kind} control line: {why}")]
pub struct ControlError {
    /// `CLOCK` or `LINKS`.
    pub kind: &'static str,
    /// What was wrong.
    pub why: String,
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
            let bad = |why: String| ControlError { kind: "CLOCK", why };
            return match Value::from_json_with(json.as_bytes(), limits) {
                Ok(Value::Object(o)) => Ok(Control::Clock(
                    o.iter()
                        .filter_map(|(s, t)| match t {
                            Value::Number(t) => Some((s.to_owned(), *t)),
                            _ => None,
                        })
                        .collect(),
                )),
                Ok(_) => Err(bad("not an object".into())),
                Err(e) => Err(bad(e.to_string())),
            };
        }
        for change in [LinksChange::All, LinksChange::Gained, LinksChange::Lost] {
            if let Some(json) = text.strip_prefix(change.prefix()) {
                let bad = |why: String| ControlError { kind: "LINKS", why };
                return match Value::from_json_with(json.as_bytes(), limits) {
                    Ok(Value::Array(items)) => Ok(Control::Links(
                        change,
                        items
                            .into_iter()
                            .filter_map(|v| match v {
                                Value::String(s) => Some(s.to_string()),
                                _ => None,
                            })
                            .collect(),
                    )),
                    Ok(_) => Err(bad("not an array".into())),
                    Err(e) => Err(bad(e.to_string())),
                };
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
        for bad in ["CLOCK [1]", "CLOCK {", "LINKS {}", "LINKS+ x"] {
            assert!(Control::decode(bad, &limits).is_err(), "{bad}");
        }
        // Near misses are other strings.
        for other in ["CLOCK", "LINKS", "ping", "BYE!"] {
            assert_eq!(
                Control::decode(other, &limits),
                Ok(Control::Other(other.into()))
            );
        }
    }
}
