//! The settings of a [`TusService`](super::TusService), with a documented default for every
//! field, and the builder that assembles a service from a store and them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{CorsConfig, Inner, TusService};
use crate::auth::Authorize;
use crate::hooks::Hooks;
use crate::inspect::Inspect;
use crate::locker::Locker;
use crate::signing::UrlSigner;
use crate::store::Store;

/// How `Location` URLs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LocationStyle {
    /// `http://host/files/<id>`, from the request's `Host` (the default; clients never have to
    /// resolve anything).
    #[default]
    Absolute,
    /// `/files/<id>`.
    Relative,
}

/// Settings of a [`TusService`]. Every field has a documented default; build one with
/// [`TusService::builder`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TusConfig {
    /// Path the service is mounted at, with leading and trailing `/`. Default `/files/`.
    pub base_path: String,
    /// Largest accepted upload in bytes (`Tus-Max-Size`). Default: no limit.
    pub max_size: Option<u64>,
    /// Unfinished uploads idle for longer than this expire. Default: never.
    pub expiration: Option<Duration>,
    /// Serve `GET` downloads of finished uploads. Default `true`.
    pub download: bool,
    /// Allow `DELETE` (the termination extension), if the store can. Default `true`.
    pub termination: bool,
    /// How `Location` is written. Default absolute.
    pub location: LocationStyle,
    /// Scheme for absolute URLs when the request does not carry one. Default `http`.
    pub scheme: String,
    /// How long a request waits for another request to release an upload. Default 10 s.
    pub lock_timeout: Duration,
    /// Longest pause allowed while reading a request body. Default 60 s.
    pub body_read_timeout: Duration,
    /// Largest accepted `Upload-Metadata` header, in bytes. Default 64 KiB.
    pub max_metadata_size: usize,
    /// Most partial uploads one final upload may list. Default 1000.
    pub max_concat_parts: usize,
    /// Lifetime of the signed download URL put into `post-finish` hook payloads. Default 1 h.
    pub hook_download_url_ttl: Duration,
    /// Longest lifetime of a presigned store URL a signed download redirects to. Default 15 min.
    pub max_presign_ttl: Duration,
    /// What one owner may hold in unfinished uploads (with an authorizer). Default: no limit.
    pub quota: crate::quota::QuotaLimits,
    /// CORS grants; `None` sends no CORS headers. Default: any origin, no credentials.
    pub cors: Option<CorsConfig>,
    /// Build `Location` URLs from `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto`
    /// (only behind a proxy that sets them). Default `false`.
    pub trust_forwarded: bool,
    /// Uploads up to this size with a declared digest (or completed by a request with
    /// `Want-Repr-Digest`) are hashed before the completing request is answered; larger ones
    /// in the background. Default [`super::SYNC_VERIFY_MAX`] (64 MiB).
    pub sync_verify_max: u64,
}

impl Default for TusConfig {
    fn default() -> Self {
        TusConfig {
            base_path: "/files/".to_owned(),
            max_size: None,
            expiration: None,
            download: true,
            termination: true,
            location: LocationStyle::Absolute,
            scheme: "http".to_owned(),
            lock_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_metadata_size: 64 * 1024,
            max_concat_parts: 1000,
            hook_download_url_ttl: Duration::from_secs(3600),
            max_presign_ttl: Duration::from_secs(15 * 60),
            quota: crate::quota::QuotaLimits::default(),
            cors: Some(CorsConfig::default()),
            trust_forwarded: false,
            sync_verify_max: super::SYNC_VERIFY_MAX,
        }
    }
}

/// Builds a [`TusService`].
#[derive(Debug)]
pub struct TusServiceBuilder {
    pub(super) store: Arc<dyn Store>,
    pub(super) locker: Arc<dyn Locker>,
    pub(super) config: TusConfig,
    pub(super) hooks: Option<Arc<dyn Hooks>>,
    pub(super) inspector: Option<Arc<dyn Inspect>>,
    pub(super) signer: Option<UrlSigner>,
    pub(super) authorizer: Option<Arc<dyn Authorize>>,
    pub(super) quota_book: Option<Arc<dyn crate::quota::QuotaBook>>,
}

impl TusServiceBuilder {
    /// Mount path (leading and trailing slashes are added if missing).
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        let mut p: String = path.into();
        if !p.starts_with('/') {
            p.insert(0, '/');
        }
        if !p.ends_with('/') {
            p.push('/');
        }
        self.config.base_path = p;
        self
    }

    /// Largest upload in bytes.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.config.max_size = Some(bytes);
        self
    }

    /// Expire unfinished uploads idle for this long.
    pub fn expiration(mut self, after: Duration) -> Self {
        self.config.expiration = Some(after);
        self
    }

    /// Enable or disable `GET` downloads.
    pub fn download(mut self, enabled: bool) -> Self {
        self.config.download = enabled;
        self
    }

    /// Enable or disable `DELETE`.
    pub fn termination(mut self, enabled: bool) -> Self {
        self.config.termination = enabled;
        self
    }

    /// How `Location` is written.
    pub fn location(mut self, style: LocationStyle) -> Self {
        self.config.location = style;
        self
    }

    /// Scheme for absolute URLs (`https` behind TLS).
    pub fn scheme(mut self, scheme: impl Into<String>) -> Self {
        self.config.scheme = scheme.into();
        self
    }

    /// Lock wait.
    pub fn lock_timeout(mut self, wait: Duration) -> Self {
        self.config.lock_timeout = wait;
        self
    }

    /// The largest upload whose digest is proven before the completing request is answered
    /// (see [`TusConfig::sync_verify_max`]).
    pub fn sync_verify_max(mut self, bytes: u64) -> Self {
        self.config.sync_verify_max = bytes;
        self
    }

    /// Sliding body read timeout.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_read_timeout = timeout;
        self
    }

    /// Replaces the locker (default: [`MemoryLocker`](crate::locker::MemoryLocker)).
    pub fn locker(mut self, locker: impl Locker) -> Self {
        self.locker = Arc::new(locker);
        self
    }

    /// Trust `Forwarded` / `X-Forwarded-*` headers for `Location` URLs (behind a proxy only).
    pub fn trust_forwarded_headers(mut self, yes: bool) -> Self {
        self.config.trust_forwarded = yes;
        self
    }

    /// CORS settings (`None`: no CORS headers at all).
    pub fn cors(mut self, cors: Option<CorsConfig>) -> Self {
        self.config.cors = cors;
        self
    }

    /// Sends hook events to `hooks`.
    pub fn hooks(mut self, hooks: impl Hooks) -> Self {
        self.hooks = Some(Arc::new(hooks));
        self
    }

    /// Inspects every finished upload before it may be served (needs a store that records
    /// states; see [`crate::inspect`]).
    pub fn inspector(mut self, inspector: impl Inspect) -> Self {
        self.inspector = Some(Arc::new(inspector));
        self
    }

    /// Requires every request (but `OPTIONS` and signed downloads) to act for a principal, and
    /// binds uploads to the principal that created them (see [`crate::auth`]).
    pub fn authorizer(mut self, authorizer: impl Authorize) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// Limits what one owner may hold in unfinished uploads (needs an authorizer; see
    /// [`crate::quota`]).
    pub fn quota(mut self, limits: crate::quota::QuotaLimits) -> Self {
        self.config.quota = limits;
        self
    }

    /// Keeps quota counts in `book` (default: in this process).
    pub fn quota_book(mut self, book: impl crate::quota::QuotaBook) -> Self {
        self.quota_book = Some(Arc::new(book));
        self
    }

    /// Requires signed URLs for downloads (see [`crate::signing`]).
    pub fn url_signer(mut self, signer: UrlSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: TusConfig) -> Self {
        self.config = config;
        self
    }

    /// The service.
    pub fn build(self) -> TusService {
        let (shutdown, _) = watch::channel(false);
        TusService {
            inner: Arc::new_cyclic(|me| Inner {
                store: self.store,
                locker: self.locker,
                config: self.config,
                hooks: self.hooks,
                inspector: self.inspector,
                signer: self.signer,
                authorizer: self.authorizer,
                quota_book: self.quota_book.unwrap_or_else(|| Arc::new(crate::quota::MemoryQuotaBook::new())),
                shutdown,
                waiting_finals: Mutex::default(),
                live_appends: Mutex::default(),
                me: me.clone(),
            }),
        }
    }
}
