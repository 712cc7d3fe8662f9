//! The store itself: [`FileStore`], its builder, and the four operations every store has
//! (create, info, append, read).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::BytesMut;
use futures_util::StreamExt as _;
use tus_core::UploadId;
use tus_core::store::{
    AppendOptions, BodyError, ByteStream, Capabilities, ChunkStream, NewUpload, Store, StoreError, UploadInfo,
    UploadState,
};

use crate::error::{Error, io_err};
use crate::info::InfoFile;
use crate::layout::{Dirs, FreshCreation};
use crate::writer::{ChunkWriter, OpenData, WRITE_BUFFER};

/// Bytes per chunk when reading an upload back.
const READ_CHUNK: usize = 256 * 1024;

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
        Ok(FileStore { inner: Arc::new(Dirs::new(self.dir, self.sync)) })
    }
}

/// Uploads as files in one directory. See the crate docs for the layout.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Dirs>,
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

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Dirs) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        Ok(tokio::task::spawn_blocking(move || f(&inner)).await.map_err(Error::from)??)
    }

    /// [`Self::blocking`] for metadata work that waits on the disk only when syncing: without
    /// syncs (`--no-sync`) it is a few page-cache syscalls, cheaper than the pool's hop (two
    /// thread switches), so it runs on the calling thread.
    pub(crate) async fn metadata_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Dirs) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.inner.sync { self.blocking(f).await } else { Ok(f(&self.inner)?) }
    }
}

#[async_trait]
impl Store for FileStore {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
        // Its first bytes follow in this request, and their sync makes the creation durable
        // too: nothing here waits on the disk, so it runs on the calling thread.
        let body_follows = upload.body_follows;
        let unsynced = self.inner.sync && body_follows;
        let create = move |d: &Dirs| {
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
            if !unsynced {
                d.sync_file(&f, &path)?;
            }
            // Any data file already there is left from a create interrupted before its info.
            let data = d.data(&info.id);
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&data)
                .map_err(io_err("create", &data))?;
            let kept = body_follows && d.keep_fresh_creation(&info.id, file, unsynced);
            if unsynced && !kept {
                d.sync_creation(&info.id)?;
            } else if !unsynced {
                d.sync_dir()?;
            }
            Ok(info)
        };
        if unsynced { Ok(create(&self.inner)?) } else { self.metadata_op(create).await }
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
        // On the calling thread, not the blocking pool: a few hundred bytes of metadata from
        // the page cache (an open, a read, three stats) cost less than the pool's hop, whose
        // two thread switches were half the CPU of a HEAD (perf, issue 18).
        Ok(self.inner.info(id)?)
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        let fresh = self.inner.take_fresh_creation(id);
        let unsynced_creation = fresh.as_ref().is_some_and(|f| f.unsynced);
        let appended = self.append_synced(id, offset, data, options, fresh).await;
        if unsynced_creation && appended.is_err() {
            // The creation must be durable whatever became of its bytes.
            let id = id.clone();
            self.blocking(move |d| d.sync_creation(&id)).await?;
        }
        appended
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
                let mut f = match File::open(&path) {
                    Ok(f) => f,
                    // Terminated (or expired) between the info read and the open: a download
                    // racing a DELETE gets the upload's answer, not a server error.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        d.info(&id)?;
                        return Err(Error::Gone);
                    }
                    Err(e) => return Err(io_err("open", &path)(e)),
                };
                f.seek(SeekFrom::Start(start)).map_err(io_err("seek", &path))?;
                Ok(f)
            })
            .await?;
        Ok(stream_file(file, range.end.saturating_sub(range.start)))
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::none()
            .with_terminate(self)
            .with_concatenate(self)
            .with_defer_length(self)
            .with_list_expired(self)
            .with_record_state(self)
            .with_derivatives(self)
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

impl FileStore {
    /// [`Store::append`] into the data file `fresh` kept from the creation if there is one,
    /// syncing the creation too when it says so.
    async fn append_synced(
        &self,
        id: &UploadId,
        offset: u64,
        mut data: ChunkStream<'_>,
        options: AppendOptions,
        fresh: Option<FreshCreation>,
    ) -> Result<u64, StoreError> {
        // The handler holds the upload's lock around this call and never drops it half-way
        // (see `Store::append`), so no other append or termination of the upload overlaps
        // any of the disk work below.
        let checked = options.all_or_nothing;
        let unsynced_creation = fresh.as_ref().is_some_and(|f| f.unsynced);
        let opened = if let Some(fresh) = fresh {
            // Created a moment ago, empty, no marker: nothing to look up. (A termination in
            // between dropped it, and the append below found the upload gone instead.)
            if offset != 0 {
                return Err(Error::Conflict(format!("offset is 0, not {offset}")).into());
            }
            if checked {
                let id = id.clone();
                self.metadata_op(move |d| d.mark_unverified(&id, 0)).await?;
            }
            (fresh.data, self.inner.data(id))
        } else {
            let id = id.clone();
            self.metadata_op(move |d| {
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
                Ok((file, path))
            })
            .await?
        };
        let (file, path) = opened;
        let mut writer = ChunkWriter::new(OpenData { file, path, pos: offset }, self.inner.sync);
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
        // The shared `syncfs` a creation's first bytes wait for, if they can wait for it here.
        let group_sync = (keep && !checked && unsynced_creation).then(|| self.inner.group_sync()).flatten();
        if keep && !buf.is_empty() && (!self.inner.sync || group_sync.is_some()) {
            // One page-cache copy, cheaper here than the pool's hop; the sync comes later.
            writer.write_last_here(buf.freeze()).await?;
        } else if keep && !buf.is_empty() {
            writer.write(buf.freeze()).await?;
        }
        let (file, end) = writer.finish().await?;
        if keep && !checked && !self.inner.sync {
            // Nothing left to do on disk: skip a trip to the blocking pool.
            return Ok(end);
        }
        if let Some(synced) = group_sync {
            // Queued after the last write: the `syncfs` that answers covers all of it.
            drop(file);
            synced.await?;
            return Ok(end);
        }
        let id = id.clone();
        self.blocking(move |d| {
            let path = d.data(&id);
            if !keep {
                // Rejected, or a checksummed body cut short: none of it counts.
                file.set_len(offset).map_err(io_err("truncate", &path))?;
            }
            if unsynced_creation {
                d.sync_created_with(&id, &file, &path)?;
            } else {
                d.sync_file(&file, &path)?;
            }
            if checked {
                d.clear_unverified(&id)?;
            }
            Ok(if keep { end } else { offset })
        })
        .await
    }
}

/// Streams up to `len` bytes of `file` from where it stands.
pub(crate) fn stream_file(file: File, len: u64) -> ByteStream {
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK)
        .map(|r| r.map_err(|e| StoreError::Generic { store: "fs", source: Box::new(e) }));
    Box::pin(stream)
}
