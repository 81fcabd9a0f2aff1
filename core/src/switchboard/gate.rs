//! Who may connect and announce: the switchboard's gate.
//!
//! - **Before the upgrade** ([`Switchboard::admit`]), with the client's address and
//!   the `?token=` of its URL: a per-address connection limit
//!   ([`SwitchboardConfig::max_per_ip`]; loopback exempt unless
//!   [`SwitchboardConfig::limit_loopback`]) and, with [`SwitchboardConfig::tokens`],
//!   a valid HS256 token ([`crate::security::token`]). A refusal is an HTTP status the
//!   runtime answers with instead of `101`.
//! - **At the announce**: a token admits its own room only; and an id of the
//!   key-derived form (43 base64url characters: a secured member's Ed25519 key) must
//!   come with its holder's signature over the announce
//!   ([`signing::announce`](crate::security::signing::announce), which names the room
//!   the switchboard sees, the id, a timestamp and the sealed attributes), and may
//!   replace a connection holding the id only with a later timestamp. So nobody kicks a
//!   member by announcing its id, nor by replaying one of its announces.
//!
//! Nothing here touches the `/to` relay path: a connection's id is fixed by its first
//! (checked) announce, and later messages are only compared with it.

use std::net::IpAddr;
use std::time::Instant;

use super::*;
use crate::security::token::{TokenError, TokenKey};
use crate::security::{signing, PeerKey, PEER_ID_LEN};

/// The token check of a switchboard: the key, and the wall clock (which a sans-IO
/// switchboard cannot read) as the Unix time in seconds at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenGate {
    /// The HS256 secret.
    pub key: TokenKey,
    /// The Unix time in seconds at an instant.
    pub clock: (Instant, u64),
}

impl TokenGate {
    /// A gate checking tokens with `key`; `unix_secs` is the Unix time at `now`.
    pub fn new(key: TokenKey, now: Instant, unix_secs: u64) -> Self {
        TokenGate {
            key,
            clock: (now, unix_secs),
        }
    }

    fn unix(&self, now: Instant) -> u64 {
        self.clock.1 + now.saturating_duration_since(self.clock.0).as_secs()
    }
}

/// A connection let through [`Switchboard::admit`]: hand it to
/// [`Switchboard::handle_open`] once upgraded, or to [`Switchboard::release`] if the
/// upgrade fails, so that its address's count stays right.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an admission is opened or released"]
pub struct Admission {
    pub(super) ip: Option<IpAddr>,
    /// The room its token grants, if tokens are required.
    pub(super) room: Option<String>,
}

impl Admission {
    /// A connection that no gate saw (an in-process client, a test, a fuzzer): no
    /// address is counted and no token was checked. With
    /// [`SwitchboardConfig::tokens`] set, its announces are refused.
    pub fn ungated() -> Admission {
        Admission {
            ip: None,
            room: None,
        }
    }
}

/// Why a connection is refused before the upgrade.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Tokens are required and the URL has none.
    #[error("a token is required")]
    NoToken,
    /// The token is not valid.
    #[error(transparent)]
    Token(TokenError),
    /// The address has [`SwitchboardConfig::max_per_ip`] connections open.
    #[error("too many connections from {0}")]
    TooMany(IpAddr),
}

impl Refusal {
    /// The HTTP status line to answer with.
    pub fn status(&self) -> &'static str {
        match self {
            Refusal::NoToken | Refusal::Token(_) => "401 Unauthorized",
            Refusal::TooMany(_) => "429 Too Many Requests",
        }
    }
}

/// The command of the switchboard's refusal of an announce, sent to the announcer:
/// `/mesh:refused|{"reason":R}` with R `unproven` (a key-form id without its
/// holder's signature, or with an older one than the connection holding the id),
/// `token_room` (the token grants another room) or `token_required`.
pub const REFUSED_COMMAND: &str = "mesh:refused";

/// Whether `id` has the key-derived form: 43 base64url characters.
pub fn key_form(id: &str) -> bool {
    id.len() == PEER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Switchboard {
    /// Whether a connection from `ip` presenting `token` (the `?token=` of its URL,
    /// if any) may be upgraded, at `now`. See the [module docs](self).
    pub fn admit(
        &mut self,
        now: Instant,
        ip: IpAddr,
        token: Option<&str>,
    ) -> Result<Admission, Refusal> {
        self.now = self.now.max(now);
        // An IPv4 client of a dual-stack socket is one address, whichever way it came.
        let ip = ip.to_canonical();
        let limited = self.config.limit_loopback || !ip.is_loopback();
        let open = self.per_ip.get(&ip).copied().unwrap_or(0);
        if limited && open >= self.config.max_per_ip {
            self.counters.refused_per_ip += 1;
            return Err(Refusal::TooMany(ip));
        }
        let room = match &self.config.tokens {
            None => None,
            Some(gate) => {
                let Some(token) = token else {
                    self.counters.refused_token += 1;
                    return Err(Refusal::NoToken);
                };
                match gate.key.verify(token, gate.unix(now)) {
                    Ok(c) => Some(c.room),
                    Err(e) => {
                        self.counters.refused_token += 1;
                        return Err(Refusal::Token(e));
                    }
                }
            }
        };
        *self.per_ip.entry(ip).or_default() += 1;
        Ok(Admission { ip: Some(ip), room })
    }

    /// An admission whose upgrade failed: its address's count goes back down.
    pub fn release(&mut self, admission: Admission) {
        self.forget_ip(admission.ip);
    }

    pub(super) fn forget_ip(&mut self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Whether an announce of `id` into `room` on `conn` passes the gate (see the
    /// [module docs](self)); if not, counted, and the announcer told why. `Ok` carries
    /// the announce's proven timestamp for a key-form id.
    pub(super) fn gate_announce(
        &mut self,
        conn: ConnId,
        room: &str,
        id: &str,
        attrs: &Object,
    ) -> Result<Option<u64>, ()> {
        let c = &self.conns[&conn];
        if self.config.tokens.is_some() {
            match &c.token_room {
                None => return self.refuse(conn, "token_required"),
                Some(r) if r != room => return self.refuse(conn, "token_room"),
                Some(_) => {}
            }
        }
        if !key_form(id) {
            return Ok(None);
        }
        let (Some(Value::String(sealed)), Some(Value::String(sig)), Some(Value::Number(ts))) =
            (attrs.get("sealed"), attrs.get("sig"), attrs.get("ts"))
        else {
            return self.refuse(conn, "unproven");
        };
        let ts = *ts;
        let proven = ts.fract() == 0.0
            && (0.0..9.007_199_254_740_992e15).contains(&ts)
            && PeerKey::from_peer_id(id).is_ok_and(|k| {
                k.verify_text(&signing::announce(room, id, ts as u64, sealed), sig)
                    .is_ok()
            });
        if !proven {
            return self.refuse(conn, "unproven");
        }
        let ts = ts as u64;
        // The connection holding the id in this room (or this one, re-announcing)
        // must have proven an earlier announce.
        let holder = self
            .rooms
            .get(room)
            .and_then(|r| r.members.get(id))
            .and_then(|h| self.conns.get(h));
        let held = [holder, self.conns.get(&conn)]
            .into_iter()
            .flatten()
            .filter(|h| h.id.as_deref() == Some(id))
            .filter_map(|h| h.proven_ts)
            .max();
        if held.is_some_and(|t| ts <= t) {
            return self.refuse(conn, "unproven");
        }
        Ok(Some(ts))
    }

    fn refuse<T>(&mut self, conn: ConnId, reason: &str) -> Result<T, ()> {
        match reason {
            "unproven" => self.counters.refused_unproven += 1,
            _ => self.counters.refused_token_room += 1,
        }
        let mut o = Object::new();
        o.insert("reason", Value::from(reason));
        let msg = Signal {
            to: None,
            command: REFUSED_COMMAND.into(),
            sender: None,
            args: vec![o.into()],
        };
        self.send(conn, msg.encode().into());
        self.strike(conn, self.now);
        Err(())
    }
}
