//! Where an upload's files live in the directory, and syncing them.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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
    /// Creations whose first append follows at once
    /// ([`tus_core::store::NewUpload::body_follows`]): their open data file, handed to that
    /// append, and whether it still has to sync the creation along with its own bytes.
    fresh_creations: Mutex<HashMap<UploadId, FreshCreation>>,
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
    queue: Mutex<std::sync::mpsc::Sender<SyncWaiter>>,
}

/// Where the group-sync thread sends one waiter's answer: a oneshot, so an async caller
/// waits without holding a thread and a blocking one with `blocking_recv`.
#[cfg(target_os = "linux")]
type SyncWaiter = tokio::sync::oneshot::Sender<Result<(), io::ErrorKind>>;

#[cfg(target_os = "linux")]
impl GroupSync {
    fn start(dir: &Path) -> Self {
        let (queue, waiting) = std::sync::mpsc::channel::<SyncWaiter>();
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

    /// Queues for a `syncfs` that starts after this call; the receiver gets its result.
    fn queue(&self) -> io::Result<tokio::sync::oneshot::Receiver<Result<(), io::ErrorKind>>> {
        let (answer, wait) = tokio::sync::oneshot::channel();
        let queued = self.queue.lock().unwrap_or_else(PoisonError::into_inner).send(answer);
        queued.map_err(|_| io::Error::other("the filesystem sync thread is gone"))?;
        Ok(wait)
    }

    /// Blocks until a `syncfs` that started after this call has finished.
    fn sync(&self) -> io::Result<()> {
        Self::answer(self.queue()?.blocking_recv())
    }

    fn answer(received: Result<Result<(), io::ErrorKind>, tokio::sync::oneshot::error::RecvError>) -> io::Result<()> {
        match received {
            Ok(result) => result.map_err(io::Error::from),
            Err(_) => Err(io::Error::other("the filesystem sync thread is gone")),
        }
    }
}

/// A creation's data file kept for the append that follows it (see
/// [`Dirs::keep_fresh_creation`]).
#[derive(Debug)]
pub(crate) struct FreshCreation {
    /// Open for writing, empty, positioned at 0.
    pub(crate) data: File,
    /// The creation is not synced yet: the append syncs it with its own bytes.
    pub(crate) unsynced: bool,
    since: Instant,
}

/// Creations waiting for their first append at most (each holds an open file).
const MAX_FRESH_CREATIONS: usize = 1024;
/// A creation whose append has not come after this never will (its request failed first).
const FRESH_CREATION_AGE: Duration = Duration::from_secs(10);

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
            fresh_creations: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `id`'s open, empty data file for the append that follows its creation, which
    /// then needs no lookup, open or stat of its own; with `unsynced`, that append also syncs
    /// the creation. Returns whether it was kept: with [`MAX_FRESH_CREATIONS`] waiting it is
    /// not, and the caller syncs the creation itself.
    ///
    /// A creation whose request failed before its append (a refused checksum, a quota) never
    /// collects its file: entries older than [`FRESH_CREATION_AGE`] are closed, and synced when
    /// they have to be, whenever the table is more than half full, so neither memory nor open
    /// files grow with such requests.
    pub(crate) fn keep_fresh_creation(&self, id: &UploadId, data: File, unsynced: bool) -> bool {
        let (kept, stale) = {
            let mut fresh = self.fresh_creations.lock().unwrap_or_else(PoisonError::into_inner);
            let mut stale = Vec::new();
            if fresh.len() >= MAX_FRESH_CREATIONS / 2 {
                let now = Instant::now();
                let old: Vec<UploadId> = fresh
                    .iter()
                    .filter(|(_, f)| now.duration_since(f.since) > FRESH_CREATION_AGE)
                    .map(|(id, _)| id.clone())
                    .collect();
                stale.extend(old.into_iter().filter_map(|id| fresh.remove(&id).map(|f| (id, f))));
            }
            let kept = fresh.len() < MAX_FRESH_CREATIONS;
            if kept {
                fresh.insert(id.clone(), FreshCreation { data, unsynced, since: Instant::now() });
            }
            (kept, stale)
        };
        for (id, left) in stale {
            if left.unsynced
                && let Err(e) = self.sync_creation(&id)
            {
                tracing::warn!(upload = %id, error = %e, "syncing a creation whose body never came failed");
            }
        }
        kept
    }

    /// The open data file and sync duty [`Self::keep_fresh_creation`] kept for `id`, if any;
    /// the caller owns both now.
    pub(crate) fn take_fresh_creation(&self, id: &UploadId) -> Option<FreshCreation> {
        self.fresh_creations.lock().unwrap_or_else(PoisonError::into_inner).remove(id)
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

    /// [`Self::sync_created_with`] for a caller on the async runtime: with the shared
    /// `syncfs` it waits for its answer without holding a thread (no trip to the blocking
    /// pool, whose thread would only sleep in the queue); otherwise `None`, and the caller
    /// uses the blocking form. The future joins the queue when first polled: await it only
    /// once everything it must cover is written.
    #[cfg(target_os = "linux")]
    pub(crate) fn group_sync(&self) -> Option<impl Future<Output = Result<(), Error>> + use<'_>> {
        let group = self.group_sync.as_ref()?;
        // Queued when first polled, so after every write the caller made before awaiting.
        Some(async move {
            let waited = match group.queue() {
                Ok(wait) => GroupSync::answer(wait.await),
                Err(e) => Err(e),
            };
            waited.map_err(io_err("syncfs", &self.dir))
        })
    }

    /// Without `syncfs` there is nothing to share: see the Linux version.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn group_sync(&self) -> Option<std::future::Ready<Result<(), Error>>> {
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_whose_body_never_comes_hold_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = Dirs::new(dir.path().to_owned(), false);
        let mut kept = 0;
        for _ in 0..MAX_FRESH_CREATIONS + 100 {
            let id = UploadId::random();
            let file = File::create(dirs.data(&id)).expect("create");
            kept += usize::from(dirs.keep_fresh_creation(&id, file, false));
        }
        assert_eq!(kept, MAX_FRESH_CREATIONS, "past the bound a creation must sync on its own");
        let held = dirs.fresh_creations.lock().expect("lock").len();
        assert_eq!(held, MAX_FRESH_CREATIONS);
        // Entries past their age go as soon as the table is half full.
        for fresh in dirs.fresh_creations.lock().expect("lock").values_mut() {
            fresh.since -= FRESH_CREATION_AGE * 2;
        }
        let id = UploadId::random();
        let file = File::create(dirs.data(&id)).expect("create");
        assert!(dirs.keep_fresh_creation(&id, file, false));
        assert_eq!(dirs.fresh_creations.lock().expect("lock").len(), 1, "stale creations were not let go");
        assert!(dirs.take_fresh_creation(&id).is_some());
        assert!(dirs.take_fresh_creation(&id).is_none(), "handed out twice");
    }
}
