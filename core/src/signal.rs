//! Signalling messages: the text format of rtc-signaller 6.x.
//!
//! A message is parts joined by `|`. The first part is a command starting with `/`;
//! then comes the sender's id (except in the server's `/roominfo`), then arguments. A
//! directed message wraps a command: `/to|<target>|/<cmd>|<sender>|args..`.
//!
//! ```text
//! /announce|<id>|{"id":"<id>","room":"<room>",...}
//! /to|<target>|/mesh:sdp|<id>|{"type":"offer","sdp":"..."}
//! /leave|<id>|{"id":"<id>"}
//! /roominfo|{"memberCount":N}
//! /<cmd>|<id>|arg|arg..
//! ```
//!
//! An argument that starts with `{` or `[` must parse as JSON ([`Part::Json`]); a message
//! with one that does not is refused. Any other argument is kept as [`Part::Text`]
//! (rtc-signaller's `jsonparse` rule, made strict so that our encoding is canonical:
//! a text part never starts with `{` or `[`, and never holds a `|`). The
//! original clients do not escape `|`, so a JSON argument holding a raw `|` arrives
//! split: the parser joins the following parts back until the JSON is complete. Our
//! encoder writes `|` inside JSON strings as `\u007c` (DESIGN, Conventions), so no
//! part it writes holds a raw `|`.
//!
//! Parsing is bounded by [`SignalLimits`] (message length, number of parts, nesting
//! depth), never panics and returns a typed [`SignalError`].

use smol_str::SmolStr;

use crate::limits::Limits;
use crate::value::{write_json, write_string, Object, Value, ValueError};

/// Bounds on one signalling message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalLimits {
    /// Longest message, in bytes (default 64 KiB).
    pub max_len: usize,
    /// Most `|`-separated parts (default 256).
    pub max_parts: usize,
    /// Deepest nesting in a JSON part (default 32).
    pub max_depth: usize,
    /// Keep an argument that looks like JSON but is not as text, as rtc-signaller's
    /// `jsonparse` does, instead of refusing the message (default false). A relay (the
    /// switchboard) sets it: it passes messages on unchanged and must not refuse what
    /// the original clients send, such as `/chat|a|[bot] hi`. Messages parsed this way
    /// may not re-encode to text that reads back the same.
    pub lenient: bool,
}

impl Default for SignalLimits {
    fn default() -> Self {
        SignalLimits {
            max_len: 64 << 10,
            max_parts: 256,
            max_depth: 32,
            lenient: false,
        }
    }
}

/// Why a signalling message could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// Longer than [`SignalLimits::max_len`].
    #[error("message of {len} bytes is longer than the limit of {max}")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More parts than [`SignalLimits::max_parts`].
    #[error("message has more than {max} parts")]
    TooManyParts {
        /// The limit.
        max: usize,
    },
    /// The text does not start with a `/command`.
    #[error("not a command (a message starts with '/')")]
    NotACommand,
    /// The command name is empty or has characters outside `[A-Za-z0-9:._-]`.
    #[error("bad command name")]
    BadCommand,
    /// A command that needs a sender id has none.
    #[error("/{0} without a sender id")]
    NoSender(String),
    /// A sender or target id is not 1-64 bytes of `[A-Za-z0-9._~-]`.
    #[error("bad peer id {0:?}")]
    BadId(String),
    /// `/to` without a target and an inner command.
    #[error("/to needs a target and a command")]
    BadTo,
    /// A JSON part is malformed or nested too deep.
    #[error("bad json part: {0}")]
    Json(String),
}

/// One argument of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// A part that parsed as a JSON object or array.
    Json(Value),
    /// Any other part, as text.
    Text(String),
}

impl Part {
    /// The JSON object in this part, if it is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Part::Json(Value::Object(o)) => Some(o),
            _ => None,
        }
    }

    /// The text of this part, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text(s) => Some(s),
            Part::Json(_) => None,
        }
    }
}

impl From<Value> for Part {
    fn from(v: Value) -> Self {
        Part::Json(v)
    }
}

impl From<Object> for Part {
    fn from(o: Object) -> Self {
        Part::Json(Value::Object(o))
    }
}

impl From<&str> for Part {
    fn from(s: &str) -> Self {
        Part::Text(s.to_owned())
    }
}

/// One signalling message.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    /// For a directed message (`/to|<target>|...`), its target.
    pub to: Option<String>,
    /// The command, without its `/` (`announce`, `leave`, `roominfo`, `mesh:sdp`, ...).
    pub command: String,
    /// The sender's id (`None` only for commands sent by the server: `roominfo`).
    pub sender: Option<String>,
    /// The arguments after the sender.
    pub args: Vec<Part>,
}

/// How many times one message's parts may be joined back around a raw `|`.
const MAX_JOINS: usize = 8;

/// A peer id, valid by the Conventions (1-64 bytes of `[A-Za-z0-9._~-]`, so byte order
/// is JavaScript's string order). Cheap to clone; compares with `str` and `String`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(SmolStr);

/// A string that is not a valid [`PeerId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid peer id {0:?}: 1-64 characters of A-Z a-z 0-9 . _ ~ -")]
pub struct BadPeerId(pub String);

impl PeerId {
    /// `id`, if it is valid.
    pub fn new(id: &str) -> Result<PeerId, BadPeerId> {
        if valid_peer_id(id) {
            Ok(PeerId(SmolStr::new(id)))
        } else {
            Err(BadPeerId(id.to_owned()))
        }
    }

    /// An id known valid (checked when its message was parsed, or its mesh made).
    pub(crate) fn checked(id: &str) -> PeerId {
        debug_assert!(valid_peer_id(id), "{id:?}");
        PeerId(SmolStr::new(id))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for PeerId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PeerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for PeerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PeerId {
    type Err = BadPeerId;
    fn from_str(s: &str) -> Result<PeerId, BadPeerId> {
        PeerId::new(s)
    }
}

impl PartialEq<str> for PeerId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PeerId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for PeerId {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_str()
    }
}

impl From<PeerId> for String {
    fn from(id: PeerId) -> String {
        id.0.into()
    }
}

/// Is `id` a peer id of the Conventions: 1-64 bytes of `[A-Za-z0-9._~-]`?
pub fn valid_peer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

fn valid_command(c: &str) -> bool {
    (1..=64).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
}

/// Commands that carry no sender part (sent by the server).
/// Commands the server sends of its own: `/roominfo`, the TURN offer `/mesh:ice` and
/// the refusal of an announce `/mesh:refused`.
fn senderless(command: &str) -> bool {
    command == "roominfo"
        || command == crate::switchboard::ICE_COMMAND
        || command == crate::switchboard::REFUSED_COMMAND
}

impl Signal {
    /// A broadcast message `/<command>|<sender>|args..`.
    pub fn new(command: &str, sender: &str, args: Vec<Part>) -> Self {
        Signal {
            to: None,
            command: command.to_owned(),
            sender: Some(sender.to_owned()),
            args,
        }
    }

    /// `/announce|<id>|{attrs}`; `attrs` gets `"id": id` if it lacks one.
    pub fn announce(id: &str, mut attrs: Object) -> Self {
        if attrs.get("id").is_none() {
            attrs.insert("id", Value::from(id));
        }
        Signal::new("announce", id, vec![attrs.into()])
    }

    /// `/leave|<id>|{"id":"<id>"}`, with `"reason"` when given (the switchboard's
    /// leave for a closed connection says `"disconnected"`).
    pub fn leave(id: &str, reason: Option<&str>) -> Self {
        let mut o = Object::new();
        o.insert("id", Value::from(id));
        if let Some(r) = reason {
            o.insert("reason", Value::from(r));
        }
        Signal::new("leave", id, vec![o.into()])
    }

    /// `/roominfo|{"memberCount":N}`.
    pub fn roominfo(member_count: usize) -> Self {
        let mut o = Object::new();
        o.insert("memberCount", Value::from(member_count as f64));
        Signal {
            to: None,
            command: "roominfo".into(),
            sender: None,
            args: vec![o.into()],
        }
    }

    /// This message directed to `target`: `/to|<target>|/<cmd>|<sender>|args..`.
    pub fn to(mut self, target: &str) -> Self {
        self.to = Some(target.to_owned());
        self
    }

    /// The first argument as a JSON object (the attributes of an announce, the body of
    /// a leave or an SDP message).
    pub fn object(&self) -> Option<&Object> {
        self.args.first().and_then(Part::as_object)
    }

    /// Parses one message.
    pub fn parse(text: &str, limits: &SignalLimits) -> Result<Signal, SignalError> {
        if text.len() > limits.max_len {
            return Err(SignalError::TooLong {
                len: text.len(),
                max: limits.max_len,
            });
        }
        let mut raw: Vec<&str> = Vec::new();
        for p in text.split('|') {
            if raw.len() == limits.max_parts {
                return Err(SignalError::TooManyParts {
                    max: limits.max_parts,
                });
            }
            raw.push(p);
        }
        let (to, rest) = if raw[0] == "/to" {
            match raw.get(1..) {
                Some([target, rest @ ..]) if !rest.is_empty() => {
                    if !valid_peer_id(target) {
                        return Err(SignalError::BadId((*target).to_owned()));
                    }
                    (Some((*target).to_owned()), rest)
                }
                _ => return Err(SignalError::BadTo),
            }
        } else {
            (None, &raw[..])
        };
        let command = rest[0].strip_prefix('/').ok_or(if to.is_some() {
            SignalError::BadTo
        } else {
            SignalError::NotACommand
        })?;
        if !valid_command(command) || command == "to" {
            return Err(SignalError::BadCommand);
        }
        let mut args = &rest[1..];
        let sender = if senderless(command) {
            None
        } else {
            let Some((s, more)) = args.split_first() else {
                return Err(SignalError::NoSender(command.to_owned()));
            };
            if !valid_peer_id(s) {
                return Err(SignalError::BadId((*s).to_owned()));
            }
            args = more;
            Some((*s).to_owned())
        };
        let value_limits = Limits {
            max_depth: limits.max_depth,
            ..Limits::default()
        };
        let mut parts = Vec::with_capacity(args.len());
        // Re-parsing after each join costs a parse of the joined text: a few joins per
        // message at most, so a hostile message cannot make parsing quadratic.
        let mut joins = MAX_JOINS;
        let mut i = 0;
        while i < args.len() {
            let a = args[i];
            if !(a.starts_with('{') || a.starts_with('[')) {
                parts.push(Part::Text(a.to_owned()));
                i += 1;
                continue;
            }
            // A JSON part; if it does not parse, it may hold a raw '|': join the
            // following parts back one at a time. The joined text is a slice of
            // `text`, so nothing is copied until it parses.
            let start = a.as_ptr() as usize - text.as_ptr() as usize;
            let mut end = start + a.len();
            let mut j = i;
            let parsed = loop {
                match Value::from_json_with(&text.as_bytes()[start..end], &value_limits) {
                    Ok(v) => break Some(v),
                    Err(ValueError::TooDeep(d)) => {
                        return Err(SignalError::Json(ValueError::TooDeep(d).to_string()))
                    }
                    // Cut short inside the JSON: a raw '|' split it.
                    Err(ValueError::Json(m))
                        if m.contains("EOF") && j + 1 < args.len() && joins > 0 =>
                    {
                        joins -= 1;
                        j += 1;
                        end += 1 + args[j].len();
                    }
                    Err(_) => break None,
                }
            };
            match parsed {
                Some(v) => {
                    parts.push(Part::Json(v));
                    i = j + 1;
                }
                // JSON-looking text that is not JSON: refused, so that every text part
                // we hold reads back the same (a text part never starts with `{`/`[`).
                None if limits.lenient => {
                    parts.push(Part::Text(a.to_owned()));
                    i += 1;
                }
                None => return Err(SignalError::Json(format!("argument {} is not JSON", i + 1))),
            }
        }
        Ok(Signal {
            to,
            command: command.to_owned(),
            sender,
            args: parts,
        })
    }

    /// Writes the message; `|` inside JSON strings becomes `\u007c`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(t) = &self.to {
            out.push_str("/to|");
            out.push_str(t);
            out.push('|');
        }
        out.push('/');
        out.push_str(&self.command);
        if let Some(s) = &self.sender {
            out.push('|');
            out.push_str(s);
        }
        for p in &self.args {
            out.push('|');
            match p {
                Part::Json(v) => write_json(v, &mut out, true),
                Part::Text(s) => out.push_str(s),
            }
        }
        out
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

/// Writes `s` as a JSON string with `|` escaped (for building messages by hand).
pub fn json_string(s: &str) -> String {
    let mut out = String::new();
    write_string(s, &mut out, true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Signal, SignalError> {
        Signal::parse(s, &SignalLimits::default())
    }

    #[test]
    fn peer_ids_hold_the_conventions() {
        let id = PeerId::new("a.B_c~9-").unwrap();
        assert_eq!(id, "a.B_c~9-");
        assert_eq!(id.as_str(), "a.B_c~9-");
        assert_eq!(id.to_string(), "a.B_c~9-");
        assert_eq!(String::from(id.clone()), "a.B_c~9-");
        assert_eq!("a.B_c~9-".parse::<PeerId>(), Ok(id));
        let long = "x".repeat(65);
        for bad in ["", "a|b", "é", "a b", long.as_str()] {
            assert_eq!(PeerId::new(bad), Err(BadPeerId(bad.to_owned())), "{bad:?}");
        }
        // Byte order is JavaScript's string order: the offerer rule compares ids.
        assert!(PeerId::new("B").unwrap() < PeerId::new("a").unwrap());
    }

    #[test]
    fn parses_the_captured_6x_transcript() {
        let a = p(r#"/announce|peerA|{"browser":"node","browserVersion":"20.20.2","agent":"signaller@6.3.0","id":"peerA","room":"r6"}"#).unwrap();
        assert_eq!(a.command, "announce");
        assert_eq!(a.sender.as_deref(), Some("peerA"));
        assert_eq!(a.object().unwrap().get("room"), Some(&Value::from("r6")));
        let r = p(r#"/roominfo|{"memberCount":1}"#).unwrap();
        assert_eq!(r, Signal::roominfo(1));
        let t = p(r#"/to|peerB|/hello|peerA|{"x":1}|text"#).unwrap();
        assert_eq!(t.to.as_deref(), Some("peerB"));
        assert_eq!(t.command, "hello");
        assert_eq!(t.sender.as_deref(), Some("peerA"));
        assert_eq!(t.args[1], Part::Text("text".into()));
        let l = p(r#"/leave|peerB|{"id":"peerB"}"#).unwrap();
        assert_eq!(l, Signal::leave("peerB", None));
    }

    #[test]
    fn encodes_byte_for_byte() {
        for s in [
            r#"/roominfo|{"memberCount":2}"#,
            r#"/to|peerB|/hello|peerA|{"x":1}|text"#,
            r#"/leave|b|{"id":"b","reason":"disconnected"}"#,
            r#"/announce|peerA|{"browser":"node","browserVersion":"20.20.2","agent":"signaller@6.3.0","id":"peerA","room":"r6"}"#,
        ] {
            assert_eq!(p(s).unwrap().encode(), s);
        }
        assert_eq!(
            Signal::leave("b", Some("disconnected")).encode(),
            r#"/leave|b|{"id":"b","reason":"disconnected"}"#
        );
    }

    #[test]
    fn pipes_inside_json_are_escaped_and_raw_ones_rejoined() {
        let mut o = Object::new();
        o.insert("sdp", Value::from("a|b"));
        let s = Signal::new("mesh:sdp", "a", vec![o.into(), "t".into()]).to("b");
        let text = s.encode();
        assert_eq!(text, r#"/to|b|/mesh:sdp|a|{"sdp":"a\u007cb"}|t"#);
        assert_eq!(p(&text).unwrap(), s);
        // An original client writes the '|' raw.
        assert_eq!(p(r#"/to|b|/mesh:sdp|a|{"sdp":"a|b"}|t"#).unwrap(), s);
    }

    #[test]
    fn bad_messages_are_typed_errors() {
        assert_eq!(p("hello"), Err(SignalError::NotACommand));
        assert_eq!(p("/ping"), Err(SignalError::NoSender("ping".into())));
        assert_eq!(p("/to|x"), Err(SignalError::BadTo));
        assert_eq!(p("/to|x|hi"), Err(SignalError::BadTo));
        assert_eq!(p("/to|x|/to|y|/a|b"), Err(SignalError::BadCommand));
        assert_eq!(p("/a|b c"), Err(SignalError::BadId("b c".into())));
        assert_eq!(p("/|a"), Err(SignalError::BadCommand));
        assert!(p(&"[".repeat(100)).is_err());
        assert!(matches!(
            p(&format!("/a|b|{}", "[".repeat(40) + &"]".repeat(40))),
            Err(SignalError::Json(_))
        ));
        // JSON-looking text that does not parse is refused, unless lenient.
        assert!(matches!(p("/a|b|{nope"), Err(SignalError::Json(_))));
        let lenient = SignalLimits {
            lenient: true,
            ..SignalLimits::default()
        };
        assert_eq!(
            Signal::parse("/chat|a|[bot] hi", &lenient).unwrap().args,
            vec![Part::Text("[bot] hi".into())]
        );
        let long = format!("/a|b|{}", "x".repeat(70_000));
        assert!(matches!(p(&long), Err(SignalError::TooLong { .. })));
        assert!(matches!(
            p(&format!("/a|b{}", "|x".repeat(300))),
            Err(SignalError::TooManyParts { .. })
        ));
    }
}
