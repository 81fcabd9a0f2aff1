//! # rtc-mesh-sim
//!
//! The deterministic simulator of rtc-mesh ([`mesh_sim`]: Mesh peers over in-memory
//! links, with faults) and the benchmark programs (`src/bin`).

pub mod mesh_sim;
pub mod node_sim;
