//! Command-line flags; every flag can also be set by a `TUS_*` environment variable.
//!
//! [`Cli`] is the binary's clap type: one flattened group per concern, each converting into
//! its plain [`options`](crate::options) struct ([`Cli::options`]), which is what the library
//! runs with. The groups only arrange the flags: every flag, variable and default is spelled
//! as it always was, and an argument ID (the field name) is unique across groups, so
//! `requires` and `conflicts_with` reach from one group into another.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use tus_core::quota::QuotaLimits;
use tus_core::{CorsConfig, LocationStyle};

use crate::ServerError;
use crate::options::{
    AuthOptions, CheckOptions, ClamdOptions, ClusterOptions, DirectOptions, FsOptions, HookOptions, HookTransport,
    ListenOptions, MediaOptions, PromoteOptions, ProtocolOptions, S3Options, ServerOptions, SigningOptions, TlsOptions,
};

/// A tus 1.0 resumable-upload server.
#[derive(Debug, Clone, Parser)]
#[command(name = "tus-server", version, about)]
pub struct Cli {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub listen: ListenArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub fs: FsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub s3: S3Args,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub hooks: HookArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub checks: CheckArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub signing: SigningArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cors: CorsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,

    /// Log format.
    #[arg(long, env = "TUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do instead of serving (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The options the flags describe. Fails only on an unknown hook event name.
    pub fn options(&self) -> Result<ServerOptions, ServerError> {
        Ok(ServerOptions {
            listen: self.listen.options(),
            protocol: self.protocol.options(),
            fs: self.fs.options(),
            s3: self.s3.options(),
            hooks: self.hooks.options()?,
            checks: self.checks.options(),
            signing: self.signing.options(),
            auth: self.auth.options(),
            cors: self.cors.options(),
            cluster: self.cluster.options(),
            tls: self.tls.options(),
        })
    }
}

/// Where and how connections are accepted.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Listening")]
pub struct ListenArgs {
    /// Address to listen on.
    #[arg(long, env = "TUS_HOST", default_value = "127.0.0.1", global = true)]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one; the URL printed at start says which).
    #[arg(long, env = "TUS_PORT", default_value_t = 8080, global = true)]
    pub port: u16,

    /// Most client connections open at once; further ones wait in the accept queue.
    #[arg(long, env = "TUS_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    #[arg(long, env = "TUS_MAX_HEADER_SIZE", default_value_t = 64 * 1024)]
    pub max_header_size: usize,

    /// Time allowed for a client to send the request line and headers; also how long a
    /// connection (HTTP/1.1 keep-alive or HTTP/2) may stay open with no request in flight.
    #[arg(long, env = "TUS_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Time allowed for requests still running at shutdown to save and answer.
    #[arg(long, env = "TUS_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

/// The tus protocol: endpoint, limits, extensions.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Protocol")]
pub struct ProtocolArgs {
    /// Path the upload endpoint is served at.
    #[arg(long, env = "TUS_BASE_PATH", default_value = "/files/", global = true)]
    pub base_path: String,

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

    /// A request body that sends nothing for this long is cut (its bytes are kept); likewise a
    /// connection whose client takes nothing of its responses for this long is closed.
    #[arg(long, env = "TUS_BODY_READ_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// How long a request waits for another request on the same upload to let go.
    #[arg(long, env = "TUS_LOCK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,

    /// Uploads up to this many bytes with a declared digest (`Repr-Digest`, `checksum`
    /// metadata) are verified before the completing request is answered (a mismatch is its
    /// 460); larger ones in the background, the verdict on HEAD.
    #[arg(long, env = "TUS_DIGEST_SYNC_MAX", default_value_t = tus_core::handler::SYNC_VERIFY_MAX)]
    pub digest_sync_max: u64,

    /// Write `Location` as a path (`/files/<id>`) instead of an absolute URL.
    #[arg(long, env = "TUS_RELATIVE_LOCATION")]
    pub relative_location: bool,

    /// Trust `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto` for `Location` URLs. Only
    /// behind a proxy that sets (and strips client-sent) forwarding headers.
    #[arg(long, env = "TUS_BEHIND_PROXY")]
    pub behind_proxy: bool,
}

/// The filesystem store.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Filesystem store")]
pub struct FsArgs {
    /// Directory uploads are stored in (created if missing).
    #[arg(long, env = "TUS_UPLOAD_DIR", default_value = "./data")]
    pub upload_dir: PathBuf,

    /// Acknowledge PATCHes without syncing the data to disk first: faster, but a power loss
    /// or kernel crash may lose acknowledged bytes (a process crash does not).
    #[arg(long, env = "TUS_NO_SYNC")]
    pub no_sync: bool,
}

/// The S3 store (the `s3` cargo feature).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "S3 store")]
pub struct S3Args {
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
    #[arg(long, env = "TUS_S3_PART_SIZE", default_value_t = S3Options::DEFAULT_PART_SIZE)]
    pub s3_part_size: u64,

    /// Parts uploading to S3 concurrently per upload (memory per upload is at most
    /// part size × (this + 1)).
    #[arg(long, env = "TUS_S3_MAX_PARTS_IN_FLIGHT", default_value_t = S3Options::DEFAULT_MAX_PARTS_IN_FLIGHT)]
    pub s3_max_parts_in_flight: usize,

    /// Memory for S3 part buffers across all uploads, in bytes; uploads beyond it wait for
    /// room (their clients slowed by TCP flow control) instead of the server growing.
    #[arg(long, env = "TUS_S3_PART_MEMORY", default_value_t = S3Options::DEFAULT_PART_MEMORY)]
    pub s3_part_memory: u64,

    /// Move clean uploads out of the object prefix (the temporary area) to this prefix, and
    /// serve them only from there. Needs a check (--allowed-types, --clamd or --auth-*).
    #[arg(long, env = "TUS_S3_PROMOTE_PREFIX", requires = "s3_bucket")]
    pub s3_promote_prefix: Option<String>,

    /// Promote clean uploads into this bucket (under --s3-promote-prefix, default none).
    #[arg(long, env = "TUS_S3_PROMOTE_BUCKET", requires = "s3_bucket")]
    pub s3_promote_bucket: Option<String>,

    /// Serve the direct-to-S3 signing routes Uppy's @uppy/aws-s3 plugin calls (Companion's
    /// API): the bytes go from the client to S3, the server signs, verifies and checks.
    #[arg(long, env = "TUS_DIRECT_S3", requires = "s3_bucket")]
    pub direct_s3: bool,

    /// Where the direct-to-S3 routes are mounted (the plugin's `companionEndpoint` + `/s3`).
    #[arg(long, env = "TUS_DIRECT_S3_PATH", default_value = "/s3", requires = "direct_s3")]
    pub direct_s3_path: String,

    /// Lifetime of the presigned URLs and POST policies the direct-to-S3 routes hand out.
    #[arg(long, env = "TUS_DIRECT_S3_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub direct_s3_ttl: Duration,

    /// Bearer token of `POST <direct-s3-path>/events` (S3 event notifications, AWS or MinIO
    /// JSON); without it the route is off and single-request uploads are found by polling.
    #[arg(long, env = "TUS_DIRECT_S3_EVENTS_TOKEN", requires = "direct_s3")]
    pub direct_s3_events_token: Option<String>,

    /// How often the objects of signed single-request uploads are looked for (HeadObject),
    /// until their POST policies expire.
    #[arg(long, env = "TUS_DIRECT_S3_SWEEP_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub direct_s3_sweep_interval: Duration,
}

/// Hook events.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Hooks")]
pub struct HookArgs {
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
}

/// Checks of finished uploads.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Post-upload checks")]
pub struct CheckArgs {
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

    /// After the checks, make thumbnails of clean images (JPEG, PNG, WebP, GIF) with these
    /// longest sides in pixels (comma-separated, e.g. `256,1024`; aspect kept, EXIF orientation
    /// applied, never upscaled), served at `<upload URL>/thumbnails/<size>`.
    #[arg(long, env = "TUS_THUMBNAILS", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=i64::from(tus_core::derivative::MAX_THUMBNAIL_SIZE)))]
    pub thumbnails: Vec<u32>,

    /// The thumbnails' format: `jpeg` (quality 85, transparency over white) or `webp`
    /// (lossless, keeps transparency).
    #[arg(long, env = "TUS_THUMBNAIL_FORMAT", default_value = "jpeg")]
    pub thumbnail_format: crate::media::ThumbnailFormat,

    /// After the checks, store a copy of each clean image without EXIF/XMP/IPTC/comments (pixels
    /// not re-encoded; colour profile and orientation kept), served at `<upload URL>/stripped`.
    #[arg(long, env = "TUS_STRIP_METADATA")]
    pub strip_metadata: bool,

    /// Images the media step processes at the same time.
    #[arg(long, env = "TUS_MEDIA_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub media_workers: u16,

    /// Images with more pixels than this (as their header says) get no derivatives; they are
    /// never decoded.
    #[arg(long, env = "TUS_MEDIA_MAX_PIXELS", default_value_t = 40_000_000)]
    pub media_max_pixels: u64,

    /// Image files larger than this get no derivatives (the media step reads a whole image into
    /// memory).
    #[arg(long, env = "TUS_MEDIA_MAX_BYTES", default_value_t = 64 << 20)]
    pub media_max_bytes: u64,

    /// Time allowed for the media step of one image.
    #[arg(long, env = "TUS_MEDIA_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub media_timeout: Duration,
}

/// Keys of signed download URLs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Signed downloads")]
pub struct SigningArgs {
    /// Require signed URLs for downloads, with the keys in this file (one per line: the first
    /// signs, all verify; rotate by adding the new key on top).
    #[arg(long, env = "TUS_SIGNING_KEY_FILE", global = true)]
    pub signing_key_file: Option<PathBuf>,

    /// The signing key itself (prefer the environment variable over the flag: argv is visible
    /// to other users).
    #[arg(long, env = "TUS_SIGNING_KEY", hide_env_values = true, conflicts_with = "signing_key_file", global = true)]
    pub signing_key: Option<String>,
}

/// JWT bearer authentication and per-owner quotas.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Authentication and quotas")]
pub struct AuthArgs {
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
    /// Sent more than once, it is refused; a `__Host-` name keeps other hosts from planting one.
    #[arg(long, env = "TUS_AUTH_JWT_COOKIE", requires = "auth_jwt_key_file")]
    pub auth_jwt_cookie: Option<String>,

    /// Most bytes one owner (a token's `sub`) may hold in unfinished uploads, by declared
    /// length; needs `--auth-jwt-key-file`. Kept in Redis with `--redis-url`.
    #[arg(long, env = "TUS_QUOTA_BYTES", requires = "auth_jwt_key_file")]
    pub quota_bytes: Option<u64>,

    /// Most unfinished uploads one owner may hold; needs `--auth-jwt-key-file`.
    #[arg(long, env = "TUS_QUOTA_UPLOADS", requires = "auth_jwt_key_file")]
    pub quota_uploads: Option<u64>,
}

/// The CORS policy.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "CORS")]
pub struct CorsArgs {
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
}

/// Locks (and quota counts) shared with other instances (the `redis` cargo feature).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Several instances")]
pub struct ClusterArgs {
    /// Share upload locks with other instances through this Redis (`redis://host:port/db`);
    /// needed when several instances serve the same store. Default: in-process locks.
    #[arg(long, env = "TUS_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Lease of a Redis upload lock: how long a crashed instance can keep an upload locked.
    /// Renewed every third of it while the holder works.
    #[arg(long, env = "TUS_REDIS_LOCK_LEASE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub redis_lock_lease: Duration,
}

/// HTTPS.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Serve HTTPS (HTTP/1.1 and HTTP/2) with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "TUS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TUS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ListenArgs {
    /// These flags as options.
    pub fn options(&self) -> ListenOptions {
        ListenOptions {
            host: self.host,
            port: self.port,
            max_connections: self.max_connections,
            max_header_size: self.max_header_size,
            header_read_timeout: self.header_read_timeout,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

impl ProtocolArgs {
    /// These flags as options.
    pub fn options(&self) -> ProtocolOptions {
        ProtocolOptions {
            base_path: self.base_path.clone(),
            max_size: self.max_size,
            expiration: self.expiration,
            download: !self.disable_download,
            termination: !self.disable_termination,
            body_read_timeout: self.body_read_timeout,
            lock_timeout: self.lock_timeout,
            digest_sync_max: self.digest_sync_max,
            location: if self.relative_location { LocationStyle::Relative } else { LocationStyle::Absolute },
            trust_forwarded_headers: self.behind_proxy,
        }
    }
}

impl FsArgs {
    /// These flags as options.
    pub fn options(&self) -> FsOptions {
        FsOptions { upload_dir: self.upload_dir.clone(), sync: !self.no_sync }
    }
}

impl S3Args {
    /// These flags as options: `None` without `--s3-bucket`.
    pub fn options(&self) -> Option<S3Options> {
        let bucket = self.s3_bucket.as_ref()?;
        Some(S3Options {
            bucket: bucket.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            object_prefix: self.s3_object_prefix.clone(),
            force_path_style: self.s3_force_path_style,
            part_size: self.s3_part_size,
            max_parts_in_flight: self.s3_max_parts_in_flight,
            part_memory: self.s3_part_memory,
            promote: (self.s3_promote_prefix.is_some() || self.s3_promote_bucket.is_some()).then(|| PromoteOptions {
                bucket: self.s3_promote_bucket.clone(),
                prefix: self.s3_promote_prefix.clone().unwrap_or_default(),
            }),
            direct: self.direct_s3.then(|| DirectOptions {
                path: self.direct_s3_path.clone(),
                url_ttl: self.direct_s3_ttl,
                events_token: self.direct_s3_events_token.clone(),
                sweep_interval: self.direct_s3_sweep_interval,
            }),
        })
    }
}

impl HookArgs {
    /// These flags as options; fails on an unknown event name.
    pub fn options(&self) -> Result<HookOptions, ServerError> {
        let transport = match (&self.hooks_http, &self.hooks_dir) {
            (Some(url), _) => Some(HookTransport::Http(url.clone())),
            (None, Some(dir)) => Some(HookTransport::Exec(dir.clone())),
            (None, None) => None,
        };
        Ok(HookOptions {
            transport,
            timeout: self.hooks_timeout,
            http_retries: self.hooks_http_retries,
            enabled_events: crate::hooks::parse_events(&self.hooks_enabled_events).map_err(ServerError::Config)?,
        })
    }
}

impl CheckArgs {
    /// These flags as options.
    pub fn options(&self) -> CheckOptions {
        CheckOptions {
            allowed_types: self.allowed_types.clone(),
            clamd: self.clamd_address.as_ref().map(|address| ClamdOptions {
                address: address.clone(),
                max_stream: self.clamd_max_stream,
                timeout: self.clamd_timeout,
            }),
            media: (!self.thumbnails.is_empty() || self.strip_metadata).then(|| MediaOptions {
                thumbnails: self.thumbnails.clone(),
                format: self.thumbnail_format,
                strip_metadata: self.strip_metadata,
                workers: usize::from(self.media_workers),
                max_pixels: self.media_max_pixels,
                max_bytes: self.media_max_bytes,
                timeout: self.media_timeout,
            }),
        }
    }
}

impl SigningArgs {
    /// These flags as options: `None` without a key.
    pub fn options(&self) -> Option<SigningOptions> {
        match (&self.signing_key_file, &self.signing_key) {
            (Some(path), _) => Some(SigningOptions::KeyFile(path.clone())),
            (None, Some(key)) => Some(SigningOptions::Key(key.clone())),
            (None, None) => None,
        }
    }
}

impl AuthArgs {
    /// These flags as options: `None` without `--auth-jwt-key-file` (which the others require).
    pub fn options(&self) -> Option<AuthOptions> {
        let key_file = self.auth_jwt_key_file.as_ref()?;
        Some(AuthOptions {
            jwt_key_file: key_file.clone(),
            issuers: self.auth_jwt_issuer.iter().filter(|i| !i.is_empty()).cloned().collect(),
            audiences: self.auth_jwt_audience.iter().filter(|a| !a.is_empty()).cloned().collect(),
            leeway: self.auth_jwt_leeway,
            cookie: self.auth_jwt_cookie.clone(),
            quota: QuotaLimits::new(self.quota_bytes, self.quota_uploads),
        })
    }
}

impl CorsArgs {
    /// These flags as the CORS policy: `None` with `--cors-disable`.
    pub fn options(&self) -> Option<CorsConfig> {
        if self.cors_disable {
            return None;
        }
        let mut cors = if self.cors_allow_origin.is_empty() {
            CorsConfig::default()
        } else {
            CorsConfig::allow_origins(self.cors_allow_origin.clone()).with_credentials(self.cors_allow_credentials)
        };
        cors.max_age = self.cors_max_age;
        Some(cors)
    }
}

impl ClusterArgs {
    /// These flags as options: `None` without `--redis-url`.
    pub fn options(&self) -> Option<ClusterOptions> {
        let url = self.redis_url.as_ref()?;
        Some(ClusterOptions { redis_url: url.clone(), lock_lease: self.redis_lock_lease })
    }
}

impl TlsArgs {
    /// These flags as options: `None` without `--tls-cert` and `--tls-key` (each requires the
    /// other).
    pub fn options(&self) -> Option<TlsOptions> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsOptions { cert: cert.clone(), key: key.clone() }),
            _ => None,
        }
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// The binary with no flags runs with `ServerOptions::default()`.
    #[test]
    fn no_flags_are_the_default_options() {
        let cli = Cli::try_parse_from(["tus-server"]).unwrap();
        assert_eq!(cli.options().unwrap(), ServerOptions::default());
        assert_eq!(cli.log_format, LogFormat::Text);
    }

    /// Requirements and conflicts still reach across groups.
    #[test]
    fn requirements_across_groups() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["tus-server"], args].concat());
        assert!(parse(&["--quota-bytes", "1"]).is_err(), "quota needs the JWT key file");
        assert!(parse(&["--quota-uploads", "1", "--auth-jwt-key-file", "k"]).is_ok());
        assert!(parse(&["--cors-allow-credentials"]).is_err());
        assert!(parse(&["--cors-disable", "--cors-allow-origin", "https://a.example"]).is_err());
        assert!(parse(&["--hooks-http", "http://h/", "--hooks-dir", "d"]).is_err());
        assert!(parse(&["--signing-key", "k", "--signing-key-file", "f"]).is_err());
        assert!(parse(&["--tls-cert", "c"]).is_err());
        // Global flags, before or after the subcommand.
        for args in [
            &["sign-url", "x", "--signing-key-file", "k", "--port", "1"][..],
            &["--signing-key-file", "k", "--port", "1", "sign-url", "x"],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.listen.port, 1);
            assert_eq!(cli.signing.options(), Some(SigningOptions::KeyFile("k".into())));
        }
    }

    #[test]
    fn groups_convert() {
        let cli = Cli::try_parse_from([
            "tus-server",
            "--s3-bucket",
            "b",
            "--s3-part-size",
            "6000000",
            "--no-sync",
            "--disable-download",
            "--relative-location",
            "--hooks-dir",
            "/h",
            "--hooks-enabled-events",
            "post-finish",
            "--clamd-address",
            "tcp://127.0.0.1:3310",
            "--auth-jwt-key-file",
            "k",
            "--auth-jwt-issuer",
            "i",
            "--quota-uploads",
            "2",
            "--cors-disable",
            "--redis-url",
            "redis://r",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ])
        .unwrap();
        let o = cli.options().unwrap();
        let s3 = o.s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.part_size), ("b", 6_000_000));
        assert_eq!(s3.max_parts_in_flight, S3Options::DEFAULT_MAX_PARTS_IN_FLIGHT);
        assert!(!o.fs.sync && !o.protocol.download && o.protocol.termination);
        assert_eq!(o.protocol.location, LocationStyle::Relative);
        assert_eq!(o.hooks.transport, Some(HookTransport::Exec("/h".into())));
        assert_eq!(o.hooks.enabled_events.len(), 1);
        assert!(o.checks.clamd.is_some());
        let auth = o.auth.unwrap();
        assert_eq!((auth.issuers.as_slice(), auth.quota), (&["i".to_owned()][..], QuotaLimits::new(None, Some(2))));
        assert_eq!(o.cors, None);
        assert_eq!(o.cluster.unwrap().lock_lease, Duration::from_secs(10));
        assert!(o.tls.is_some());
        let bad = Cli::try_parse_from(["tus-server", "--hooks-enabled-events", "pre-create,nope"]).unwrap();
        assert!(matches!(bad.options(), Err(ServerError::Config(_))));
    }
}
