//! A durable member's directory: the files of its log ([`rtc_mesh_core::persist`]),
//! held by one process at a time.
//!
//! ```text
//! DIR/LOCK                         held (flock) while the member runs
//! DIR/log-<first seq, 20 digits>.seg   the log's segments, oldest first
//! ```
//!
//! [`Storage::open`] takes the lock (a second process gets [`StorageError::Locked`],
//! naming the directory), reads every segment back ([`persist::recover`]): a torn tail
//! of the last one is cut off (the file truncated, and the cut reported); damage
//! anywhere else stops the start with [`StorageError::Damaged`], naming the file and
//! offset, unless `repair` (then the valid prefix is kept and later segments go). Each
//! start then writes a segment of its own, so a file that was cut is never written
//! again. [`Storage::append`] writes the store's batches ([`Store::poll_persist`]) as
//! they come; at [`Durability::Power`] it syncs them to disk before it returns.
//! An I/O error, a failed sync above all, is returned and must end the member: after a
//! failed `fsync` the kernel may have dropped the pages, and a retry that succeeds
//! would say nothing about them.
//!
//! [`Store::poll_persist`]: rtc_mesh_core::Store::poll_persist

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use rtc_mesh_core::persist::Durability;
use rtc_mesh_core::persist::{
    self, encode_header, parse_segment_name, segment_name, Damage, RecoverError, Recovered,
    SegmentHeader, FORMAT,
};
use rtc_mesh_core::store::PersistBatch;
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
    /// The log read back: restore its updates into the store
    /// ([`rtc_mesh_core::Store::restore`]), and number the store's changes from
    /// `next_seq` ([`rtc_mesh_core::StoreConfig::persist_from`]).
    pub recovered: Recovered,
    /// A torn tail that was cut off (or, with repair, damage): the file and offset.
    pub cut: Option<(PathBuf, usize, Damage)>,
}

/// A member's directory, held for as long as this lives.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    _lock: File,
    file: File,
    path: PathBuf,
    durability: Durability,
    written: u64,
}

/// A member's directory, held, its log read back, before this life writes.
#[derive(Debug)]
pub struct Held {
    dir: PathBuf,
    lock: File,
    durability: Durability,
    next_seq: u64,
}

impl Storage {
    /// Takes `dir` (made if missing) and reads its log back (see the module docs).
    pub fn open(
        dir: &Path,
        durability: Durability,
        repair: bool,
        limits: &Limits,
    ) -> Result<Opened, StorageError> {
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
        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir, "list"))? {
            let entry = entry.map_err(io(dir, "list"))?;
            let name = entry.file_name();
            if let Some(seq) = name.to_str().and_then(parse_segment_name) {
                segments.push((seq, entry.path()));
            }
        }
        segments.sort();
        let mut bytes = Vec::with_capacity(segments.len());
        for (_, path) in &segments {
            bytes.push(fs::read(path).map_err(io(path, "read"))?);
        }
        let slices: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let recovered = persist::recover(&slices, repair, limits).map_err(|e| match e {
            RecoverError::Damaged {
                segment,
                offset,
                damage,
            } => StorageError::Damaged {
                path: segments[segment].1.clone(),
                offset,
                damage,
            },
            RecoverError::Format { segment, format } => StorageError::Format {
                path: segments[segment].1.clone(),
                format,
            },
            _ => StorageError::Damaged {
                path: dir.to_owned(),
                offset: 0,
                damage: Damage::Decode,
            },
        })?;
        // The cut: the file truncated to its valid prefix (synced), and with repair the
        // segments after it removed.
        let mut cut = None;
        if let Some((i, offset, damage)) = recovered.cut {
            let path = &segments[i].1;
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io(path, "open"))?;
            f.set_len(offset as u64).map_err(io(path, "truncate"))?;
            f.sync_all().map_err(io(path, "sync"))?;
            for (_, later) in &segments[i + 1..] {
                fs::remove_file(later).map_err(io(later, "remove"))?;
            }
            cut = Some((path.clone(), offset, damage));
        }
        drop(bytes);
        Ok(Opened {
            storage: Held {
                dir: dir.to_owned(),
                lock,
                durability,
                next_seq: recovered.next_seq,
            },
            recovered,
            cut,
        })
    }
}

impl Held {
    /// Starts this life's segment, for the store `store_id` (its source id).
    pub fn begin(self, store_id: &str) -> Result<Storage, StorageError> {
        let Held {
            dir,
            lock,
            durability,
            next_seq,
        } = self;
        let path = dir.join(segment_name(next_seq));
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
                first_seq: next_seq,
            },
            &mut header,
        );
        file.write_all(&header).map_err(io(&path, "write"))?;
        if durability == Durability::Power {
            file.sync_all().map_err(io(&path, "sync"))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&dir, "sync the directory"))?;
        }
        Ok(Storage {
            dir,
            _lock: lock,
            file,
            path,
            durability,
            written: header.len() as u64,
        })
    }
}

impl Storage {
    /// Writes `batch` to the log; at [`Durability::Power`], synced before it returns.
    /// An error ends the member (see the module docs).
    pub fn append(&mut self, batch: &PersistBatch) -> Result<(), StorageError> {
        // (The error's path is made only on an error: this runs for every batch.)
        let path = &self.path;
        self.file
            .write_all(&batch.bytes)
            .map_err(|e| io(path, "write")(e))?;
        self.written += batch.bytes.len() as u64;
        if self.durability == Durability::Power {
            self.file.sync_data().map_err(|e| io(path, "sync")(e))?;
        }
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The durability it writes at.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Bytes written to this life's segment (its header included).
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// A member's data directory, if it has one: held and read back (see
/// [`Storage::open`]), with what was cut reported on stderr.
pub fn open_data(
    data: Option<&rtc_mesh_core::member::DataOptions>,
    limits: &Limits,
) -> Result<(Option<Held>, Option<Recovered>), StorageError> {
    let Some(d) = data.filter(|d| d.durability != Durability::Memory) else {
        return Ok((None, None));
    };
    let o = Storage::open(&d.dir, d.durability, d.repair, limits)?;
    if let Some((path, offset, damage)) = &o.cut {
        eprintln!(
            "rtc-mesh: {}: cut at byte {offset} ({damage}); the room sends what came after",
            path.display()
        );
    }
    Ok((Some(o.storage), Some(o.recovered)))
}

/// Writes what `node`'s store has for its log: called by the drivers after every
/// input, before anything goes out or is acknowledged.
pub fn flush(
    node: &mut rtc_mesh_core::node::Node,
    storage: &mut Storage,
) -> Result<(), StorageError> {
    while let Some(b) = node.poll_persist() {
        storage.append(&b)?;
    }
    Ok(())
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
        let mut c = StoreConfig::new(id, EPOCH, t0);
        c.persist_from = Some(opened.recovered.next_seq);
        let mut s = Store::new(c).unwrap();
        for u in &opened.recovered.updates {
            s.restore(t0, u.update.as_ref());
        }
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

    #[test]
    fn a_torn_tail_is_cut_and_damage_is_named() {
        let dir = temp_dir("torn");
        let (_, o) = life(&dir, "me.0000000000000001", 0..5);
        let path = o.storage.path.clone();
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
