//! The standalone tus server: configuration, and serving a [`TusService`] with hyper/tokio.
//!
//! The binary (`tus-server`) is thin: [`Cli`] parses flags, [`build_service`] turns them into
//! a service over the filesystem store, and [`serve`] runs it until a shutdown signal.
//!
//! ```no_run
//! use clap::Parser as _;
//!
//! # async fn demo() -> Result<(), tus_server::ServerError> {
//! let cli = tus_server::Cli::parse_from(["tus-server", "--port", "0", "--upload-dir", "/tmp/uploads"]);
//! let service = tus_server::build_service(&cli)?;
//! let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
//! tus_server::serve(listener, service, &cli, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod cli;
pub mod hooks;
pub mod scan;

use std::future::Future;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tus_core::hooks::RemoteAddr;
use tus_core::inspect::InspectChain;
use tus_core::{LocationStyle, TusService, TusServiceBuilder, UrlSigner};
use tus_store_fs::FileStore;

pub use cli::{Cli, LogFormat};

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

/// The tus service the flags describe, over the filesystem store.
pub fn build_service(cli: &Cli) -> Result<TusService, ServerError> {
    let store = FileStore::builder(&cli.upload_dir).sync(!cli.no_sync).build()?;
    let mut builder = TusService::builder(store)
        .base_path(cli.base_path.clone())
        .download(!cli.disable_download)
        .termination(!cli.disable_termination)
        .body_read_timeout(cli.body_read_timeout)
        .lock_timeout(cli.lock_timeout)
        .location(if cli.relative_location { LocationStyle::Relative } else { LocationStyle::Absolute });
    if let Some(max) = cli.max_size {
        builder = builder.max_size(max);
    }
    if let Some(expiration) = cli.expiration {
        builder = builder.expiration(expiration);
    }
    builder = with_pipeline(builder, cli)?;
    Ok(builder.build())
}

/// Adds hooks, post-upload checks and URL signing, as the flags ask.
fn with_pipeline(mut builder: TusServiceBuilder, cli: &Cli) -> Result<TusServiceBuilder, ServerError> {
    let events = hooks::parse_events(&cli.hooks_enabled_events).map_err(ServerError::Config)?;
    if let Some(url) = &cli.hooks_http {
        builder = builder.hooks(hooks::HttpHooks::new(url.clone(), cli.hooks_timeout, cli.hooks_http_retries, events));
    } else if let Some(dir) = &cli.hooks_dir {
        builder = builder.hooks(hooks::ExecHooks::new(dir.clone(), cli.hooks_timeout, events));
    }
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

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting, asks
/// in-flight uploads to save what they received, and waits (at most the shutdown timeout)
/// for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    service: TusService,
    cli: &Cli,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(cli.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let reaper = tokio::spawn(service.reaper());
    match service.resume_processing().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(uploads = n, "resumed post-upload processing interrupted by a restart"),
        Err(e) => tracing::warn!(error = %e, "could not resume post-upload processing"),
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Hooks report the client's address.
        let with_peer = tower::util::MapRequest::new(service.clone(), move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(RemoteAddr(peer));
            req
        });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(with_peer));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: saving in-flight uploads");
    drop(listener);
    reaper.abort();
    service.shutdown();
    if tokio::time::timeout(cli.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown timeout; closing them");
    }
    Ok(())
}
