// rtc-mesh for browsers: join a room, keep its shared key/value store in sync with every
// other peer (native rtc-mesh processes and other pages) over WebRTC data channels.
//
//   import { join } from 'rtc-mesh';      // or from '/mesh.js' on a switchboard's port
//                                         // (types: mesh.d.ts)
//   const member = join('lobby', { signal: 'ws://127.0.0.1:3000/' });
//   member.on('update', (u) => console.log(u.key, u.value));
//   member.set('greeting', 'hello');
//
// A second implementation of rtc-mesh's store and mesh, following DESIGN's Conventions
// exactly: hybrid logical clock timestamps, the larger (timestamp, source id bytewise)
// wins, `set(k, null)` is a tombstone, an update is never echoed to its link, and
// `LINKS` reports keep a healthy full mesh at N-1 messages per write. Signalling is
// rtc-signaller 6.x text over WebSocket; links speak `postcard` (core's binary frames)
// where both sides list it, else `json` (scuttlebutt's JSON lines), with `PING`/`PONG`,
// `LINKS`, `CLOCK` and `BYE` control strings.
//
// The modules under lib/ mirror core's: values, store, codecs (json), postcard, session,
// replica, signal, signal-client and mesh (sans-IO, as core's; secured rooms in
// secured, with the crypto in security), and member (the mesh
// driven with WebSocket and RTCPeerConnection). All but member need no browser: tests
// run them in Node against the vectors and traces the Rust implementation produces.

export {
  LIMITS, MAX_LINE_LEN, MeshError, byteLength, checkValue, compareBytes, nextUp, parseJson,
  toJson, validPeerId, validSource,
} from './lib/values.js';
export { SUM_LANES, Store } from './lib/store.js';
export {
  MAX_FUTURE_MS, MAX_HELD, MAX_STRIKES, REVOKED_PREFIX, STRIKE_FORGIVEN_MS, UpdateGuard, mayWrite, revocation,
  signingInput, writerOf,
} from './lib/updates.js';
export {
  CHUNK, JsonEncoder, LineDecoder, LineWriter, decodeLine, encodeControl, encodeDigest, encodeUpdate, updateText,
} from './lib/codecs.js';
export {
  FRAME_SIZE, MAX_FRAME_LEN, PostcardDecoder, PostcardEncoder, decodeValue, encodeValue, valueBytes,
} from './lib/postcard.js';
export { Session, parseSums, sumsLine } from './lib/session.js';
export { Replica } from './lib/replica.js';
export { encodeSignal, parseSignal } from './lib/signal.js';
export { SignalClient, Xorshift } from './lib/signal-client.js';
export { CLOSE_FLUSH_MS, Mesh } from './lib/mesh.js';
export { Member, join } from './lib/member.js';
export { HeldEncoder, Journal, checkRecords } from './lib/persist.js';
export { openStorage } from './lib/storage.js';
export { DEFAULT_MAX_SIGNAL_AGE_MS, MAX_SDP_PLAIN } from './lib/secured.js';
export {
  INVITE_PREFIX, MAX_ADMINS, PBKDF2_ROUNDS, PEER_ID_LEN, parseSecret, generateSecret, inviteWithAdmins, deriveRoomKey,
  seal, open,
  PeerKey, Identity, signing, b64url, fromB64url,
  MAX_REMOVED, MAX_EPOCH_JUMP, MAX_GRACE_MS, parseRekey, verifyRekey, rekeyJson, rotateRekey, rotatedRoomKey, rekeyBeats,
  rekeyOutranks, checkRekey, resumeRekey,
} from './lib/security.js';
export { DEFAULT_REKEY_GRACE_MS, DEFAULT_REKEY_WAIT_MS } from './lib/rekeying.js';
