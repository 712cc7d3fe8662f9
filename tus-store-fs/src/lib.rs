//! Local filesystem storage for [`tus_core`].
//!
//! # Layout
//!
//! One directory holds, per upload `<id>` (IDs are validated by `tus-core` to
//! `[A-Za-z0-9_-]{1,128}`, so they are always plain file names):
//!
//! | file | content |
//! |---|---|
//! | `<id>` | the upload's bytes, in order; **its length is the upload's offset** |
//! | `<id>.info` | JSON: length, metadata, concatenation role, timestamps — or a tombstone |
//! | `<id>.unverified` | present while a checksummed PATCH streams into `<id>`: the offset before it |
//! | `<id>.assembling` | a final upload being concatenated, renamed over `<id>` when done |
//! | `quarantine/<id>` | the bytes of an upload a virus scan flagged, out of the servable area |
//!
//! # Durability
//!
//! By default every append is synced (`fdatasync`) before [`Store::append`] returns, so a
//! `204` means the bytes are on stable storage. Because the offset *is* the data file's
//! length, after a crash at any instant HEAD reports exactly the bytes in the file: never
//! more, and never fewer than were acknowledged. `FileStore::builder(dir).sync(false)` trades
//! that guarantee for speed (the bytes then reach the disk when the OS flushes them).
//!
//! While a synced append streams in, writeback of each buffer starts at once (Linux), so the
//! disk works while the rest of the PATCH arrives and the final `fdatasync` has little left.
//!
//! Info files are replaced atomically (write to a temp file, sync, rename, sync the
//! directory). Checksummed appends write straight into `<id>` (one copy of the bytes, not
//! two) after recording the offset before them in `<id>.unverified`: while that marker
//! exists the offset is capped at it, so unverified bytes never count, even after a crash;
//! a rejected append is cut off again, and the next append cuts off what a crash left behind.
//! Finals are assembled into `<id>.assembling` (with `copy_file_range` through
//! `std::io::copy`) and renamed into place.
//!
//! Terminated and expired uploads leave a small tombstone `<id>.info` so they answer `410
//! Gone`; tombstones are removed by the expiry pass once they are older than the expiry cutoff.
//!
//! ```no_run
//! use tus_core::TusService;
//! use tus_store_fs::FileStore;
//!
//! # fn main() -> std::io::Result<()> {
//! let store = FileStore::builder("./data").sync(true).build()?;
//! let service = TusService::builder(store).build();
//! # let _ = service; Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tus_core::UploadId;
use tus_core::store::{
    AppendOptions, BodyError, ByteStream, ChunkStream, Concatenate, DeferLength, ListExpired, NewUpload, RecordState,
    Store, StoreError, Terminate, UploadInfo, UploadState,
};

/// Bytes gathered from the request before one write to disk.
const WRITE_BUFFER: usize = 256 * 1024;
/// Subdirectory holding quarantined data.
const QUARANTINE_DIR: &str = "quarantine";
/// Bytes per chunk when reading an upload back.
const READ_CHUNK: usize = 256 * 1024;

/// Errors of this backend, converted into [`StoreError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("corrupt info file {path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("upload not found")]
    NotFound,
    #[error("upload gone")]
    Gone,
    #[error("upload already exists")]
    AlreadyExists,
    #[error("{0}")]
    Conflict(String),
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => StoreError::NotFound,
            Error::Gone => StoreError::Gone,
            Error::AlreadyExists => StoreError::AlreadyExists,
            Error::Conflict(msg) => StoreError::Conflict(msg),
            other => StoreError::Generic { store: "fs", source: Box::new(other) },
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// What `<id>.info` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum InfoFile {
    /// A live upload; its `offset` field is ignored (the data file's length is the offset).
    Live(UploadInfo),
    /// Terminated or expired.
    Gone { at: SystemTime },
}

/// Builds a [`FileStore`].
#[derive(Debug, Clone)]
pub struct FileStoreBuilder {
    dir: PathBuf,
    sync: bool,
}

impl FileStoreBuilder {
    /// Sync data before acknowledging it (default `true`). `false` trades crash durability
    /// of acknowledged bytes for speed.
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Creates the directory if needed and returns the store.
    pub fn build(self) -> io::Result<FileStore> {
        fs::create_dir_all(&self.dir)?;
        Ok(FileStore { inner: Arc::new(Dirs { dir: self.dir, sync: self.sync, turns: Default::default() }) })
    }
}

/// Uploads as files in one directory. See the crate docs for the layout.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Dirs>,
}

#[derive(Debug)]
struct Dirs {
    dir: PathBuf,
    sync: bool,
    turns: std::sync::Mutex<HashMap<UploadId, Arc<TurnSlot>>>,
}

/// One upload's entry in [`Dirs::turns`].
#[derive(Debug, Default)]
struct TurnSlot {
    mutex: Arc<tokio::sync::Mutex<()>>,
    /// The holder's request is gone but its disk work is not done yet.
    abandoned: std::sync::atomic::AtomicBool,
}

/// An upload's turn for disk work that must not overlap. The handler's upload lock ends with
/// the request, but an append's blocking work cannot be stopped when its request is dropped
/// (an HTTP/2 stream reset, a timeout layer): the next append or termination of the upload
/// waits for that work here instead of racing it (a retry's marker removed by the old
/// append's cleanup, or its bytes cut off by the old truncation). Reading the info waits for
/// it too while it is abandoned: the lock was free again before those bytes landed, so a HEAD
/// would otherwise report an offset the upload is about to outgrow.
struct Turn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    slot: Arc<TurnSlot>,
    id: UploadId,
    dirs: Arc<Dirs>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.slot.abandoned.store(false, std::sync::atomic::Ordering::Release);
        drop(self.guard.take());
        // Forget the upload's slot once nobody else holds or waits for it.
        if let Ok(mut turns) = self.dirs.turns.lock()
            && turns.get(&self.id).is_some_and(|slot| Arc::strong_count(slot) == 2)
        {
            turns.remove(&self.id);
        }
    }
}

/// Marks the turn abandoned if the append holding it is dropped while its disk work (which
/// has the turn) still runs; an append that finishes has released the turn by then.
struct AbandonOnDrop(std::sync::Weak<TurnSlot>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(slot) = self.0.upgrade()
            && slot.mutex.try_lock().is_err()
        {
            slot.abandoned.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

impl FileStore {
    /// A builder for a store in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> FileStoreBuilder {
        FileStoreBuilder { dir: dir.into(), sync: true }
    }

    /// The directory uploads live in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Waits for the upload's turn (see [`Turn`]).
    async fn turn(&self, id: &UploadId) -> Turn {
        let slot: Arc<TurnSlot> = match self.inner.turns.lock() {
            Ok(mut turns) => turns.entry(id.clone()).or_default().clone(),
            // A panic while the map was held: go on with a slot of our own.
            Err(_) => Arc::default(),
        };
        let guard = slot.mutex.clone().lock_owned().await;
        Turn { guard: Some(guard), slot, id: id.clone(), dirs: self.inner.clone() }
    }

    /// Waits for disk work of an abandoned append of `id`, if there is any.
    async fn settle_abandoned(&self, id: &UploadId) {
        let abandoned = self.inner.turns.lock().ok().and_then(|turns| {
            turns.get(id).filter(|slot| slot.abandoned.load(std::sync::atomic::Ordering::Acquire)).cloned()
        });
        if let Some(slot) = abandoned {
            drop(slot.mutex.lock().await);
            if let Ok(mut turns) = self.inner.turns.lock()
                && turns.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot) && Arc::strong_count(s) == 2)
            {
                turns.remove(id);
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Dirs) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        Ok(tokio::task::spawn_blocking(move || f(&inner)).await.map_err(Error::from)??)
    }
}

impl Dirs {
    fn data(&self, id: &UploadId) -> PathBuf {
        self.dir.join(id.as_str())
    }
    fn info_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.info"))
    }
    fn unverified(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.unverified"))
    }
    fn assembling(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.assembling"))
    }
    fn quarantined(&self, id: &UploadId) -> PathBuf {
        self.dir.join(QUARANTINE_DIR).join(id.as_str())
    }

    fn read_info_file(&self, id: &UploadId) -> Result<InfoFile, Error> {
        let path = self.info_path(id);
        let bytes = match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound),
            other => other.map_err(io_err("read", &path))?,
        };
        if bytes.is_empty() {
            // Created but never written: a create cut short before it answered.
            return Err(Error::NotFound);
        }
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
    }

    /// The live info, with offset and activity time taken from the data file.
    fn info(&self, id: &UploadId) -> Result<UploadInfo, Error> {
        let mut info = match self.read_info_file(id)? {
            InfoFile::Live(info) => info,
            InfoFile::Gone { .. } => return Err(Error::Gone),
        };
        let path = if info.state == Some(UploadState::Quarantined) { self.quarantined(id) } else { self.data(id) };
        // The marker is read before and after the length: an append that is rejected in
        // between cuts its bytes off first and drops the marker second, so one of the two
        // readings still caps the length taken before the cut.
        let before = self.unverified_from(id)?;
        match fs::metadata(&path) {
            Ok(meta) => {
                info.offset = meta.len();
                if let Ok(modified) = meta.modified() {
                    info.updated_at = info.updated_at.max(modified);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => info.offset = 0,
            Err(e) => return Err(io_err("stat", &path)(e)),
        }
        for cap in [before, self.unverified_from(id)?].into_iter().flatten() {
            info.offset = info.offset.min(cap);
        }
        Ok(info)
    }

    /// The offset recorded in `<id>.unverified`, if a checksummed append is (or was, before
    /// a crash) streaming into the data file. An unreadable marker was never completed, and
    /// the marker is completed before any byte is written, so it caps nothing.
    fn unverified_from(&self, id: &UploadId) -> Result<Option<u64>, Error> {
        Ok(self.read_unverified(id)?.flatten())
    }

    /// `<id>.unverified`: `None` if absent, `Some(None)` if present but never completed (the
    /// newline comes last, so a torn write cannot pass for a smaller offset).
    fn read_unverified(&self, id: &UploadId) -> Result<Option<Option<u64>>, Error> {
        let path = self.unverified(id);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.strip_suffix('\n').and_then(|t| t.parse().ok()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Records that bytes past `offset` are unverified; durable before any of them is written.
    fn mark_unverified(&self, id: &UploadId, offset: u64) -> Result<(), Error> {
        let path = self.unverified(id);
        let mut f = File::create(&path).map_err(io_err("create", &path))?;
        f.write_all(format!("{offset}\n").as_bytes()).map_err(io_err("write", &path))?;
        self.sync_file(&f, &path)?;
        self.sync_dir()
    }

    /// Drops the marker: the bytes behind it are now verified (or were cut off).
    fn clear_unverified(&self, id: &UploadId) -> Result<(), Error> {
        Self::remove_if_exists(&self.unverified(id))?;
        self.sync_dir()
    }

    /// Cuts off what an append interrupted by a crash left past its marker. Called with the
    /// upload locked, so no append is running and any marker is stale.
    fn settle_unverified(&self, id: &UploadId) -> Result<(), Error> {
        let from = match self.read_unverified(id)? {
            None => return Ok(()),
            Some(None) => return self.clear_unverified(id),
            Some(Some(from)) => from,
        };
        let path = self.data(id);
        let f = OpenOptions::new().write(true).open(&path).map_err(io_err("open", &path))?;
        if f.metadata().map_err(io_err("stat", &path))?.len() > from {
            f.set_len(from).map_err(io_err("truncate", &path))?;
            self.sync_file(&f, &path)?;
        }
        self.clear_unverified(id)
    }

    /// Replaces `<id>.info` atomically.
    fn write_info(&self, id: &UploadId, info: &InfoFile) -> Result<(), Error> {
        let path = self.info_path(id);
        let tmp = self.dir.join(format!("{id}.info.tmp"));
        let json = serde_json::to_vec(info).map_err(|source| Error::Json { path: path.clone(), source })?;
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&json).map_err(io_err("write", &tmp))?;
        if self.sync {
            f.sync_all().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), Error> {
        if self.sync {
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err("sync", &self.dir))?;
        }
        Ok(())
    }

    fn sync_file(&self, f: &File, path: &Path) -> Result<(), Error> {
        if self.sync { f.sync_data().map_err(io_err("sync", path)) } else { Ok(()) }
    }

    /// IDs of every upload with an info file (live or tombstone).
    fn info_ids(&self) -> Result<Vec<UploadId>, Error> {
        let entries = fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".info").and_then(|n| UploadId::parse(n).ok()))
            .collect())
    }

    fn remove_if_exists(path: &Path) -> Result<(), Error> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
            _ => Ok(()),
        }
    }
}

/// An open data file on its way through an append, with the upload's turn.
struct OpenData {
    file: File,
    path: PathBuf,
    /// Where the next byte goes.
    pos: u64,
    turn: Turn,
}

/// Writes buffers to the data file while the request keeps streaming: each buffer is one job
/// on the blocking pool, started once the previous one is done, so receiving the next buffer
/// overlaps writing this one and memory per PATCH stays at two buffers (512 KiB; 200
/// concurrent uploads stay under 100 MiB). No pool thread ever waits for a client: a writer
/// parked on its request's next buffer would be one thread fewer for everything else, and
/// past the pool's 512 threads every other file operation (a HEAD too) would queue behind
/// slow uploads.
struct ChunkWriter {
    /// The file, unless a write job has it.
    idle: Option<OpenData>,
    /// The job that has it.
    running: Option<tokio::task::JoinHandle<Result<OpenData, Error>>>,
    /// Start writeback of each buffer as soon as it is written (synced mode).
    writeback: bool,
}

impl ChunkWriter {
    fn new(open: OpenData, writeback: bool) -> Self {
        ChunkWriter { idle: Some(open), running: None, writeback }
    }

    /// Hands `buf` to a write job; waits only for the previous buffer's job.
    async fn write(&mut self, buf: Bytes) -> Result<(), StoreError> {
        let mut open = self.take().await?;
        let writeback = self.writeback;
        self.running = Some(tokio::task::spawn_blocking(move || {
            open.file.write_all(&buf).map_err(io_err("write", &open.path))?;
            if writeback {
                start_writeback(&open.file, open.pos, buf.len() as u64);
            }
            open.pos += buf.len() as u64;
            Ok(open)
        }));
        Ok(())
    }

    async fn take(&mut self) -> Result<OpenData, StoreError> {
        match (self.idle.take(), self.running.take()) {
            (Some(open), _) => Ok(open),
            (None, Some(job)) => Ok(job.await.map_err(Error::from)??),
            (None, None) => Err(Error::Conflict("the data file was lost after a failed write".into()).into()),
        }
    }

    /// Waits for the last buffer to be written; returns the file, the position after the last
    /// byte written and the upload's turn.
    async fn finish(mut self) -> Result<(File, u64, Turn), StoreError> {
        let open = self.take().await?;
        Ok((open.file, open.pos, open.turn))
    }
}

/// Starts writing `len` bytes at `pos` to the disk without waiting for them. On Linux
/// `POSIX_FADV_DONTNEED` starts asynchronous writeback of the dirty range (pages still being
/// written stay cached; `sync_file_range` would say it more exactly but has no safe binding).
/// A failure here only loses the head start; the sync that follows reports real I/O errors.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, pos: u64, len: u64) {
    use rustix::fs::{Advice, fadvise};
    if let Err(e) = fadvise(file, pos, std::num::NonZeroU64::new(len), Advice::DontNeed) {
        tracing::debug!(error = %e, "starting writeback failed");
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _pos: u64, _len: u64) {}

#[async_trait]
impl Store for FileStore {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
        self.blocking(move |d| {
            let info = upload.into_info(SystemTime::now());
            // The info first, created exclusively: it is what makes an ID taken (a tombstone
            // too). Written in place rather than renamed into place, one directory operation
            // fewer per upload: a process killed between creating and writing it leaves an
            // empty info (read as not found), and only a power loss before the syncs below
            // could leave it partial, for an ID that was never given out.
            let path = d.info_path(&info.id);
            let json = serde_json::to_vec(&InfoFile::Live(info.clone()))
                .map_err(|source| Error::Json { path: path.clone(), source })?;
            let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(Error::AlreadyExists),
                other => other.map_err(io_err("create", &path))?,
            };
            f.write_all(&json).map_err(io_err("write", &path))?;
            d.sync_file(&f, &path)?;
            // Any data file already there is left from a create interrupted before its info.
            let data = d.data(&info.id);
            OpenOptions::new().write(true).create(true).truncate(true).open(&data).map_err(io_err("create", &data))?;
            d.sync_dir()?;
            Ok(info)
        })
        .await
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
        self.settle_abandoned(id).await;
        let id = id.clone();
        self.blocking(move |d| d.info(&id)).await
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        mut data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        let checked = options.all_or_nothing;
        // Every step on disk holds the turn, passed along, and lets go only when done.
        let turn = self.turn(id).await;
        let _abandon_on_drop = AbandonOnDrop(Arc::downgrade(&turn.slot));
        let opened = {
            let id = id.clone();
            self.blocking(move |d| {
                d.settle_unverified(&id)?;
                // With no marker left the data file's length is the offset: checking it on the
                // open file spares reading the info again (the caller just did, holding the lock).
                let path = d.data(&id);
                let file = match OpenOptions::new().append(true).open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // Terminated, expired or quarantined: the info says which.
                        d.info(&id)?;
                        return Err(Error::Conflict(format!("upload {id} takes no more bytes")));
                    }
                    Err(e) => return Err(io_err("open", &path)(e)),
                };
                let current = file.metadata().map_err(io_err("stat", &path))?.len();
                if current != offset {
                    return Err(Error::Conflict(format!("offset is {current}, not {offset}")));
                }
                if checked {
                    d.mark_unverified(&id, offset)?;
                }
                Ok((file, path, turn))
            })
            .await?
        };
        let (file, path, turn) = opened;
        let mut writer = ChunkWriter::new(OpenData { file, path, pos: offset, turn }, self.inner.sync);
        let mut buf = BytesMut::with_capacity(WRITE_BUFFER);
        let mut ended = None;
        while let Some(item) = data.next().await {
            match item {
                Ok(chunk) => {
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= WRITE_BUFFER {
                        writer.write(buf.split().freeze()).await?;
                        buf.reserve(WRITE_BUFFER);
                    }
                }
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
        }
        drop(data);
        let keep = match ended {
            None => true,
            Some(BodyError::Interrupted) => !checked,
            Some(BodyError::Rejected) => false,
        };
        if keep && !buf.is_empty() {
            writer.write(buf.freeze()).await?;
        }
        let (file, end, turn) = writer.finish().await?;
        if keep && !checked && !self.inner.sync {
            // Nothing left to do on disk: skip a trip to the blocking pool.
            return Ok(end);
        }
        let id = id.clone();
        self.blocking(move |d| {
            let _turn = turn;
            let path = d.data(&id);
            if !keep {
                // Rejected, or a checksummed body cut short: none of it counts.
                file.set_len(offset).map_err(io_err("truncate", &path))?;
            }
            d.sync_file(&file, &path)?;
            if checked {
                d.clear_unverified(&id)?;
            }
            Ok(if keep { end } else { offset })
        })
        .await
    }

    async fn read(&self, id: &UploadId, range: Range<u64>) -> Result<ByteStream, StoreError> {
        let id = id.clone();
        let start = range.start;
        let file = self
            .blocking(move |d| {
                if d.info(&id)?.state == Some(UploadState::Quarantined) {
                    return Err(Error::Conflict("upload is quarantined".into()));
                }
                let path = d.data(&id);
                let mut f = File::open(&path).map_err(io_err("open", &path))?;
                f.seek(SeekFrom::Start(start)).map_err(io_err("seek", &path))?;
                Ok(f)
            })
            .await?;
        let len = range.end.saturating_sub(range.start);
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK)
            .map(|r| r.map_err(|e| StoreError::Generic { store: "fs", source: Box::new(e) }));
        Ok(Box::pin(stream))
    }

    fn terminater(&self) -> Option<&dyn Terminate> {
        Some(self)
    }
    fn concatenater(&self) -> Option<&dyn Concatenate> {
        Some(self)
    }
    fn length_deferrer(&self) -> Option<&dyn DeferLength> {
        Some(self)
    }
    fn expirer(&self) -> Option<&dyn ListExpired> {
        Some(self)
    }
    fn state_recorder(&self) -> Option<&dyn RecordState> {
        Some(self)
    }
    fn describe(&self, id: &UploadId) -> std::collections::BTreeMap<String, String> {
        // The same keys tusd's filestore reports to hooks.
        [
            ("Type".to_owned(), "filestore".to_owned()),
            ("Path".to_owned(), self.inner.data(id).display().to_string()),
            ("InfoPath".to_owned(), self.inner.info_path(id).display().to_string()),
        ]
        .into()
    }
}

#[async_trait]
impl RecordState for FileStore {
    async fn set_state(&self, id: &UploadId, state: UploadState) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |d| {
            let mut info = d.info(&id)?;
            if state == UploadState::Quarantined && info.state != Some(UploadState::Quarantined) {
                // Move the bytes out first: from here on nothing under `<dir>/<id>` serves them.
                let target = d.quarantined(&id);
                let qdir = d.dir.join(QUARANTINE_DIR);
                fs::create_dir_all(&qdir).map_err(io_err("create", &qdir))?;
                fs::rename(d.data(&id), &target).map_err(io_err("quarantine", &target))?;
                // Keep an empty data file so the ID stays taken.
                File::create(d.data(&id)).map_err(io_err("create", &d.data(&id)))?;
            }
            info.state = Some(state);
            d.write_info(&id, &InfoFile::Live(info))
        })
        .await
    }

    async fn list_processing(&self) -> Result<Vec<UploadId>, StoreError> {
        self.blocking(|d| {
            let mut found = Vec::new();
            for id in d.info_ids()? {
                let awaits_verdict = match d.read_info_file(&id) {
                    Ok(InfoFile::Live(info)) => match info.state {
                        Some(state) => state == UploadState::Processing,
                        // Only a complete upload awaits one; the offset comes from the data.
                        None => d.info(&id).is_ok_and(|info| info.is_complete()),
                    },
                    _ => false,
                };
                if awaits_verdict {
                    found.push(id);
                }
            }
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl Terminate for FileStore {
    async fn terminate(&self, id: &UploadId) -> Result<(), StoreError> {
        let turn = self.turn(id).await;
        let id = id.clone();
        self.blocking(move |d| {
            let _turn = turn;
            d.info(&id)?;
            // Tombstone first: from here on the upload answers 410, whatever happens next.
            d.write_info(&id, &InfoFile::Gone { at: SystemTime::now() })?;
            for path in [d.data(&id), d.unverified(&id), d.assembling(&id), d.quarantined(&id)] {
                Dirs::remove_if_exists(&path)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Concatenate for FileStore {
    async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), StoreError> {
        let final_id = final_id.clone();
        let partials: Vec<(UploadId, u64)> = partials.iter().map(|p| (p.id.clone(), p.offset)).collect();
        self.blocking(move |d| {
            let mut info = d.info(&final_id)?;
            let tmp = d.assembling(&final_id);
            let mut out = File::create(&tmp).map_err(io_err("create", &tmp))?;
            let mut total = 0u64;
            for (id, len) in &partials {
                let path = d.data(id);
                let src = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => Error::Conflict(format!("partial upload {id} is gone")),
                    _ => io_err("open", &path)(e),
                })?;
                // Only the partial's offset: bytes past it (an unverified append) are not its.
                total += io::copy(&mut io::Read::take(src, *len), &mut out).map_err(io_err("copy", &tmp))?;
            }
            d.sync_file(&out, &tmp)?;
            if info.length != Some(total) {
                info.length = Some(total);
                d.write_info(&final_id, &InfoFile::Live(info))?;
            }
            fs::rename(&tmp, d.data(&final_id)).map_err(io_err("rename", &tmp))?;
            d.sync_dir()
        })
        .await
    }
}

#[async_trait]
impl DeferLength for FileStore {
    async fn declare_length(&self, id: &UploadId, length: u64) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |d| {
            let mut info = d.info(&id)?;
            info.length = Some(length);
            d.write_info(&id, &InfoFile::Live(info))
        })
        .await
    }
}

#[async_trait]
impl ListExpired for FileStore {
    async fn list_expired(&self, cutoff: SystemTime) -> Result<Vec<UploadId>, StoreError> {
        self.blocking(move |d| {
            let mut expired = Vec::new();
            let entries = fs::read_dir(&d.dir).map_err(io_err("list", &d.dir))?;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(id) =
                    name.to_str().and_then(|n| n.strip_suffix(".info")).and_then(|n| UploadId::parse(n).ok())
                else {
                    continue;
                };
                match d.read_info_file(&id) {
                    Ok(InfoFile::Gone { at }) if at < cutoff => {
                        Dirs::remove_if_exists(&d.info_path(&id))?;
                    }
                    Ok(InfoFile::Live(_)) => match d.info(&id) {
                        Ok(info) if !info.is_complete() && !info.is_final() && info.updated_at < cutoff => {
                            expired.push(id);
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
            Ok(expired)
        })
        .await
    }
}
