//! Where an upload's files live in the directory, and syncing them.

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
}

/// Stripes of [`Dirs::info_lock`]: uploads share one by the hash of their ID.
const INFO_LOCKS: usize = 64;

impl Dirs {
    pub(crate) fn new(dir: PathBuf, sync: bool) -> Self {
        Dirs { dir, sync, info_locks: std::array::from_fn(|_| Mutex::new(())) }
    }

    /// Held around every read-modify-write of `id`'s info.
    pub(crate) fn info_lock(&self, id: &UploadId) -> MutexGuard<'_, ()> {
        // FNV-1a: a cheap, stable spread of IDs over the stripes.
        let hash = id
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let stripe = &self.info_locks[(hash % INFO_LOCKS as u64) as usize];
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
