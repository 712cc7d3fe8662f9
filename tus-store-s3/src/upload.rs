//! Streaming bytes into a multipart upload: part sizing, bounded parallel part uploads, and
//! staging of all-or-nothing bodies.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tus_core::store::{BodyError, ChunkStream};

use crate::error::Error;
use crate::limits::{MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE};
use crate::ops::Bucket;

const MIB: u64 = 1024 * 1024;

/// Bytes of an all-or-nothing body kept in memory before it spills into a temp file.
const STAGE_IN_MEMORY: usize = 1024 * 1024;
/// Read size when replaying a staged body from its temp file.
const STAGE_READ: usize = 256 * 1024;

/// Why an input stream ended early.
#[derive(Debug)]
pub(crate) enum StreamEnd {
    /// The request body ended early.
    Body(BodyError),
    /// Reading the input failed (a staging file or a source object): nothing may be kept.
    Failed(Error),
}

/// The bytes fed to [`Pipeline::run`].
pub(crate) type Input<'a> = Pin<Box<dyn Stream<Item = Result<Bytes, StreamEnd>> + Send + 'a>>;

/// A request body as pipeline input.
pub(crate) fn from_body(body: ChunkStream<'_>) -> Input<'_> {
    Box::pin(body.map(|item| item.map_err(StreamEnd::Body)))
}

/// The size of the parts still to upload: the configured size, grown so that the bytes that
/// may still come (`assumed_total - parts_bytes`) fit into the part numbers left, rounded up to
/// whole MiB and kept within S3's limits.
pub(crate) fn part_size(configured: u64, assumed_total: u64, parts: u32, parts_bytes: u64) -> u64 {
    let parts_left = MAX_PARTS.saturating_sub(u64::from(parts)).max(1);
    let needed = assumed_total.saturating_sub(parts_bytes).div_ceil(parts_left);
    configured.max(needed).div_ceil(MIB).saturating_mul(MIB).clamp(MIN_PART_SIZE, MAX_PART_SIZE)
}

/// Memory for part buffers shared by every upload of a store, in whole MiB: without it 200
/// concurrent uploads held 200 part buffers (925 MiB of RSS for 200 × 5 MiB uploads). An
/// upload waits for room before it reads more of its body, so the client is slowed by TCP
/// flow control instead of the server growing. A buffer reserves only what its upload can
/// still need (a 64 KiB upload takes one MiB, not a part), and the wait is bounded: a holder
/// waits on its client (bounded by the body read timeout) or on S3 (bounded by the request
/// time limit), so room frees up, and a request that still finds none fails retryably
/// instead of holding its upload's lock indefinitely.
#[derive(Debug, Clone)]
pub(crate) struct PartMemory {
    mib: Arc<Semaphore>,
    total_mib: u32,
}

impl PartMemory {
    /// A budget of `bytes` (at least one MiB).
    pub(crate) fn new(bytes: u64) -> Self {
        let total_mib = u32::try_from((bytes / MIB).max(1)).unwrap_or(u32::MAX).min(Semaphore::MAX_PERMITS as u32);
        PartMemory { mib: Arc::new(Semaphore::new(total_mib as usize)), total_mib }
    }

    /// Waits, at most `limit`, for room for a buffer of `bytes` (a buffer larger than the
    /// whole budget gets all of it, so it still makes progress, alone).
    async fn reserve(&self, bytes: u64, limit: std::time::Duration) -> Result<OwnedSemaphorePermit, Error> {
        let mib = u32::try_from(bytes.div_ceil(MIB).max(1)).unwrap_or(u32::MAX).min(self.total_mib);
        match tokio::time::timeout(limit, self.mib.clone().acquire_many_owned(mib)).await {
            Ok(permit) => permit.map_err(|_| Error::Conflict("part memory closed".into())),
            Err(_) => Err(Error::Busy { secs: limit.as_secs() }),
        }
    }
}

/// Where an append ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The input ended cleanly or was interrupted: everything is uploaded but `rest`, whose
    /// memory stays reserved until `_room` is dropped.
    Keep { rest: Bytes, _room: OwnedSemaphorePermit },
    /// The input was rejected: nothing of it may count.
    Discard,
}

/// Uploads full parts of one multipart upload as bytes arrive, at most `max_in_flight` at a
/// time; memory stays below `part_size × (max_in_flight + 1)` per upload and within the
/// store's [`PartMemory`] in all.
pub(crate) struct Pipeline<'a> {
    pub(crate) memory: &'a PartMemory,
    pub(crate) bucket: &'a Bucket,
    pub(crate) key: &'a str,
    pub(crate) upload_id: &'a str,
    pub(crate) part_size: u64,
    /// The upload's length, if known: no buffer needs more than what is left of it.
    pub(crate) length: Option<u64>,
    pub(crate) max_in_flight: usize,
    /// Parts uploaded so far (the next one gets number `parts + 1`).
    pub(crate) parts: u32,
    /// Bytes in those parts.
    pub(crate) parts_bytes: u64,
    /// ETags of the parts this pipeline uploaded, by part number.
    pub(crate) etags: Vec<(i32, Option<String>)>,
}

impl Pipeline<'_> {
    /// Streams `input` after `head` (earlier bytes not yet in a part) into parts.
    pub(crate) async fn run(&mut self, head: Bytes, mut input: Input<'_>) -> Result<Outcome, Error> {
        let part_size = self.part_size as usize;
        let first = self.buffer_size(part_size.max(head.len()));
        let mut room = self.memory.reserve(first as u64, self.bucket.timeout).await?;
        let mut buf = BytesMut::with_capacity(first);
        buf.extend_from_slice(&head);
        drop(head);
        let mut in_flight: JoinSet<Result<(i32, Option<String>), Error>> = JoinSet::new();
        // The tail kept so far can exceed the part size: a deferred-length upload collects its
        // tail for parts planned at the maximum size, and shrinks them once its length is known.
        // (Those parts share the one reservation made for the whole tail.)
        while buf.len() >= part_size {
            let part = buf.split_to(part_size).freeze();
            self.start_part(&mut in_flight, part, None).await?;
        }
        let mut end = None;
        while let Some(item) = input.next().await {
            match item {
                Ok(chunk) => {
                    let mut chunk = &chunk[..];
                    while !chunk.is_empty() {
                        let take = chunk.len().min(part_size - buf.len());
                        buf.extend_from_slice(&chunk[..take]);
                        chunk = &chunk[take..];
                        if buf.len() == part_size {
                            let part = buf.split().freeze();
                            self.start_part(&mut in_flight, part, Some(room)).await?;
                            let next = self.buffer_size(part_size);
                            room = self.memory.reserve(next as u64, self.bucket.timeout).await?;
                            buf.reserve(next);
                        }
                    }
                }
                Err(e) => {
                    end = Some(e);
                    break;
                }
            }
        }
        drop(input);
        match end {
            Some(StreamEnd::Failed(e)) => Err(e),
            Some(StreamEnd::Body(BodyError::Rejected)) => {
                // Parts already sent lie beyond the committed marker and are overwritten later.
                in_flight.abort_all();
                Ok(Outcome::Discard)
            }
            None | Some(StreamEnd::Body(BodyError::Interrupted)) => {
                while let Some(done) = in_flight.join_next().await {
                    self.etags.push(done??);
                }
                Ok(Outcome::Keep { rest: buf.freeze(), _room: room })
            }
        }
    }

    /// `wanted` bytes, or what is left of the upload after its stored parts if that is less.
    fn buffer_size(&self, wanted: usize) -> usize {
        match self.length {
            Some(length) => wanted.min(usize::try_from(length.saturating_sub(self.parts_bytes)).unwrap_or(usize::MAX)),
            None => wanted,
        }
    }

    /// Uploads `part` in the background; `room` (its memory reservation) is released when the
    /// upload is done.
    async fn start_part(
        &mut self,
        in_flight: &mut JoinSet<Result<(i32, Option<String>), Error>>,
        part: Bytes,
        room: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Error> {
        while in_flight.len() >= self.max_in_flight {
            if let Some(done) = in_flight.join_next().await {
                self.etags.push(done??);
            }
        }
        if u64::from(self.parts) >= MAX_PARTS {
            return Err(Error::Conflict(format!("upload {} would need more than {MAX_PARTS} parts", self.key)));
        }
        self.parts += 1;
        self.parts_bytes += part.len() as u64;
        let number = self.parts as i32;
        let (bucket, key, upload_id) = (self.bucket.clone(), self.key.to_owned(), self.upload_id.to_owned());
        tracing::debug!(key = %key, part = number, bytes = part.len(), "uploading part");
        in_flight.spawn(async move {
            let etag = bucket.upload_part(&key, &upload_id, number, part).await?;
            drop(room);
            Ok((number, etag))
        });
        Ok(())
    }
}

/// A verified-later body held aside: in memory while small, then in an unlinked temp file.
pub(crate) enum Staged {
    Memory(Vec<Bytes>),
    File(tokio::fs::File),
}

/// Reads `body` to its end into a stage. `None` if it did not end cleanly (nothing is kept).
pub(crate) async fn stage(mut body: ChunkStream<'_>, dir: &Path) -> Result<Option<Staged>, Error> {
    let mut memory = Vec::new();
    let mut in_memory = 0;
    let mut file: Option<tokio::fs::File> = None;
    while let Some(item) = body.next().await {
        let Ok(chunk) = item else { return Ok(None) };
        if let Some(f) = &mut file {
            f.write_all(&chunk).await?;
            continue;
        }
        in_memory += chunk.len();
        memory.push(chunk);
        if in_memory > STAGE_IN_MEMORY {
            let dir = dir.to_owned();
            let std_file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir)).await??;
            let mut f = tokio::fs::File::from_std(std_file);
            for chunk in memory.drain(..) {
                f.write_all(&chunk).await?;
            }
            file = Some(f);
        }
    }
    match file {
        None => Ok(Some(Staged::Memory(memory))),
        Some(mut f) => {
            f.flush().await?;
            f.seek(std::io::SeekFrom::Start(0)).await?;
            Ok(Some(Staged::File(f)))
        }
    }
}

impl Staged {
    /// The staged bytes as pipeline input.
    pub(crate) fn into_input(self) -> Input<'static> {
        match self {
            Staged::Memory(chunks) => Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok))),
            Staged::File(file) => Box::pin(futures_util::stream::unfold(Some(file), |file| async move {
                let mut file = file?;
                let mut buf = BytesMut::with_capacity(STAGE_READ);
                match file.read_buf(&mut buf).await {
                    Ok(0) => None,
                    Ok(_) => Some((Ok(buf.freeze()), Some(file))),
                    Err(e) => Some((Err(StreamEnd::Failed(Error::Io(e))), None)),
                }
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;
    const TIB: u64 = 1024 * GIB;

    #[test]
    fn part_size_keeps_the_configured_size_when_it_fits() {
        assert_eq!(part_size(8 * MIB, GIB, 0, 0), 8 * MIB);
        assert_eq!(part_size(MIB, GIB, 0, 0), 5 * MIB, "raised to S3's minimum");
        assert_eq!(part_size(10 * GIB, GIB, 0, 0), 5 * GIB, "capped at S3's maximum");
    }

    #[test]
    fn part_size_grows_so_10000_parts_suffice() {
        let total = 200 * GIB;
        let size = part_size(8 * MIB, total, 0, 0);
        assert!(size * MAX_PARTS >= total, "{size}");
        assert_eq!(size % MIB, 0);
        // The 5 TiB maximum (deferred length) still fits.
        let size = part_size(8 * MIB, 5 * TIB, 0, 0);
        assert!(size * MAX_PARTS >= 5 * TIB && size <= MAX_PART_SIZE, "{size}");
    }

    #[test]
    fn part_size_never_exceeds_the_part_count_along_an_upload() {
        // Simulate an upload of the 5 TiB maximum with parts sized afresh on every append.
        let total = 5 * TIB;
        let (mut parts, mut bytes) = (0u32, 0u64);
        while bytes < total {
            let size = part_size(5 * MIB, total, parts, bytes).min(total - bytes);
            for _ in 0..3 {
                if bytes < total {
                    bytes += size.min(total - bytes);
                    parts += 1;
                }
            }
        }
        assert!(u64::from(parts) <= MAX_PARTS, "{parts} parts");
    }

    #[tokio::test]
    async fn part_memory_reserves_whole_mib_and_never_more_than_it_has() {
        let memory = PartMemory::new(8 * MIB);
        let wait = std::time::Duration::from_secs(5);
        let first = memory.reserve(5 * MIB, wait).await.expect("room");
        assert_eq!(memory.mib.available_permits(), 3);
        // A buffer larger than the whole budget waits for all of it, then proceeds alone.
        let waiting = tokio::spawn({
            let memory = memory.clone();
            async move { memory.reserve(100 * MIB, wait).await.map(|p| p.num_permits()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "reserved memory that was taken");
        drop(first);
        assert_eq!(waiting.await.expect("task").expect("room"), 8);
        // Less than a MiB still counts as one.
        let small = memory.reserve(1, wait).await.expect("room");
        assert_eq!(small.num_permits(), 1);
        // No room within the limit: a retryable error, not an endless wait.
        let all = memory.reserve(8 * MIB, std::time::Duration::from_millis(50)).await;
        assert!(matches!(all, Err(Error::Busy { .. })), "{all:?}");
    }
}
