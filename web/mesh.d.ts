// Type declarations of the rtc-mesh browser client (mesh.js and the modules it
// re-exports). Checked by `npm run types` (tsc over these and tests/types/usage.ts), and
// held to the module by tests/exports.test.mjs (every value mesh.js exports is declared
// here, and nothing else).

/** A JSON value, as the store keeps it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Bounds, as the native defaults (`rtc_mesh_core::Limits`). */
export declare const LIMITS: Readonly<{
  maxDepth: number;
  maxValueLen: number;
  maxKeyLen: number;
  maxIdLen: number;
  maxClockEntries: number;
}>;

/** The longest partial line a link keeps. */
export declare const MAX_LINE_LEN: number;

/** Machine-readable reasons of a {@link MeshError}. */
export type ErrorCode =
  | 'bad_room'
  | 'bad_id'
  | 'bad_url'
  | 'bad_key'
  | 'bad_secret'
  | 'unseal_failed'
  | 'key_too_long'
  | 'value_too_large'
  | 'bad_value'
  | 'bad_json'
  | 'closed'
  | 'line_too_long'
  | 'bad_update'
  | 'bad_digest'
  | 'bad_line'
  | 'bad_frame'
  | 'bad_codecs'
  /** The switchboard refused us (a `refused` event): `refused_http_401`,
   * `refused_http_429`, `refused_http` (a browser's WebSocket failed before opening,
   * several times in a row: the status is not known), `refused_token_room`,
   * `refused_token_required`, `refused_unproven`. */
  | `refused_${string}`;

/** An error with a machine-readable `code`. */
export declare class MeshError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly name: 'MeshError';
  readonly code: ErrorCode;
}

export declare function byteLength(s: string): number;
/** Throws a MeshError unless `v` is a JSON value within the bounds. */
export declare function checkValue(v: unknown, maxDepth?: number): asserts v is Json;
export declare function compareBytes(a: string, b: string): -1 | 0 | 1;
export declare function nextUp(x: number): number;
export declare function parseJson(text: string, maxDepth?: number): Json;
export declare function toJson(v: Json): string;
export declare function validPeerId(id: unknown): id is string;
export declare function validSource(id: unknown): id is string;

/** One entry of the store, or an update on the wire. */
export interface Update {
  key: string;
  value: Json;
  /** `value` as JSON text, in the Conventions' canonical form. */
  json: string;
  ts: number;
  source: string;
  /** Secured rooms: the writer's Ed25519 signature (64 bytes). */
  sig?: Uint8Array;
  /** Secured rooms, a received update: what {@link UpdateGuard.check} said of it. */
  checked?: UpdateCheck;
}

export type Verdict = 'applied' | 'superseded' | 'stale' | 'rejected' | 'refused' | 'held';

/** What a secured store's check says of an update (core's `UpdateRefusal` codes). */
export type UpdateCheck = 'ok' | 'bad_source' | 'unsigned' | 'bad_sig' | 'not_owner' | 'revoked';

/** How far ahead of the clock an update may be stamped and still be applied (ms). */
export declare const MAX_FUTURE_MS: number;
/** The most updates a secured store holds back. */
export declare const MAX_HELD: number;
/** Refused updates after which a link is closed; one is forgiven per STRIKE_FORGIVEN_MS. */
export declare const MAX_STRIKES: number;
export declare const STRIKE_FORGIVEN_MS: number;
/** The writer's peer id in a source id (its first 43 characters, then nothing or `.`). */
export declare function writerOf(source: string): string | null;
/** Whether member `writer` may write `key` (the room's `admins` anything; `users/<id>/...`
 * is member <id>'s alone, `room/` the admins'). */
export declare function mayWrite(key: string, writer: string, admins?: readonly string[]): boolean;
/** Removals: `room/revoked/<peer id>` = `{"after": ts}`. */
export declare const REVOKED_PREFIX: 'room/revoked/';
/** The member a `room/revoked/` key removes and the time it names, or null (admins
 * cannot be removed). */
export declare function revocation(key: string, value: Json, admins?: readonly string[]): [string, number] | null;
/** The signing input of an update in the room `roomId` (core's `signing_input`). */
export declare function signingInput(roomId: Uint8Array, u: Update): Uint8Array;
/** `JSON.stringify([[key, value], ts, source])` of an update. */
export declare function updateText(u: Update): string;

/** A secured store's part (core's `UpdateGuard`): signs our writes, checks others'. */
export declare class UpdateGuard {
  constructor(roomId: Uint8Array, identity: Identity, admins?: readonly string[]);
  readonly writer: string;
  /** The room's admins (named by its invite). */
  readonly admins: readonly string[];
  sign(u: Update): Promise<Uint8Array>;
  check(u: Update): Promise<UpdateCheck>;
}

/** The replicated map (core's `store`). */
export declare class Store {
  constructor(id: string, options?: { now?: () => number; maxSkewMs?: number; guard?: UpdateGuard });
  readonly id: string;
  readonly guard: UpdateGuard | null;
  readonly entries: Map<string, Update>;
  readonly clock: Map<string, number>;
  readonly held: Map<string, Update>;
  readonly stats: {
    applied: number; stale: number; superseded: number; rejected: number; skewed: number;
    unsigned: number; badSignatures: number; badSources: number; notOwner: number; held: number;
    /** Secured: updates below their writer's clock that still won their key (reordered). */
    late: number;
    /** Secured: updates of a removed member stamped after its removal. */
    revoked: number;
    /** Secured: such writes applied before the removal arrived, voided when it did. */
    voided: number;
  };
  /** Removed members: peer id -> the time after which their updates are refused. */
  readonly revoked: Map<string, number>;
  revocationsChanged(key: string): void;
  /** Writes voided by removals since the last call (ts 0, value null). */
  takeVoided(): Update[];
  /** A durable store's changes for its storage (see {@link Store.persist}), else null. */
  readonly journal: Journal | null;
  /** Makes the store durable: every change it makes from now on is recorded in its journal. */
  persist(): Journal;
  /** Takes back what a storage held ({@link checkRecords}'s result), neither checked,
   * reported nor recorded again. */
  restore(records: CheckedRecords): void;
  /** A secured room's local write was signed (or failed to be): recorded with its signature. */
  signed(u: Update): void;
  nextTs(): number;
  set(key: string, value: Json | undefined): Update;
  apply(u: Update): Verdict;
  heldOrder(): Update[];
  releaseHeld(): Update[];
  /** The store-clock time (ms) the first held-back update comes due, or null. */
  nextHeldDue(): number | null;
  get(key: string): Json | undefined;
  keys(): string[];
  snapshot(): { [key: string]: Json };
  history(remote: Map<string, number>): Update[];
  /** Does `u` win its key (larger ts, then larger source)? */
  wins(u: Update): boolean;
  /** Is `u` below its writer's clock? */
  isLate(u: Update): boolean;
  /** Per source with a clock: what its writes hold (core's `Store::sums`, for `SUMS`). */
  sums(): SourceSum[];
  /** Every write of these sources, whatever its ts, in ts order. */
  historyOf(sources: Set<string>): Update[];
}

/** Lanes of a {@link SourceSum}. */
export declare const SUM_LANES: 16;

/** What a replica holds of one source: its clock, its keys, and the lane-wise sums (mod
 * 2^32) of their signatures' 16 little-endian words (core's `control::SourceSum`). */
export interface SourceSum {
  source: string;
  ts: number;
  count: number;
  lanes: Uint32Array;
}

/** A `SUMS` control line of these sums. */
export declare function sumsLine(sums: SourceSum[]): string;
/** A `SUMS` line's entries (odd ones left out), or null when it is not an object. */
export declare function parseSums(text: string): SourceSum[] | null;

/** A decoded line of the json codec. */
export type Line =
  | ({ type: 'update' } & Update)
  | { type: 'digest'; id: string; clock: Map<string, number> }
  | { type: 'sync' | 'ping' | 'pong' }
  | { type: 'control'; text: string };

export declare function encodeUpdate(u: Update): string;
export declare function encodeDigest(id: string, clock: Map<string, number>): string;
export declare function encodeControl(text: string): string;
/** Throws a MeshError for a line that is not a scuttlebutt message. */
export declare function decodeLine(line: string): Line;

/** Splits a stream of text into lines; the partial tail is bounded. */
export declare class LineDecoder {
  push(chunk: string | Uint8Array): string[];
}

/** Text messages on a data channel carry at most this many UTF-16 units. */
export declare const CHUNK: number;

/** A link's codec name, as a data channel's `protocol` and an announce's `codecs`. */
export type CodecName = 'postcard' | 'json';

/** What a Session writes to: a link's encoder. */
export interface MessageSink {
  digest(id: string, clock: Map<string, number>): void;
  update(u: Update): void;
  control(text: string): void;
}

/** The json codec, each line handed to `send` as it is made. */
export declare class LineWriter implements MessageSink {
  constructor(send: (line: string) => void);
  readonly codec: 'json';
  digest(id: string, clock: Map<string, number>): void;
  update(u: Update): void;
  control(text: string): void;
}

/** The json codec for a data channel: `poll()` gives text messages until null. */
export declare class JsonEncoder extends LineWriter {
  constructor();
  onWrite: () => void;
  pending(): boolean;
  poll(): string | null;
}

/** Postcard frames on a data channel: at most this many bytes each. */
export declare const FRAME_SIZE: number;
/** The longest postcard frame a decoder takes. */
export declare const MAX_FRAME_LEN: number;

/** A value's compact encoding (core's `EncodedValue`). */
export declare function encodeValue(v: Json): Uint8Array;
/** Decodes exactly one value's bytes; throws a MeshError for bytes core refuses. */
export declare function decodeValue(b: Uint8Array, start?: number, end?: number): { value: Json; json: string };
/** An update's value encoding, computed once and kept on it. */
export declare function valueBytes(u: Update & { bytes?: Uint8Array }): Uint8Array;

/** Messages into postcard frames, cut as core's encoder cuts them. */
export declare class PostcardEncoder implements MessageSink {
  constructor(frameSize?: number);
  readonly codec: 'postcard';
  onWrite: () => void;
  digest(id: string, clock: Map<string, number>): void;
  update(u: Update): void;
  control(text: string): void;
  historySize(n: number): void;
  pending(): boolean;
  poll(): Uint8Array | null;
}

/** Postcard frames into messages; a bad frame throws a MeshError and yields nothing. */
export declare class PostcardDecoder {
  constructor();
  push(frame: Uint8Array): Array<Line | { type: 'history_size'; n: number }>;
}

/** A link's counters. */
export interface SessionStats {
  bytesIn: number;
  bytesOut: number;
  updatesIn: number;
  updatesOut: number;
  errors: number;
  pingsIn: number;
  /** Round trip of the last answered `PING`, in milliseconds. */
  rtt: number | null;
  /** Updates a secured store refused (16 within the forgiveness close the link). */
  refused: number;
  /** Sources whose sums differed from the remote's while the clocks agreed. */
  repairs: number;
  /** Updates sent in those repairs. */
  repaired: number;
}

/** What {@link Session.handle} tells its caller. */
export type SessionAnswer =
  | { digest: string; synced: boolean }
  | { update: Update; verdict: Verdict }
  | { synced: boolean }
  | { control: string }
  | null;

/** One sync conversation over one link (core's `session`). */
export declare class Session {
  constructor(store: Store, out: MessageSink | ((line: string) => void));
  readonly remoteId: string | null;
  readonly synced: boolean;
  readonly stats: SessionStats;
  handle(m: Line, nowMs: number): SessionAnswer;
  sendUpdate(u: Update): boolean;
  /** Sends an update applied late, whatever the remote's clock says. */
  sendLate(u: Update): boolean;
  /** Answers the remote's `SUMS`: sources whose clocks agree but sums differ are sent whole. */
  repair(theirs: SourceSum[]): void;
  /** Sends our `SUMS` (secured rooms, once synced). */
  sendSums(): void;
  /** The remote's `WANT` (keys a removal voided there): what we hold of them is sent. */
  answerWant(keys: string[]): void;
  /** Asks the remote for keys a removal voided here (`WANT`). */
  sendWant(keys: string[]): void;
  sendHistory(): void;
  ping(nowMs: number): void;
  sendControl(text: string): void;
  sendClock(): void;
}

/** One store served over many links (core's `replica`). */
export declare class Replica {
  constructor(store: Store);
  readonly store: Store;
  onUpdate: (u: Update, local: boolean) => void;
  /** A secured room's signer of local writes (signs, then forwards), or null. */
  signer: ((u: Update) => void) | null;
  /** Applies and forwards held-back updates that came due. */
  releaseHeld(): void;
  /** Reports writes a removal voided and asks the links for their keys (`WANT`). */
  voided(): void;
  /** Offers an update to every link but `origin`'s (no event). */
  send(u: Update, origin: number | null): void;
  openLink(out: MessageSink | ((line: string) => void)): number;
  closeLink(id: number): void;
  session(id: number): Session | undefined;
  handleLine(id: number, line: string, nowMs: number): SessionAnswer;
  handleMessage(id: number, m: Line, nowMs: number): SessionAnswer;
  set(key: string, value: Json | undefined): Update;
  reportLinks(gains: boolean): void;
}

/** A parsed rtc-signaller message. */
export interface SignalMessage {
  to: string | null;
  command: string;
  sender: string | null;
  args: unknown[];
}

export declare function encodeSignal(command: string, sender: string | null, args?: unknown[], to?: string | null): string;
export declare function parseSignal(text: unknown): SignalMessage | null;

/** Core's xorshift64 generator. */
export declare class Xorshift {
  constructor(seed: number | bigint);
  next(): bigint;
  /** `ms` scaled by a factor in [0.5, 1). */
  jitter(ms: number): number;
}

export type SignalOutput =
  | { type: 'connect' }
  | { type: 'send'; text: string }
  | { type: 'close' }
  | { type: 'connected' }
  | { type: 'disconnected' }
  | { type: 'timeout'; at: number };

/** Core's signalling client, sans-IO (times in milliseconds on any clock). */
export declare class SignalClient {
  constructor(config?: { minBackoff?: number; maxBackoff?: number; maxQueue?: number; seed?: number | bigint }, now?: number);
  readonly connections: number;
  readonly dropped: number;
  isConnected(): boolean;
  isClosed(): boolean;
  send(text: string): void;
  announce(text: string): void;
  handleConnected(now: number): void;
  handleDisconnected(now: number): void;
  handleTimeout(now: number): void;
  close(): void;
  /** Drain until it returns a `timeout`. */
  poll(): SignalOutput;
}

/** What a {@link Mesh} asks of its signalling connection and link layer. */
export type MeshOutput =
  | { type: 'signalConnect' }
  | { type: 'signal'; text: string }
  | { type: 'signalClose' }
  | { type: 'open'; peer: string; offerer: boolean; codec: CodecName }
  | { type: 'remoteSdp'; peer: string; kind: 'offer' | 'answer'; sdp: string }
  | { type: 'restartSdp'; peer: string; kind: 'offer' | 'answer'; sdp: string }
  | { type: 'remoteCandidate'; peer: string; candidate: { [key: string]: Json } }
  | { type: 'close'; peer: string }
  | { [E in keyof MemberEvents]: { type: 'event'; name: E; detail: MemberEvents[E] } }[keyof MemberEvents]
  | { type: 'timeout'; at: number };

/** Configuration of a {@link Mesh} (core's `MeshConfig`; times in milliseconds). */
export interface MeshConfig {
  id: string;
  room: string;
  incarnation: string;
  codecs?: CodecName[];
  attributes?: { [key: string]: Json };
  agent?: string;
  /** Wall-clock milliseconds at the mesh's start (the store's timestamps count from it). */
  epochMs?: number;
  /** Seed of the retries' jitter and the signalling client's. */
  seed?: bigint;
  pingMs?: number;
  /** false: never PING (as a plain scuttlebutt peer); ICE alone watches its links. */
  ping?: boolean;
  deadMs?: number;
  negotiateMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  signalling?: { minBackoff?: number; maxBackoff?: number; maxQueue?: number };
  /** A secured room (core's `MeshConfig::security`): every signal sealed, announces,
   * leaves and SDP signed; `id` must be the identity's peer id. */
  security?: MeshSecurity;
}

/** A member's part in a secured room (core's `Security`). */
export interface MeshSecurity {
  /** The room's keys ({@link deriveRoomKey}). */
  key: RoomKey;
  /** Our identity: the mesh's id is its peer id. */
  identity: Identity;
  /** How far a signed announce, leave or SDP may be from our clock (default 300000: 5 min). */
  maxSignalAgeMs?: number;
  /** A kept key epoch to resume ({@link resumeRekey}), or null. */
  rekey?: ResumedRekey | null;
  /** How long a member that is not an admin waits for someone else's rotation after a
   * removal (default 10000 ms; jittered up to twice that). */
  rekeyWaitMs?: number;
  /** The grace period of a rotation this member makes (default 7 days), in ms. */
  rekeyGraceMs?: number;
}

/** Counters of a {@link Mesh} (core's `MeshStats`, the ones the browser client keeps). */
export interface MeshStats {
  early: number;
  offers: number;
  negotiationTimeouts: number;
  linkTimeouts: number;
  offersRestarted: number;
  badSignals: number;
  signalDisconnects: number;
  /** Secured rooms: signals refused for being unsealed or unsigned on the room's tag. */
  unsecuredSignals: number;
  /** Secured rooms: sealed payloads that did not open for their command, sender and target. */
  unsealFailures: number;
  /** Secured rooms: signatures that did not check (or a sender id that is no key). */
  badSignatures: number;
  /** Secured rooms: announces, leaves and SDP replayed, too old or too far ahead, or of
   * another incarnation than the member announced. */
  staleSignals: number;
  /** Secured rooms: announces and SDP from members an admin removed (ignored). */
  removedSignals: number;
  /** Secured rooms: key epochs taken (made here or from a peer's `REKEY` line). */
  rekeys: number;
  /** Secured rooms: `REKEY` lines refused (malformed, forged, not allowed, too far ahead,
   * or a grace period past 30 days). */
  rekeysRefused: number;
}

/** The longest a closing mesh waits for its links' remotes to read its `BYE`. */
export declare const CLOSE_FLUSH_MS: number;

/**
 * The peer side of a room over abstract links, sans-IO (core's `Mesh`, rule for rule):
 * feed it inputs with the time, then drain {@link Mesh.poll} until a `timeout`. A
 * {@link Member} drives one with a WebSocket and RTCPeerConnections.
 */
export declare class Mesh {
  constructor(config: MeshConfig, start?: number);
  readonly id: string;
  readonly store: Store;
  readonly replica: Replica;
  readonly closed: boolean;
  readonly stats: MeshStats;
  /** Secured rooms: called when outputs are waiting that no input made (a signal was
   * sealed or opened, which WebCrypto does asynchronously): drain {@link Mesh.poll} then. */
  onOutput: (() => void) | null;
  /** The next output; a durable mesh gives its timeout while the next output waits
   * for changes made before it to be stored. */
  poll(): MeshOutput;
  /** When `handleTimeout` is next due. */
  deadline(): number;
  /** Makes the mesh durable; with `hold` each output, and each message on a link,
   * waits until the changes made before it are stored. */
  persist(hold: boolean): void;
  /** The store's changes for the storage, one batch, or null. */
  takeChanges(): PersistBatch | null;
  /** The storage holds every batch up to `seq`. */
  persisted(seq: number): void;
  /** Whether changes made so far are not all stored yet. */
  awaitingPersist(): boolean;
  /** What an output made now waits for (a durable mesh that holds), else null. */
  markNow(): PersistMark | null;
  /** Whether an output marked `m` may go. */
  released(m: PersistMark | null): boolean;
  isFinished(): boolean;
  /** Resolves once no signal is being sealed or opened (at once in an open room). */
  settled(): Promise<void>;
  /** The room's key epoch (0 in an open room, and until the first removal). */
  epoch(): number;
  /** The current epoch's `REKEY` line (to keep, and resume with), or null in epoch 0. */
  rekeyLine(): string | null;
  /** What goes on the open link to `peer` (its channel messages), or null. */
  encoderOf(peer: string): HeldEncoder | null;
  sessionOf(peer: string): Session | null;
  start(now: number): void;
  announce(now: number, attributes: { [key: string]: Json }): void;
  set(now: number, key: string, value: Json): Update;
  close(now: number): void;
  handleSignalConnected(now: number): void;
  handleSignalDisconnected(now: number): void;
  /** The switchboard refused the connection before the upgrade with this HTTP status
   * (`'401 Unauthorized'`; `''` if unknown): a `refused` event (`http_401`, or `http`),
   * then as a lost connection. */
  handleSignalRefused(now: number, status?: string): void;
  handleSignal(now: number, text: string): void;
  localSdp(now: number, peer: string, kind: 'offer' | 'answer', sdp: string): void;
  /** Our SDP of an ICE restart of the open link to `peer` (`"restart": true`). */
  localRestartSdp(now: number, peer: string, kind: 'offer' | 'answer', sdp: string): void;
  localCandidate(now: number, peer: string, candidate: { [key: string]: Json }): void;
  linkOpen(now: number, peer: string, codec: CodecName): void;
  linkData(now: number, peer: string, data: string | Uint8Array): void;
  /** Decoded messages from `peer`'s link (after their updates were checked, in a
   * secured room). */
  handleMessages(now: number, peer: string, link: number, msgs: Line[]): void;
  linkClosed(now: number, peer: string): void;
  /** The link layer judged the open link dead (ICE lost): the peer leaves for `timeout`. */
  linkLost(now: number, peer: string): void;
  /** The link layer holds the open link (an ICE restart runs, or SCTP retransmits over a
   * path that still answers): its liveness starts again now. */
  linkAlive(now: number, peer: string): void;
  /** Whether the link to `peer` may be ICE-restarted: open, the peer has pinged, is in
   * the room, and signalling works. */
  canRestart(peer: string): boolean;
  handleTimeout(now: number): void;
}

/** Options of {@link join}. */
export interface JoinOptions {
  /** The switchboard's WebSocket URL (default: the page's own host, or ws://127.0.0.1:3000/). */
  signal?: string;
  /** Our peer id: 1-64 of `[A-Za-z0-9._~-]` (default 16 random hex characters). */
  id?: string;
  /** Announced to the room with our own (`id`, `room`, `agent`, `incarnation`, `codecs`). */
  attributes?: { [key: string]: Json };
  /** STUN and TURN servers, for each RTCPeerConnection. Given no TURN server, the
   * member uses the ones the switchboard offers (`rtc-mesh serve --turn`). */
  iceServers?: RTCIceServer[];
  /** `'relay'`: offer relayed candidates only (every link through a TURN server). */
  iceTransportPolicy?: 'all' | 'relay';
  /** Codecs we speak, best first (default `['postcard', 'json']`); a link takes the
   * first one its peer lists too. */
  codecs?: CodecName[];
  /** An admission token for a switchboard that requires one (`rtc-mesh serve
   * --token-secret`), sent as `?token=` on the signalling URL. */
  token?: string;
  /** The room's secret: an invite (`rm1_...`) or a passphrase, or the room key
   * {@link deriveRoomKey} made of it for this room. With one the room is secured, and
   * {@link join} returns a promise. */
  secret?: string | RoomKey;
  /** Our identity in a secured room (default: a fresh one); its key is our peer id. */
  identity?: Identity;
  /** A secured room's key epoch kept across a restart: the `line` of a `rekeyed` event
   * (or {@link Member.rekeyLine}). A line not of this room rejects with `bad_rekey`. */
  rekey?: string;
  /** How long, after a removal, this member (if not an admin) waits for someone else's
   * rotation before it rotates itself (default 10000 ms, jittered up to twice that). */
  rekeyWaitMs?: number;
  /** The grace period of a rotation this member makes (default 7 days), in ms. */
  rekeyGraceMs?: number;
  /** A durable member: its store kept in IndexedDB (`true`: the database
   * `rtc-mesh:<room>`, in a secured room `rtc-mesh:secured:<room id>`; or a database's
   * name). {@link join} then returns a promise, the
   * store read back first. */
  data?: boolean | string;
  /** With `data`: `process` (default; a write is acknowledged once IndexedDB has it),
   * `power` (flushed to disk first) or `memory` (acknowledged at once). */
  durability?: Durability;
  /** With `data`: bad rows are dropped (and the clocks, so the room sends everything
   * again) instead of refusing the start with `bad_data`. */
  repair?: boolean;
}

export type Durability = 'memory' | 'process' | 'power';

/** A row of a durable store: the entry a change left. */
export interface StoredEntry {
  key: string;
  /** The value's JSON (`null` for a deletion). */
  json: string;
  /** 0 for a write a removal voided. */
  ts: number;
  source: string;
  /** The writer's signature (secured rooms). */
  sig?: Uint8Array;
}

/** One batch of a durable store's changes, written in one transaction. */
export interface PersistBatch {
  seq: number;
  entries: StoredEntry[];
  clocks: { source: string; ts: number }[];
}

/** What {@link checkRecords} makes of the rows read back. */
export interface CheckedRecords {
  entries: Update[];
  clocks: Map<string, number>;
  /** Rows dropped (`repair`). */
  dropped: number;
}

/** The changes of a durable store not yet handed out (lib/persist.js). */
export declare class Journal {
  /** The number the next batch takes, and the highest one stored. */
  readonly next: number;
  readonly done: number;
  /** Whether outputs wait for the storage. */
  hold: boolean;
  /** The sequence number of the batch the changes made now will be in. */
  pendingSeq(): number;
  take(): PersistBatch | null;
  persisted(seq: number): void;
  /** Whether a change is not yet stored, or a local write not yet signed. */
  awaiting(): boolean;
  /** Local writes being signed. */
  readonly signing: number;
  signStarted(): void;
  signFinished(): void;
  /** The last batch that holds, or is to hold, every change recorded so far (0: none). */
  mark(): number;
  /** What an output made now waits for. */
  markNow(): PersistMark;
  /** Whether what an output marked `m` could tell of is stored. */
  released(m: PersistMark): boolean;
}

/** What an output waits for: the batch `seq` stored, after the writes being signed up
 * to the `signed`-th are (0: none). */
export interface PersistMark {
  seq: number;
  signed: number;
}

/** A link's encoder behind which messages wait until the changes they could tell of
 * are stored, and then go in the order written (lib/persist.js). */
export declare class HeldEncoder implements MessageSink {
  constructor(
    inner: JsonEncoder | PostcardEncoder,
    marks: { markNow(): PersistMark | null; released(m: PersistMark | null): boolean },
  );
  readonly inner: JsonEncoder | PostcardEncoder;
  readonly codec: 'json' | 'postcard';
  onWrite: () => void;
  digest(id: string, clock: Map<string, number>): void;
  update(u: Update): void;
  control(text: string): void;
  /** Hands the inner encoder what may go now. */
  release(): void;
  pending(): boolean;
  poll(): string | Uint8Array | null;
}

/** Checks rows read back from a storage, bounded: a bad one is a MeshError `bad_data`
 * naming `where` and the row, or with `repair` dropped (and every clock with it). */
export declare function checkRecords(
  records: { entries?: unknown[]; clocks?: unknown[] },
  where: string,
  repair?: boolean,
): CheckedRecords;

/** A durable member's storage: IndexedDB, or any object that stores batches in order,
 * each all or nothing. */
export interface MemberStorage {
  write(batch: PersistBatch, strict: boolean): Promise<void>;
  setMeta(key: string, value: Json): Promise<void>;
  close(): void;
}

/** Opens and holds the IndexedDB database `name` and reads it back (lib/storage.js).
 * Rejects with a MeshError `busy`, `bad_data` or `storage_failed`. */
export declare function openStorage(
  name: string,
  options?: { repair?: boolean },
): Promise<{ storage: MemberStorage; records: CheckedRecords & { meta: { rekey: string | null } } }>;

export type LeaveReason = 'left' | 'timeout' | 'closed' | 'failed' | 'removed';

/** Events of a {@link Member}, by name. */
export interface MemberEvents {
  update: { key: string; value: Json; deleted: boolean; ts: number; source: string; local: boolean };
  peer_join: { peer: string; attributes: { [key: string]: Json } };
  peer_update: { peer: string; attributes: { [key: string]: Json } };
  peer_leave: { peer: string; reason: LeaveReason };
  synced: { peer: string };
  synced_all: { peers: string[] };
  online: Record<string, never>;
  offline: Record<string, never>;
  /** The switchboard offered TURN servers (with short-lived credentials), used from now on. */
  ice_offered: { urls: string[] };
  /** The switchboard refused us (our connection, or our announce); also reported as
   * an `error` with code `refused_<reason>`. The connection is retried with backoff. */
  refused: { reason: string };
  /** A secured room: the peer sent 16 updates our store refused; its link was closed. */
  peer_misbehaved: { peer: string; reason: UpdateCheck };
  /** A peer closed our link because its store refused what we sent. */
  refused_by_peer: { peer: string; reason: string };
  /** A secured room moved to a new key epoch (after a removal); keep `line` and join
   * with it as `rekey` after a restart. */
  rekeyed: { epoch: number; by: string; line: string };
  error: MeshError;
}

/** A present peer, as {@link Member.peerList} reports it. */
export interface PeerInfo {
  id: string;
  attributes: { [key: string]: Json };
  state: 'idle' | 'negotiating' | 'open';
  synced: boolean;
  codec: CodecName | null;
  stats: SessionStats | null;
  /** The open link's selected candidate pair (read from its stats every 2 s), or null. */
  path: { local: PathEnd; remote: PathEnd } | null;
}

/** One end of a link's path: its candidate type and address. */
export interface PathEnd {
  type: 'host' | 'srflx' | 'prflx' | 'relay';
  addr: string;
}

/** A member of a room; create one with {@link join}. */
export declare class Member {
  /** `security` is what {@link join} makes of `secret` and `identity`; `storage` and
   * `records` what it makes of `data` ({@link openStorage}). */
  constructor(
    room: string,
    options?: JoinOptions & { security?: MeshSecurity; storage?: MemberStorage; records?: CheckedRecords },
  );
  readonly room: string;
  readonly id: string;
  /** Whether the room is secured (joined with a secret). */
  readonly secured: boolean;
  /** In a secured room the name the switchboard sees (derived from the secret, and from
   * the current key epoch once its grace period is over), else null. */
  readonly tag: string | null;
  /** The room's key epoch (0 in an open room, and until the first removal). */
  readonly epoch: number;
  /** The current epoch's `REKEY` line, or null in epoch 0. */
  readonly rekeyLine: string | null;
  readonly incarnation: string;
  readonly store: Store;
  readonly replica: Replica;
  /** The sans-IO mesh it drives. */
  readonly mesh: Mesh;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /** A durable member's storage, else null. */
  readonly storage: MemberStorage | null;
  readonly durability: Durability;
  /** The storage's failure, once a write failed (the member stopped), else null. */
  readonly failure: MeshError | null;
  /** Subscribes; returns the function that unsubscribes. */
  on<E extends keyof MemberEvents>(name: E, fn: (detail: MemberEvents[E]) => void): () => void;
  /** Sets `key` (`null` deletes). Throws a MeshError for a refused write. Resolves once
   * the write is acknowledged: for a durable member once IndexedDB has it (its `update`
   * event and its sending wait for that too), else at once; rejects with the storage's
   * failure. */
  set(key: string, value: Json): Promise<void>;
  delete(key: string): Promise<void>;
  get(key: string): Json | undefined;
  keys(): string[];
  snapshot(): { [key: string]: Json };
  peerList(): PeerInfo[];
  /** ICE restarts of open links begun (by this page or the peer), and those after which
   * data flowed again; in a secured room, the signals refused (see {@link MeshStats}). */
  readonly stats: {
    restarts: number;
    restartsRecovered: number;
    readonly unsecuredSignals: number;
    readonly unsealFailures: number;
    readonly badSignatures: number;
    readonly staleSignals: number;
    readonly removedSignals: number;
    readonly rekeys: number;
    readonly rekeysRefused: number;
    readonly updatesUnsigned: number;
    readonly updatesBadSignature: number;
    readonly updatesBadSource: number;
    readonly updatesNotOwner: number;
    readonly updatesHeld: number;
    /** Updates applied below their writer's clock: a relay reordered them. */
    readonly updatesLate: number;
    /** Updates of a removed member stamped after its removal. */
    readonly updatesRevoked: number;
    /** Writes of a removed member voided when its removal arrived. */
    readonly updatesVoided: number;
  };
  /** New user attributes, announced to the room. */
  announce(attributes: { [key: string]: Json }): void;
  /** `BYE` on every link, each kept until its remote closes it (at most 5 s), then `/leave`. */
  close(): Promise<void>;
}

/** Joins a secured `room` (`options.secret`): once its key is derived and an identity
 * made, the member; it announces as soon as its WebSocket opens. */
export declare function join(room: string, options: JoinOptions & { secret: string | RoomKey }): Promise<Member>;
/** Joins `room` as a durable member (`options.data`): once its store is read back. */
export declare function join(room: string, options: JoinOptions & { data: true | string }): Promise<Member>;
/** Joins `room`; the member announces as soon as its WebSocket opens. */
export declare function join(room: string, options?: JoinOptions & { secret?: undefined; data?: false }): Member;

// Secured rooms (lib/security.js, the twin of core's `security` module).

/** How far a signed announce, leave or SDP may be from our clock (5 minutes), in ms. */
export declare const DEFAULT_MAX_SIGNAL_AGE_MS: number;
/** The most bytes an opened (inflated) SDP payload may have: 64 KiB. */
export declare const MAX_SDP_PLAIN: number;

/** How an invite secret starts: `rm1_` and 43 base64url characters. */
export declare const INVITE_PREFIX: 'rm1_';
/** PBKDF2-HMAC-SHA256 iterations of a passphrase. */
export declare const PBKDF2_ROUNDS: number;
/** Length of a key-derived peer id. */
export declare const PEER_ID_LEN: 43;
/** Reads a room secret; throws a MeshError `bad_secret`. */
export declare function parseSecret(text: string):
  | { kind: 'invite'; bytes: Uint8Array; admins: { ids: string[]; sig: Uint8Array; body: string } | null }
  | { kind: 'passphrase'; text: string };
/** The most admins an invite names. */
export declare const MAX_ADMINS: 16;
/** An invite (without admins) naming `creator` and `others` as the room's admins, signed
 * by the creator: `rm1_<secret>.<sig>.<creator>[.<admin>]*`. */
export declare function inviteWithAdmins(invite: string, creator: Identity, others?: string[]): Promise<string>;
/** A fresh invite secret (`rm1_...`). */
export declare function generateSecret(): string;
/** The keys of a secured room. */
export interface RoomKey {
  /** The room's stable id, in every signature. */
  readonly roomId: Uint8Array;
  /** The name the switchboard sees (22 base64url characters). */
  readonly tag: string;
  readonly tagRaw: Uint8Array;
  /** The AES-256-GCM key of sealed payloads (not extractable). */
  readonly key: CryptoKey;
  /** The admins the invite names (checked: signed by its creator, the first). */
  readonly admins: readonly string[];
  /** The key epoch (0 until the first removal's rotation). */
  readonly epoch: number;
  /** The epoch's secret key (32 bytes): what a `REKEY` line hands on. */
  readonly epochKey: Uint8Array;
}
/** The keys of `room` under `secret` (a passphrase is stretched: about a second). */
export declare function deriveRoomKey(room: string, secret: string): Promise<RoomKey>;
/** Seals a signalling payload for `command` from `sender` to `target` ('' for all). */
export declare function seal(key: RoomKey, command: string, sender: string, target: string,
  plaintext: Uint8Array | string, nonce?: Uint8Array): Promise<string>;
/** Opens a sealed payload; rejects with a MeshError `unseal_failed`. */
export declare function open(key: RoomKey, sealed: string, command: string, sender: string,
  target: string): Promise<Uint8Array>;
/** A member's public key, checked (canonical, not of small order). */
export declare class PeerKey {
  private constructor();
  readonly raw: Uint8Array;
  readonly key: CryptoKey;
  readonly peerId: string;
  /** Rejects with a MeshError `bad_key`. */
  static fromPeerId(id: string): Promise<PeerKey>;
  static fromBytes(bytes: Uint8Array): Promise<PeerKey>;
  /** The shared validity rule: R canonical and not of small order, S < L, then verify. */
  verify(msg: Uint8Array | string, sig: Uint8Array | string): Promise<boolean>;
}
/** A member's own Ed25519 key; `peerId` is its public half. */
export declare class Identity {
  private constructor();
  readonly privateKey: CryptoKey;
  readonly public: PeerKey;
  readonly peerId: string;
  static fromSeed(seed: Uint8Array, extractable?: boolean): Promise<Identity>;
  static generate(): Promise<Identity>;
  sign(msg: Uint8Array | string): Promise<Uint8Array>;
  signText(msg: Uint8Array | string): Promise<string>;
}
/** The signing inputs, byte for byte as core's `security::signing`. */
export declare const signing: {
  announce(tag: string, id: string, ts: number, sealed: string): Promise<Uint8Array>;
  leave(tag: string, id: string, incarnation: string, ts: number): Promise<Uint8Array>;
  sdp(roomId: Uint8Array, sender: string, target: string, incarnation: string, ts: number,
    kind: 'offer' | 'answer', sdp: string): Promise<Uint8Array>;
};
// Key epochs (core's `security::rekey`).

/** A `REKEY` line, parsed: the room's next key epoch, signed by `by`. */
export interface Rekey {
  readonly epoch: number;
  /** The epoch's key (32 bytes). */
  readonly key: Uint8Array;
  /** The previous epoch's key (32 bytes): the previous tag stays open in the grace period. */
  readonly prev: Uint8Array;
  /** The end of the grace period, wall-clock ms. */
  readonly until: number;
  /** The removed members' ids, sorted bytewise. */
  readonly removed: readonly string[];
  readonly by: string;
  readonly sig: Uint8Array;
}
/** What {@link resumeRekey} makes of a kept line. */
export interface ResumedRekey {
  rekey: Rekey;
  key: RoomKey;
  previous: RoomKey;
}
/** The most removed members one line lists. */
export declare const MAX_REMOVED: 512;
/** The most epochs one line may move a room ahead. */
export declare const MAX_EPOCH_JUMP: 1024;
/** The longest grace period a line may give (30 days), in ms. */
export declare const MAX_GRACE_MS: number;
/** How long a member that is not an admin waits for someone else's rotation (10 s), in ms. */
export declare const DEFAULT_REKEY_WAIT_MS: number;
/** The default grace period of a rotation (7 days), in ms. */
export declare const DEFAULT_REKEY_GRACE_MS: number;
/** Reads a `REKEY` line's JSON (after `REKEY `); throws a MeshError `bad_rekey`. */
export declare function parseRekey(json: string): Rekey;
/** Whether the line is signed by its `by` for `key`'s room. */
export declare function verifyRekey(r: Rekey, key: RoomKey): Promise<boolean>;
/** The line's JSON, in core's order. */
export declare function rekeyJson(r: Rekey): string;
/** The next epoch of `key`'s room, made by `identity`; null once the epochs are spent. */
export declare function rotateRekey(key: RoomKey, removed: string[], until: number, identity: Identity): Promise<Rekey | null>;
/** `key`'s room in epoch `epoch`, whose key is `k` (32 bytes). */
export declare function rotatedRoomKey(key: RoomKey, epoch: number, k: Uint8Array): Promise<RoomKey>;
/** Whether the line's epoch wins over `key`'s: higher, or equal with a smaller key. */
export declare function rekeyBeats(r: Rekey, key: RoomKey): boolean;
/** Whether line `a` wins over line `b`. */
export declare function rekeyOutranks(a: Rekey, b: Rekey): boolean;
/** Core's checks of a verified line: null (it may be taken) or why not. */
export declare function checkRekey(r: Rekey, key: RoomKey, wallMs: number, isRemoved: (id: string) => boolean):
  null | 'grace_too_long' | 'not_allowed' | 'too_far_ahead' | 'unknown_removal';
/** A kept line (`REKEY {..}`) made ready to resume; null if it does not beat `key`.
 * Rejects with a MeshError `bad_rekey` if it is not a line of this room. */
export declare function resumeRekey(key: RoomKey, line: string): Promise<ResumedRekey | null>;

/** base64url without padding. */
export declare function b64url(bytes: Uint8Array): string;
/** Decodes canonical base64url without padding; null for anything else. */
export declare function fromB64url(text: string): Uint8Array | null;
