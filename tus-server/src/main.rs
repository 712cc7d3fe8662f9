//! `tus-server`: parse flags, build the service, serve until SIGINT/SIGTERM.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use tus_server::cli::Command;
use tus_server::{Cli, LogFormat, ServerError, build_app, serve, url_signer};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held to the end: dropping it writes out the lines still queued.
    let _log_writer = init_logging(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tus-server failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), ServerError> {
    if let Some(Command::SignUrl { id, ttl, public_url }) = &cli.command {
        return sign_url(&cli, id, *ttl, public_url.as_deref());
    }
    let options = cli.options()?;
    let app = build_app(&options).await?;
    let listener = tokio::net::TcpListener::bind((options.listen.host, options.listen.port)).await?;
    let addr = listener.local_addr()?;
    let host = match addr {
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        std::net::SocketAddr::V4(a) => a.to_string(),
    };
    // The one line scripts and tests read to find the server.
    let mut out = std::io::stdout();
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    writeln!(out, "tus-server listening on {scheme}://{host}{}", app.tus.config().base_path)?;
    out.flush()?;
    tracing::info!(upload_dir = %options.fs.upload_dir.display(), extensions = ?app.tus.extensions(), "ready");
    serve(listener, app, &options, shutdown_signal()).await
}

/// `tus-server sign-url <id>`: prints a signed download URL. Reads only the flags it uses
/// (listen address, base path, keys), so the server's other settings cannot fail it.
fn sign_url(cli: &Cli, id: &str, ttl: std::time::Duration, public_url: Option<&str>) -> Result<(), ServerError> {
    let id = tus_core::UploadId::parse(id).map_err(|_| ServerError::Config(format!("invalid upload ID {id:?}")))?;
    let keys = cli
        .signing
        .options()
        .ok_or_else(|| ServerError::Config("no signing key: set TUS_SIGNING_KEY or --signing-key-file".into()))?;
    let signer = url_signer(&keys)?;
    let listen = cli.listen.options();
    let base = match public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        // Through `SocketAddr`, so an IPv6 host is bracketed.
        None => format!("http://{}", std::net::SocketAddr::new(listen.host, listen.port)),
    };
    let path = cli.protocol.options().base_path;
    let path = path.trim_matches('/');
    let signed = signer.sign(&id, ttl);
    let mut out = std::io::stdout();
    writeln!(out, "{base}/{path}/{id}?{}", signed.query)?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Logs to stderr through a thread of its own: request handlers only format their lines and
/// queue them, and the writer sends everything queued in one `write` (two info lines per
/// small upload were two syscalls on the request's thread; issue 18). Nothing is dropped: a
/// full queue (128 Ki lines) makes loggers wait.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TUS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only help a person at a terminal; in a file, a pipe or a log collector they
    // are noise. NO_COLOR (https://no-color.org) turns them off when set to anything non-empty.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    // Buffered: the writer thread flushes whenever it has emptied the queue.
    let stderr = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tus-log")
        .finish(stderr);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}
