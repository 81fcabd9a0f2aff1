//! Traces of core's state machines for the browser client to replay (in Node, without a
//! browser: `web/tests/replay.test.mjs`), so that the JavaScript modules are held to the
//! Rust rules mechanically. Each trace is a seeded scenario: inputs with their times,
//! and every output after each input. The checked-in files must match what core does
//! now; `RTC_MESH_WRITE_TRACES=1 cargo test -p rtc-mesh-core --test traces` rewrites
//! them after a deliberate change of behaviour.

use std::time::{Duration, Instant};

use rtc_mesh_core::signal_client::{ClientConfig, ClientOutput, SignalClient};
use serde_json::{json, Value as J};

/// Core's generator (the scenario's own, not the client's).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ms(t0: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64() * 1000.0
}

fn drain(c: &mut SignalClient, t0: Instant) -> Vec<J> {
    let mut out = Vec::new();
    loop {
        match c.poll_output() {
            ClientOutput::Connect => out.push(json!(["connect"])),
            ClientOutput::Send(t) => out.push(json!(["send", t])),
            ClientOutput::Close => out.push(json!(["close"])),
            ClientOutput::Connected => out.push(json!(["connected"])),
            ClientOutput::Disconnected => out.push(json!(["disconnected"])),
            ClientOutput::Message(_) | ClientOutput::BadMessage(_) => {}
            ClientOutput::Timeout(at) => {
                out.push(json!(["timeout", ms(t0, at)]));
                return out;
            }
        }
    }
}

/// One scenario of the signalling client: connections that fail and succeed, drops at
/// any moment, sends and announces while up and down (past a small queue's bound),
/// timers fired when due or early, and a close at the end.
fn signal_client_trace(seed: u64) -> J {
    let mut rng = Rng(seed | 1);
    let t0 = Instant::now();
    let mut config = ClientConfig::default();
    config.max_queue = 3;
    config.seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut c = SignalClient::new(config.clone(), t0);
    let mut steps = vec![json!({ "at": 0.0, "input": ["new"], "out": drain(&mut c, t0) })];
    let mut now = t0;
    let mut due = None;
    let mut n = 0;
    for _ in 0..400 {
        now += Duration::from_micros(rng.below(3_000_000));
        let input = match rng.below(10) {
            0 | 1 => {
                c.handle_connected(now);
                json!(["connected"])
            }
            2 | 3 => {
                c.handle_disconnected(now);
                json!(["disconnected"])
            }
            4 | 5 => {
                // The timer, when due (or now, early).
                if let Some(at) = due.filter(|_| rng.below(4) > 0) {
                    now = now.max(at);
                }
                c.handle_timeout(now);
                json!(["timeout"])
            }
            6..=8 => {
                n += 1;
                let text = format!("/m|a|{n}");
                c.send_text(text.clone());
                json!(["send", text])
            }
            _ => {
                n += 1;
                let text = format!("/announce|a|{{\"n\":{n}}}");
                c.announce_text(text.clone());
                json!(["announce", text])
            }
        };
        let out = drain(&mut c, t0);
        due = out
            .last()
            .and_then(|o| o[1].as_f64())
            .map(|m| t0 + Duration::from_secs_f64(m / 1000.0));
        steps.push(json!({ "at": ms(t0, now), "input": input, "out": out }));
    }
    c.close();
    steps.push(json!({ "at": ms(t0, now), "input": ["close"], "out": drain(&mut c, t0) }));
    json!({
        "seed": seed,
        "config": {
            "min_backoff_ms": config.min_backoff.as_secs_f64() * 1000.0,
            "max_backoff_ms": config.max_backoff.as_secs_f64() * 1000.0,
            "max_queue": config.max_queue,
            "seed": config.seed.to_string(),
        },
        "steps": steps,
    })
}

#[test]
fn the_signal_client_traces_are_current() {
    let traces: Vec<J> = [1u64, 2, 3, 42, 0xdead_beef]
        .into_iter()
        .map(signal_client_trace)
        .collect();
    let doc = json!({
        "about": "core's SignalClient: inputs with their times (ms since the start) and the \
                  outputs after each; written by core/tests/traces.rs, replayed by \
                  web/tests/replay.test.mjs",
        "traces": traces,
    });
    let text = serde_json::to_string(&doc).expect("JSON") + "\n";
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/signal-client.json"
    );
    if std::env::var_os("RTC_MESH_WRITE_TRACES").is_some() {
        std::fs::write(path, &text).expect("write the traces");
    }
    let stored = std::fs::read_to_string(path).expect("the traces file");
    let a: J = serde_json::from_str(&stored).expect("stored traces are JSON");
    assert!(
        a == doc,
        "core's SignalClient no longer does what tests/vectors/signal-client.json records; \
         if that is meant, rewrite it with RTC_MESH_WRITE_TRACES=1 and let the browser \
         client follow"
    );
}
