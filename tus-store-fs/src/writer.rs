//! The append's writer: request buffers written to the data file on the blocking pool while
//! the next buffer arrives.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use tus_core::store::StoreError;

use crate::error::{Error, io_err};

/// Bytes gathered from the request before one write to disk.
pub(crate) const WRITE_BUFFER: usize = 256 * 1024;

/// An open data file on its way through an append.
pub(crate) struct OpenData {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// Where the next byte goes.
    pub(crate) pos: u64,
}

/// Writes buffers to the data file while the request keeps streaming: each buffer is one job
/// on the blocking pool, started once the previous one is done, so receiving the next buffer
/// overlaps writing this one and memory per PATCH stays at two buffers (512 KiB; 200
/// concurrent uploads stay under 100 MiB). No pool thread ever waits for a client: a writer
/// parked on its request's next buffer would be one thread fewer for everything else, and
/// past the pool's 512 threads every other file operation (a HEAD too) would queue behind
/// slow uploads.
pub(crate) struct ChunkWriter {
    /// The file, unless a write job has it.
    idle: Option<OpenData>,
    /// The job that has it.
    running: Option<tokio::task::JoinHandle<Result<OpenData, Error>>>,
    /// Start writeback of each buffer as soon as it is written (synced mode).
    writeback: bool,
}

impl ChunkWriter {
    pub(crate) fn new(open: OpenData, writeback: bool) -> Self {
        ChunkWriter { idle: Some(open), running: None, writeback }
    }

    /// Hands `buf` to a write job; waits only for the previous buffer's job.
    pub(crate) async fn write(&mut self, buf: Bytes) -> Result<(), StoreError> {
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

    /// Writes `buf` (the last, partly filled buffer) on the calling thread: without syncs it
    /// is one page-cache copy, cheaper than the pool's hop, which was a third of a small
    /// upload's CPU. Nothing is left to overlap it with.
    pub(crate) async fn write_last_here(&mut self, buf: Bytes) -> Result<(), StoreError> {
        let mut open = self.take().await?;
        open.file.write_all(&buf).map_err(io_err("write", &open.path))?;
        open.pos += buf.len() as u64;
        self.idle = Some(open);
        Ok(())
    }

    async fn take(&mut self) -> Result<OpenData, StoreError> {
        match (self.idle.take(), self.running.take()) {
            (Some(open), _) => Ok(open),
            (None, Some(job)) => Ok(job.await.map_err(Error::from)??),
            (None, None) => Err(Error::Conflict("the data file was lost after a failed write".into()).into()),
        }
    }

    /// Waits for the last buffer to be written; returns the file and the position after the
    /// last byte written.
    pub(crate) async fn finish(mut self) -> Result<(File, u64), StoreError> {
        let open = self.take().await?;
        Ok((open.file, open.pos))
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
