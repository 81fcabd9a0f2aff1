//! # rtc-mesh-sim
//!
//! The deterministic simulator of rtc-mesh: [`mesh_sim`] runs Mesh peers over in-memory
//! links, [`node_sim`] runs whole Nodes (str0m included) over a simulated UDP network,
//! both with seeded faults; `rtc-mesh-sim` (`src/bin`) runs seed lists and scale runs.
//! The benchmark programs live in `bench/`.

mod connections;
pub mod mesh_sim;
pub mod net;
pub mod node_sim;

/// The README's examples, compiled and run as doc tests (`cargo test -p rtc-mesh-sim --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
