//! Where an upload's files live in the directory, and syncing them.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tus_core::UploadId;
use tus_core::derivative::DerivativeName;

use crate::error::{Error, io_err};

/// Subdirectory holding quarantined data.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";

/// The store's directory and how it syncs; the files of upload `<id>` are named here.
#[derive(Debug)]
pub(crate) struct Dirs {
    pub(crate) dir: PathBuf,
    pub(crate) sync: bool,
    /// Serialize the read-modify-writes of one upload's info (state, length, derivatives,
    /// the tombstone), which the handler's upload lock does not all cover: processing runs
    /// without it, so a termination could otherwise be overwritten by a live info.
    info_locks: [Mutex<()>; INFO_LOCKS],
    /// Creations left unsynced because their first append follows at once and syncs them
    /// with its own bytes ([`tus_core::store::NewUpload::body_follows`]).
    unsynced_creations: Mutex<HashSet<UploadId>>,
    /// Shares `syncfs` calls between the requests that need one at the same moment (only a
    /// store that syncs has one).
    #[cfg(target_os = "linux")]
    group_sync: Option<GroupSync>,
}

/// Group commit: requests that need the filesystem synced queue here; one thread runs
/// `syncfs` for everything queued while the previous call ran, and answers them all. Each
/// request's writes are done before it queues, so the call that starts after it covers them.
/// Sixty-four concurrent creations then share a few journal commits instead of each paying
/// its own.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct GroupSync {
    queue: Mutex<std::sync::mpsc::Sender<std::sync::mpsc::SyncSender<Result<(), io::ErrorKind>>>>,
}

#[cfg(target_os = "linux")]
impl GroupSync {
    fn start(dir: &Path) -> Self {
        let (queue, waiting) = std::sync::mpsc::channel::<std::sync::mpsc::SyncSender<Result<(), io::ErrorKind>>>();
        let dir = dir.to_owned();
        let spawned = std::thread::Builder::new().name("tus-fs-sync".into()).spawn(move || {
            while let Ok(first) = waiting.recv() {
                let mut batch = vec![first];
                batch.extend(waiting.try_iter());
                let synced = File::open(&dir).and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from));
                let answer = synced.map_err(|e| e.kind());
                for waiter in batch {
                    let _ = waiter.send(answer);
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the filesystem sync thread");
        }
        GroupSync { queue: Mutex::new(queue) }
    }

    /// Blocks until a `syncfs` that started after this call has finished.
    fn sync(&self) -> io::Result<()> {
        let (answer, wait) = std::sync::mpsc::sync_channel(1);
        let queued = self.queue.lock().unwrap_or_else(PoisonError::into_inner).send(answer);
        queued.map_err(|_| io::Error::other("the filesystem sync thread is gone"))?;
        match wait.recv() {
            Ok(result) => result.map_err(io::Error::from),
            Err(_) => Err(io::Error::other("the filesystem sync thread is gone")),
        }
    }
}

/// Stripes of [`Dirs::info_lock`]: uploads share one by the hash of their ID.
const INFO_LOCKS: usize = 64;

impl Dirs {
    pub(crate) fn new(dir: PathBuf, sync: bool) -> Self {
        Dirs {
            #[cfg(target_os = "linux")]
            group_sync: sync.then(|| GroupSync::start(&dir)),
            dir,
            sync,
            info_locks: std::array::from_fn(|_| Mutex::new(())),
            unsynced_creations: Mutex::new(HashSet::new()),
        }
    }

    /// Notes that `id`'s creation is not synced yet: its first append syncs it.
    pub(crate) fn leave_creation_unsynced(&self, id: &UploadId) {
        self.unsynced_creations.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone());
    }

    /// Whether `id`'s creation was left unsynced; the caller now owns syncing it.
    pub(crate) fn take_unsynced_creation(&self, id: &UploadId) -> bool {
        self.unsynced_creations.lock().unwrap_or_else(PoisonError::into_inner).remove(id)
    }

    /// Makes a creation durable on its own: its info, and the directory entries of the info
    /// and data files.
    pub(crate) fn sync_creation(&self, id: &UploadId) -> Result<(), Error> {
        let path = self.info_path(id);
        File::open(&path).and_then(|f| f.sync_data()).map_err(io_err("sync", &path))?;
        self.sync_dir()
    }

    /// Makes a creation and its first append durable together: on Linux a share of one
    /// `syncfs` (one journal commit for the info, the directory and the data, shared with every
    /// creation syncing at that moment) instead of three syncs in a row.
    pub(crate) fn sync_created_with(&self, id: &UploadId, data: &File, data_path: &Path) -> Result<(), Error> {
        #[cfg(target_os = "linux")]
        if let Some(group) = &self.group_sync {
            return group.sync().map_err(io_err("syncfs", &self.dir));
        }
        self.sync_file(data, data_path)?;
        self.sync_creation(id)
    }

    /// Held around every read-modify-write of `id`'s info.
    pub(crate) fn info_lock(&self, id: &UploadId) -> MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(id, &mut hasher);
        let stripe = &self.info_locks[(std::hash::Hasher::finish(&hasher) % INFO_LOCKS as u64) as usize];
        stripe.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn data(&self, id: &UploadId) -> PathBuf {
        self.dir.join(id.as_str())
    }
    pub(crate) fn info_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.info"))
    }
    pub(crate) fn unverified(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.unverified"))
    }
    pub(crate) fn assembling(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.assembling"))
    }
    pub(crate) fn quarantined(&self, id: &UploadId) -> PathBuf {
        self.dir.join(QUARANTINE_DIR).join(id.as_str())
    }
    /// The directory of the upload's derivatives (thumbnails, a stripped copy), beside it.
    pub(crate) fn derived_dir(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.derived"))
    }
    pub(crate) fn derivative(&self, id: &UploadId, name: DerivativeName) -> PathBuf {
        self.derived_dir(id).join(name.file_name())
    }

    pub(crate) fn sync_dir(&self) -> Result<(), Error> {
        if self.sync {
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err("sync", &self.dir))?;
        }
        Ok(())
    }

    pub(crate) fn sync_file(&self, f: &File, path: &Path) -> Result<(), Error> {
        if self.sync { f.sync_data().map_err(io_err("sync", path)) } else { Ok(()) }
    }

    pub(crate) fn remove_if_exists(path: &Path) -> Result<(), Error> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
            _ => Ok(()),
        }
    }
}
