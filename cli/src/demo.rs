//! `rtc-mesh demo`: N peers meshed over WebRTC in one process, on loopback.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rtc_mesh_core::{Codec, Value};

use crate::{bind_error, fail, parse_codecs, Usage};

pub(crate) const USAGE: &str = "\
rtc-mesh demo: start a switchboard and several peers in this process, mesh them over
WebRTC data channels on 127.0.0.1 (real UDP), write on each, and show them converge
with timings and each link's figures.

Usage:
  rtc-mesh demo [--peers N] [--keys K] [--codec auto|json|postcard]

Options:
  --peers N            peers to start (default 3, 2..=32)
  --keys K             keys each peer writes (default 1000)
  --codec auto|json|postcard   wire codec (default auto: postcard)
";

pub(crate) fn run(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut peers = 3usize;
    let mut keys = 1000usize;
    let mut codecs = vec![Codec::Postcard, Codec::Json];
    while let Some(arg) = args.next()? {
        match arg {
            Long("peers") => peers = args.value()?.parse()?,
            Long("keys") => keys = args.value()?.parse()?,
            Long("codec") => codecs = parse_codecs(&args.value()?.string()?)?,
            Long("help") | Short('h') => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if !(2..=32).contains(&peers) {
        return Err(Usage("--peers must be between 2 and 32".into()));
    }
    if keys > 1_000_000 {
        return Err(Usage("--keys must be at most 1000000".into()));
    }
    Ok(smol::block_on(run_demo(peers, keys, codecs)))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Waits for events on every member until `done(i, event)` has said yes for each, or
/// 30 s have passed; prints progress each second. Returns the members not done.
async fn await_all(
    what: &str,
    streams: &[smol::channel::Receiver<rtc_mesh_core::node::NodeEvent>],
    mut done: impl FnMut(usize, &rtc_mesh_core::node::NodeEvent) -> bool,
) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut finished = vec![false; streams.len()];
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    while finished.iter().any(|f| !f) {
        let next = async {
            // Whichever member speaks first.
            let mut any = Box::pin(smol::future::pending::<Option<(usize, _)>>())
                as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>;
            for (i, s) in streams.iter().enumerate().filter(|(i, _)| !finished[*i]) {
                any = Box::pin(smol::future::or(any, async move {
                    s.recv().await.ok().map(|e| (i, e))
                }));
            }
            any.await
        };
        let tick = async {
            smol::Timer::at(next_progress.min(deadline)).await;
            None
        };
        match smol::future::or(next, tick).await {
            Some((i, e)) => finished[i] = finished[i] || done(i, &e),
            None if Instant::now() >= deadline => break,
            None => {
                let n = finished.iter().filter(|f| **f).count();
                println!("  ... {what}: {n} of {} peers so far", streams.len());
                next_progress += Duration::from_secs(1);
            }
        }
    }
    (0..streams.len()).filter(|i| !finished[*i]).collect()
}

async fn run_demo(n: usize, keys: usize, codecs: Vec<Codec>) -> ExitCode {
    use rtc_mesh_core::mesh::MeshEvent;
    use rtc_mesh_core::node::NodeEvent;
    use rtc_mesh_smol::mesh::{join, JoinOptions};
    println!(
        "rtc-mesh demo: {n} peers in one process, meshed over WebRTC data channels on 127.0.0.1"
    );
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let server = match rtc_mesh_smol::switchboard::Server::bind(any, Default::default()).await {
        Ok(s) => s,
        Err(e) => return fail(bind_error(any, e)),
    };
    let url = format!("ws://{}/", server.local_addr());
    println!("  switchboard on {url}");
    let t0 = Instant::now();
    let mut members = Vec::new();
    let mut streams = Vec::new();
    for i in 0..n {
        let mut o = JoinOptions::new("demo", url.clone());
        o.id = Some(format!("peer-{i}"));
        o.codecs = codecs.clone();
        // The demo's peers are all on this host.
        o.bind = vec![any];
        match join(o).await {
            Ok((m, e)) => {
                members.push(m);
                streams.push(e);
            }
            Err(e) => return fail(e),
        }
    }
    // Formed: every member has a synced link to every other.
    let late = await_all(
        "meshed",
        &streams,
        |_, e| matches!(e, NodeEvent::Mesh(MeshEvent::SyncedAll { peers }) if peers.len() == n - 1),
    )
    .await;
    if !late.is_empty() {
        return fail(format!("peers {late:?} did not link to all others in 30 s"));
    }
    let formed = t0.elapsed();
    println!(
        "  {n} peers joined and linked ({} data channels) in {}",
        n * (n - 1) / 2,
        ms(formed)
    );
    let t1 = Instant::now();
    for (i, m) in members.iter().enumerate() {
        let batch = (0..keys)
            .map(|k| {
                let v = Value::from_json(&format!(r#"{{"writer":{i},"n":{k}}}"#))
                    .expect("literal json");
                (format!("p{i}-key-{k:06}"), v)
            })
            .collect();
        if let Err(e) = m.set_many(batch).await {
            return fail(e);
        }
    }
    println!("  each peer wrote {keys} keys ({} in all)", n * keys);
    // Each member reports its own writes and the others'.
    let expect = n * keys;
    let mut seen = vec![0usize; n];
    let late = if expect == 0 {
        Vec::new()
    } else {
        await_all("converged", &streams, |i, e| {
            if let NodeEvent::Mesh(MeshEvent::Update(_)) = e {
                seen[i] += 1;
            }
            seen[i] >= expect
        })
        .await
    };
    if !late.is_empty() {
        return fail(format!(
            "peers {late:?} did not receive every write in 30 s"
        ));
    }
    let converged = t1.elapsed();
    let mut snaps = Vec::new();
    for m in &members {
        snaps.push(m.snapshot().await);
    }
    let equal = snaps.windows(2).all(|w| w[0] == w[1]);
    println!(
        "  every peer holds {} keys {} after the writes; stores equal: {}",
        snaps[0].len(),
        ms(converged),
        if equal { "yes" } else { "NO" }
    );
    println!("  links of {}:", members[0].id());
    for p in members[0].peers().await {
        let l = &p.link;
        println!(
            "    {:<8} {:<5} codec {:<8} rtt {:>8}  sent {} B / {} updates, received {} B / {} updates",
            p.id,
            l.state.name(),
            l.codec.map(|c| c.name()).unwrap_or("-"),
            l.stats.rtt.map(ms).unwrap_or_else(|| "-".into()),
            l.stats.bytes_out,
            l.stats.updates_out,
            l.stats.bytes_in,
            l.stats.updates_in
        );
    }
    for m in members {
        m.close().await;
    }
    server.shutdown().await;
    if equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
