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

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tus_core::{LocationStyle, TusService};
use tus_store_fs::FileStore;

pub use cli::{Cli, LogFormat};

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Opening the upload directory or the listening socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
    Ok(builder.build())
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
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service.clone()));
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
