//! A durable member's directory: the files of its log and snapshots
//! ([`rtc_mesh_core::persist`]), held by one process at a time.
//!
//! ```text
//! DIR/LOCK                              held (flock) while the member runs
//! DIR/snap-<from seq, 20 digits>.snap   the store as of a snapshot (at most one kept)
//! DIR/log-<first seq, 20 digits>.seg    the log's segments, oldest first
//! DIR/*.tmp                             a snapshot being written (removed at a start)
//! ```
//!
//! [`Storage::opening`] takes the lock (a second process gets [`StorageError::Locked`],
//! naming the directory); reading the log back ([`Opening`], a [`LogSource`]) reads the
//! newest snapshot and every segment from its `from_seq` on, on a thread of its own,
//! one file at a time ([`persist::Recovery`]), and hands the updates on as it decodes
//! them, so that the store restores them meanwhile ([`Storage::open`] reads it all
//! into [`Opened::recovered`] instead). A torn tail of the last segment is cut off
//! (the file truncated, and the cut reported); damage anywhere else stops the start
//! with [`StorageError::Damaged`], naming the file and offset, unless `repair` (then
//! the valid prefix is kept and later segments go). Each start then writes a segment
//! of its own, so a file that was cut is never written again. [`Storage::append`]
//! writes the store's batches ([`Store::poll_persist`]) as they come; at
//! [`Durability::Power`] it syncs them to disk before it returns, or, once
//! [`Storage::sync_in_background`] was called (the drivers do), hands the sync to a
//! thread of its own: one `fdatasync` covers everything written before it began, so
//! while it runs the event loop goes on and the next sync covers all that came
//! meanwhile (group commit); [`Storage::synced`] says how far the syncs got, and the
//! store's outputs wait for that ([`rtc_mesh_core::mesh::Mesh::poll_output`]). An I/O error, a
//! failed sync above all, is returned and must end the member: after a failed `fsync`
//! the kernel may have dropped the pages, and a retry that succeeds would say nothing
//! about them.
//!
//! **Compaction.** The store decides when a snapshot is due and hands it out in
//! pieces ([`Store::poll_snapshot`]), a few thousand entries per turn of the event
//! loop. [`Storage::snapshot`] rolls the log to a new segment at the snapshot's first
//! piece (at power the segment left synced first, so that a sealed segment is whole
//! on disk and one cut short is damage), and passes the pieces to a writer thread: it writes them to a `.tmp` file,
//! and once the last has come syncs it and the log segment the snapshot depends on,
//! renames it into place, syncs the directory, and only then removes the segments
//! before it and the older snapshot. A crash at any point leaves either the old
//! snapshot and its log or the new one and its log. The event loop never waits for
//! the writer thread; a failure there ends the member at its next write.
//!
//! [`Store::poll_persist`]: rtc_mesh_core::Store::poll_persist
//! [`Store::poll_snapshot`]: rtc_mesh_core::Store::poll_snapshot

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

pub use rtc_mesh_core::persist::Durability;
use rtc_mesh_core::persist::{
    self, encode_header, parse_segment_name, parse_snapshot_name, segment_name, snapshot_name,
    Damage, LogSource, LogUpdate, RecoverError, Recovered, SegmentHeader, FORMAT,
};
use rtc_mesh_core::store::{PersistBatch, SnapshotPart};
use rtc_mesh_core::Limits;

/// Why a member's directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Another process holds the directory.
    #[error("{} is in use by another process (one member per data directory)", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A file operation failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A segment is damaged before its end.
    #[error(
        "{} is damaged at byte {offset}: {damage} (start with --repair to keep what comes before it; the room sends the rest)",
        path.display()
    )]
    Damaged {
        /// The segment.
        path: PathBuf,
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong.
        damage: Damage,
    },
    /// A segment of a format this build does not read.
    #[error("{} is of log format {format}; this build reads format {FORMAT}", path.display())]
    Format {
        /// The segment.
        path: PathBuf,
        /// Its format.
        format: u32,
    },
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io { path, op, source }
}

/// What opening a directory found.
#[derive(Debug)]
pub struct Opened {
    /// The directory, held: [`Held::begin`] starts this life's segment.
    pub storage: Held,
    /// The log read back: restore its updates and clocks into the store
    /// ([`rtc_mesh_core::Store::restore`], [`rtc_mesh_core::Store::restore_clock`]),
    /// and number the store's changes from `next_seq`
    /// ([`rtc_mesh_core::StoreConfig::persist_from`]).
    pub recovered: Recovered,
    /// A torn tail that was cut off (or, with repair, damage): the file and offset.
    pub cut: Option<(PathBuf, usize, Damage)>,
    /// Repair only: a damaged snapshot that was set aside with the log after it (the
    /// store starts empty): the file and offset.
    pub snapshot_cut: Option<(PathBuf, usize, Damage)>,
}

/// A member's directory, held for as long as this lives.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    _lock: File,
    file: Arc<File>,
    path: Arc<Path>,
    durability: Durability,
    written: u64,
    /// The first sequence number of the segment being written, and whether it holds
    /// any record yet.
    segment: (u64, bool),
    store_id: String,
    writer: Option<SnapshotWriter>,
    /// What the writer thread has done: snapshots put in place, or its error.
    report: Arc<Mutex<WriterReport>>,
    /// The error that ended the member ([`flush`]), for its handle to tell.
    failure: Failure,
    /// The log's sync thread ([`Storage::sync_in_background`]), if started.
    syncer: Option<Syncer>,
}

/// A segment written up to a record, to be synced.
type SyncJob = (Arc<File>, Arc<Path>, u64);

/// The log's sync thread.
struct Syncer {
    jobs: Option<mpsc::Sender<SyncJob>>,
    thread: Option<JoinHandle<()>>,
    report: Arc<Mutex<SyncReport>>,
    /// The last sequence number [`Storage::synced`] gave.
    told: u64,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("told", &self.told).finish()
    }
}

/// How far the sync thread got.
#[derive(Default)]
struct SyncReport {
    synced: u64,
    error: Option<StorageError>,
}

/// Where a member's fatal storage error is kept for its handle
/// ([`crate::mesh::Member::failure`]): a failed write or sync ends the member, and
/// its embedder (the program: exit status 1) learns why.
#[derive(Clone, Debug, Default)]
pub struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    /// The error, once the member has stopped on one.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, e: &StorageError) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| e.to_string());
    }
}

/// A member's directory, held, its log read back, before this life writes.
#[derive(Debug)]
pub struct Held {
    dir: PathBuf,
    lock: File,
    durability: Durability,
    next_seq: u64,
}

/// The writer thread's work, in order.
enum Job {
    Begin {
        from_seq: u64,
    },
    Bytes(Vec<u8>),
    /// The snapshot is whole: sync it and `log` (the segment holding the records it
    /// depends on), then put it in place.
    End {
        log: File,
        log_path: PathBuf,
    },
}

#[derive(Debug)]
struct SnapshotWriter {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer thread has done.
#[derive(Debug, Default)]
struct WriterReport {
    /// Snapshots put in place.
    installed: u64,
    /// The size of the last one.
    last_len: u64,
    /// The error that stopped it (taken by the next [`Storage::append`]).
    error: Option<StorageError>,
}

/// The files of a directory, by kind and number.
#[derive(Debug, Default)]
struct Listing {
    segments: Vec<(u64, PathBuf)>,
    snapshots: Vec<(u64, PathBuf)>,
    temps: Vec<PathBuf>,
}

impl Listing {
    /// The newest snapshot: the one a start reads.
    fn snapshot(&self) -> Option<&(u64, PathBuf)> {
        self.snapshots.last()
    }

    /// The first record the newest snapshot's log starts at (0: no snapshot): the
    /// segments before it are replaced by the snapshot.
    fn from(&self) -> u64 {
        self.snapshot().map_or(0, |(seq, _)| *seq)
    }
}

fn list(dir: &Path) -> Result<Listing, StorageError> {
    let mut l = Listing::default();
    for entry in fs::read_dir(dir).map_err(io(dir, "list"))? {
        let entry = entry.map_err(io(dir, "list"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_segment_name(name) {
            l.segments.push((seq, entry.path()));
        } else if let Some(seq) = parse_snapshot_name(name) {
            l.snapshots.push((seq, entry.path()));
        } else if name.ends_with(".tmp") && name.starts_with("snap-") {
            l.temps.push(entry.path());
        }
    }
    l.segments.sort();
    l.snapshots.sort();
    Ok(l)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "sync the directory"))
}

/// A member's directory, held, its log about to be read back: a [`LogSource`] that
/// reads the files on a thread of its own and hands their updates on as it decodes
/// them, so that the store restores them meanwhile ([`rtc_mesh_core::Store::from_log`],
/// `Node::with_log`: the runtimes' members are built so); then [`Opening::finish`]
/// gives the directory to write in ([`Storage::open`] reads it all at once).
#[derive(Debug)]
pub struct Opening {
    dir: PathBuf,
    lock: File,
    durability: Durability,
    repair: bool,
    limits: Limits,
    files: Listing,
    /// The segments read: from the newest snapshot's first record on.
    segments: Vec<PathBuf>,
    /// Once read: what was read back (its updates handed on), and the cuts made.
    read: Option<ReadBack>,
}

#[derive(Debug)]
struct ReadBack {
    recovered: Recovered,
    cut: Option<(PathBuf, usize, Damage)>,
    snapshot_cut: Option<(PathBuf, usize, Damage)>,
}

/// Updates handed from the reader thread to the store at a time, and how many such
/// chunks may wait: a few megabytes in flight.
const CHUNK: usize = 4096;
const CHUNKS: usize = 8;

impl Storage {
    /// Takes `dir` (made if missing) and reads its log back (see the module docs).
    pub fn open(
        dir: &Path,
        durability: Durability,
        repair: bool,
        limits: &Limits,
    ) -> Result<Opened, StorageError> {
        Storage::opening(dir, durability, repair, limits)?.finish()
    }

    /// Takes `dir` (made if missing), to read its log back as a store is built from
    /// it ([`Opening`]).
    pub fn opening(
        dir: &Path,
        durability: Durability,
        repair: bool,
        limits: &Limits,
    ) -> Result<Opening, StorageError> {
        fs::create_dir_all(dir).map_err(io(dir, "create the directory"))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "open"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Locked {
                    dir: dir.to_owned(),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path, "lock")(e)),
        }
        let files = list(dir)?;
        let from = files.from();
        let segments = files
            .segments
            .iter()
            .filter(|(seq, _)| *seq >= from)
            .map(|(_, p)| p.clone())
            .collect();
        Ok(Opening {
            dir: dir.to_owned(),
            lock,
            durability,
            repair,
            limits: limits.clone(),
            files,
            segments,
            read: None,
        })
    }
}

impl LogSource for Opening {
    type Error = StorageError;

    /// Reads the log back on a thread of its own ([`persist::Recovery`], one file at a
    /// time into one buffer), handing the updates to `update` here as they are
    /// decoded; then removes what no longer counts and makes the cut (see the module
    /// docs). A second call hands nothing on and returns the same.
    fn read(&mut self, update: &mut dyn FnMut(LogUpdate)) -> Result<Recovered, StorageError> {
        if let Some(r) = &self.read {
            return Ok(r.recovered.clone());
        }
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<LogUpdate>>(CHUNKS);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<LogUpdate>>();
        let snapshot = self.files.snapshot().map(|(_, p)| p.clone());
        let segments = self.segments.clone();
        let (repair, limits) = (self.repair, self.limits.clone());
        let reader = std::thread::Builder::new()
            .name("rtc-mesh-read-log".into())
            .spawn(move || read_back(snapshot, &segments, repair, &limits, full_tx, empty_rx))
            .map_err(io(&self.dir, "start the thread that reads the log"))?;
        for mut chunk in full_rx {
            for u in chunk.drain(..) {
                update(u);
            }
            let _ = empty_tx.send(chunk);
        }
        let recovered = match reader.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
        .map_err(|e| self.recover_error(e))?;
        let (cut, snapshot_cut) = self.tidy(&recovered)?;
        self.read = Some(ReadBack {
            recovered: recovered.clone(),
            cut,
            snapshot_cut,
        });
        Ok(recovered)
    }
}

/// What the reader thread met.
enum ReadError {
    Io(StorageError),
    Recover(RecoverError),
}

/// The reader thread: each file read whole into one buffer and decoded, its updates
/// sent on in chunks (`empty` brings chunks back to be filled again).
fn read_back(
    snapshot: Option<PathBuf>,
    segments: &[PathBuf],
    repair: bool,
    limits: &Limits,
    full: mpsc::SyncSender<Vec<LogUpdate>>,
    empty: mpsc::Receiver<Vec<LogUpdate>>,
) -> Result<Recovered, ReadError> {
    let mut r = persist::Recovery::new(segments.len(), repair, limits);
    let mut buf = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut send = |u: LogUpdate| {
        chunk.push(u);
        if chunk.len() == CHUNK {
            let next = empty
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
            // (A store that went away reads no more: the files are read to the end
            // all the same, and their verdict returned.)
            let _ = full.send(std::mem::replace(&mut chunk, next));
        }
    };
    if let Some(path) = &snapshot {
        read_whole(path, &mut buf).map_err(ReadError::Io)?;
        r.snapshot(&buf, &mut send).map_err(ReadError::Recover)?;
    }
    for path in segments {
        if !r.wants_segment() {
            break;
        }
        read_whole(path, &mut buf).map_err(ReadError::Io)?;
        r.segment(&buf, &mut send).map_err(ReadError::Recover)?;
    }
    if !chunk.is_empty() {
        let _ = full.send(chunk);
    }
    r.finish().map_err(ReadError::Recover)
}

/// Reads `path` into `buf` (emptied first; its room kept from file to file).
fn read_whole(path: &Path, buf: &mut Vec<u8>) -> Result<(), StorageError> {
    use std::io::Read;
    buf.clear();
    let mut f = File::open(path).map_err(io(path, "open"))?;
    let len = f.metadata().map_err(io(path, "read"))?.len();
    buf.reserve(usize::try_from(len).unwrap_or(0));
    f.read_to_end(buf).map_err(io(path, "read"))?;
    Ok(())
}

impl Opening {
    /// The directory to write in, once the log is read back (here, all at once into
    /// [`Opened::recovered`], if [`LogSource::read`] was not called).
    pub fn finish(mut self) -> Result<Opened, StorageError> {
        let read = match self.read.take() {
            Some(r) => r,
            None => {
                let mut updates = Vec::new();
                let mut recovered = self.read(&mut |u| updates.push(u))?;
                if recovered.snapshot_cut.is_none() {
                    recovered.updates = updates;
                }
                let mut r = self.read.take().expect("read back");
                r.recovered = recovered;
                r
            }
        };
        Ok(Opened {
            storage: Held {
                dir: self.dir,
                lock: self.lock,
                durability: self.durability,
                next_seq: read.recovered.next_seq,
            },
            recovered: read.recovered,
            cut: read.cut,
            snapshot_cut: read.snapshot_cut,
        })
    }

    /// The reader's error, naming the file.
    fn recover_error(&self, e: ReadError) -> StorageError {
        let snap_path = || {
            self.files
                .snapshot()
                .map_or(self.dir.clone(), |(_, p)| p.clone())
        };
        match e {
            ReadError::Io(e) => e,
            ReadError::Recover(RecoverError::Damaged {
                segment,
                offset,
                damage,
            }) => StorageError::Damaged {
                path: self.segments[segment].clone(),
                offset,
                damage,
            },
            ReadError::Recover(RecoverError::Format { segment, format }) => StorageError::Format {
                path: self.segments[segment].clone(),
                format,
            },
            ReadError::Recover(RecoverError::Snapshot { offset, damage }) => {
                StorageError::Damaged {
                    path: snap_path(),
                    offset,
                    damage,
                }
            }
            ReadError::Recover(RecoverError::SnapshotFormat(format)) => StorageError::Format {
                path: snap_path(),
                format,
            },
            ReadError::Recover(_) => StorageError::Damaged {
                path: self.dir.clone(),
                offset: 0,
                damage: Damage::Decode,
            },
        }
    }

    /// Read back whole: what no longer counts goes, and the cut is made. Returns the
    /// cuts: a segment's, or a snapshot set aside.
    #[allow(clippy::type_complexity)]
    fn tidy(
        &self,
        recovered: &Recovered,
    ) -> Result<
        (
            Option<(PathBuf, usize, Damage)>,
            Option<(PathBuf, usize, Damage)>,
        ),
        StorageError,
    > {
        let files = &self.files;
        let from = files.from();
        // A snapshot being written when the last life ended; snapshots older than the
        // newest, and the segments before it (a crash between putting a snapshot in
        // place and removing them).
        for t in &files.temps {
            fs::remove_file(t).map_err(io(t, "remove"))?;
        }
        for (_, p) in &files.snapshots[..files.snapshots.len().saturating_sub(1)] {
            fs::remove_file(p).map_err(io(p, "remove"))?;
        }
        for (seq, p) in &files.segments {
            if *seq < from {
                fs::remove_file(p).map_err(io(p, "remove"))?;
            }
        }
        // The cut: the file truncated to its valid prefix (synced), and with repair the
        // segments after it removed.
        let mut cut = None;
        let mut snapshot_cut = None;
        if let (Some((offset, damage)), Some((_, path))) =
            (recovered.snapshot_cut, files.snapshot())
        {
            for seg in &self.segments {
                fs::remove_file(seg).map_err(io(seg, "remove"))?;
            }
            fs::remove_file(path).map_err(io(path, "remove"))?;
            snapshot_cut = Some((path.clone(), offset, damage));
        } else if let Some((i, offset, damage)) = recovered.cut {
            let path = &self.segments[i];
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io(path, "open"))?;
            f.set_len(offset as u64).map_err(io(path, "truncate"))?;
            f.sync_all().map_err(io(path, "sync"))?;
            for later in &self.segments[i + 1..] {
                fs::remove_file(later).map_err(io(later, "remove"))?;
            }
            cut = Some((path.clone(), offset, damage));
        }
        Ok((cut, snapshot_cut))
    }
}

/// Creates the segment whose first record is `first_seq`, with its header; at power,
/// synced with the directory that names it.
fn new_segment(
    dir: &Path,
    first_seq: u64,
    store_id: &str,
    durability: Durability,
) -> Result<(File, PathBuf, u64), StorageError> {
    let path = dir.join(segment_name(first_seq));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(io(&path, "create"))?;
    let mut header = Vec::new();
    encode_header(
        &SegmentHeader {
            format: FORMAT,
            store_id: store_id.to_owned(),
            first_seq,
        },
        &mut header,
    );
    file.write_all(&header).map_err(io(&path, "write"))?;
    if durability == Durability::Power {
        file.sync_all().map_err(io(&path, "sync"))?;
        sync_dir(dir)?;
    }
    Ok((file, path, header.len() as u64))
}

/// Has the allocator tidy up, now, after a restore freed the millions of small blocks
/// it read back: glibc keeps freed small blocks unsorted and sorts them all
/// (`malloc_consolidate`) at the next request of 1 KiB or more on the same heap, which
/// after a million-key restore takes 15-25 ms. Asked here, that time is part of the
/// start, not of the first step of the event loop that happens to need a buffer (a
/// snapshot's piece). Elsewhere it is one small allocation, freed.
pub fn settle_heap() {
    // Under glibc's 128 KiB threshold for mapping a block of its own, so it is served
    // from the heap, which is what makes the allocator sort its free blocks first.
    drop(std::hint::black_box(Vec::<u8>::with_capacity(64 << 10)));
}

impl Held {
    /// Starts this life's segment, for the store `store_id` (its source id), once the
    /// store is restored and what was read back dropped (see [`settle_heap`]).
    pub fn begin(self, store_id: &str) -> Result<Storage, StorageError> {
        settle_heap();
        let Held {
            dir,
            lock,
            durability,
            next_seq,
        } = self;
        let (file, path, written) = new_segment(&dir, next_seq, store_id, durability)?;
        Ok(Storage {
            dir,
            _lock: lock,
            file: Arc::new(file),
            path: path.into(),
            durability,
            written,
            segment: (next_seq, false),
            store_id: store_id.to_owned(),
            writer: None,
            report: Arc::default(),
            failure: Failure::default(),
            syncer: None,
        })
    }
}

impl Storage {
    /// Where the error that ends the member is kept (see [`flush`]).
    pub fn failure(&self) -> Failure {
        self.failure.clone()
    }

    /// Writes `batch` to the log; at [`Durability::Power`], synced before it returns,
    /// or (after [`Storage::sync_in_background`]) handed to the sync thread. Returns
    /// whether the batch is durable at the storage's level now; if not,
    /// [`Storage::synced`] says when. An error ends the member (see the module docs),
    /// and so does an error the snapshot writer or the sync thread met since the last
    /// call.
    pub fn append(&mut self, batch: &PersistBatch) -> Result<bool, StorageError> {
        self.check()?;
        // (The error's path is made only on an error: this runs for every batch.)
        let path = &self.path;
        (&*self.file)
            .write_all(&batch.bytes)
            .map_err(|e| io(path, "write")(e))?;
        self.written += batch.bytes.len() as u64;
        self.segment.1 = true;
        if self.durability != Durability::Power {
            return Ok(true);
        }
        if let Some(s) = &self.syncer {
            let job = (self.file.clone(), self.path.clone(), batch.last_seq);
            if s.jobs.as_ref().is_some_and(|j| j.send(job).is_ok()) {
                return Ok(false);
            }
            // The thread ended: only after an error, which it reported.
            let path = self.path.clone();
            self.synced()?;
            return Err(io(&path, "sync")(io::Error::other(
                "the sync thread stopped",
            )));
        }
        self.file.sync_data().map_err(|e| io(path, "sync")(e))?;
        Ok(true)
    }

    /// At [`Durability::Power`]: from now on [`Storage::append`] leaves the sync to a
    /// thread (see the module docs), which calls `wake` after each sync (or its
    /// failure), from that thread: the driver then calls [`flush`] (which asks
    /// [`Storage::synced`]). Below `power` nothing is synced and this does nothing.
    pub fn sync_in_background(
        &mut self,
        wake: impl Fn() + Send + 'static,
    ) -> Result<(), StorageError> {
        if self.durability != Durability::Power || self.syncer.is_some() {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel::<SyncJob>();
        let report = Arc::new(Mutex::new(SyncReport::default()));
        let r = report.clone();
        let thread = std::thread::Builder::new()
            .name("rtc-mesh-sync".into())
            .spawn(move || sync_log(&rx, &r, &wake))
            .map_err(io(&self.dir, "start the sync thread"))?;
        self.syncer = Some(Syncer {
            jobs: Some(tx),
            thread: Some(thread),
            report,
            told: 0,
        });
        Ok(())
    }

    /// The sync thread's progress: the sequence number every record up to which is
    /// now synced, if it moved since the last call; its error, if it met one (which
    /// ends the member).
    pub fn synced(&mut self) -> Result<Option<u64>, StorageError> {
        let Some(s) = self.syncer.as_mut() else {
            return Ok(None);
        };
        let mut r = s.report.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = r.error.take() {
            return Err(e);
        }
        if r.synced > s.told {
            s.told = r.synced;
            return Ok(Some(r.synced));
        }
        Ok(None)
    }

    /// The snapshot writer's error, if it met one.
    fn check(&mut self) -> Result<(), StorageError> {
        let mut r = self.report.lock().unwrap_or_else(|p| p.into_inner());
        match r.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes a piece of a snapshot ([`rtc_mesh_core::Store::poll_snapshot`]): at its
    /// first, the log rolls to a new segment from the snapshot's `from_seq`; the
    /// bytes go to the writer thread, which puts the snapshot in place once its last
    /// piece has come (see the module docs). Never waits for the disk, except at
    /// power for the new segment's creation: the segment left is synced first, then
    /// the new one and the directory.
    pub fn snapshot(&mut self, part: SnapshotPart) -> Result<(), StorageError> {
        self.check()?;
        if part.first {
            // A segment that already starts there and holds nothing (the snapshot is
            // the first thing this life does) serves as it is.
            if self.segment != (part.from_seq, false) {
                // At power the segment left is synced whole before the next one
                // exists: a power loss may otherwise keep the new segment (its header
                // synced, records the kernel wrote back) and lose the old one's
                // unsynced tail, and a sealed segment cut short reads as damage. So
                // a sealed segment is always whole on disk.
                if self.durability == Durability::Power {
                    self.file.sync_data().map_err(io(&self.path, "sync"))?;
                }
                let (file, path, written) =
                    new_segment(&self.dir, part.from_seq, &self.store_id, self.durability)?;
                (self.file, self.path) = (Arc::new(file), path.into());
                self.written = written;
                self.segment = (part.from_seq, false);
            }
            self.job(Job::Begin {
                from_seq: part.from_seq,
            })?;
        }
        self.job(Job::Bytes(part.bytes))?;
        if part.last_seq.is_some() {
            let log = self.file.try_clone().map_err(io(&self.path, "open"))?;
            self.job(Job::End {
                log,
                log_path: self.path.to_path_buf(),
            })?;
        }
        Ok(())
    }

    fn job(&mut self, job: Job) -> Result<(), StorageError> {
        let w = match &mut self.writer {
            Some(w) => w,
            None => {
                let (tx, rx) = mpsc::channel();
                let (dir, report) = (self.dir.clone(), self.report.clone());
                let thread = std::thread::Builder::new()
                    .name("rtc-mesh-snapshot".into())
                    .spawn(move || write_snapshots(&dir, &rx, &report))
                    .map_err(io(&self.dir, "start the snapshot writer"))?;
                self.writer.insert(SnapshotWriter {
                    jobs: Some(tx),
                    thread: Some(thread),
                })
            }
        };
        let sent = w.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if sent {
            return Ok(());
        }
        // The thread ended: only after an error, which it reported.
        self.check()?;
        Err(io(&self.dir, "write the snapshot")(io::Error::other(
            "the snapshot writer stopped",
        )))
    }

    /// Snapshots the writer thread has put in place, and the size of the last one.
    pub fn snapshots(&self) -> (u64, u64) {
        let r = self.report.lock().unwrap_or_else(|p| p.into_inner());
        (r.installed, r.last_len)
    }

    /// Waits until the writer thread and the sync thread have done all they were
    /// given (tests, benchmarks and a clean close), and returns an error either met.
    pub fn settle(&mut self) -> Result<(), StorageError> {
        if let Some(mut w) = self.writer.take() {
            drop(w.jobs.take());
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(s) = self.syncer.as_mut() {
            drop(s.jobs.take());
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
        self.check()?;
        self.synced().map(|_| ())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The durability it writes at.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Bytes written to the segment being written (its header included).
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Drop for Storage {
    /// The writer thread finishes a snapshot whose last piece it has (or drops one it
    /// has not) before the directory's lock goes.
    fn drop(&mut self) {
        let _ = self.settle();
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The sync thread: syncs what was written, each sync covering every batch that came
/// while the one before ran, until the channel closes or a sync fails.
fn sync_log(jobs: &mpsc::Receiver<SyncJob>, report: &Mutex<SyncReport>, wake: &dyn Fn()) {
    let mut group: Vec<SyncJob> = Vec::new();
    while let Ok(first) = jobs.recv() {
        group.push(first);
        group.extend(jobs.try_iter());
        // Each segment once (the log may have rolled to a new one meanwhile), in order;
        // a sync of a file covers all that was written to it before it began.
        let mut last = None;
        let mut failed = None;
        for (i, (f, path, seq)) in group.iter().enumerate() {
            if group.get(i + 1).is_some_and(|n| Arc::ptr_eq(&n.0, f)) {
                continue;
            }
            if let Err(e) = f.sync_data() {
                failed = Some(io(path, "sync")(e));
                break;
            }
            last = Some(*seq);
        }
        group.clear();
        {
            let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(seq) = last {
                r.synced = r.synced.max(seq);
            }
            if let Some(e) = failed {
                r.error.get_or_insert(e);
                drop(r);
                wake();
                return;
            }
        }
        wake();
    }
}

/// Answers that acknowledge what a member did (a `set` returned, say), held until
/// the changes they could tell of are durable: each is kept with the number of the
/// last record the store had made when it was given, and they go in order.
#[derive(Debug)]
pub struct Acks<T>(VecDeque<(u64, T)>);

impl<T> Default for Acks<T> {
    fn default() -> Self {
        Acks(VecDeque::new())
    }
}

impl<T> Acks<T> {
    /// `t` answers the input `node` just took: it may go now (returned), or it is
    /// held until the records made so far are durable.
    pub fn hold(&mut self, node: &rtc_mesh_core::node::Node, t: T) -> Option<T> {
        match node.store().persist_seqs() {
            Some((made, durable)) if made > durable || !self.0.is_empty() => {
                self.0.push_back((made, t));
                None
            }
            _ => Some(t),
        }
    }

    /// The next held answer that may go now.
    pub fn ready(&mut self, node: &rtc_mesh_core::node::Node) -> Option<T> {
        let durable = node.store().persist_seqs().map_or(u64::MAX, |(_, d)| d);
        if self.0.front()?.0 <= durable {
            self.0.pop_front().map(|(_, t)| t)
        } else {
            None
        }
    }
}

/// The writer thread: takes the jobs in order until the channel closes.
fn write_snapshots(dir: &Path, jobs: &mpsc::Receiver<Job>, report: &Mutex<WriterReport>) {
    let mut current: Option<(u64, PathBuf, File, u64)> = None;
    let fail = |e: StorageError| {
        report.lock().unwrap_or_else(|p| p.into_inner()).error = Some(e);
    };
    while let Ok(job) = jobs.recv() {
        let step = match job {
            Job::Begin { from_seq } => {
                let tmp = dir.join(format!("{}.tmp", snapshot_name(from_seq)));
                OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&tmp)
                    .map_err(io(&tmp, "create"))
                    .map(|f| current = Some((from_seq, tmp, f, 0)))
            }
            Job::Bytes(b) => match current.as_mut() {
                Some((_, tmp, f, len)) => {
                    *len += b.len() as u64;
                    f.write_all(&b).map_err(io(tmp, "write"))
                }
                None => Ok(()),
            },
            Job::End { log, log_path } => match current.take() {
                Some((from_seq, tmp, f, len)) => install(dir, from_seq, &tmp, &f, &log, &log_path)
                    .map(|()| {
                        let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
                        r.installed += 1;
                        r.last_len = len;
                    }),
                None => Ok(()),
            },
        };
        if let Err(e) = step {
            if let Some((_, tmp, _, _)) = current.take() {
                let _ = fs::remove_file(tmp);
            }
            fail(e);
            return;
        }
    }
    // Closed mid-snapshot: it is not put in place (the next start removes a leftover).
    if let Some((_, tmp, _, _)) = current.take() {
        let _ = fs::remove_file(tmp);
    }
}

/// Puts a whole snapshot in place: synced, with the log records it depends on;
/// renamed; the directory synced; then what it replaces removed.
fn install(
    dir: &Path,
    from_seq: u64,
    tmp: &Path,
    f: &File,
    log: &File,
    log_path: &Path,
) -> Result<(), StorageError> {
    f.sync_all().map_err(io(tmp, "sync"))?;
    log.sync_data().map_err(io(log_path, "sync"))?;
    let path = dir.join(snapshot_name(from_seq));
    fs::rename(tmp, &path).map_err(io(&path, "rename"))?;
    sync_dir(dir)?;
    let files = list(dir)?;
    for (seq, p) in files.snapshots.iter().chain(&files.segments) {
        if *seq < from_seq {
            fs::remove_file(p).map_err(io(p, "remove"))?;
        }
    }
    Ok(())
}

/// A member's data directory, taken (`None` without one, or at
/// [`Durability::Memory`]), its log to be read back as the member's store is built
/// from it ([`Opening`]); then [`begin_data`].
pub fn open_data(
    data: Option<&rtc_mesh_core::member::DataOptions>,
    limits: &Limits,
) -> Result<Option<Opening>, StorageError> {
    let Some(d) = data.filter(|d| d.durability != Durability::Memory) else {
        return Ok(None);
    };
    Storage::opening(&d.dir, d.durability, d.repair, limits).map(Some)
}

/// After [`open_data`], once the store is built: reports on standard error what was
/// cut off, and starts this life's segment for the store `store_id`.
pub fn begin_data(
    opening: Option<Opening>,
    store_id: &str,
) -> Result<Option<Storage>, StorageError> {
    let Some(opening) = opening else {
        return Ok(None);
    };
    let o = opening.finish()?;
    if let Some((path, offset, damage)) = &o.cut {
        eprintln!(
            "rtc-mesh: {}: cut at byte {offset} ({damage}); the room sends what came after",
            path.display()
        );
    }
    if let Some((path, offset, damage)) = &o.snapshot_cut {
        eprintln!(
            "rtc-mesh: {}: damaged at byte {offset} ({damage}); set aside with the log after it, the room sends everything",
            path.display()
        );
    }
    o.storage.begin(store_id).map(Some)
}

/// Writes what `node`'s store has for its log, and the next piece of a snapshot if
/// one is under way: called by the drivers after every input, before anything goes
/// out or is acknowledged. Returns whether a snapshot has more to give: the driver
/// then turns again without waiting.
///
/// An error is also kept in [`Storage::failure`]: the member stops on it.
pub fn flush(
    node: &mut rtc_mesh_core::node::Node,
    storage: &mut Storage,
) -> Result<bool, StorageError> {
    let mut step = || {
        while let Some(b) = node.poll_persist() {
            if storage.append(&b)? {
                node.persisted(b.last_seq);
            }
        }
        if let Some(seq) = storage.synced()? {
            node.persisted(seq);
        }
        if let Some(part) = node.poll_snapshot() {
            storage.snapshot(part)?;
        }
        Ok(node.snapshotting())
    };
    let r = step();
    if let Err(e) = &r {
        storage.failure.set(e);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_mesh_core::{Store, StoreConfig, Value};
    use std::time::Instant;

    const EPOCH: f64 = 1_795_713_876_272.0;

    fn temp_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("rtc-mesh-storage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    struct Life {
        storage: Storage,
        recovered: Recovered,
        cut: Option<(PathBuf, usize, Damage)>,
    }

    /// A durable store on `dir`: restored, then writing `keys`.
    fn life(dir: &Path, id: &str, keys: std::ops::Range<u32>) -> (Store, Life) {
        let t0 = Instant::now();
        let opened = Storage::open(dir, Durability::Power, false, &Limits::default()).unwrap();
        let c = StoreConfig::new(id, EPOCH, t0);
        let mut s = Store::from_log(c, &mut opened.recovered.clone()).unwrap();
        let mut storage = opened.storage.begin(id).unwrap();
        for k in keys {
            s.set(t0, &format!("k{k}"), &Value::from(f64::from(k)))
                .unwrap();
            let b = s.poll_persist().unwrap();
            storage.append(&b).unwrap();
        }
        let (recovered, cut) = (opened.recovered, opened.cut);
        (
            s,
            Life {
                storage,
                recovered,
                cut,
            },
        )
    }

    #[test]
    fn a_directory_keeps_the_store_across_lives_and_one_process_holds_it() {
        let dir = temp_dir("lives");
        let (s1, o1) = life(&dir, "me.0000000000000001", 0..10);
        // Held: a second one is refused, naming the directory.
        let e = Storage::open(&dir, Durability::Power, false, &Limits::default()).unwrap_err();
        assert!(matches!(e, StorageError::Locked { .. }), "{e}");
        assert!(e.to_string().contains(&*dir.to_string_lossy()), "{e}");
        drop(o1);
        let (s2, o2) = life(&dir, "me.0000000000000002", 10..15);
        for k in 0..10 {
            assert_eq!(s2.get(&format!("k{k}")), s1.get(&format!("k{k}")), "k{k}");
        }
        assert_eq!(o2.recovered.next_seq, 11);
        drop(o2);
        let (s3, o3) = life(&dir, "me.0000000000000003", 0..0);
        assert_eq!(s3.len(), 15);
        assert_eq!(o3.recovered.updates.len(), 15);
        assert!(o3.cut.is_none());
        drop(o3);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A store built from a directory as its reader thread hands the updates on
    /// (across many chunks and several segments, the last one torn) is the store read
    /// back whole, numbered on from the same record; and the cut is made and reported
    /// once.
    #[test]
    fn a_store_built_as_the_log_is_read_is_the_store_read_back_whole() {
        let dir = temp_dir("streamed");
        let n = (CHUNK * 2 + 77) as u32;
        let (_, o) = life(&dir, "me.0000000000000001", 0..n);
        drop(o);
        let (_, o) = life(&dir, "me.0000000000000002", 0..n / 2);
        drop(o);
        // A torn last write.
        let last = list(&dir).unwrap().segments.last().unwrap().1.clone();
        let len = fs::metadata(&last).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let t0 = Instant::now();
        let mut opening =
            Storage::opening(&dir, Durability::Power, false, &Limits::default()).unwrap();
        let c = StoreConfig::new("me.0000000000000003", EPOCH, t0);
        let streamed = Store::from_log(c, &mut opening).unwrap();
        let opened = opening.finish().unwrap();
        assert!(opened.recovered.updates.is_empty(), "they were handed on");
        let expect = u64::from(n + n / 2 - 1);
        assert_eq!(streamed.persist_seqs(), Some((expect, expect)));
        assert_eq!(opened.cut.as_ref().map(|c| &c.0), Some(&last));
        drop(opened);
        let whole = Storage::open(&dir, Durability::Power, false, &Limits::default()).unwrap();
        assert!(whole.cut.is_none(), "cut once");
        assert_eq!(whole.recovered.updates.len() as u64, expect);
        let mut s = Store::new(StoreConfig::new("me.0000000000000003", EPOCH, t0)).unwrap();
        s.restore_recovered(t0, &whole.recovered);
        assert_eq!(streamed.dump(), s.dump());
        assert_eq!(streamed.len(), n as usize);
        drop(whole);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn syncs_in_the_background_cover_every_batch_written_before_them() {
        let dir = temp_dir("background");
        let t0 = Instant::now();
        let opened = Storage::open(&dir, Durability::Power, false, &Limits::default()).unwrap();
        let id = "me.0000000000000001";
        let mut c = StoreConfig::new(id, EPOCH, t0);
        c.persist_from = Some(opened.recovered.next_seq);
        let mut s = Store::new(c).unwrap();
        let mut storage = opened.storage.begin(id).unwrap();
        let (tx, rx) = mpsc::channel();
        storage
            .sync_in_background(move || {
                let _ = tx.send(());
            })
            .unwrap();
        let mut last = 0;
        for round in 0..20u32 {
            for k in 0..10 {
                s.set(t0, &format!("k{round}-{k}"), &Value::from(f64::from(k)))
                    .unwrap();
            }
            let b = s.poll_persist().unwrap();
            assert!(!storage.append(&b).unwrap(), "at power, left to the thread");
            last = b.last_seq;
        }
        // Each report moves forward, up to the last batch (woken, never polled).
        let mut seen = 0;
        while seen < last {
            rx.recv().unwrap();
            if let Some(seq) = storage.synced().unwrap() {
                assert!(seq > seen && seq <= last, "{seq} after {seen}");
                seen = seq;
                s.persisted(seq);
            }
        }
        assert!(!s.awaiting_persist());
        drop(storage);
        let (s2, o2) = life(&dir, "me.0000000000000002", 0..0);
        assert_eq!(s2.len(), 200);
        drop(o2);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Bytes of the directory's files, and their names.
    fn disk(dir: &Path) -> (u64, Vec<String>) {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "LOCK")
            .collect();
        names.sort();
        let bytes = names
            .iter()
            .map(|n| fs::metadata(dir.join(n)).unwrap().len())
            .sum();
        (bytes, names)
    }

    /// A store that overwrites the same keys for a long time: snapshots replace the
    /// log before them, so the directory stays within a small multiple of the live
    /// data; every life restores exactly what the last one had; and a snapshot cut
    /// short on the way (a crash before it was put in place) changes nothing.
    #[test]
    fn snapshots_keep_the_directory_small_and_the_store_whole() {
        let dir = temp_dir("compact");
        let t0 = Instant::now();
        let limits = Limits::default();
        let mut expect = None;
        let mut peak_ratio: f64 = 0.0;
        for life in 1..=6u32 {
            let id = format!("me.{life:016x}");
            let mut opened = Storage::open(&dir, Durability::Process, false, &limits).unwrap();
            let mut c = StoreConfig::new(id.clone(), EPOCH, t0);
            c.snapshots.min_log = 16 << 10;
            c.snapshots.entries_per_step = 64;
            let mut s = Store::from_log(c, &mut opened.recovered).unwrap();
            if let Some(d) = &expect {
                assert_eq!(&s.dump(), d, "life {life} restores the last one's store");
            }
            let mut st = opened.storage.begin(&id).unwrap();
            let mut now = t0;
            for i in 0..3000u32 {
                now += std::time::Duration::from_millis(1);
                let v = Value::from(format!("{life}-{i}-{}", "x".repeat(40)));
                s.set(now, &format!("k{}", i % 200), &v).unwrap();
                while let Some(b) = s.poll_persist() {
                    st.append(&b).unwrap();
                }
                if let Some(p) = s.poll_snapshot() {
                    st.snapshot(p).unwrap();
                }
                if i % 500 == 499 {
                    st.settle().unwrap();
                    let live = snapshot_len(&mut s);
                    let (bytes, _) = disk(&dir);
                    peak_ratio = peak_ratio.max(bytes as f64 / live as f64);
                }
            }
            // The last life ends in the middle of a snapshot.
            if life == 6 {
                let mut c = s.poll_snapshot();
                while c.as_ref().is_some_and(|p| !p.first) {
                    c = s.poll_snapshot();
                }
                let _ = c.map(|p| st.snapshot(p));
            }
            st.settle().unwrap();
            assert!(st.snapshots().0 > 0, "life {life} snapshotted");
            expect = Some(s.dump());
        }
        let (_, names) = disk(&dir);
        let snaps = names.iter().filter(|n| n.starts_with("snap-")).count();
        assert!(snaps <= 2, "{names:?}");
        let opened = Storage::open(&dir, Durability::Process, false, &limits).unwrap();
        let mut s = Store::new(StoreConfig::new("me.00000000000000ff", EPOCH, t0)).unwrap();
        for u in &opened.recovered.updates {
            s.restore(t0, u.update.as_ref());
        }
        assert_eq!(Some(s.dump()), expect);
        let (_, names) = disk(&dir);
        assert!(
            names.iter().filter(|n| n.starts_with("snap-")).count() == 1
                && !names.iter().any(|n| n.ends_with(".tmp")),
            "{names:?}"
        );
        eprintln!("disk at most {peak_ratio:.2}x the live data");
        assert!(peak_ratio < 3.0, "disk {peak_ratio:.2}x the live data");
        drop(opened);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The size of a snapshot of `s` now (the live data), taken from a copy of it.
    fn snapshot_len(s: &mut Store) -> u64 {
        let t0 = s.start();
        let mut c = StoreConfig::new("copy.0000000000000001", EPOCH, t0);
        c.persist_from = Some(1);
        c.snapshots.min_log = 0;
        c.snapshots.entries_per_step = usize::MAX;
        let mut copy = Store::new(c).unwrap();
        for k in s.keys().map(str::to_owned).collect::<Vec<_>>() {
            copy.restore(t0, s.entry(&k).unwrap());
        }
        copy.poll_snapshot().unwrap().bytes.len() as u64
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_is_named() {
        let dir = temp_dir("torn");
        let (_, o) = life(&dir, "me.0000000000000001", 0..5);
        let path = o.storage.path.to_path_buf();
        drop(o);
        // A torn last write: 3 bytes of the last record lost.
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (s, o) = life(&dir, "me.0000000000000002", 0..0);
        assert_eq!(s.len(), 4);
        let (cut_path, offset, damage) = o.cut.clone().unwrap();
        assert_eq!((cut_path, damage), (path.clone(), Damage::Short));
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            offset as u64,
            "truncated"
        );
        drop(o);
        // Damage inside a sealed segment: refused, file and offset named; repair keeps
        // the prefix.
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let e = Storage::open(&dir, Durability::Process, false, &Limits::default()).unwrap_err();
        let StorageError::Damaged {
            path: p, offset, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(p, &path);
        assert!(*offset <= at);
        assert!(e.to_string().contains("--repair"), "{e}");
        let o = Storage::open(&dir, Durability::Process, true, &Limits::default()).unwrap();
        assert!(o.recovered.updates.len() < 4);
        assert!(o.cut.is_some());
        drop(o);
        fs::remove_dir_all(&dir).unwrap();
    }
}
