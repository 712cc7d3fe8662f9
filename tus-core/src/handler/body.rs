//! Turning an HTTP request body into the [`ChunkStream`] a store consumes.
//!
//! The stream enforces, in one place: the byte limit (remaining length or maximum size), the
//! sliding read timeout, lock release and shutdown (stop reading, keep what arrived), and the
//! checksum (from the header or the trailer), verified once the whole body has arrived. Why it
//! stopped is recorded in [`BodyOutcome`] for the handler to answer with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::stream;
use http_body_util::BodyExt as _;
use tokio::sync::{Notify, watch};

use super::RequestBody;
use crate::checksum::{ChecksumAlgorithm, ChecksumHasher};
use crate::error::TusError;
use crate::headers::{self, UploadChecksum};
use crate::locker::UploadLock;
use crate::store::{BodyError, ChunkStream};

/// How reading a body should be bounded and checked.
pub(crate) struct BodyRules<'a> {
    /// Bytes the body may carry at most.
    pub(crate) limit: u64,
    /// Longest pause between two pieces of the body.
    pub(crate) read_timeout: Duration,
    /// Checksum announced in the header.
    pub(crate) checksum: Option<UploadChecksum>,
    /// The client announced `Trailer: Upload-Checksum`.
    pub(crate) checksum_trailer: bool,
    /// Fires when another request wants the upload.
    pub(crate) lock: &'a dyn UploadLock,
    /// Becomes `true` when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Fired when a `post-receive` hook asks to stop the upload.
    pub(crate) stop_upload: &'a Notify,
    /// Bytes passed on so far, and when the last ones came.
    pub(crate) progress: &'a Progress,
}

/// How far one request's body has come, and when it last moved: for `post-receive` reports,
/// and for a `HEAD` deciding whether the append holding the upload is alive (see
/// `head.rs`).
#[derive(Debug)]
pub(crate) struct Progress {
    bytes: AtomicU64,
    /// Milliseconds after `since` at which bytes last arrived (or the body started).
    moved_at: AtomicU64,
    since: std::time::Instant,
    ended: std::sync::atomic::AtomicBool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Progress {
            bytes: AtomicU64::new(0),
            moved_at: AtomicU64::new(0),
            since: std::time::Instant::now(),
            ended: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn advance(&self, total: u64) {
        self.bytes.store(total, Ordering::Relaxed);
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.moved_at.store(now, Ordering::Relaxed);
    }

    /// Bytes received so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The body ended (whole or not), or the request waiting for this append went away:
    /// what remains is the store finishing it, and a `HEAD` may stop it.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// Whether bytes are still flowing: the body has not ended and bytes arrived within
    /// `grace` (or it started that recently).
    pub(crate) fn flowing(&self, grace: Duration) -> bool {
        !self.ended.load(Ordering::Relaxed) && self.idle() < grace
    }

    /// How long since bytes last arrived (or the body started).
    fn idle(&self) -> Duration {
        let moved = Duration::from_millis(self.moved_at.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(moved)
    }
}

/// Why the body stream ended early, if it did.
#[derive(Default)]
pub(crate) struct BodyOutcome(Mutex<Option<TusError>>);

impl BodyOutcome {
    fn set(&self, e: TusError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    /// The error that ended the body, if any.
    pub(crate) fn take(&self) -> Option<TusError> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

struct State<'a> {
    body: RequestBody,
    /// Completes, with the reason, when the lock holder is asked to release, the server shuts
    /// down or a hook stops the upload. Created once: per-frame futures and timers cost more
    /// than the frames themselves.
    stop: Pin<Box<dyn Future<Output = TusError> + Send + 'a>>,
    /// The sliding read deadline, pushed forward on every frame.
    deadline: Pin<Box<tokio::time::Sleep>>,
    rules: BodyRules<'a>,
    outcome: &'a BodyOutcome,
    received: u64,
    /// Running digests: the header's algorithm, or (for an announced trailer, whose algorithm
    /// is unknown until the end) every supported one.
    digests: Option<Digests>,
    trailer_checksum: Option<UploadChecksum>,
    done: bool,
}

/// Wraps `body` so it yields its data under `rules`, recording failures in `outcome`.
pub(crate) fn chunk_stream<'a>(body: RequestBody, rules: BodyRules<'a>, outcome: &'a BodyOutcome) -> ChunkStream<'a> {
    let digests = match (&rules.checksum, rules.checksum_trailer) {
        (Some(c), _) => Some(Digests::start(vec![c.algorithm])),
        (None, true) => Some(Digests::start(ChecksumAlgorithm::ALL.to_vec())),
        (None, false) => None,
    };
    let lock = rules.lock;
    let stop_upload = rules.stop_upload;
    let mut shutdown = rules.shutdown.clone();
    let stop = Box::pin(async move {
        tokio::select! {
            () = lock.release_requested() => TusError::Interrupted,
            _ = shutdown.wait_for(|stop| *stop) => TusError::Interrupted,
            () = stop_upload.notified() => TusError::UploadStopped,
        }
    });
    let deadline = Box::pin(tokio::time::sleep(rules.read_timeout));
    let state =
        State { body, stop, deadline, rules, outcome, received: 0, digests, trailer_checksum: None, done: false };
    Box::pin(stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let item = st.next_item().await;
        if !matches!(item, Some(Ok(_))) {
            st.done = true;
            st.rules.progress.end();
        }
        item.map(|item| (item, st))
    }))
}

impl State<'_> {
    fn fail(&self, error: TusError, kind: BodyError) -> Option<Result<Bytes, BodyError>> {
        self.outcome.set(error);
        Some(Err(kind))
    }

    async fn next_item(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            // The body's error type need not be `Send`: it must be gone before any await below.
            let frame = match tokio::select! {
                biased;
                why = &mut self.stop => return self.fail(why, BodyError::Interrupted),
                () = &mut self.deadline => return self.fail(TusError::ReadTimeout, BodyError::Interrupted),
                frame = self.body.frame() => frame,
            } {
                None => None,
                Some(Err(_)) => return self.fail(TusError::UnexpectedEof, BodyError::Interrupted),
                Some(Ok(frame)) => Some(frame),
            };
            self.deadline.as_mut().reset(tokio::time::Instant::now() + self.rules.read_timeout);
            let Some(frame) = frame else { return self.finish().await };
            match frame.into_data() {
                Ok(mut data) => {
                    let bytes = data.copy_to_bytes(data.remaining());
                    if bytes.is_empty() {
                        continue;
                    }
                    let len = bytes.len() as u64;
                    if self.received.saturating_add(len) > self.rules.limit {
                        return self.fail(TusError::SizeExceeded, BodyError::Interrupted);
                    }
                    self.received += len;
                    self.rules.progress.advance(self.received);
                    if let Some(digests) = &mut self.digests
                        && let Err(e) = digests.update(&bytes).await
                    {
                        return self.fail(e, BodyError::Rejected);
                    }
                    return Some(Ok(bytes));
                }
                Err(frame) => {
                    let Ok(trailers) = frame.into_trailers() else { continue };
                    match headers::get::<UploadChecksum>(&trailers) {
                        // Only an announced trailer can be verified: without the announcement
                        // nothing was hashed, and the bytes may already be stored.
                        Ok(Some(_)) if !self.rules.checksum_trailer || self.rules.checksum.is_some() => {
                            return self.fail(invalid_checksum(), BodyError::Rejected);
                        }
                        Ok(Some(c)) => self.trailer_checksum = Some(c),
                        Ok(_) => {}
                        Err(e) => return self.fail(TusError::InvalidHeader(e), BodyError::Rejected),
                    }
                }
            }
        }
    }

    /// The body ended: verify the checksum, if one applies.
    async fn finish(&mut self) -> Option<Result<Bytes, BodyError>> {
        let digests = self.digests.take()?;
        let Some(expected) = self.rules.checksum.take().or_else(|| self.trailer_checksum.take()) else {
            // `Trailer: Upload-Checksum` was announced but never sent.
            return self.fail(invalid_checksum(), BodyError::Rejected);
        };
        let digests = match digests.finish().await {
            Ok(digests) => digests,
            Err(e) => return self.fail(e, BodyError::Rejected),
        };
        let digest = digests.into_iter().find(|(a, _)| *a == expected.algorithm).map(|(_, d)| d);
        if digest.as_deref() == Some(expected.digest.as_slice()) {
            None
        } else {
            self.fail(TusError::ChecksumMismatch, BodyError::Rejected)
        }
    }
}

fn invalid_checksum() -> TusError {
    TusError::InvalidHeader(headers::HeaderError::Invalid(headers::names::UPLOAD_CHECKSUM))
}

/// Bytes gathered before they are handed to the hashing threads as one job.
const DIGEST_BATCH: usize = 256 * 1024;

/// Digests computed off the request task as the chunks arrive, so hashing overlaps receiving
/// and storing instead of adding to them: hashed inline, sha1 made the request task the
/// bottleneck of a checksummed PATCH (about 600 MiB/s on 2 cores, a third of sha1's speed).
///
/// The jobs run on rayon's pool, not tokio's blocking pool: a job only ever hashes bytes that
/// have arrived, so it never waits on a client, while a blocking-pool thread parked on a slow
/// body would be one fewer for the stores (enough of them and every upload waits for a thread
/// that waits for an upload). One job per body at a time keeps the order.
struct Digests {
    /// The hashers, unless a job has them.
    idle: Option<Vec<(ChecksumAlgorithm, ChecksumHasher)>>,
    /// The job that has them.
    running: Option<tokio::sync::oneshot::Receiver<Vec<(ChecksumAlgorithm, ChecksumHasher)>>>,
    batch: Vec<Bytes>,
    batched: usize,
}

impl Digests {
    fn start(algorithms: Vec<ChecksumAlgorithm>) -> Self {
        let hashers = algorithms.into_iter().map(|a| (a, a.hasher())).collect();
        Digests { idle: Some(hashers), running: None, batch: Vec::new(), batched: 0 }
    }

    /// Takes `chunk` (a cheap clone); hands a batch to the pool once it is big enough, waiting
    /// for this body's previous job first.
    async fn update(&mut self, chunk: &Bytes) -> Result<(), TusError> {
        self.batched += chunk.len();
        self.batch.push(chunk.clone());
        if self.batched >= DIGEST_BATCH { self.hand_over().await } else { Ok(()) }
    }

    async fn hand_over(&mut self) -> Result<(), TusError> {
        let mut hashers = self.take_hashers().await?;
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        let (done, running) = tokio::sync::oneshot::channel();
        rayon_core::spawn(move || {
            for chunk in &batch {
                for (_, h) in &mut hashers {
                    h.update(chunk);
                }
            }
            let _ = done.send(hashers);
        });
        self.running = Some(running);
        Ok(())
    }

    async fn take_hashers(&mut self) -> Result<Vec<(ChecksumAlgorithm, ChecksumHasher)>, TusError> {
        match (self.idle.take(), self.running.take()) {
            (Some(hashers), _) => Ok(hashers),
            // The job's sender is dropped only if it panicked.
            (None, Some(running)) => running.await.map_err(|_| TusError::Internal("checksum computation failed")),
            (None, None) => Err(TusError::Internal("checksum computation failed")),
        }
    }

    /// Every digest, once all chunks are hashed.
    async fn finish(mut self) -> Result<Vec<(ChecksumAlgorithm, Vec<u8>)>, TusError> {
        if !self.batch.is_empty() {
            self.hand_over().await?;
        }
        let hashers = self.take_hashers().await?;
        Ok(hashers.into_iter().map(|(a, h)| (a, h.finalize())).collect())
    }
}
