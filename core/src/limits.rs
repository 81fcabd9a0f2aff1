//! Bounds on everything a peer can make us hold.

/// Bounds applied to untrusted input and to the local API. The defaults suit a
/// browser-compatible mesh; every decoder checks them before allocating.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Maximum nesting of arrays and objects in a value (default 64).
    pub max_depth: usize,
    /// Maximum size of one encoded value in bytes (default 1 MiB). `set` refuses a
    /// larger value with a clear error; a peer's larger value is rejected.
    pub max_value_len: usize,
    /// Maximum key length in bytes (default 4 KiB).
    pub max_key_len: usize,
    /// Maximum source or peer id length in bytes (default 128).
    pub max_id_len: usize,
    /// Maximum entries in one clock (a digest), default 65,536.
    pub max_clock_entries: usize,
    /// Maximum postcard frame a decoder accepts, in bytes (default 64 KiB; encoders
    /// write at most [`crate::wire::FRAME_SIZE`]).
    pub max_frame_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_value_len: 1 << 20,
            max_key_len: 4096,
            max_id_len: 128,
            max_clock_entries: 65_536,
            max_frame_len: 64 << 10,
        }
    }
}

impl Limits {
    /// The longest JSON line a decoder keeps: the maximum value size (values are
    /// bounded as JSON text too) plus room for the key and source id, escaped, and 4 KiB
    /// (DESIGN, Conventions: the partial tail of a line is bounded by this).
    pub fn max_line_len(&self) -> usize {
        self.max_value_len + 6 * (self.max_key_len + self.max_id_len) + 4096
    }
}
