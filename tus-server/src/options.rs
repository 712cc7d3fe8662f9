//! What the server runs with, as plain Rust values: [`ServerOptions`] and one struct per group
//! of flags.
//!
//! The binary's flags ([`Cli`](crate::Cli)) convert into these with
//! [`Cli::options`](crate::Cli::options); a service embedding `tus-server` builds them directly,
//! without clap. [`ServerOptions::default()`] is what the binary runs with when given no flags.
//! A group that is either on or off (S3, signing, authentication, CORS, the cluster, TLS) is an
//! `Option`, holding what that group needs once it is on; the names follow the `tus-core`
//! builder where it has one (`download` for `--disable-download`, `sync` for `--no-sync`).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use tus_core::hooks::HookType;
use tus_core::quota::QuotaLimits;
use tus_core::{CorsConfig, LocationStyle};

use crate::scan::ClamdAddress;

/// Everything [`build_app`](crate::build_app) and [`serve`](crate::serve) need.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// Connections: address, limits and timeouts.
    pub listen: ListenOptions,
    /// The tus protocol: endpoint, limits, extensions.
    pub protocol: ProtocolOptions,
    /// The filesystem store (used unless `s3` is set).
    pub fs: FsOptions,
    /// The S3 store, instead of the filesystem (needs the `s3` cargo feature).
    pub s3: Option<S3Options>,
    /// Hook events.
    pub hooks: HookOptions,
    /// Checks of finished uploads.
    pub checks: CheckOptions,
    /// Keys of signed download URLs; downloads need a signed URL once set.
    pub signing: Option<SigningOptions>,
    /// JWT bearer authentication and per-owner quotas.
    pub auth: Option<AuthOptions>,
    /// The CORS policy; `None` sends no CORS headers at all.
    pub cors: Option<CorsConfig>,
    /// Locks (and quota counts) shared with other instances through Redis (needs the `redis`
    /// cargo feature); `None`: in this process.
    pub cluster: Option<ClusterOptions>,
    /// HTTPS; `None`: plain HTTP.
    pub tls: Option<TlsOptions>,
}

impl Default for ServerOptions {
    /// The filesystem store in `./data`, on 127.0.0.1:8080, CORS for any origin, everything
    /// else off: what the binary runs with when given no flags.
    fn default() -> Self {
        ServerOptions {
            listen: ListenOptions::default(),
            protocol: ProtocolOptions::default(),
            fs: FsOptions::default(),
            s3: None,
            hooks: HookOptions::default(),
            checks: CheckOptions::default(),
            signing: None,
            auth: None,
            cors: Some(CorsConfig::default()),
            cluster: None,
            tls: None,
        }
    }
}

/// Where and how connections are accepted (`--host`, `--port`, `--max-*`, `--*-timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// Address to listen on (the binary binds it; [`serve`](crate::serve) takes a listener).
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Most client connections open at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    pub max_header_size: usize,
    /// Time for a client to send its request head; also how long a connection may stay open
    /// with no request in flight.
    pub header_read_timeout: Duration,
    /// Time allowed for requests still running at shutdown to save and answer.
    pub shutdown_timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            max_connections: 4096,
            max_header_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// The tus protocol (`--base-path`, `--max-size`, `--expiration`, `--disable-*`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolOptions {
    /// Path the upload endpoint is served at.
    pub base_path: String,
    /// Largest accepted upload, in bytes; `None`: no limit.
    pub max_size: Option<u64>,
    /// Unfinished uploads idle for longer than this expire; `None`: never.
    pub expiration: Option<Duration>,
    /// Serve GET downloads of finished uploads.
    pub download: bool,
    /// Allow DELETE (the termination extension).
    pub termination: bool,
    /// A request body that sends nothing for this long is cut (its bytes are kept); likewise a
    /// connection whose client takes nothing of its responses for this long is closed.
    pub body_read_timeout: Duration,
    /// How long a request waits for another request on the same upload to let go.
    pub lock_timeout: Duration,
    /// Largest upload whose declared digest is verified before the completing response.
    pub digest_sync_max: u64,
    /// `Location` as an absolute URL or a path.
    pub location: LocationStyle,
    /// Trust `Forwarded` / `X-Forwarded-*` for `Location` URLs (only behind a proxy).
    pub trust_forwarded_headers: bool,
}

impl Default for ProtocolOptions {
    fn default() -> Self {
        ProtocolOptions {
            base_path: "/files/".into(),
            max_size: None,
            expiration: None,
            download: true,
            termination: true,
            body_read_timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(10),
            digest_sync_max: tus_core::handler::SYNC_VERIFY_MAX,
            location: LocationStyle::Absolute,
            trust_forwarded_headers: false,
        }
    }
}

/// The filesystem store (`--upload-dir`, `--no-sync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsOptions {
    /// Directory uploads are stored in (created if missing).
    pub upload_dir: PathBuf,
    /// Sync data to disk before acknowledging a PATCH.
    pub sync: bool,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions { upload_dir: "./data".into(), sync: true }
    }
}

/// The S3 store (`--s3-*`). Credentials come from the standard AWS environment variables and
/// profile chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket uploads are stored in.
    pub bucket: String,
    /// Endpoint URL of an S3-compatible server; `None`: AWS.
    pub endpoint: Option<String>,
    /// Region; `None`: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Prefix of every key written.
    pub object_prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`).
    pub force_path_style: bool,
    /// Preferred part size in bytes (5 MiB to 5 GiB; grown per upload when needed).
    pub part_size: u64,
    /// Parts uploading concurrently per upload.
    pub max_parts_in_flight: usize,
    /// Memory for part buffers across all uploads, in bytes.
    pub part_memory: u64,
    /// Where clean uploads are moved out of the object prefix to (needs a check configured:
    /// only checked uploads are found clean); `None`: they stay where they were uploaded.
    pub promote: Option<PromoteOptions>,
    /// The direct-to-S3 signing routes (Uppy's `@uppy/aws-s3` with Companion's API); `None`:
    /// off.
    pub direct: Option<DirectOptions>,
}

/// The production area clean uploads are promoted to (`--s3-promote-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoteOptions {
    /// Another bucket; `None`: the upload bucket.
    pub bucket: Option<String>,
    /// The key prefix there.
    pub prefix: String,
}

/// The direct-to-S3 signing routes (`--direct-s3*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectOptions {
    /// Where the routes are mounted (`/s3`, as Companion's).
    pub path: String,
    /// Lifetime of presigned URLs and POST policies.
    pub url_ttl: Duration,
    /// Bearer token of the S3 event notification route; `None`: the route is off.
    pub events_token: Option<String>,
    /// How often issued single-request uploads are looked for.
    pub sweep_interval: Duration,
}

impl Default for DirectOptions {
    fn default() -> Self {
        DirectOptions {
            path: "/s3".into(),
            url_ttl: Duration::from_secs(300),
            events_token: None,
            sweep_interval: Duration::from_secs(2),
        }
    }
}

impl S3Options {
    /// `tus-store-s3`'s default part size (8 MiB).
    pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
    /// `tus-store-s3`'s default parts in flight per upload.
    pub const DEFAULT_MAX_PARTS_IN_FLIGHT: usize = 4;
    /// `tus-store-s3`'s default part memory (256 MiB).
    pub const DEFAULT_PART_MEMORY: u64 = 256 * 1024 * 1024;

    /// Bucket `bucket` on AWS, with the defaults.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Options {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            object_prefix: String::new(),
            force_path_style: false,
            part_size: Self::DEFAULT_PART_SIZE,
            max_parts_in_flight: Self::DEFAULT_MAX_PARTS_IN_FLIGHT,
            part_memory: Self::DEFAULT_PART_MEMORY,
            promote: None,
            direct: None,
        }
    }
}

// The defaults are spelled here so that they exist without the `s3` feature; with it, they
// must be the store's own.
#[cfg(feature = "s3")]
const _: () = {
    assert!(S3Options::DEFAULT_PART_SIZE == tus_store_s3::DEFAULT_PART_SIZE);
    assert!(S3Options::DEFAULT_MAX_PARTS_IN_FLIGHT == tus_store_s3::DEFAULT_MAX_PARTS_IN_FLIGHT);
    assert!(S3Options::DEFAULT_PART_MEMORY == tus_store_s3::DEFAULT_PART_MEMORY);
};

/// Hook events (`--hooks-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOptions {
    /// Where events go; `None`: nowhere (metrics still count them).
    pub transport: Option<HookTransport>,
    /// Time allowed for one hook call (HTTP attempt or executable run).
    pub timeout: Duration,
    /// Retries of an HTTP hook call that failed with a network error or a 5xx answer.
    pub http_retries: u32,
    /// The events sent.
    pub enabled_events: BTreeSet<HookType>,
}

impl Default for HookOptions {
    fn default() -> Self {
        HookOptions {
            transport: None,
            timeout: Duration::from_secs(10),
            http_retries: 3,
            enabled_events: HookType::ALL.into_iter().collect(),
        }
    }
}

/// Where hook events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookTransport {
    /// POSTed as JSON (tusd's format) to this URL (`--hooks-http`).
    Http(http::Uri),
    /// `<dir>/<hook-name>` run per event, JSON on stdin and stdout (`--hooks-dir`).
    Exec(PathBuf),
}

/// Checks of finished uploads (`--allowed-types`, `--clamd-*`) and the media step after them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckOptions {
    /// MIME patterns a finished upload's sniffed type must match; empty: any.
    pub allowed_types: Vec<String>,
    /// Virus scanning with clamd; `None`: none.
    pub clamd: Option<ClamdOptions>,
    /// Thumbnails and metadata stripping of clean images; `None`: none.
    pub media: Option<MediaOptions>,
}

/// The media step (`--thumbnails`, `--strip-metadata`, `--media-*`; see [`crate::media`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOptions {
    /// Longest sides of the thumbnails to make, in pixels; empty: none.
    pub thumbnails: Vec<u32>,
    /// The thumbnails' format.
    pub format: crate::media::ThumbnailFormat,
    /// Also store a copy of each image without its metadata.
    pub strip_metadata: bool,
    /// Images processed at the same time.
    pub workers: usize,
    /// Images with more pixels (as their header says) are skipped without being decoded.
    pub max_pixels: u64,
    /// Larger files are skipped without being read.
    pub max_bytes: u64,
    /// Time allowed for one image.
    pub timeout: Duration,
}

impl Default for MediaOptions {
    /// No thumbnails, no stripping (set at least one), JPEG thumbnails, 2 workers, 40
    /// megapixels, 64 MiB, 30 s.
    fn default() -> Self {
        MediaOptions {
            thumbnails: Vec::new(),
            format: crate::media::ThumbnailFormat::Jpeg,
            strip_metadata: false,
            workers: 2,
            max_pixels: 40_000_000,
            max_bytes: 64 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Virus scanning with clamd (`--clamd-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClamdOptions {
    /// Where clamd listens.
    pub address: ClamdAddress,
    /// Largest upload clamd is asked to scan (clamd's StreamMaxLength).
    pub max_stream: u64,
    /// Time allowed for one scan.
    pub timeout: Duration,
}

impl ClamdOptions {
    /// clamd at `address`, with the defaults (100 MiB, 10 minutes).
    pub fn new(address: ClamdAddress) -> Self {
        ClamdOptions { address, max_stream: 100 * 1024 * 1024, timeout: Duration::from_secs(600) }
    }
}

/// The keys of signed download URLs (`--signing-key-file`, `--signing-key`).
#[derive(Clone, PartialEq, Eq)]
pub enum SigningOptions {
    /// A file with one key per line: the first signs, all verify.
    KeyFile(PathBuf),
    /// The key itself.
    Key(String),
}

impl fmt::Debug for SigningOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningOptions::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
            SigningOptions::Key(_) => f.write_str("Key(..)"),
        }
    }
}

/// JWT bearer authentication and per-owner quotas (`--auth-jwt-*`, `--quota-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOptions {
    /// The verification key(s): an HMAC secret, PEM public keys or a JWKS.
    pub jwt_key_file: PathBuf,
    /// Accepted `iss`; empty: any (and `iss` not required).
    pub issuers: Vec<String>,
    /// Accepted `aud`; empty: a token carrying `aud` is refused.
    pub audiences: Vec<String>,
    /// Clock skew allowed for `exp` and `nbf` (at most 24h).
    pub leeway: Duration,
    /// Also read the token from this cookie.
    pub cookie: Option<String>,
    /// Limits per owner (a token's `sub`) on unfinished uploads.
    pub quota: QuotaLimits,
}

impl AuthOptions {
    /// Keys from `jwt_key_file`, with the defaults (30 s leeway, no quota).
    pub fn new(jwt_key_file: impl Into<PathBuf>) -> Self {
        AuthOptions {
            jwt_key_file: jwt_key_file.into(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: crate::auth::DEFAULT_LEEWAY,
            cookie: None,
            quota: QuotaLimits::default(),
        }
    }
}

/// Several instances over one store (`--redis-url`, `--redis-lock-lease`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// The Redis holding the locks and quota counts (`redis://host:port/db`).
    pub redis_url: String,
    /// Lease of an upload lock: how long a crashed instance can keep an upload locked.
    pub lock_lease: Duration,
}

impl ClusterOptions {
    /// Redis at `redis_url`, with a 10 s lease.
    pub fn new(redis_url: impl Into<String>) -> Self {
        ClusterOptions { redis_url: redis_url.into(), lock_lease: Duration::from_secs(10) }
    }
}

/// HTTPS (`--tls-cert`, `--tls-key`): HTTP/2 and HTTP/1.1 by ALPN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The PEM certificate chain.
    pub cert: PathBuf,
    /// Its PEM private key.
    pub key: PathBuf,
}
