// The C2SP/CCTV Ed25519 edge cases through the browser client's rule, in Node or in a
// page (an ES module with no imports: the caller hands in `PeerKey`).

const unhex = (s) => {
  const b = new Uint8Array(s.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return b;
};

/** Each vector accepted (true) or refused by `PeerKey.fromBytes` then `verify`. */
export async function cctvBitmap(vectors, { PeerKey }) {
  const out = [];
  for (const v of vectors) {
    let ok = false;
    try {
      const k = await PeerKey.fromBytes(unhex(v.key));
      ok = await k.verify(new TextEncoder().encode(v.msg), unhex(v.sig));
    } catch {
      ok = false;
    }
    out.push(ok);
  }
  return out;
}

/** The shared rule's decision: accepted exactly when the only flags are low-order
 * components (core/tests/ed25519_vectors.rs). */
export function expectedBitmap(vectors) {
  return vectors.map((v) => (v.flags || []).every((f) => f === 'low_order_component_A' || f === 'low_order_component_R'));
}
