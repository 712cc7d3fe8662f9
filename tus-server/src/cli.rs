//! Command-line flags; every flag can also be set by a `TUS_*` environment variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A tus 1.0 resumable-upload server.
#[derive(Debug, Clone, Parser)]
#[command(name = "tus-server", version, about)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "TUS_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one; the URL printed at start says which).
    #[arg(long, env = "TUS_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Path the upload endpoint is served at.
    #[arg(long, env = "TUS_BASE_PATH", default_value = "/files/")]
    pub base_path: String,

    /// Directory uploads are stored in (created if missing).
    #[arg(long, env = "TUS_UPLOAD_DIR", default_value = "./data")]
    pub upload_dir: PathBuf,

    /// Largest accepted upload, in bytes (advertised as Tus-Max-Size). Default: no limit.
    #[arg(long, env = "TUS_MAX_SIZE")]
    pub max_size: Option<u64>,

    /// Unfinished uploads idle for longer than this expire (e.g. `24h`, `30m`). Default: never.
    #[arg(long, env = "TUS_EXPIRATION", value_parser = humantime::parse_duration)]
    pub expiration: Option<Duration>,

    /// Do not serve GET downloads of finished uploads.
    #[arg(long, env = "TUS_DISABLE_DOWNLOAD")]
    pub disable_download: bool,

    /// Do not allow DELETE (the termination extension).
    #[arg(long, env = "TUS_DISABLE_TERMINATION")]
    pub disable_termination: bool,

    /// Acknowledge PATCHes without syncing the data to disk first: faster, but a power loss
    /// or kernel crash may lose acknowledged bytes (a process crash does not).
    #[arg(long, env = "TUS_NO_SYNC")]
    pub no_sync: bool,

    /// A request body that sends nothing for this long is cut (its bytes are kept).
    #[arg(long, env = "TUS_BODY_READ_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// How long a request waits for another request on the same upload to let go.
    #[arg(long, env = "TUS_LOCK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,

    /// Time allowed for requests still running at shutdown to save and answer.
    #[arg(long, env = "TUS_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Time allowed for a client to send the request line and headers.
    #[arg(long, env = "TUS_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Write `Location` as a path (`/files/<id>`) instead of an absolute URL.
    #[arg(long, env = "TUS_RELATIVE_LOCATION")]
    pub relative_location: bool,

    /// Log format.
    #[arg(long, env = "TUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// POST hook events as JSON (tusd's format) to this URL.
    #[arg(long, env = "TUS_HOOKS_HTTP", conflicts_with = "hooks_dir")]
    pub hooks_http: Option<http::Uri>,

    /// Time allowed for one hook call (HTTP attempt or executable run).
    #[arg(long, env = "TUS_HOOKS_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub hooks_timeout: Duration,

    /// Retries of an HTTP hook call that failed with a network error or a 5xx answer.
    #[arg(long, env = "TUS_HOOKS_HTTP_RETRIES", default_value_t = 3)]
    pub hooks_http_retries: u32,

    /// Run `<dir>/<hook-name>` for each hook event (JSON on stdin, JSON answer on stdout).
    #[arg(long, env = "TUS_HOOKS_DIR")]
    pub hooks_dir: Option<PathBuf>,

    /// Hook events to send (comma-separated; default all).
    #[arg(
        long,
        env = "TUS_HOOKS_ENABLED_EVENTS",
        default_value = "pre-create,post-create,post-receive,pre-finish,post-finish,pre-terminate,post-terminate"
    )]
    pub hooks_enabled_events: String,

    /// Check finished uploads' real type against `filetype` and allow only these types
    /// (comma-separated MIME patterns, e.g. `image/*,application/pdf`). Mismatches are always
    /// rejected once any post-upload check is on.
    #[arg(long, env = "TUS_ALLOWED_TYPES", value_delimiter = ',')]
    pub allowed_types: Vec<String>,

    /// Scan finished uploads with clamd (`tcp://127.0.0.1:3310` or `unix:/path/clamd.sock`);
    /// infected uploads are quarantined.
    #[arg(long, env = "TUS_CLAMD_ADDRESS")]
    pub clamd_address: Option<crate::scan::ClamdAddress>,

    /// Largest upload clamd is asked to scan (set to clamd's StreamMaxLength); larger uploads
    /// are rejected as "too large to scan".
    #[arg(long, env = "TUS_CLAMD_MAX_STREAM", default_value_t = 100 * 1024 * 1024)]
    pub clamd_max_stream: u64,

    /// Time allowed for one clamd scan.
    #[arg(long, env = "TUS_CLAMD_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub clamd_timeout: Duration,

    /// Require signed URLs for downloads, with the keys in this file (one per line: the first
    /// signs, all verify; rotate by adding the new key on top).
    #[arg(long, env = "TUS_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// The signing key itself (prefer the environment variable over the flag: argv is visible
    /// to other users).
    #[arg(long, env = "TUS_SIGNING_KEY", hide_env_values = true, conflicts_with = "signing_key_file")]
    pub signing_key: Option<String>,

    /// What to do instead of serving (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print a signed download URL for an upload (same key flags as the server).
    SignUrl {
        /// The upload ID.
        id: String,
        /// How long the URL stays valid.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The server's public base URL (default: built from --host and --port).
        #[arg(long)]
        public_url: Option<String>,
    },
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
