//! Replicas joined by in-memory links, drained until idle.

#![allow(dead_code)] // not every test file uses all of it

use std::time::Instant;

use rtc_mesh_core::{Codec, Framing, LinkId, Replica, ReplicaEvent, ReplicaOutput};

/// A two-way in-memory link between two replicas.
pub struct Wire {
    pub a: LinkId,
    pub b: LinkId,
}

pub fn connect(a: &mut Replica, b: &mut Replica, codec: Codec) -> Wire {
    Wire {
        a: a.open_link(codec, Framing::Messages),
        b: b.open_link(codec, Framing::Messages),
    }
}

/// Drains every replica, delivering bytes along the wires, until all are idle.
/// `wires` holds (index of one end, index of the other, wire). Returns the bytes moved
/// in each direction of each wire, and the events seen per replica.
pub fn run(
    reps: &mut [&mut Replica],
    wires: &[(usize, usize, &Wire)],
    now: Instant,
) -> (Vec<(u64, u64)>, Vec<Vec<ReplicaEvent>>) {
    let mut bytes = vec![(0u64, 0u64); wires.len()];
    let mut events = vec![Vec::new(); reps.len()];
    for _ in 0..100_000 {
        let mut moved = false;
        for i in 0..reps.len() {
            loop {
                match reps[i].poll_output() {
                    ReplicaOutput::Transmit(link, data) => {
                        moved = true;
                        for (w, (x, y, wire)) in wires.iter().enumerate() {
                            if *x == i && wire.a == link {
                                bytes[w].0 += data.len() as u64;
                                reps[*y].handle_input(now, wire.b, &data);
                            } else if *y == i && wire.b == link {
                                bytes[w].1 += data.len() as u64;
                                reps[*x].handle_input(now, wire.a, &data);
                            }
                        }
                    }
                    ReplicaOutput::Event(e) => events[i].push(e),
                    ReplicaOutput::Timeout(_) => break,
                }
            }
        }
        if !moved {
            return (bytes, events);
        }
    }
    panic!("did not settle");
}
