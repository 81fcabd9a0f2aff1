//! `rtc-mesh invite` (a fresh room secret and its demo-page link) and `rtc-mesh token`
//! (an admission token for a switchboard run with `--token-secret`).

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtc_mesh_core::security::token::{Claims, TokenKey};
use rtc_mesh_core::security::{Entropy, Identity, RoomKey, RoomSecret};
use rtc_mesh_core::url::WsUrl;

use crate::Usage;

pub(crate) const INVITE_USAGE: &str = "\
rtc-mesh invite: a fresh secret for a secured room, and the demo page's link with it

Usage:
  rtc-mesh invite ROOM [--signal URL] [--json] [--admin-identity F [--admin ID]...]

Prints the secret (rm1_ and 43 characters: 256 random bits, no stretching) for
`rtc-mesh join ROOM --secret S`, and the demo page's link on the switchboard at URL
(default ws://127.0.0.1:3000/) with the secret in its fragment (#secret=S), which
the browser never sends to any server. Anyone holding the secret can join the room.

With --admin-identity F the invite names admins, signed by the identity in F (made
when missing, as `join --identity`), who is the first of them; each --admin ID (a
member's peer id) adds one, 16 at most. Admins may write anywhere (`room/`, any
member's `users/` space) and remove a member: `room/revoked/<id>` = {\"after\": ts}
refuses its updates stamped after ts. Join with `--identity F` to act as the admin.
";

pub(crate) const TOKEN_USAGE: &str = "\
rtc-mesh token: an admission token for a switchboard run with --token-secret

Usage:
  rtc-mesh token ROOM --token-secret K [--secret S] [--ttl SECS]

Prints an HS256 token granting ROOM until SECS from now (default 3600). With --secret
the room is secured, and the token names its tag (what the switchboard sees); a
passphrase is stretched first (PBKDF2, 600,000 rounds). Give it to `join --token T`
or to the browser client's join(room, { token }).
";

/// 32 bytes from the operating system's generator.
pub(crate) fn os_random() -> Result<[u8; 32], String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness from the system: {e}"))?;
    Ok(b)
}

/// The identity kept in `path` (`join --identity`): read from its first line, or made
/// fresh and written there (owner-only permissions) when the file does not exist.
pub(crate) fn identity_file(path: &std::path::Path) -> Result<Identity, String> {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => Identity::parse(text.lines().next().unwrap_or_default().trim())
            .map_err(|e| format!("bad_identity: --identity {shown}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let me = Identity::from_seed(&os_random()?);
            write_owner_only(path, true, &[&me.to_text()])
                .map_err(|e| format!("--identity {shown}: cannot write a new identity: {e}"))?;
            Ok(me)
        }
        Err(e) => Err(format!("--identity {shown}: {e}")),
    }
}

/// The `REKEY` lines kept in the identity file `path` for `room` (its lines
/// `rekey<TAB><room><TAB>REKEY {..}`, written by [`keep_rekey`]); none when the file
/// does not exist. A kept line that is not a `REKEY` line is an error.
pub(crate) fn kept_rekeys(path: &std::path::Path, room: &str) -> Result<Vec<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("--identity {}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate().skip(1) {
        let Some((r, line)) = l.strip_prefix("rekey\t").and_then(|l| l.split_once('\t')) else {
            continue;
        };
        if r != room {
            continue;
        }
        let json = line.strip_prefix("REKEY ").unwrap_or(line);
        rtc_mesh_core::security::Rekey::parse(json, &rtc_mesh_core::Limits::default()).map_err(
            |e| {
                format!(
                    "bad_identity: --identity {} line {}: {e}",
                    path.display(),
                    n + 1
                )
            },
        )?;
        out.push(line.to_owned());
    }
    Ok(out)
}

/// Keeps `line` (a room's new key epoch, [`MeshEvent::Rekeyed`]) in the identity file
/// `path` in place of `room`'s earlier one: written beside it and renamed over it, so
/// a crash leaves the old file or the new one (owner-only permissions).
///
/// [`MeshEvent::Rekeyed`]: rtc_mesh_core::mesh::MeshEvent::Rekeyed
pub(crate) fn keep_rekey(path: &std::path::Path, room: &str, line: &str) -> Result<(), String> {
    let shown = path.display();
    if room.contains(['\t', '\n', '\r']) || line.contains(['\n', '\r']) {
        return Err(format!(
            "--identity {shown}: cannot keep the key epoch of room {room:?}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("--identity {shown}: {e}"))?;
    let mine = format!("rekey\t{room}\t");
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(&mine)).collect();
    let new = format!("{mine}{line}");
    lines.push(&new);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    write_owner_only(&tmp, false, &lines)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("--identity {shown}: cannot keep the new key epoch: {e}"))
}

/// Writes `lines` (each ended by a newline) to `path` with owner-only permissions and
/// syncs it: a new file only (`new`), or one truncated.
fn write_owner_only(path: &std::path::Path, new: bool, lines: &[&str]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    for l in lines {
        f.write_all(l.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.sync_all()
}

/// `--secret-file F`: the secret on the first line of F.
pub(crate) fn secret_file(f: &str) -> Result<RoomSecret, Usage> {
    let text =
        std::fs::read_to_string(f).map_err(|e| Usage(format!("--secret-file {f:?}: {e}")))?;
    parse_secret(text.lines().next().unwrap_or_default())
}

/// `--secret S` as given.
pub(crate) fn parse_secret(text: &str) -> Result<RoomSecret, Usage> {
    RoomSecret::parse(text).map_err(|e| Usage(format!("bad_secret: {e}")))
}

/// A switchboard secret of `--token-secret`.
pub(crate) fn parse_token_secret(text: &str) -> Result<TokenKey, Usage> {
    TokenKey::new(text.as_bytes()).map_err(|e| Usage(format!("--token-secret: {e}")))
}

pub(crate) fn invite(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut room = None;
    let mut signal = "ws://127.0.0.1:3000/".to_owned();
    let mut json = false;
    let mut admin_identity = None;
    let mut admins = Vec::new();
    while let Some(arg) = args.next()? {
        match arg {
            Value(v) if room.is_none() => room = Some(v.string()?),
            Long("signal") => signal = args.value()?.string()?,
            Long("json") => json = true,
            Long("admin-identity") => admin_identity = Some(args.value()?.string()?),
            Long("admin") => admins.push(args.value()?.string()?),
            Long("help") | Short('h') => {
                print!("{INVITE_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let room = room.ok_or_else(|| Usage("invite needs a ROOM".into()))?;
    let url = WsUrl::parse(&signal).map_err(|e| Usage(e.to_string()))?;
    let seed = os_random().map_err(Usage)?;
    let mut secret = RoomSecret::generate(&mut Entropy::from_seed(seed));
    match admin_identity {
        Some(f) => {
            let creator = identity_file(std::path::Path::new(&f)).map_err(Usage)?;
            secret = secret
                .with_admins(&creator, &admins)
                .map_err(|e| Usage(format!("bad_admin: {e}")))?;
        }
        None if !admins.is_empty() => {
            return Err(Usage(
                "--admin needs --admin-identity (the creator who signs)".into(),
            ))
        }
        None => {}
    }
    let text = secret.to_text();
    let link = format!(
        "http://{}/?room={}#secret={}",
        url.host_port(),
        query_escape(&room),
        text.as_str()
    );
    if json {
        let o = serde_json::json!({"event": "invite", "room": room, "secret": text.as_str(), "link": link});
        println!("{o}");
    } else {
        println!("secret: {}", text.as_str());
        println!("link:   {link}");
        println!("join:   rtc-mesh join {room} --secret {}", text.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn token(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut room = None;
    let mut key = None;
    let mut secret = None;
    let mut ttl = Duration::from_secs(3600);
    while let Some(arg) = args.next()? {
        match arg {
            Value(v) if room.is_none() => room = Some(v.string()?),
            Long("token-secret") => key = Some(parse_token_secret(&args.value()?.string()?)?),
            Long("secret") => secret = Some(parse_secret(&args.value()?.string()?)?),
            Long("ttl") => {
                let v = args.value()?.string()?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=366 * 86_400).contains(s))
                    .ok_or_else(|| Usage(format!("--ttl {v:?}: seconds, from 1 to 31622400")))?;
                ttl = Duration::from_secs(secs);
            }
            Long("help") | Short('h') => {
                print!("{TOKEN_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let room = room.ok_or_else(|| Usage("token needs a ROOM".into()))?;
    let key = key.ok_or_else(|| Usage("token needs --token-secret".into()))?;
    let room = match secret {
        Some(s) => RoomKey::derive(&room, &s).tag().to_owned(),
        None => room,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let exp = (now + ttl).as_secs();
    println!("{}", key.issue(&Claims { room, exp }));
    Ok(ExitCode::SUCCESS)
}

/// `text` for a URL query: unreserved characters kept, the rest percent-escaped.
fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
