//! The standalone tus server: configuration, and serving a [`TusService`] with hyper/tokio.
//!
//! The binary (`tus-server`) is thin: [`Cli`] parses flags into [`ServerOptions`] (plain
//! structs, one per group of flags; see [`options`]), [`build_app`] turns those into the tus
//! service (over the filesystem or S3 store) with metrics and health endpoints, and [`serve`]
//! runs it until a shutdown signal. A service embedding the server builds the options itself:
//!
//! ```no_run
//! use tus_server::{ServerOptions, options::ProtocolOptions};
//!
//! # async fn demo() -> Result<(), tus_server::ServerError> {
//! let mut options = ServerOptions::default();
//! options.fs.upload_dir = "/tmp/uploads".into();
//! options.protocol = ProtocolOptions { max_size: Some(1 << 30), ..ProtocolOptions::default() };
//! let app = tus_server::build_app(&options).await?;
//! let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
//! tus_server::serve(listener, app, &options, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! - `s3` (default): the S3 store (`tus-store-s3`, and with it the AWS SDK), for
//!   [`ServerOptions::s3`] / `--s3-bucket`.
//! - `redis` (default): locks and quota counts shared through Redis (the `redis_lock` and
//!   `redis_quota` modules), for [`ServerOptions::cluster`] / `--redis-url`.
//!
//! With `default-features = false`, the hooks, checks, metrics, authentication and the server
//! itself are all there, over the filesystem store and in-process locks; options (or flags)
//! asking for S3 or Redis make [`build_app`] fail with a message naming the missing feature.

pub mod auth;
pub mod cli;
pub mod hooks;
pub mod media;
pub mod metrics;
pub mod ops;
pub mod options;
#[cfg(feature = "redis")]
pub mod redis_lock;
#[cfg(feature = "redis")]
pub mod redis_quota;
pub mod scan;
mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tus_core::hooks::Hooks;
use tus_core::inspect::InspectChain;
use tus_core::quota::QuotaLimits;
use tus_core::{Store, TusService, TusServiceBuilder, UrlSigner};
use tus_store_fs::FileStore;

pub use cli::{Cli, LogFormat};
pub use ops::{App, Readiness};
pub use options::ServerOptions;

use crate::metrics::{Metrics, MetricsHooks, TimedStore};
use crate::options::{ClusterOptions, HookTransport, S3Options, SigningOptions};

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Opening the upload directory or the listening socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A flag's value is unusable.
    #[error("{0}")]
    Config(String),
}

/// The application `options` describe: the tus service over the S3 store if `s3` is set, else
/// the filesystem store; Redis locks (and quota counts) if `cluster` is set; metrics around it
/// all.
///
/// S3 and Redis need the `s3` and `redis` cargo features (both on by default): without them,
/// options asking for one are refused here, rather than quietly served from the filesystem
/// or with in-process locks.
pub async fn build_app(options: &ServerOptions) -> Result<App, ServerError> {
    let metrics = Metrics::new();
    let protocol = &options.protocol;
    check_s3_options(options)?;
    let mut s3_handle = None;
    let store: Arc<dyn Store> = match &options.s3 {
        Some(s3) => {
            let (timed, handle) = s3_store(s3, protocol.max_size, &metrics)?;
            s3_handle = Some(handle);
            timed
        }
        None => {
            let fs = FileStore::builder(&options.fs.upload_dir).sync(options.fs.sync).build()?;
            Arc::new(TimedStore::new(fs, metrics.clone()))
        }
    };
    let mut builder = TusService::builder(store.clone())
        .base_path(protocol.base_path.clone())
        .download(protocol.download)
        .termination(protocol.termination)
        .body_read_timeout(protocol.body_read_timeout)
        .lock_timeout(protocol.lock_timeout)
        .sync_verify_max(protocol.digest_sync_max)
        .trust_forwarded_headers(protocol.trust_forwarded_headers)
        .scheme(if options.tls.is_some() { "https" } else { "http" })
        .location(protocol.location);
    if let Some(max) = protocol.max_size {
        builder = builder.max_size(max);
    }
    if let Some(expiration) = protocol.expiration {
        builder = builder.expiration(expiration);
    }
    let quota = options.auth.as_ref().map(|auth| auth.quota).filter(QuotaLimits::is_limited);
    if let Some(quota) = quota {
        builder = builder.quota(quota);
    }
    let mut backends: Vec<Arc<dyn ops::Probe>> = Vec::new();
    if let Some(cluster) = &options.cluster {
        builder = with_cluster(builder, cluster, quota.is_some(), &mut backends).await?;
    }
    builder = builder.cors(options.cors.clone());
    builder = with_pipeline(builder, options, &metrics)?;
    let tus = builder.build();
    let direct = match (s3_handle, options.s3.as_ref().and_then(|s3| s3.direct.as_ref())) {
        (Some(store), Some(direct)) => Some(direct_routes(store, tus.clone(), direct, &options.checks.allowed_types)?),
        _ => None,
    };
    Ok(App { tus, metrics, readiness: Readiness { store, backends }, direct })
}

/// Whether finished uploads are checked (an inspector is installed): with an allow-list, a
/// virus scanner, authentication (whose tokens may carry their own allow-lists), or the media
/// step (which runs on uploads found clean).
fn checks_uploads(options: &ServerOptions) -> bool {
    let checks = &options.checks;
    !checks.allowed_types.is_empty() || checks.clamd.is_some() || checks.media.is_some() || options.auth.is_some()
}

/// The S3 options that depend on others: promotion needs checks (only checked uploads are
/// found clean), and the direct routes must not lie under the tus endpoint or over it.
fn check_s3_options(options: &ServerOptions) -> Result<(), ServerError> {
    let Some(s3) = &options.s3 else { return Ok(()) };
    if s3.promote.is_some() && !checks_uploads(options) {
        return Err(ServerError::Config(
            "--s3-promote-prefix/--s3-promote-bucket promote uploads found clean, so they need a check: \
             --allowed-types, --clamd or authentication"
                .into(),
        ));
    }
    if let Some(direct) = &s3.direct {
        let base = options.protocol.base_path.trim_end_matches('/');
        let path = direct.path.as_str();
        let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        if under(base, path) || under(path, base) || ["/metrics", "/health", "/ready"].iter().any(|p| under(p, path)) {
            return Err(ServerError::Config(format!(
                "--direct-s3-path {path:?} overlaps the tus endpoint {base:?} or an operational route"
            )));
        }
    }
    Ok(())
}

/// The bare S3 store (for the direct routes) beside the timed one the service uses.
#[cfg(feature = "s3")]
type S3Handle = tus_store_s3::S3Store;
#[cfg(not(feature = "s3"))]
type S3Handle = std::convert::Infallible;

/// The direct-to-S3 signing routes over `store`, finishing uploads through `tus`.
#[cfg(feature = "s3")]
fn direct_routes(
    store: S3Handle,
    tus: TusService,
    direct: &options::DirectOptions,
    allowed_types: &[String],
) -> Result<Arc<dyn ops::SideRoutes>, ServerError> {
    use tus_store_s3::direct::{DirectConfig, DirectUploads};
    let config = DirectConfig {
        base_path: direct.path.clone(),
        url_ttl: direct.url_ttl,
        allowed_types: allowed_types.to_vec(),
        events_token: direct.events_token.clone(),
        sweep_interval: direct.sweep_interval,
    };
    let routes = DirectUploads::new(store, tus, config).map_err(|e| ServerError::Config(e.to_string()))?;
    Ok(Arc::new(DirectRoutes(routes)))
}

#[cfg(not(feature = "s3"))]
fn direct_routes(
    store: S3Handle,
    _: TusService,
    _: &options::DirectOptions,
    _: &[String],
) -> Result<Arc<dyn ops::SideRoutes>, ServerError> {
    match store {}
}

/// [`tus_store_s3::direct::DirectUploads`] as routes of the server.
#[cfg(feature = "s3")]
#[derive(Debug)]
struct DirectRoutes(tus_store_s3::direct::DirectUploads);

#[cfg(feature = "s3")]
#[async_trait::async_trait]
impl ops::SideRoutes for DirectRoutes {
    fn serves(&self, path: &str) -> bool {
        self.0.serves(path)
    }

    async fn handle(&self, req: http::Request<hyper::body::Incoming>) -> http::Response<tus_core::ResponseBody> {
        self.0.handle(req).await
    }

    fn background(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.0.sweeper())
    }
}

/// The S3 store `s3` describes (`max_size`: the server's `--max-size`), timed.
#[cfg(feature = "s3")]
fn s3_store(
    s3: &S3Options,
    max_size: Option<u64>,
    metrics: &Arc<Metrics>,
) -> Result<(Arc<dyn Store>, S3Handle), ServerError> {
    use tus_store_s3::S3Store;
    let mut builder = S3Store::builder(&s3.bucket)
        .object_prefix(s3.object_prefix.clone())
        .force_path_style(s3.force_path_style)
        .part_size(s3.part_size)
        .max_parts_in_flight(s3.max_parts_in_flight)
        .part_memory(s3.part_memory);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.endpoint(endpoint.clone());
    }
    if let Some(region) = &s3.region {
        builder = builder.region(region.clone());
    }
    if let Some(max) = max_size {
        // Deferred-length uploads then plan their parts for this size, not S3's 5 TiB.
        builder = builder.max_object_size(max.clamp(1, tus_store_s3::MAX_OBJECT_SIZE));
    }
    if let Some(promote) = &s3.promote {
        builder = builder.promote_to(promote.bucket.clone(), promote.prefix.clone());
    }
    let store = builder.build().map_err(|e| ServerError::Config(e.to_string()))?;
    Ok((Arc::new(TimedStore::new(store.clone(), metrics.clone())), store))
}

#[cfg(not(feature = "s3"))]
fn s3_store(_: &S3Options, _: Option<u64>, _: &Arc<Metrics>) -> Result<(Arc<dyn Store>, S3Handle), ServerError> {
    Err(ServerError::Config(
        "S3 storage (--s3-bucket / TUS_S3_BUCKET) needs tus-server built with the `s3` cargo feature".into(),
    ))
}

/// Redis locks, and the quota counts beside them when `quota` is on.
#[cfg(feature = "redis")]
async fn with_cluster(
    mut builder: TusServiceBuilder,
    cluster: &ClusterOptions,
    quota: bool,
    backends: &mut Vec<Arc<dyn ops::Probe>>,
) -> Result<TusServiceBuilder, ServerError> {
    let url = &cluster.redis_url;
    let unreachable = |e: &dyn std::fmt::Display| ServerError::Config(format!("redis {url}: {e}"));
    let locker = redis_lock::RedisLocker::connect(url, cluster.lock_lease).await.map_err(|e| unreachable(&e))?;
    backends.push(Arc::new(locker.clone()));
    builder = builder.locker(locker);
    if quota {
        // Where the locks are: shared by every instance.
        let book = redis_quota::RedisQuotaBook::connect(url).await.map_err(|e| unreachable(&e))?;
        builder = builder.quota_book(book);
    }
    Ok(builder)
}

#[cfg(not(feature = "redis"))]
async fn with_cluster(
    _: TusServiceBuilder,
    _: &ClusterOptions,
    _: bool,
    _: &mut Vec<Arc<dyn ops::Probe>>,
) -> Result<TusServiceBuilder, ServerError> {
    Err(ServerError::Config(
        "shared locks (--redis-url / TUS_REDIS_URL) need tus-server built with the `redis` cargo feature".into(),
    ))
}

/// Adds hooks, post-upload checks, URL signing and JWT authentication, as `options` ask.
fn with_pipeline(
    mut builder: TusServiceBuilder,
    options: &ServerOptions,
    metrics: &Arc<Metrics>,
) -> Result<TusServiceBuilder, ServerError> {
    let h = &options.hooks;
    let events = h.enabled_events.clone();
    let transport: Option<Arc<dyn Hooks>> = match &h.transport {
        Some(HookTransport::Http(url)) => {
            Some(Arc::new(hooks::HttpHooks::new(url.clone(), h.timeout, h.http_retries, events)))
        }
        Some(HookTransport::Exec(dir)) => Some(Arc::new(hooks::ExecHooks::new(dir.clone(), h.timeout, events))),
        None => None,
    };
    // Lifecycle metrics come from hook events, so the metrics wrapper is always installed.
    builder = builder.hooks(MetricsHooks::new(metrics.clone(), transport));
    let checks = &options.checks;
    // With authentication, a token's allowed_types is checked after every upload too.
    if checks_uploads(options) {
        let mut chain = InspectChain::new().then(scan::ContentCheck::new(checks.allowed_types.clone()));
        if let Some(clamd) = &checks.clamd {
            chain = chain.then(scan::ClamdScanner::new(clamd.address.clone(), clamd.max_stream, clamd.timeout));
        }
        // Last: the chain stops at the first verdict that is not clean.
        if let Some(media) = &checks.media {
            chain = chain.then(media::MediaStep::new(media.clone()).with_metrics(metrics.clone()));
        }
        builder = builder.inspector(chain);
    }
    if let Some(signing) = &options.signing {
        builder = builder.url_signer(url_signer(signing)?);
    }
    if let Some(auth) = &options.auth {
        let jwt = auth::from_options(auth)?;
        builder = builder.authorizer(metrics::CountedAuthorizer::new(jwt, metrics.clone()));
    }
    Ok(builder)
}

/// The URL signer of these keys.
pub fn url_signer(signing: &SigningOptions) -> Result<UrlSigner, ServerError> {
    let keys: Vec<String> = match signing {
        SigningOptions::KeyFile(path) => {
            std::fs::read_to_string(path)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
        }
        SigningOptions::Key(key) => vec![key.clone()],
    };
    let weak = |e: tus_core::signing::WeakKey| ServerError::Config(e.to_string());
    let mut keys = keys.into_iter();
    let first = keys.next().ok_or_else(|| ServerError::Config("the signing key file has no key".into()))?;
    let mut signer = UrlSigner::new(first.into_bytes()).map_err(weak)?;
    for key in keys {
        signer = signer.with_previous_key(key.into_bytes()).map_err(weak)?;
    }
    Ok(signer)
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks in-flight
/// uploads to save what they received, and waits (at most the shutdown timeout) for open
/// requests to finish.
///
/// A connection with no request in flight for `--header-read-timeout` is closed, whatever its
/// protocol or state (HTTP/1.1 keep-alive, HTTP/2, or not a single byte sent yet), and so is
/// one whose client takes nothing of its responses for `--body-read-timeout`, so neither idle
/// nor non-reading clients can hold the `--max-connections` slots.
pub async fn serve(
    listener: TcpListener,
    app: App,
    options: &ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let listen = &options.listen;
    let tls = match &options.tls {
        Some(t) => Some(tls::acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_read_timeout)
        .max_buf_size(listen.max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(listen.max_header_size).unwrap_or(u32::MAX));
    // Every connection task holds a receiver: a send asks them all to close, and the channel
    // closes once the last one has ended.
    let (stop_connections, _) = watch::channel(());
    // tus-core's reaper, with each removal counted in the metrics.
    let reaper = {
        let metrics = app.metrics.clone();
        tokio::spawn(app.tus.reaper_with(move |n| metrics.expired(n)))
    };
    // Make the quota book agree with the store: a book in this process starts empty (counted
    // before serving, or quotas would not hold); a shared one in Redis may miss what a crash
    // or a Redis restart lost (repaired in the background, while the others serve).
    let quota = options.auth.as_ref().is_some_and(|auth| auth.quota.is_limited());
    if quota {
        let tus = app.tus.clone();
        let reconcile = async move {
            match tus.reconcile_quotas().await {
                Ok(done) => {
                    tracing::info!(held = done.held, released = done.released, "quota book reconciled with the store")
                }
                Err(e) => tracing::warn!(error = %e, "could not reconcile the quota book with the store"),
            }
        };
        if options.cluster.is_none() {
            reconcile.await;
        } else {
            tokio::spawn(reconcile);
        }
    }
    if let Some(direct) = &app.direct {
        tokio::spawn(direct.background());
    }
    // In the background: it lists every finished upload still awaiting a verdict.
    let tus = app.tus.clone();
    tokio::spawn(async move {
        match tus.resume_processing().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "resumed post-upload processing interrupted by a restart"),
            Err(e) => tracing::warn!(error = %e, "could not resume post-upload processing"),
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(listen.max_connections.max(1)));
    let limits = ConnLimits { idle: listen.header_read_timeout, send_stall: options.protocol.body_read_timeout };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = async {
                // Past the connection limit, new connections wait in the kernel's backlog.
                let slot = slots.clone().acquire_owned().await;
                (slot, listener.accept().await)
            } => accepted,
            () = &mut shutdown => break,
        };
        let (Ok(slot), accepted) = accepted else { break };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let stop = stop_connections.subscribe();
        let tls = tls.clone();
        tokio::spawn(async move {
            let metrics = app.metrics.clone();
            metrics.open_connections.inc();
            let result = match tls {
                None => serve_connection(TokioIo::new(stream), &builder, app, peer, limits, stop).await,
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => serve_connection(TokioIo::new(tls), &builder, app, peer, limits, stop).await,
                    Ok(Err(e)) => Err(e.into()),
                    Err(_) => Err("TLS handshake timed out".into()),
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            metrics.open_connections.dec();
            drop(slot);
        });
    }
    tracing::info!("shutting down: saving in-flight uploads");
    drop(listener);
    reaper.abort();
    app.tus.shutdown();
    let _ = stop_connections.send(());
    if tokio::time::timeout(listen.shutdown_timeout, stop_connections.closed()).await.is_err() {
        tracing::warn!("connections still open after the shutdown timeout; closing them");
    }
    Ok(())
}

/// How long a connection asked to close (HTTP/2: GOAWAY, then a PING the client must answer)
/// may take to finish once nothing is in flight on it: a live client answers within a round
/// trip, one that never reads would otherwise keep the connection forever.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type ConnError = Box<dyn std::error::Error + Send + Sync>;

/// The time limits of one connection.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    /// Closed after this long without a request in flight.
    idle: Duration,
    /// Closed after this long in which every request in flight is answering and none of the
    /// answers moved (the client stopped reading).
    send_stall: Duration,
}

/// Serves one connection (HTTP/1.1 or HTTP/2, whichever the client speaks) until it ends, is
/// idle or stalled past its limits, or `stop` asks every connection to close.
///
/// Neither hyper's HTTP/2 server nor the protocol detection before it has an idle timeout
/// (HTTP/1.1's header read timeout covers only HTTP/1.1 once detected), and nothing bounds a
/// response the client never reads (a full socket on HTTP/1.1, a zero flow-control window on
/// HTTP/2). So this watchdog counts the requests in flight and whether their responses move:
/// without any request for `idle` the connection is closed gracefully; when every request in
/// flight is a response that has not moved for `send_stall` it is dropped. A request counts
/// until its response body has been sent, and while its handler runs it is bounded by the
/// service's own timeouts, so a long upload or download that moves is never cut.
async fn serve_connection<I>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    app: App,
    peer: SocketAddr,
    limits: ConnLimits,
    mut stop: watch::Receiver<()>,
) -> Result<(), ConnError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let mut guard = activity.start();
            let app = app.clone();
            async move {
                let res = app.handle(req, peer).await;
                guard.responding();
                Ok::<_, Infallible>(res.map(|body| Tracked { body, guard }))
            }
        })
    };
    let mut conn = std::pin::pin!(builder.serve_connection(io, service));
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            // An error means the server is gone: close as well.
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(limits.idle), if !closing => {
                tracing::debug!(%peer, "closing an idle connection");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.stalled_for(limits.send_stall) => {
                // Not gracefully: that would wait for the very responses that do not move.
                tracing::debug!(%peer, "closing a connection whose client stopped reading");
                return Err("the client stopped reading its responses".into());
            }
            () = tokio::time::sleep(CLOSE_GRACE), if closing => {
                if activity.counts().in_flight == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// Requests in flight on one connection.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Requests from the moment the service got them until their response body is done.
    in_flight: usize,
    /// Of those, the ones whose handler has answered (only the response body is left).
    responding: usize,
}

/// What is in flight on one connection and when its responses last moved, observable so that
/// idle and stalled periods can be timed.
#[derive(Debug)]
struct Activity {
    counts: watch::Sender<Counts>,
    epoch: Instant,
    /// For each response being sent, by request number: when it last moved (started, or
    /// produced a frame), in milliseconds since `epoch`. Per response, so that quick answers
    /// on the same HTTP/2 connection cannot keep a stalled one alive; not in `counts`, so that
    /// frames do not wake the watchdog.
    responses: Mutex<HashMap<u64, Arc<AtomicU64>>>,
    next_request: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            counts: watch::Sender::new(Counts::default()),
            epoch: Instant::now(),
            responses: Mutex::default(),
            next_request: AtomicU64::new(0),
        })
    }

    /// Counts a request until the returned guard is dropped.
    fn start(self: &Arc<Self>) -> RequestGuard {
        self.counts.send_modify(|c| c.in_flight += 1);
        let number = self.next_request.fetch_add(1, Ordering::Relaxed);
        RequestGuard { activity: self.clone(), number, moved: None }
    }

    fn counts(&self) -> Counts {
        *self.counts.borrow()
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn responses(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicU64>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.responses.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the response that moved last did, if any is being sent.
    fn last_moved(&self) -> Option<Instant> {
        let ms = self.responses().values().map(|at| at.load(Ordering::Relaxed)).max()?;
        self.epoch.checked_add(Duration::from_millis(ms))
    }

    /// Completes once no request has been in flight for `idle` at a stretch.
    async fn idle_for(&self, idle: Duration) {
        let mut counts = self.counts.subscribe();
        loop {
            if counts.borrow_and_update().in_flight > 0 {
                // Cannot fail: `self` holds the sender.
                let _ = counts.changed().await;
            } else if tokio::time::timeout(idle, counts.changed()).await.is_err() {
                return;
            }
        }
    }

    /// Completes once requests are in flight, all of them only sending their responses, and
    /// none of those has moved for `stall`.
    async fn stalled_for(&self, stall: Duration) {
        let mut counts = self.counts.subscribe();
        let deadline = || self.last_moved().and_then(|at| at.checked_add(stall));
        loop {
            let now = *counts.borrow_and_update();
            let only_sending = now.in_flight > 0 && now.responding == now.in_flight;
            // `None` also for a limit too large to be reached.
            let Some(first) = deadline().filter(|_| only_sending) else {
                // Cannot fail: `self` holds the sender.
                let _ = counts.changed().await;
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until(first.into()) => {
                    // A frame since then moved the deadline: wait again.
                    if deadline().is_some_and(|d| d <= Instant::now()) {
                        return;
                    }
                }
                _ = counts.changed() => {}
            }
        }
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
struct RequestGuard {
    activity: Arc<Activity>,
    number: u64,
    /// Set once the handler has answered: when the response last moved.
    moved: Option<Arc<AtomicU64>>,
}

impl RequestGuard {
    /// The handler has answered: from now on the request waits only for the client to take
    /// the response.
    fn responding(&mut self) {
        let moved = Arc::new(AtomicU64::new(self.activity.now()));
        self.activity.responses().insert(self.number, moved.clone());
        self.moved = Some(moved);
        self.activity.counts.send_modify(|c| c.responding += 1);
    }

    /// The response produced a frame.
    fn moved(&self) {
        if let Some(moved) = &self.moved {
            moved.store(self.activity.now(), Ordering::Relaxed);
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let responding = self.moved.is_some();
        if responding {
            self.activity.responses().remove(&self.number);
        }
        self.activity.counts.send_modify(|c| {
            c.in_flight = c.in_flight.saturating_sub(1);
            if responding {
                c.responding = c.responding.saturating_sub(1);
            }
        });
    }
}

/// A response body that keeps its request counted as in flight until hyper is done with it
/// (sent, or dropped because the client went away), and records when it last moved.
struct Tracked<B> {
    body: B,
    guard: RequestGuard,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        // hyper asks for the next frame only once the previous one found room (socket buffer,
        // HTTP/2 window), so a frame here is the client taking the response.
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.guard.moved();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{ClusterOptions, S3Options};

    fn options_in(dir: &std::path::Path) -> ServerOptions {
        let mut options = ServerOptions::default();
        options.fs.upload_dir = dir.to_owned();
        options
    }

    #[tokio::test]
    async fn default_options_build_a_filesystem_app() {
        let dir = std::env::temp_dir().join(format!("tus-server-options-{}", std::process::id()));
        let app = build_app(&options_in(&dir)).await.unwrap();
        assert_eq!(app.tus.config().base_path, "/files/");
        assert!(app.readiness.backends.is_empty());
        app.readiness.check().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Without the feature, S3 and Redis are refused, never quietly replaced by the
    /// filesystem store or in-process locks.
    #[tokio::test]
    async fn backends_without_their_features_are_refused() {
        let dir = std::env::temp_dir().join(format!("tus-server-features-{}", std::process::id()));
        let s3 = ServerOptions { s3: Some(S3Options::new("bucket")), ..options_in(&dir) };
        let redis = ServerOptions { cluster: Some(ClusterOptions::new("redis://127.0.0.1:1")), ..options_in(&dir) };
        for (options, feature, on) in [(s3, "`s3`", cfg!(feature = "s3")), (redis, "`redis`", cfg!(feature = "redis"))]
        {
            if on {
                continue;
            }
            let error = build_app(&options).await.unwrap_err();
            assert!(matches!(&error, ServerError::Config(m) if m.contains(feature)), "{error}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
