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

pub mod cli;
pub mod hooks;
pub mod metrics;
pub mod ops;
pub mod redis_lock;
pub mod scan;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
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

/// Adds hooks, post-upload checks and URL signing, as the flags ask.
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
    if !cli.allowed_types.is_empty() || cli.clamd_address.is_some() {
        let mut chain = InspectChain::new().then(scan::ContentCheck::new(cli.allowed_types.clone()));
        if let Some(address) = &cli.clamd_address {
            chain = chain.then(scan::ClamdScanner::new(address.clone(), cli.clamd_max_stream, cli.clamd_timeout));
        }
        builder = builder.inspector(chain);
    }
    if let Some(signer) = url_signer(cli)? {
        builder = builder.url_signer(signer);
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
        // Also bounds how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(cli.header_read_timeout)
        .max_buf_size(cli.max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cli.max_header_size).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let reaper = tokio::spawn(reap(app.clone()));
    match app.tus.resume_processing().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(uploads = n, "resumed post-upload processing interrupted by a restart"),
        Err(e) => tracing::warn!(error = %e, "could not resume post-upload processing"),
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(cli.max_connections.max(1)));
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
        let metrics = app.metrics.clone();
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
        });
        metrics.open_connections.inc();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        watcher.watch(builder.serve_connection(TokioIo::new(tls), service).into_owned()).await
                    }
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
    if tokio::time::timeout(cli.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown timeout; closing them");
    }
    Ok(())
}

/// Removes expired uploads periodically, counting them.
async fn reap(app: App) {
    let Some(every) = app.tus.reap_interval() else { return };
    loop {
        tokio::time::sleep(every).await;
        match app.tus.reap_expired().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(removed = n, "expired uploads removed");
                app.metrics.expired(n);
            }
            Err(e) => tracing::warn!(error = %e, "expiry pass failed"),
        }
    }
}
