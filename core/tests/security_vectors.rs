//! Vectors of secured rooms for the browser client (`web/tests/security.test.mjs`
//! checks them in Node, and the browser test in Chromium and Firefox): room keys from
//! invites and passphrases, sealed payloads, identities and their signatures, and the
//! signing inputs. The checked-in file must match what core does now;
//! `RTC_MESH_WRITE_TRACES=1 cargo test -p rtc-mesh-core --test security_vectors`
//! rewrites it after a deliberate change of a format.

use rtc_mesh_core::security::{signing, Entropy, Identity, Rekey, RoomKey, RoomSecret};
use rtc_mesh_core::Limits;
use serde_json::{json, Value as J};

mod common;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn vectors() -> J {
    let mut e = Entropy::from_seed([42; 32]);
    let invite = RoomSecret::generate(&mut e);
    let mut rooms = Vec::new();
    for (room, secret) in [
        ("team", invite.to_text().to_string()),
        ("team-2", invite.to_text().to_string()),
        ("team", "correct horse battery staple".to_owned()),
        ("Ünïcode room ✓", "pässwörd ✓".to_owned()),
    ] {
        let k = RoomKey::derive(room, &RoomSecret::parse(&secret).unwrap());
        rooms.push(json!({
            "room": room,
            "secret": secret,
            "room_id": hex(k.room_id()),
            "tag": k.tag(),
        }));
    }
    let key = RoomKey::derive("team", &invite);
    let mut seals = Vec::new();
    for (i, (command, sender, target, text)) in [
        (
            "mesh:sdp",
            "alice",
            "bob",
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n",
        ),
        ("announce", "alice", "", "{\"incarnation\":\"00ff\"}"),
        ("mesh:candidate", "bob", "alice", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let nonce = [i as u8 + 1; 12];
        seals.push(json!({
            "command": command,
            "sender": sender,
            "target": target,
            "nonce": hex(&nonce),
            "plaintext": text,
            "sealed": key.seal_with_nonce(nonce, command, sender, target, text.as_bytes()),
        }));
    }
    let mut identities = Vec::new();
    for seed in [[0u8; 32], [7; 32], e.bytes::<32>()] {
        let me = Identity::from_seed(&seed);
        let msg = "a message ✓";
        identities.push(json!({
            "seed": hex(&seed),
            "peer_id": me.peer_id(),
            "message": msg,
            "signature": me.sign_text(msg.as_bytes()),
        }));
    }
    let id = Identity::from_seed(&[7; 32]);
    let sealed = seals[1]["sealed"].as_str().unwrap().to_owned();
    let sdp_text = "v=0\r\na=fingerprint:sha-256 00:11\r\n";
    let inputs = json!({
        "announce": {
            "tag": key.tag(), "id": id.peer_id(), "ts": 1_795_713_876_272u64, "sealed": sealed,
            "input": hex(&signing::announce(key.tag(), id.peer_id(), 1_795_713_876_272, &sealed)),
        },
        "leave": {
            "tag": key.tag(), "id": id.peer_id(), "incarnation": "0123456789abcdef", "ts": 1_795_713_876_999u64,
            "input": hex(&signing::leave(key.tag(), id.peer_id(), "0123456789abcdef", 1_795_713_876_999)),
        },
        "sdp": {
            "room_id": hex(key.room_id()), "sender": id.peer_id(), "target": "bob",
            "incarnation": "0123456789abcdef", "ts": 1_795_713_877_000u64, "kind": "offer", "sdp": sdp_text,
            "input": hex(&signing::sdp(key.room_id(), id.peer_id(), "bob", "0123456789abcdef", 1_795_713_877_000, "offer", sdp_text)),
        },
    });
    // A rotation: the line (signed by the identity of seed 7, listing the one of seed
    // 0 as removed), the new epoch's tag, and a payload sealed under it.
    let removed = [Identity::from_seed(&[0; 32]).peer_id().to_owned()];
    let mut re = Entropy::from_seed([5; 32]);
    let r = Rekey::rotate(&key, removed, 1_796_318_676_272, &id, &mut re).unwrap();
    let next = r.key_of(&key);
    let nonce = [9u8; 12];
    let plain = "{\"incarnation\":\"00ff\"}";
    let rekey = json!({
        "line": r.to_json(),
        "epoch": next.epoch(),
        "key": hex(next.epoch_key()),
        "tag": next.tag(),
        "previous_tag": r.previous_of(&key).tag(),
        "input": hex(&signing::rekey(key.room_id(), 1, next.epoch_key(), key.epoch_key(), 1_796_318_676_272, r.removed())),
        "seal": {
            "command": "announce", "sender": id.peer_id(), "target": "", "nonce": hex(&nonce), "plaintext": plain,
            "sealed": next.seal_with_nonce(nonce, "announce", id.peer_id(), "", plain.as_bytes()),
        },
    });
    assert_eq!(Rekey::parse(&r.to_json(), &Limits::default()).unwrap(), r);
    json!({
        "about": "written by core/tests/security_vectors.rs; checked by web/tests/security.test.mjs",
        "invite_key": { "room": "team", "secret": invite.to_text().to_string() },
        "rooms": rooms,
        "seals": seals,
        "identities": identities,
        "inputs": inputs,
        "rekey": rekey,
    })
}

#[test]
fn the_security_vectors_are_current() {
    common::check_or_write("security.json", &vectors(), true);
}

/// Every seal in the file opens with the room's key, and not for another target.
#[test]
fn the_vectors_open() {
    let v = vectors();
    let key = RoomKey::derive(
        "team",
        &RoomSecret::parse(v["invite_key"]["secret"].as_str().unwrap()).unwrap(),
    );
    for s in v["seals"].as_array().unwrap() {
        let (c, from, to) = (
            s["command"].as_str().unwrap(),
            s["sender"].as_str().unwrap(),
            s["target"].as_str().unwrap(),
        );
        let text = key
            .open(s["sealed"].as_str().unwrap(), c, from, to)
            .unwrap();
        assert_eq!(text, s["plaintext"].as_str().unwrap().as_bytes());
        assert!(key
            .open(s["sealed"].as_str().unwrap(), c, from, "x")
            .is_err());
    }
}
