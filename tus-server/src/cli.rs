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
    #[arg(long, env = "TUS_HOST", default_value = "127.0.0.1", global = true)]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one; the URL printed at start says which).
    #[arg(long, env = "TUS_PORT", default_value_t = 8080, global = true)]
    pub port: u16,

    /// Path the upload endpoint is served at.
    #[arg(long, env = "TUS_BASE_PATH", default_value = "/files/", global = true)]
    pub base_path: String,

    /// Directory uploads are stored in (created if missing).
    #[arg(long, env = "TUS_UPLOAD_DIR", default_value = "./data")]
    pub upload_dir: PathBuf,

    /// Store uploads in this S3 bucket instead of `--upload-dir` (credentials from the standard
    /// AWS environment variables / profile chain).
    #[arg(long, env = "TUS_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 endpoint URL, for S3-compatible servers (MinIO, R2, test servers). Default: AWS.
    #[arg(long, env = "TUS_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[arg(long, env = "TUS_S3_REGION")]
    pub s3_region: Option<String>,

    /// Prefix of every S3 key the server writes (e.g. `tus/`).
    #[arg(long, env = "TUS_S3_OBJECT_PREFIX", default_value = "")]
    pub s3_object_prefix: String,

    /// Path-style S3 URLs (`endpoint/bucket/key`); most S3-compatible servers need this.
    #[arg(long, env = "TUS_S3_FORCE_PATH_STYLE")]
    pub s3_force_path_style: bool,

    /// Preferred S3 part size in bytes (5 MiB to 5 GiB; grown per upload when needed).
    #[arg(long, env = "TUS_S3_PART_SIZE", default_value_t = tus_store_s3::DEFAULT_PART_SIZE)]
    pub s3_part_size: u64,

    /// Parts uploading to S3 concurrently per upload (memory per upload is at most
    /// part size × (this + 1)).
    #[arg(long, env = "TUS_S3_MAX_PARTS_IN_FLIGHT", default_value_t = tus_store_s3::DEFAULT_MAX_PARTS_IN_FLIGHT)]
    pub s3_max_parts_in_flight: usize,

    /// Memory for S3 part buffers across all uploads, in bytes; uploads beyond it wait for
    /// room (their clients slowed by TCP flow control) instead of the server growing.
    #[arg(long, env = "TUS_S3_PART_MEMORY", default_value_t = tus_store_s3::DEFAULT_PART_MEMORY)]
    pub s3_part_memory: u64,

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

    /// A request body that sends nothing for this long is cut (its bytes are kept); likewise a
    /// connection whose client takes nothing of its responses for this long is closed.
    #[arg(long, env = "TUS_BODY_READ_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// How long a request waits for another request on the same upload to let go.
    #[arg(long, env = "TUS_LOCK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,

    /// Time allowed for requests still running at shutdown to save and answer.
    #[arg(long, env = "TUS_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Time allowed for a client to send the request line and headers; also how long a
    /// connection (HTTP/1.1 keep-alive or HTTP/2) may stay open with no request in flight.
    #[arg(long, env = "TUS_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Write `Location` as a path (`/files/<id>`) instead of an absolute URL.
    #[arg(long, env = "TUS_RELATIVE_LOCATION")]
    pub relative_location: bool,

    /// Log format.
    #[arg(long, env = "TUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
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
    #[arg(long, env = "TUS_SIGNING_KEY_FILE", global = true)]
    pub signing_key_file: Option<PathBuf>,

    /// The signing key itself (prefer the environment variable over the flag: argv is visible
    /// to other users).
    #[arg(long, env = "TUS_SIGNING_KEY", hide_env_values = true, conflicts_with = "signing_key_file", global = true)]
    pub signing_key: Option<String>,

    /// Require a JWT (`Authorization: Bearer`) on every request but `OPTIONS` and signed
    /// downloads, verified with the key(s) in this file: an HMAC secret (HS256; the bytes as
    /// they are, one trailing newline ignored, at least 32 bytes), PEM public keys (RSA, EC
    /// P-256/P-384, Ed25519; several blocks for rotation) or a JWKS (keys chosen by `kid`).
    /// Uploads belong to the token's `sub`. Default: no authentication.
    #[arg(long, env = "TUS_AUTH_JWT_KEY_FILE")]
    pub auth_jwt_key_file: Option<PathBuf>,

    /// Accept only tokens whose `iss` is this issuer (repeatable, or comma-separated in the
    /// variable).
    #[arg(long, env = "TUS_AUTH_JWT_ISSUER", value_delimiter = ',', requires = "auth_jwt_key_file")]
    pub auth_jwt_issuer: Vec<String>,

    /// Accept only tokens whose `aud` names this audience (repeatable, or comma-separated in
    /// the variable). Without it, a token that carries `aud` is refused.
    #[arg(long, env = "TUS_AUTH_JWT_AUDIENCE", value_delimiter = ',', requires = "auth_jwt_key_file")]
    pub auth_jwt_audience: Vec<String>,

    /// Clock skew allowed when checking a token's `exp` and `nbf` (at most 24h).
    #[arg(long, env = "TUS_AUTH_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub auth_jwt_leeway: Duration,

    /// Also take the token from this cookie when there is no `Authorization: Bearer` header
    /// (browsers that cannot set headers; cross-origin it needs --cors-allow-credentials).
    #[arg(long, env = "TUS_AUTH_JWT_COOKIE", requires = "auth_jwt_key_file")]
    pub auth_jwt_cookie: Option<String>,

    /// Origins allowed to upload from a browser (repeatable, or comma-separated in the
    /// variable). Default: any origin, without credentials.
    #[arg(long, env = "TUS_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,

    /// Let the listed origins send credentials (cookies, HTTP auth). Needs --cors-allow-origin.
    #[arg(long, env = "TUS_CORS_ALLOW_CREDENTIALS", requires = "cors_allow_origin")]
    pub cors_allow_credentials: bool,

    /// How long browsers may cache a CORS preflight.
    #[arg(long, env = "TUS_CORS_MAX_AGE", default_value = "24h", value_parser = humantime::parse_duration)]
    pub cors_max_age: Duration,

    /// Send no CORS headers at all (e.g. when a proxy in front handles CORS).
    #[arg(long, env = "TUS_CORS_DISABLE", conflicts_with = "cors_allow_origin")]
    pub cors_disable: bool,

    /// Share upload locks with other instances through this Redis (`redis://host:port/db`);
    /// needed when several instances serve the same store. Default: in-process locks.
    #[arg(long, env = "TUS_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Most bytes one owner (a token's `sub`) may hold in unfinished uploads, by declared
    /// length; needs `--auth-jwt-key-file`. Kept in Redis with `--redis-url`.
    #[arg(long, env = "TUS_QUOTA_BYTES", requires = "auth_jwt_key_file")]
    pub quota_bytes: Option<u64>,

    /// Most unfinished uploads one owner may hold; needs `--auth-jwt-key-file`.
    #[arg(long, env = "TUS_QUOTA_UPLOADS", requires = "auth_jwt_key_file")]
    pub quota_uploads: Option<u64>,

    /// Lease of a Redis upload lock: how long a crashed instance can keep an upload locked.
    /// Renewed every third of it while the holder works.
    #[arg(long, env = "TUS_REDIS_LOCK_LEASE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub redis_lock_lease: Duration,

    /// Most client connections open at once; further ones wait in the accept queue.
    #[arg(long, env = "TUS_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    #[arg(long, env = "TUS_MAX_HEADER_SIZE", default_value_t = 64 * 1024)]
    pub max_header_size: usize,

    /// Serve HTTPS (HTTP/1.1 and HTTP/2) with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "TUS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TUS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Trust `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto` for `Location` URLs. Only
    /// behind a proxy that sets (and strips client-sent) forwarding headers.
    #[arg(long, env = "TUS_BEHIND_PROXY")]
    pub behind_proxy: bool,

    /// What to do instead of serving (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands. The flags `sign-url` uses (`--host`, `--port`, `--base-path`, the key flags and
/// `--log-format`) are global, so they may come before or after the subcommand.
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
