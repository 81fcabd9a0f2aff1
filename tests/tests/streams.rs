//! Attached streams (`Mesh::attach`, the original's `expandMesh`): a byte stream joined
//! to a room member's store as one more link, here with a plain replica on its far end
//! (what a scuttlebutt `Model` over TCP is to the member). Both directions sync, bad
//! bytes are reported and change nothing, a fatal error closes only the stream, and
//! closing the member closes its streams.

use std::time::Instant;

use rtc_mesh_core::mesh::{Mesh, MeshConfig, MeshEvent, MeshOutput};
use rtc_mesh_core::{
    Codec, DecodeError, Framing, LinkId, Replica, ReplicaOutput, Store, StoreConfig, Value,
};

const EPOCH_MS: f64 = 1_795_713_876_272.0;

/// A room member (alone in its room) and a replica on the far end of an attached stream.
struct World {
    t: Instant,
    mesh: Mesh,
    stream: LinkId,
    far: Replica,
    far_link: LinkId,
    events: Vec<MeshEvent>,
    closed: Vec<LinkId>,
}

impl World {
    fn new(codec: Codec) -> World {
        let t = Instant::now();
        Self::with(
            MeshConfig::new("member", "room", "00000000000000aa", EPOCH_MS, t),
            codec,
        )
    }

    /// The same with a member of `config`.
    fn with(config: MeshConfig, codec: Codec) -> World {
        let t = config.start;
        let mut mesh = Mesh::new(config).unwrap();
        mesh.start(t);
        let stream = mesh.attach(t, codec).expect("an open mesh attaches");
        let mut far = Replica::new(Store::new(StoreConfig::new("js-model", EPOCH_MS, t)).unwrap());
        let far_link = far.open_link(codec, Framing::Stream);
        World {
            t,
            mesh,
            stream,
            far,
            far_link,
            events: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            loop {
                match self.mesh.poll_output() {
                    // Other streams' bytes go nowhere here.
                    MeshOutput::Stream { link, data } if link == self.stream => {
                        self.far.handle_input(self.t, self.far_link, &data);
                        moved = true;
                    }
                    MeshOutput::CloseStream(link) => self.closed.push(link),
                    MeshOutput::Event(e) => self.events.push(e),
                    MeshOutput::Timeout(_) => break,
                    _ => {}
                }
            }
            loop {
                match self.far.poll_output() {
                    ReplicaOutput::Transmit(_, data) => {
                        if self.closed.is_empty() {
                            self.mesh.stream_data(self.t, self.stream, &data);
                            moved = true;
                        }
                    }
                    ReplicaOutput::Event(_) => {}
                    ReplicaOutput::Timeout(_) => break,
                }
            }
            if !moved {
                return;
            }
        }
    }
}

#[test]
fn an_attached_stream_syncs_both_ways_in_either_codec() {
    for codec in [Codec::Json, Codec::Postcard] {
        let mut w = World::new(codec);
        w.far
            .set(
                w.t,
                "from-js",
                &Value::from_json(r#"{"x":[1,"a"]}"#).unwrap(),
            )
            .unwrap();
        w.mesh.set(w.t, "from-room", &Value::from(2.0)).unwrap();
        w.pump();
        assert_eq!(
            w.mesh.store().get("from-js"),
            Some(Value::from_json(r#"{"x":[1,"a"]}"#).unwrap())
        );
        assert_eq!(w.far.store().get("from-room"), Some(Value::from(2.0)));
        assert!(
            w.events.iter().any(
                |e| matches!(e, MeshEvent::StreamSynced { link, source } if *link == w.stream && source == "js-model")
            ),
            "{:?}",
            w.events
        );
        assert!(w
            .events
            .iter()
            .any(|e| matches!(e, MeshEvent::Update(u) if &*u.key == "from-js")));
        // Live updates after the sync, both ways.
        w.mesh.set(w.t, "later", &Value::from("room")).unwrap();
        w.far.set(w.t, "later-js", &Value::from("js")).unwrap();
        w.pump();
        assert_eq!(w.far.store().get("later"), Some(Value::from("room")));
        assert_eq!(w.mesh.store().get("later-js"), Some(Value::from("js")));
        assert_eq!(w.mesh.store().dump(), w.far.store().dump(), "{codec:?}");
    }
}

#[test]
fn bad_bytes_on_a_stream_are_reported_and_change_nothing() {
    let mut w = World::new(Codec::Json);
    w.far.set(w.t, "k", &Value::from(1.0)).unwrap();
    w.pump();
    let before = w.mesh.store().dump();
    w.mesh
        .stream_data(w.t, w.stream, b"not json at all\n[null,1,\"x\"]\n");
    w.pump();
    assert!(
        w.events
            .iter()
            .filter(|e| matches!(e, MeshEvent::StreamError { link, .. } if *link == w.stream))
            .count()
            >= 1,
        "{:?}",
        w.events
    );
    assert_eq!(w.mesh.store().dump(), before);
    assert!(
        w.closed.is_empty(),
        "a skipped line does not close the stream"
    );
    // The stream goes on.
    w.far.set(w.t, "k2", &Value::from(2.0)).unwrap();
    w.pump();
    assert_eq!(w.mesh.store().get("k2"), Some(Value::from(2.0)));
}

#[test]
fn a_fatal_error_closes_only_that_stream_and_close_closes_the_rest() {
    let mut w = World::new(Codec::Postcard);
    w.pump();
    let second = w.mesh.attach(w.t, Codec::Json).unwrap();
    // A frame length far past the limit: the stream cannot be read on.
    w.mesh
        .stream_data(w.t, w.stream, &[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
    w.pump();
    assert_eq!(w.closed, [w.stream]);
    assert!(w.events.iter().any(|e| matches!(
        e,
        MeshEvent::StreamError { link, error: DecodeError::FrameTooLong { .. } } if *link == w.stream
    )));
    assert_eq!(w.mesh.streams().collect::<Vec<_>>(), [second]);
    w.mesh.set(w.t, "still", &Value::from(true)).unwrap();
    w.mesh.close(w.t);
    w.closed.clear();
    loop {
        match w.mesh.poll_output() {
            MeshOutput::CloseStream(l) => w.closed.push(l),
            MeshOutput::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(w.closed, [second]);
    assert!(w.mesh.is_finished());
    assert_eq!(
        w.mesh.attach(w.t, Codec::Json),
        None,
        "a closed mesh attaches nothing"
    );
}

/// A member without a room (`rtc-mesh replicate`): it never asks for a signalling
/// connection nor says anything to a switchboard, syncs its attached streams like a
/// room member, reports when all of them are synced, and is finished at once after
/// closing them.
#[test]
fn a_member_without_a_room_syncs_its_streams_and_never_signals() {
    let t = Instant::now();
    let mut c = MeshConfig::without_room("replicator", "00000000000000bb", EPOCH_MS, t);
    c.source = Some("rust-replica".into());
    let mut w = World::with(c, Codec::Json);
    w.mesh.set(t, "k", &Value::from(1.0)).unwrap();
    w.far.set(t, "j", &Value::from(2.0)).unwrap();
    let mut signals = 0;
    loop {
        match w.mesh.poll_output() {
            MeshOutput::SignalConnect | MeshOutput::Signal(_) | MeshOutput::SignalClose => {
                signals += 1
            }
            MeshOutput::Stream { data, .. } => w.far.handle_input(t, w.far_link, &data),
            MeshOutput::Event(e) => w.events.push(e),
            MeshOutput::Timeout(at) => {
                assert!(
                    at > t + std::time::Duration::from_secs(60),
                    "no timer to wake for"
                );
                break;
            }
            _ => {}
        }
    }
    w.pump();
    assert_eq!(w.far.store().get("k"), Some(Value::from(1.0)));
    assert_eq!(w.mesh.store().get("j"), Some(Value::from(2.0)));
    assert_eq!(w.mesh.store().id(), "rust-replica");
    assert!(w.events.iter().any(|e| matches!(e,
        MeshEvent::StreamsSynced { sources } if sources == &["js-model".to_string()])));
    w.mesh
        .handle_timeout(t + std::time::Duration::from_secs(7200));
    w.mesh.close(t);
    loop {
        match w.mesh.poll_output() {
            MeshOutput::SignalConnect | MeshOutput::Signal(_) | MeshOutput::SignalClose => {
                signals += 1
            }
            MeshOutput::CloseStream(l) => w.closed.push(l),
            MeshOutput::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(signals, 0, "a member without a room signals nothing");
    assert_eq!(w.closed, [w.stream]);
    assert!(w.mesh.is_finished());
}
