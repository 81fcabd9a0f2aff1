//! Core's one pseudo-random generator: xorshift64 over a caller-seeded state (core draws
//! no randomness of its own, so a seed replays a run).

use std::time::Duration;

/// Advances `state` and returns it.
pub(crate) fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `d` scaled by a factor drawn from [0.5, 1): the jitter of retries and backoffs.
pub(crate) fn jitter(state: &mut u64, d: Duration) -> Duration {
    d.mul_f64(0.5 + (next(state) >> 11) as f64 / (1u64 << 53) as f64 / 2.0)
}
