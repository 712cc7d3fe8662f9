//! The media step: thumbnails and a copy without metadata for every clean image, stored beside
//! the original (never over it).
//!
//! [`MediaStep`] is an [`Inspect`]or meant to run last in the chain (after the content check
//! and the virus scan, which stop the chain on anything but a clean verdict), so it only ever
//! sees clean uploads. For an upload whose bytes are a JPEG, PNG, WebP or GIF it makes the
//! configured thumbnails (longest side, aspect kept, EXIF orientation applied, never upscaled)
//! and, if asked, a copy without EXIF/XMP/IPTC/comments that keeps the pixels, the colour
//! profile and the orientation (see `strip`). It stores them through the store's
//! [`StoreDerivatives`](tus_core::store::StoreDerivatives) capability, all or nothing, and
//! always answers [`Verdict::Clean`]: an image it cannot handle (over the limits, truncated,
//! corrupt, an unsupported variant, too slow) keeps its verdict and gets no derivatives; why is
//! logged and counted in `tus_media_skipped_total`.
//!
//! The upload stays `processing` until its derivatives are stored, so `post-finish` and the
//! first `HEAD` that says `clean` list them; a restart re-runs the chain for uploads still
//! `processing`, this step included (derivatives are replaced, never duplicated).
//!
//! # Bounds
//! Decoding runs on the step's own `workers` threads, one image each; a worker's permit is
//! taken before an image's bytes are read and given back once its derivatives are stored.
//! Per image: the original is read into memory only up to `max_bytes`, the decoder refuses
//! headers over `max_pixels` before allocating pixels, and its allocations are capped at
//! `4 × max_pixels` bytes (RGBA). With the JPEG decoder's copy of the file, a progressive
//! JPEG's coefficients and the resize buffers, a worker holds at most about
//! `2 × max_bytes + 12 × max_pixels` bytes (≈ 600 MB at the defaults, for images at both
//! limits at once; a 12-megapixel photo takes ~70 MB). An image that takes longer than
//! `timeout` is skipped; its thread finishes on its own and keeps its permit until then, so
//! the bound holds.
//!
//! ```
//! use tus_core::{MemoryStore, TusService};
//! use tus_core::inspect::InspectChain;
//! use tus_server::media::{MediaStep, ThumbnailFormat};
//! use tus_server::options::MediaOptions;
//!
//! let media = MediaOptions { thumbnails: vec![256, 1024], format: ThumbnailFormat::Jpeg, ..MediaOptions::default() };
//! let chain = InspectChain::new().then(MediaStep::new(media));
//! let tus = TusService::builder(MemoryStore::new()).inspector(chain).build();
//! # drop(tus);
//! ```

mod image_ops;
mod strip;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tus_core::derivative::{Derivative, DerivativeName};
use tus_core::inspect::{Inspect, InspectError, Verdict};
use tus_core::{Store, UploadInfo};

// The image work itself: synchronous, usable alone (and by the fuzz target).
pub use self::image_ops::{DecodeLimits, ImageKind, MediaError, Thumbnail, ThumbnailFormat, check_decodes, thumbnails};
pub use self::strip::strip_metadata;
use crate::metrics::Metrics;
use crate::options::MediaOptions;

/// Bytes read from the start of an upload to tell whether it is an image.
const SNIFF_LEN: u64 = 64;

/// Thumbnails and a stripped copy of clean images (see the module docs).
#[derive(Debug)]
pub struct MediaStep {
    options: MediaOptions,
    /// One per worker thread: taken before an image is read, given back once its derivatives
    /// are stored.
    permits: Arc<Semaphore>,
    workers: Workers,
    metrics: Option<Arc<Metrics>>,
}

/// A job for the media threads.
type Job = Box<dyn FnOnce() + Send>;

/// The step's own threads. Not the runtime's blocking pool: its threads come and go by the
/// hundred, and each that decoded an image would keep the allocator's memory for it (glibc
/// keeps freed chunks per thread arena), so the memory the step holds would grow with the
/// pool instead of staying `workers` images' worth.
#[derive(Debug)]
struct Workers {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Workers {
    fn start(count: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..count {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("tus-media-{n}")).spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A decoder that panics on some input loses that image (its caller
                        // hears "failed"), not the thread.
                        Ok(job) => {
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                                tracing::error!("a media job panicked");
                            }
                        }
                        // The step was dropped.
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a media worker thread");
            }
        }
        Workers { jobs }
    }

    /// Runs `work` on a media thread; the answer arrives when it is done.
    fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> tokio::sync::oneshot::Receiver<T> {
        let (done, answer) = tokio::sync::oneshot::channel();
        // A closed receiver (the caller gave up waiting) only drops the result.
        let job: Job = Box::new(move || drop(done.send(work())));
        // Fails only once every thread is gone; the receiver then reports the job as lost.
        let _ = self.jobs.send(job);
        answer
    }
}

/// Why an image got no derivatives.
#[derive(Debug, thiserror::Error)]
enum Skipped {
    #[error(transparent)]
    Image(#[from] MediaError),
    #[error("the file is larger than the media step reads ({0} bytes)")]
    TooManyBytes(u64),
    #[error("processing took longer than the media step allows")]
    Timeout,
    #[error("processing failed: {0}")]
    Failed(String),
}

impl Skipped {
    fn reason(&self) -> &'static str {
        match self {
            Skipped::Image(e) => e.reason(),
            Skipped::TooManyBytes(_) => "too_many_bytes",
            Skipped::Timeout => "timeout",
            Skipped::Failed(_) => "failed",
        }
    }
}

/// What one image gave: its derivatives, encoded, and the time each step took.
struct Made {
    files: Vec<(Derivative, Bytes)>,
    seconds: Vec<(&'static str, f64)>,
}

impl MediaStep {
    /// The step with these options (at least one worker; each thumbnail size once, smallest
    /// first).
    pub fn new(mut options: MediaOptions) -> Self {
        options.thumbnails.sort_unstable();
        options.thumbnails.dedup();
        let workers = options.workers.max(1);
        MediaStep {
            permits: Arc::new(Semaphore::new(workers)),
            workers: Workers::start(workers),
            options,
            metrics: None,
        }
    }

    /// Also records its work in `metrics` (`tus_media_*`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether the step makes anything at all.
    fn makes_something(&self) -> bool {
        !self.options.thumbnails.is_empty() || self.options.strip_metadata
    }

    /// Reads the upload (at most `max_bytes`) and makes its derivatives, under a worker permit
    /// and the time limit.
    async fn make(
        &self,
        store: &dyn Store,
        info: &UploadInfo,
        kind: ImageKind,
    ) -> Result<(Made, OwnedSemaphorePermit), Skipped> {
        let length = info.length.unwrap_or(0);
        if length > self.options.max_bytes {
            return Err(Skipped::TooManyBytes(length));
        }
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| Skipped::Failed(e.to_string()))?;
        let data = read_range(store, info, 0..length).await.map_err(|e| Skipped::Failed(e.to_string()))?;
        let options = self.options.clone();
        // The permit travels with the job and comes back with its result: a job that outlives
        // its timeout keeps it until it ends, and a result keeps it until it is stored, so no
        // more than `workers` images' bytes are ever held, however slow the store.
        let job = self.workers.run(move || (make_derivatives(&data, kind, &options), permit));
        match tokio::time::timeout(self.options.timeout, job).await {
            Ok(Ok((made, permit))) => made.map(|made| (made, permit)),
            Ok(Err(_)) => Err(Skipped::Failed("the media worker stopped".into())),
            Err(_) => Err(Skipped::Timeout),
        }
    }
}

#[async_trait]
impl Inspect for MediaStep {
    async fn inspect(&self, store: &dyn Store, info: &UploadInfo) -> Result<Verdict, InspectError> {
        let Some(derived) = store.capabilities().derivatives else { return Ok(Verdict::Clean) };
        let length = info.length.unwrap_or(0);
        if !self.makes_something() || info.is_partial() || length == 0 {
            return Ok(Verdict::Clean);
        }
        let head = read_range(store, info, 0..length.min(SNIFF_LEN)).await.map_err(inspect_error)?;
        let Some(kind) = infer::get(&head).and_then(|t| ImageKind::from_mime(t.mime_type())) else {
            return Ok(Verdict::Clean);
        };
        match self.make(store, info, kind).await {
            Ok((made, _permit)) => {
                let started = Instant::now();
                for (derivative, bytes) in made.files {
                    // A store failure is retried with the whole inspection (derivatives are
                    // replaced, so a second run does not duplicate them).
                    derived.put_derivative(&info.id, derivative, bytes).await.map_err(inspect_error)?;
                }
                if let Some(metrics) = &self.metrics {
                    for (step, seconds) in made.seconds {
                        metrics.media_step(step, seconds);
                    }
                    metrics.media_step("store", started.elapsed().as_secs_f64());
                    metrics.media_processed();
                }
                tracing::debug!(upload = %info.id, "media derivatives stored");
            }
            Err(skipped) => {
                tracing::warn!(upload = %info.id, reason = skipped.reason(), error = %skipped, "media step skipped");
                if let Some(metrics) = &self.metrics {
                    metrics.media_skipped(skipped.reason());
                }
            }
        }
        Ok(Verdict::Clean)
    }
}

/// The thumbnails and the stripped copy of one image (blocking, CPU-bound): all or nothing.
fn make_derivatives(data: &[u8], kind: ImageKind, options: &MediaOptions) -> Result<Made, Skipped> {
    let mut made = Made { files: Vec::new(), seconds: Vec::new() };
    let limits = DecodeLimits { max_pixels: options.max_pixels, max_alloc: options.max_pixels.saturating_mul(4) };
    if options.thumbnails.is_empty() {
        // Without thumbnails nothing else decodes the image: a truncated or corrupt one must
        // not get a stripped copy that looks like a valid image.
        let started = Instant::now();
        check_decodes(data, kind, limits)?;
        made.seconds.push(("decode", started.elapsed().as_secs_f64()));
    } else {
        let started = Instant::now();
        for thumb in thumbnails(data, kind, &options.thumbnails, options.format, limits)? {
            let derivative = Derivative {
                name: DerivativeName::Thumbnail(thumb.size),
                content_type: options.format.mime().to_owned(),
                size: thumb.bytes.len() as u64,
            };
            made.files.push((derivative, Bytes::from(thumb.bytes)));
        }
        made.seconds.push(("thumbnails", started.elapsed().as_secs_f64()));
    }
    if options.strip_metadata {
        let started = Instant::now();
        let stripped = strip_metadata(data, kind)?;
        let derivative = Derivative {
            name: DerivativeName::Stripped,
            content_type: kind.mime().to_owned(),
            size: stripped.len() as u64,
        };
        made.files.push((derivative, Bytes::from(stripped)));
        made.seconds.push(("strip", started.elapsed().as_secs_f64()));
    }
    Ok(made)
}

fn inspect_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> InspectError {
    InspectError(e.into())
}

/// Bytes `range` of the upload, in memory (the caller bounds its length).
async fn read_range(
    store: &dyn Store,
    info: &UploadInfo,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, tus_core::StoreError> {
    let mut out = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
    let mut stream = store.read(&info.id, range).await?;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tus_core::store::NewUpload;
    use tus_core::{MemoryStore, UploadId};

    use super::image_ops::tests::{encode_jpeg, rgb_pattern};
    use super::*;

    fn options() -> MediaOptions {
        MediaOptions { thumbnails: vec![64, 128], strip_metadata: true, ..MediaOptions::default() }
    }

    /// A finished upload of `data` in a fresh memory store.
    async fn stored(data: &[u8]) -> (MemoryStore, UploadInfo) {
        let store = MemoryStore::new();
        let id = UploadId::random();
        store.create(NewUpload::new(id.clone(), Some(data.len() as u64))).await.unwrap();
        let chunks = Box::pin(futures_util::stream::iter([Ok(Bytes::copy_from_slice(data))]));
        store.append(&id, 0, chunks, tus_core::store::AppendOptions::default()).await.unwrap();
        let info = store.info(&id).await.unwrap();
        (store, info)
    }

    fn names(info: &UploadInfo) -> Vec<String> {
        info.derivatives.iter().map(|d| d.name.to_string()).collect()
    }

    #[tokio::test]
    async fn an_image_gets_its_derivatives_and_stays_clean() {
        let (store, info) = stored(&encode_jpeg(&rgb_pattern(200, 100))).await;
        let verdict = MediaStep::new(options()).inspect(&store, &info).await.unwrap();
        assert_eq!(verdict, Verdict::Clean);
        let info = store.info(&info.id).await.unwrap();
        assert_eq!(names(&info), ["thumbnails/64", "thumbnails/128", "stripped"]);
        assert_eq!(info.derivatives[0].content_type, "image/jpeg");
    }

    #[tokio::test]
    async fn what_it_cannot_handle_keeps_its_verdict_and_gets_nothing() {
        let jpeg = encode_jpeg(&rgb_pattern(200, 100));
        let strip_only = MediaOptions { thumbnails: Vec::new(), strip_metadata: true, ..MediaOptions::default() };
        let cases: [(&str, Vec<u8>, MediaOptions); 5] = [
            ("not an image", b"plain text, not an image".repeat(10), options()),
            ("truncated", jpeg[..jpeg.len() / 2].to_vec(), options()),
            ("truncated, stripping only", jpeg[..jpeg.len() / 2].to_vec(), strip_only),
            ("too slow", jpeg.clone(), MediaOptions { timeout: Duration::ZERO, ..options() }),
            ("too many bytes", jpeg.clone(), MediaOptions { max_bytes: 100, ..options() }),
        ];
        for (what, data, options) in cases {
            let (store, info) = stored(&data).await;
            let verdict = MediaStep::new(options).inspect(&store, &info).await.unwrap();
            assert_eq!(verdict, Verdict::Clean, "{what}");
            assert!(store.info(&info.id).await.unwrap().derivatives.is_empty(), "{what}");
        }
    }

    #[tokio::test]
    async fn stripping_alone_stores_a_copy_of_an_image_that_decodes() {
        let (store, info) = stored(&encode_jpeg(&rgb_pattern(50, 40))).await;
        let strip_only = MediaOptions { thumbnails: Vec::new(), strip_metadata: true, ..MediaOptions::default() };
        MediaStep::new(strip_only).inspect(&store, &info).await.unwrap();
        assert_eq!(names(&store.info(&info.id).await.unwrap()), ["stripped"]);
    }

    #[tokio::test]
    async fn one_worker_takes_images_one_at_a_time_and_all_get_done() {
        let step = Arc::new(MediaStep::new(MediaOptions { workers: 1, ..options() }));
        let mut tasks = Vec::new();
        for side in [300, 200, 100] {
            let (store, info) = stored(&encode_jpeg(&rgb_pattern(side, side))).await;
            let step = step.clone();
            tasks.push(tokio::spawn(async move {
                step.inspect(&store, &info).await.unwrap();
                names(&store.info(&info.id).await.unwrap())
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), ["thumbnails/64", "thumbnails/128", "stripped"]);
        }
        assert_eq!(step.permits.available_permits(), 1, "a permit was not given back");
    }
}
