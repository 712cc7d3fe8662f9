//! The standalone tus server: configuration, and serving a [`TusService`] with hyper/tokio.
//!
//! The binary (`tus-server`) is thin: [`Cli`] parses flags, [`build_app`] turns them into the
//! tus service (over the filesystem or S3 store) with metrics and health endpoints, and
//! [`serve`] runs it until a shutdown signal.
//!
//! ```no_run
//! use clap::Parser as _;
//!
//! # async fn demo() -> Result<(), tus_server::ServerError> {
//! let cli = tus_server::Cli::parse_from(["tus-server", "--port", "0", "--upload-dir", "/tmp/uploads"]);
//! let app = tus_server::build_app(&cli).await?;
//! let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
//! tus_server::serve(listener, app, &cli, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod cli;
pub mod hooks;
pub mod metrics;
pub mod ops;
pub mod redis_lock;
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
use tus_core::{CorsConfig, LocationStyle, Store, TusService, TusServiceBuilder, UrlSigner};
use tus_store_fs::FileStore;
use tus_store_s3::S3Store;

pub use cli::{Cli, LogFormat};
pub use ops::{App, Readiness};

use crate::metrics::{Metrics, MetricsHooks, TimedStore};
use crate::redis_lock::RedisLocker;

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

/// The application the flags describe: the tus service over the S3 store if `--s3-bucket` is
/// set, else the filesystem store; Redis locks if `--redis-url` is set; metrics around it all.
pub async fn build_app(cli: &Cli) -> Result<App, ServerError> {
    let metrics = Metrics::new();
    let store: Arc<dyn Store> = match &cli.s3_bucket {
        Some(bucket) => Arc::new(TimedStore::new(s3_store(cli, bucket)?, metrics.clone())),
        None => {
            let fs = FileStore::builder(&cli.upload_dir).sync(!cli.no_sync).build()?;
            Arc::new(TimedStore::new(fs, metrics.clone()))
        }
    };
    let redis = match &cli.redis_url {
        Some(url) => Some(
            RedisLocker::connect(url, cli.redis_lock_lease)
                .await
                .map_err(|e| ServerError::Config(format!("redis {url}: {e}")))?,
        ),
        None => None,
    };
    let mut builder = TusService::builder(store.clone())
        .base_path(cli.base_path.clone())
        .download(!cli.disable_download)
        .termination(!cli.disable_termination)
        .body_read_timeout(cli.body_read_timeout)
        .lock_timeout(cli.lock_timeout)
        .trust_forwarded_headers(cli.behind_proxy)
        .scheme(if cli.tls_cert.is_some() { "https" } else { "http" })
        .location(if cli.relative_location { LocationStyle::Relative } else { LocationStyle::Absolute });
    if let Some(max) = cli.max_size {
        builder = builder.max_size(max);
    }
    if let Some(expiration) = cli.expiration {
        builder = builder.expiration(expiration);
    }
    if let Some(redis) = &redis {
        builder = builder.locker(redis.clone());
    }
    let quota = tus_core::quota::QuotaLimits::new(cli.quota_bytes, cli.quota_uploads);
    if quota.is_limited() {
        builder = builder.quota(quota);
        // Where the locks are: shared by every instance when Redis is configured.
        if let Some(url) = &cli.redis_url {
            let book = redis_quota::RedisQuotaBook::connect(url)
                .await
                .map_err(|e| ServerError::Config(format!("redis {url}: {e}")))?;
            builder = builder.quota_book(book);
        }
    }
    builder = builder.cors(cors(cli));
    builder = with_pipeline(builder, cli, &metrics)?;
    Ok(App { tus: builder.build(), metrics, readiness: Readiness { store, redis } })
}

/// The S3 store the `--s3-*` flags describe.
fn s3_store(cli: &Cli, bucket: &str) -> Result<S3Store, ServerError> {
    let mut builder = S3Store::builder(bucket)
        .object_prefix(cli.s3_object_prefix.clone())
        .force_path_style(cli.s3_force_path_style)
        .part_size(cli.s3_part_size)
        .max_parts_in_flight(cli.s3_max_parts_in_flight)
        .part_memory(cli.s3_part_memory);
    if let Some(endpoint) = &cli.s3_endpoint {
        builder = builder.endpoint(endpoint.clone());
    }
    if let Some(region) = &cli.s3_region {
        builder = builder.region(region.clone());
    }
    if let Some(max) = cli.max_size {
        // Deferred-length uploads then plan their parts for this size, not S3's 5 TiB.
        builder = builder.max_object_size(max.clamp(1, tus_store_s3::MAX_OBJECT_SIZE));
    }
    builder.build().map_err(|e| ServerError::Config(e.to_string()))
}

/// The CORS policy the flags describe.
fn cors(cli: &Cli) -> Option<CorsConfig> {
    if cli.cors_disable {
        return None;
    }
    let mut cors = if cli.cors_allow_origin.is_empty() {
        CorsConfig::default()
    } else {
        CorsConfig::allow_origins(cli.cors_allow_origin.clone()).with_credentials(cli.cors_allow_credentials)
    };
    cors.max_age = cli.cors_max_age;
    Some(cors)
}

/// Adds hooks, post-upload checks, URL signing and JWT authentication, as the flags ask.
fn with_pipeline(
    mut builder: TusServiceBuilder,
    cli: &Cli,
    metrics: &Arc<Metrics>,
) -> Result<TusServiceBuilder, ServerError> {
    let events = hooks::parse_events(&cli.hooks_enabled_events).map_err(ServerError::Config)?;
    let transport: Option<Arc<dyn Hooks>> = if let Some(url) = &cli.hooks_http {
        Some(Arc::new(hooks::HttpHooks::new(url.clone(), cli.hooks_timeout, cli.hooks_http_retries, events)))
    } else if let Some(dir) = &cli.hooks_dir {
        Some(Arc::new(hooks::ExecHooks::new(dir.clone(), cli.hooks_timeout, events)))
    } else {
        None
    };
    // Lifecycle metrics come from hook events, so the metrics wrapper is always installed.
    builder = builder.hooks(MetricsHooks::new(metrics.clone(), transport));
    // With authentication, a token's allowed_types is checked after every upload too.
    let checks_types = !cli.allowed_types.is_empty() || cli.auth_jwt_key_file.is_some();
    if checks_types || cli.clamd_address.is_some() {
        let mut chain = InspectChain::new().then(scan::ContentCheck::new(cli.allowed_types.clone()));
        if let Some(address) = &cli.clamd_address {
            chain = chain.then(scan::ClamdScanner::new(address.clone(), cli.clamd_max_stream, cli.clamd_timeout));
        }
        builder = builder.inspector(chain);
    }
    if let Some(signer) = url_signer(cli)? {
        builder = builder.url_signer(signer);
    }
    if let Some(jwt) = auth::from_cli(cli)? {
        builder = builder.authorizer(metrics::CountedAuthorizer::new(jwt, metrics.clone()));
    }
    Ok(builder)
}

/// The URL signer the key flags describe, if any.
pub fn url_signer(cli: &Cli) -> Result<Option<UrlSigner>, ServerError> {
    let keys: Vec<String> = match (&cli.signing_key_file, &cli.signing_key) {
        (Some(path), _) => {
            std::fs::read_to_string(path)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
        }
        (None, Some(key)) => vec![key.clone()],
        (None, None) => return Ok(None),
    };
    let weak = |e: tus_core::signing::WeakKey| ServerError::Config(e.to_string());
    let mut keys = keys.into_iter();
    let first = keys.next().ok_or_else(|| ServerError::Config("the signing key file has no key".into()))?;
    let mut signer = UrlSigner::new(first.into_bytes()).map_err(weak)?;
    for key in keys {
        signer = signer.with_previous_key(key.into_bytes()).map_err(weak)?;
    }
    Ok(Some(signer))
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
    cli: &Cli,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cli.header_read_timeout)
        .max_buf_size(cli.max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cli.max_header_size).unwrap_or(u32::MAX));
    // Every connection task holds a receiver: a send asks them all to close, and the channel
    // closes once the last one has ended.
    let (stop_connections, _) = watch::channel(());
    // tus-core's reaper, with each removal counted in the metrics.
    let reaper = {
        let metrics = app.metrics.clone();
        tokio::spawn(app.tus.reaper_with(move |n| metrics.expired(n)))
    };
    // A quota book in this process starts empty: count what the store holds. (A shared one in
    // Redis keeps its counts across restarts.)
    if cli.redis_url.is_none() && (cli.quota_bytes.is_some() || cli.quota_uploads.is_some()) {
        match app.tus.rebuild_quotas().await {
            Ok(n) => tracing::info!(uploads = n, "quota counts rebuilt from the store"),
            Err(e) => tracing::warn!(error = %e, "could not rebuild quota counts"),
        }
    }
    match app.tus.resume_processing().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(uploads = n, "resumed post-upload processing interrupted by a restart"),
        Err(e) => tracing::warn!(error = %e, "could not resume post-upload processing"),
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(cli.max_connections.max(1)));
    let limits = ConnLimits { idle: cli.header_read_timeout, send_stall: cli.body_read_timeout };
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
    if tokio::time::timeout(cli.shutdown_timeout, stop_connections.closed()).await.is_err() {
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
