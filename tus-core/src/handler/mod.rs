//! The tus HTTP handler: a [`tower_service::Service`] over any request body type.
//!
//! One function per method (`options`, `head`, `post`, `patch`, `delete`, `get`), each reading
//! like its section of the spec. Protocol errors are values of [`TusError`], rendered by one
//! function; the service itself never fails (`Error = Infallible`).

mod body;
mod cors;
mod create;
mod download;
mod ietf;
mod length;
mod lifecycle;
mod patch;
mod response;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Buf;
use futures_util::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::sync::watch;

pub use self::cors::{CorsConfig, CorsOrigins};
pub use self::response::{BoxError, ResponseBody};
use self::response::{error_response, tus_response};
use crate::checksum::ChecksumAlgorithm;
use crate::error::TusError;
use crate::headers::{self, Metadata, TUS_VERSION, TusResumable, UploadConcat, UploadExpires, names};
use crate::hooks::{HookHttpRequest, HookType, Hooks};
use crate::id::UploadId;
use crate::inspect::Inspect;
use crate::locker::{LockError, Locker, MemoryLocker, UploadLock};
use crate::signing::UrlSigner;
use crate::store::{ConcatRole, Store, StoreError, UploadInfo, UploadState};

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
    /// CORS grants; `None` sends no CORS headers. Default: any origin, no credentials.
    pub cors: Option<CorsConfig>,
    /// Build `Location` URLs from `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto`
    /// (only behind a proxy that sets them). Default `false`.
    pub trust_forwarded: bool,
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
            cors: Some(CorsConfig::default()),
            trust_forwarded: false,
        }
    }
}

/// Builds a [`TusService`].
#[derive(Debug)]
pub struct TusServiceBuilder {
    store: Arc<dyn Store>,
    locker: Arc<dyn Locker>,
    config: TusConfig,
    hooks: Option<Arc<dyn Hooks>>,
    inspector: Option<Arc<dyn Inspect>>,
    signer: Option<UrlSigner>,
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

    /// Sliding body read timeout.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_read_timeout = timeout;
        self
    }

    /// Replaces the locker (default: [`MemoryLocker`]).
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
                shutdown,
                waiting_finals: Mutex::default(),
                me: me.clone(),
            }),
        }
    }
}

/// The tus protocol as a `tower::Service<http::Request<B>>`.
///
/// Cheap to clone (an `Arc` inside). Requests outside the base path get `404`.
#[derive(Debug, Clone)]
pub struct TusService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    locker: Arc<dyn Locker>,
    config: TusConfig,
    hooks: Option<Arc<dyn Hooks>>,
    inspector: Option<Arc<dyn Inspect>>,
    signer: Option<UrlSigner>,
    shutdown: watch::Sender<bool>,
    /// For spawning background work (hooks, processing) that outlives a request.
    me: Weak<Inner>,
    /// Final uploads created over unfinished partials, by partial: settled as soon as a
    /// partial completes on this instance (and lazily on any HEAD/GET otherwise).
    waiting_finals: Mutex<HashMap<UploadId, HashSet<UploadId>>>,
}

/// What a request path names.
enum Target {
    /// The creation URL (`/files/`).
    Collection,
    /// One upload (`/files/<id>`).
    Upload(UploadId),
}

impl TusService {
    /// Starts building a service over `store`.
    pub fn builder(store: impl Store) -> TusServiceBuilder {
        TusServiceBuilder {
            store: Arc::new(store),
            locker: Arc::new(MemoryLocker::new()),
            config: TusConfig::default(),
            hooks: None,
            inspector: None,
            signer: None,
        }
    }

    /// The effective configuration.
    pub fn config(&self) -> &TusConfig {
        &self.inner.config
    }

    /// The `Tus-Extension` list, derived from the store's capabilities and the configuration.
    pub fn extensions(&self) -> Vec<&'static str> {
        self.inner.extensions()
    }

    /// Asks every in-flight request body to stop; each keeps what it received and answers.
    /// Call before a graceful shutdown of the connections.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Removes expired uploads forever (every `expiration / 4`, between 1 s and 60 s). Returns
    /// at once if expiration is off or the store cannot list or delete. Spawn it once.
    pub fn reaper(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        async move { inner.reap_forever().await }
    }

    /// Picks up processing of finished uploads a restart interrupted (their state is still
    /// `processing`); call once at start. Returns how many were picked up.
    pub async fn resume_processing(&self) -> Result<usize, TusError> {
        self.inner.resume_processing().await
    }

    /// A signed download URL path+query for `id` (`/files/<id>?expires=..&sig=..`), valid for
    /// `ttl`, or `None` if no signer is configured.
    pub fn signed_download_path(&self, id: &UploadId, ttl: Duration) -> Option<String> {
        let signed = self.inner.signer.as_ref()?.sign(id, ttl);
        Some(format!("{}{}?{}", self.inner.config.base_path, id, signed.query))
    }

    /// How often [`TusService::reaper`] runs a pass, if expiration is on.
    pub fn reap_interval(&self) -> Option<Duration> {
        self.inner.expiration().map(|period| (period / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)))
    }

    /// Runs one pass of the reaper now, returning how many uploads it removed.
    pub async fn reap_expired(&self) -> Result<usize, TusError> {
        self.inner.reap_once().await
    }

    /// Handles one request. Never fails: errors become responses.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Buf + Send,
    {
        self.inner.handle(req).await
    }
}

impl<B> tower_service::Service<Request<B>> for TusService
where
    B: Body + Send + 'static,
    B::Data: Buf + Send,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            Ok(inner.handle(Request::from_parts(parts, Box::pin(body))).await)
        })
    }
}

impl Inner {
    async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Buf + Send,
    {
        let method = effective_method(&req);
        let hook_request = lifecycle::hook_request(&req, &method, self.hooks.is_some());
        // Only what CORS needs from the request outlives it.
        let origin_headers = self.config.cors.as_ref().map(|_| cors_request_headers(req.headers()));
        let result = match (check_framing(req.headers()), self.route(req.uri().path())) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(TusError::NotFound),
            (Ok(()), Some(target)) => self.dispatch(&method, target, req, &hook_request).await,
        };
        let mut res = match result {
            Ok(res) => res,
            Err(e) => error_response(&e, &method),
        };
        if let (Some(cors), Some(headers)) = (&self.config.cors, &origin_headers) {
            cors.apply(&method, headers, &mut res);
        }
        res
    }

    fn route(&self, path: &str) -> Option<Target> {
        let base = &self.config.base_path;
        if path == base || Some(path) == base.strip_suffix('/') {
            return Some(Target::Collection);
        }
        let id = path.strip_prefix(base.as_str())?;
        UploadId::parse(id).ok().map(Target::Upload)
    }

    async fn dispatch<B>(
        &self,
        method: &Method,
        target: Target,
        req: Request<B>,
        hr: &HookHttpRequest,
    ) -> Result<Response<ResponseBody>, TusError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Buf + Send,
    {
        if let Some(draft) = ietf::Draft::of(req.headers())? {
            return self.ietf(draft, method, target, req, hr).await;
        }
        // Every tus request must speak our version; OPTIONS is exempt by the spec and GET is a
        // plain download a browser link must be able to make.
        if *method != Method::OPTIONS && *method != Method::GET {
            check_version(req.headers())?;
        }
        match (method, target) {
            (&Method::OPTIONS, _) => Ok(self.options()),
            (&Method::POST, Target::Collection) => self.post(req, hr).await,
            (&Method::HEAD, Target::Upload(id)) => self.head(&id, self.request_origin(&req).as_deref(), hr).await,
            (&Method::PATCH, Target::Upload(id)) => self.patch(&id, req, hr).await,
            (&Method::DELETE, Target::Upload(id)) if self.terminater().is_some() => self.delete(&id, hr).await,
            (&Method::GET, Target::Upload(id)) if self.config.download => {
                self.get(&id, req.headers(), req.uri(), hr).await
            }
            _ => Err(TusError::MethodNotAllowed),
        }
    }

    fn extensions(&self) -> Vec<&'static str> {
        let store = &self.store;
        let mut ext = vec!["creation", "creation-with-upload"];
        if store.length_deferrer().is_some() {
            ext.push("creation-defer-length");
        }
        if self.terminater().is_some() {
            ext.push("termination");
        }
        if store.concatenater().is_some() {
            ext.extend(["concatenation", "concatenation-unfinished"]);
        }
        ext.extend(["checksum", "checksum-trailer"]);
        if self.expiration().is_some() {
            ext.push("expiration");
        }
        ext
    }

    /// Termination as offered to clients: the store can, and the configuration allows it.
    fn terminater(&self) -> Option<&dyn crate::store::Terminate> {
        self.store.terminater().filter(|_| self.config.termination)
    }

    /// The expiry period, if expiration is on and the store can list and delete.
    fn expiration(&self) -> Option<Duration> {
        let capable = self.store.expirer().is_some() && self.store.terminater().is_some();
        self.config.expiration.filter(|_| capable)
    }

    /// OPTIONS: what this server supports.
    fn options(&self) -> Response<ResponseBody> {
        // 200, as tusd answers: the spec allows 200 or 204, and some clients accept only 200.
        let mut res = tus_response(StatusCode::OK);
        let h = res.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        h.insert(names::TUS_VERSION, HeaderValue::from_static(TUS_VERSION));
        if let Ok(v) = HeaderValue::from_str(&self.extensions().join(",")) {
            h.insert(names::TUS_EXTENSION, v);
        }
        if let Some(max) = self.config.max_size {
            h.insert(names::TUS_MAX_SIZE, HeaderValue::from(max));
        }
        if let Ok(v) = HeaderValue::from_str(&ChecksumAlgorithm::header_list()) {
            h.insert(names::TUS_CHECKSUM_ALGORITHM, v);
        }
        res
    }

    /// HEAD: where an upload stands.
    async fn head(
        &self,
        id: &UploadId,
        host: Option<&str>,
        hr: &HookHttpRequest,
    ) -> Result<Response<ResponseBody>, TusError> {
        // A HEAD usually means the client lost its connection and is about to resume: stop a
        // stale PATCH still holding the upload, so the offset we report is final.
        drop(self.lock(id).await);
        let info = self.load_info(id, hr).await?;
        let mut res = tus_response(StatusCode::OK);
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // A final upload's offset is undefined until its partials are concatenated.
        if !info.is_final() || info.is_complete() {
            h.insert(names::UPLOAD_OFFSET, HeaderValue::from(info.offset));
        }
        match info.length {
            Some(len) => h.insert(names::UPLOAD_LENGTH, HeaderValue::from(len)),
            None => h.insert(names::UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1")),
        };
        if !info.metadata.is_empty() {
            headers::set(h, &info.metadata);
        }
        self.set_concat_header(h, &info, host);
        self.set_expires_header(h, &info);
        if let Some(state) = info.state {
            h.insert(UPLOAD_STATE, HeaderValue::from_static(state.name()));
        }
        Ok(res)
    }

    /// DELETE: terminate an upload.
    async fn delete(&self, id: &UploadId, hr: &HookHttpRequest) -> Result<Response<ResponseBody>, TusError> {
        let terminater = self.terminater().ok_or(TusError::MethodNotAllowed)?;
        let lock = self.lock(id).await?;
        let info = self.store.info(id).await?;
        let hook = self.blocking_hook(HookType::PreTerminate, &info, hr).await?;
        if hook.reject_termination {
            return Err(TusError::TerminationRejected(hook.http_response));
        }
        terminater.terminate(id).await?;
        drop(lock);
        tracing::info!(upload = %id, "upload terminated");
        self.notify(HookType::PostTerminate, &info, hr);
        let mut res = tus_response(StatusCode::NO_CONTENT);
        lifecycle::apply_hook_response(&mut res, &hook.http_response);
        Ok(res)
    }

    /// Takes the upload's lock, asking a current holder to let go.
    async fn lock(&self, id: &UploadId) -> Result<Box<dyn UploadLock>, TusError> {
        self.locker.lock(id, self.config.lock_timeout).await.map_err(|e| match e {
            LockError::Timeout => TusError::Locked,
            other => TusError::Store(StoreError::Generic { store: "locker", source: Box::new(other) }),
        })
    }

    /// The upload's info as clients should see it: expired uploads are gone, and a final
    /// upload whose partials have all finished is settled first.
    async fn load_info(&self, id: &UploadId, hr: &HookHttpRequest) -> Result<UploadInfo, TusError> {
        let info = self.store.info(id).await?;
        if self.is_expired(&info) {
            return Err(TusError::Gone);
        }
        let mut info = if info.is_final() && !info.is_complete() { self.settle_final(info, hr).await? } else { info };
        // Complete but never inspected (its completion is under way, or was cut short and is
        // picked up at the next start): as unservable as any upload still being checked.
        if info.state.is_none() && info.is_complete() && self.inspects(&info) {
            info.state = Some(UploadState::Processing);
        }
        Ok(info)
    }

    fn expires_at(&self, info: &UploadInfo) -> Option<SystemTime> {
        let period = self.expiration()?;
        (!info.is_complete() && !info.is_final()).then(|| info.updated_at + period)
    }

    fn is_expired(&self, info: &UploadInfo) -> bool {
        self.expires_at(info).is_some_and(|at| at <= SystemTime::now())
    }

    fn set_expires_header(&self, headers: &mut HeaderMap, info: &UploadInfo) {
        if let Some(at) = self.expires_at(info) {
            headers::set(headers, &UploadExpires(at));
        }
    }

    fn set_concat_header(&self, headers: &mut HeaderMap, info: &UploadInfo, host: Option<&str>) {
        let value = match &info.concat {
            None => return,
            Some(ConcatRole::Partial) => UploadConcat::Partial,
            // Rebuilt from the client's origin for every listed partial: `valid_host` bounds
            // its length, so the header stays linear in the list, with a small factor.
            Some(ConcatRole::Final { partials }) => {
                UploadConcat::Final(partials.iter().map(|p| self.upload_url(host, p)).collect())
            }
        };
        headers::set(headers, &value);
    }

    /// The URL of an upload, absolute when configured and the request's origin is known.
    fn upload_url(&self, origin: Option<&str>, id: &UploadId) -> String {
        let path = format!("{}{}", self.config.base_path, id);
        match (self.config.location, origin) {
            (LocationStyle::Absolute, Some(origin)) => format!("{origin}{path}"),
            _ => path,
        }
    }

    /// `scheme://host` the client addressed: from `Host` (or the URI's authority), or, when
    /// trusted, from the proxy's `Forwarded` / `X-Forwarded-*` headers.
    fn request_origin<B>(&self, req: &Request<B>) -> Option<String> {
        let headers = req.headers();
        if self.config.trust_forwarded
            && let Some((proto, host)) = forwarded_origin(headers)
        {
            return Some(format!("{}://{host}", proto.unwrap_or(&self.config.scheme)));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .filter(|h| valid_host(h))?;
        // The scheme we serve, never one copied from an absolute-form request target.
        Some(format!("{}://{host}", self.config.scheme))
    }

    /// Concatenates a final upload if all its partials are complete; otherwise returns it as is.
    ///
    /// Boxed as `Send` by its type: completing a final's last partial settles the final in
    /// turn, and the compiler cannot see through that cycle on its own.
    fn settle_final<'a>(
        &'a self,
        info: UploadInfo,
        hr: &'a HookHttpRequest,
    ) -> BoxFuture<'a, Result<UploadInfo, TusError>> {
        Box::pin(async move {
            let Some(ConcatRole::Final { partials }) = &info.concat else { return Ok(info) };
            if self.store.concatenater().is_none() {
                return Err(TusError::NotImplemented);
            }
            // A partial may be listed many times: each is read once, so the work stays linear in
            // the list.
            let mut known: HashMap<&UploadId, UploadInfo> = HashMap::new();
            for id in partials {
                if known.contains_key(id) {
                    continue;
                }
                match self.store.info(id).await {
                    Ok(p) if p.is_complete() => known.insert(id, p),
                    // Unfinished, terminated or expired: nothing to settle (yet).
                    Ok(_) | Err(StoreError::NotFound | StoreError::Gone) => return Ok(info),
                    Err(e) => return Err(e.into()),
                };
            }
            let parts: Vec<UploadInfo> = partials.iter().filter_map(|id| known.get(id).cloned()).collect();
            // Partials of deferred length can add up past the maximum only now: checked before
            // a byte is copied.
            if let Some(length) = create::final_length(&parts)? {
                self.check_length(length)?;
            }
            // On a task of its own: a HEAD whose client leaves must not stop an assembly half-way
            // between the bytes and their completion.
            let Some(me) = self.me.upgrade() else { return Err(TusError::Internal("service is shutting down")) };
            let (id, hr) = (info.id.clone(), hr.clone());
            tokio::spawn(async move { me.assemble_final(&id, &parts, &hr).await })
                .await
                .unwrap_or(Err(TusError::Internal("concatenation failed")))
        })
    }

    /// Fills final upload `id` with `parts` under its lock, once, and completes it.
    async fn assemble_final(
        &self,
        id: &UploadId,
        parts: &[UploadInfo],
        hr: &HookHttpRequest,
    ) -> Result<UploadInfo, TusError> {
        let concatenater = self.store.concatenater().ok_or(TusError::NotImplemented)?;
        let _lock = self.lock(id).await?;
        let current = self.store.info(id).await?;
        if current.is_complete() {
            return Ok(current);
        }
        concatenater.concatenate(id, parts).await?;
        tracing::info!(upload = %id, parts = parts.len(), "final upload concatenated");
        let settled = self.store.info(id).await?;
        if let Err(e) = self.on_complete(&settled, hr).await {
            tracing::warn!(upload = %id, error = %e, "pre-finish hook of a final upload failed");
        }
        Ok(self.store.info(id).await?)
    }

    /// Settles the final uploads waiting for `partial`, which just completed.
    async fn settle_waiting_finals(&self, partial: &UploadId, hr: &HookHttpRequest) {
        let finals = self.waiting_finals.lock().ok().and_then(|mut w| w.remove(partial)).unwrap_or_default();
        for final_id in finals {
            match self.store.info(&final_id).await {
                Ok(f) => {
                    if let Err(e) = self.settle_final(f, hr).await {
                        // Not lost: the next HEAD or GET of the final settles it.
                        tracing::warn!(upload = %final_id, error = %e, "could not settle final upload yet");
                    }
                }
                Err(e) => tracing::debug!(upload = %final_id, error = %e, "waiting final upload vanished"),
            }
        }
    }

    /// A signed absolute download URL for `id` (for `post-finish` payloads), if signing is on.
    fn signed_download_url(&self, id: &UploadId, hr: &HookHttpRequest) -> Option<String> {
        let signed = self.signer.as_ref()?.sign(id, self.config.hook_download_url_ttl);
        let origin =
            hr.header.get("Host").and_then(|h| h.first()).map(|host| format!("{}://{host}", self.config.scheme));
        Some(format!("{}?{}", self.upload_url(origin.as_deref(), id), signed.query))
    }

    async fn reap_forever(&self) {
        let Some(period) = self.expiration() else { return };
        // Keep in step with `TusService::reap_interval`.
        let every = (period / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(every).await;
            match self.reap_once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired uploads removed"),
                Err(e) => tracing::warn!(error = %e, "expiry pass failed"),
            }
        }
    }

    async fn reap_once(&self) -> Result<usize, TusError> {
        let (Some(period), Some(expirer), Some(terminater)) =
            (self.expiration(), self.store.expirer(), self.store.terminater())
        else {
            return Ok(0);
        };
        let mut removed = 0;
        for id in expirer.list_expired(SystemTime::now() - period).await? {
            let Ok(_lock) = self.lock(&id).await else { continue };
            // Re-check under the lock: a PATCH may have moved the clock since the listing.
            match self.store.info(&id).await {
                Ok(info) if self.is_expired(&info) => {
                    terminater.terminate(&id).await?;
                    removed += 1;
                }
                _ => {}
            }
        }
        Ok(removed)
    }
}

fn cors_request_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [header::ORIGIN, header::ACCESS_CONTROL_REQUEST_METHOD] {
        if let Some(v) = headers.get(&name) {
            kept.insert(name, v.clone());
        }
    }
    kept
}

/// The method a request stands for: `X-HTTP-Method-Override` is honoured on POST only, so a
/// plain link (GET) can never be turned into a DELETE.
fn effective_method<B>(req: &Request<B>) -> Method {
    let overridden =
        req.headers().get(names::X_HTTP_METHOD_OVERRIDE).and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    match overridden {
        Some(m) if req.method() == Method::POST => m,
        _ => req.method().clone(),
    }
}

/// The response header showing a finished upload's processing state.
pub const UPLOAD_STATE: http::header::HeaderName = http::header::HeaderName::from_static("upload-state");

/// How the request's body is framed, checked before anything reads it: `chunked` is the only
/// transfer coding we decode, so any other would have its still-coded bytes stored as the
/// upload (`501`, RFC 9112 §6.1); `chunked` twice, or two `Host` lines, are malformed (`400`).
fn check_framing(headers: &HeaderMap) -> Result<(), TusError> {
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(value) = value.to_str() else { return Err(TusError::UnsupportedTransferCoding) };
        for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("chunked") {
                return Err(TusError::UnsupportedTransferCoding);
            }
            chunked += 1;
        }
    }
    if chunked > 1 || headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(TusError::MalformedRequest);
    }
    Ok(())
}

fn check_version(headers: &HeaderMap) -> Result<(), TusError> {
    match headers::get::<TusResumable>(headers) {
        Ok(Some(v)) if v.is_supported() => Ok(()),
        _ => Err(TusError::UnsupportedVersion),
    }
}

/// The longest `Host` (with port) we copy into URLs.
const MAX_HOST_LEN: usize = 270;

/// Characters a host (with optional port, or an IPv6 literal) may contain.
fn valid_host(host: &str) -> bool {
    // A DNS name is at most 253 characters; with a port or an IPv6 literal's brackets, 270
    // is plenty. Longer ones are refused: each would be copied into every URL we write.
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// `(proto, host)` from `Forwarded` (RFC 7239, first element) or `X-Forwarded-Host` /
/// `X-Forwarded-Proto`; values that are not a plain host or `http`/`https` are ignored.
fn forwarded_origin(headers: &HeaderMap) -> Option<(Option<&'static str>, String)> {
    let proto = |p: &str| match p.trim().trim_matches('"').to_ascii_lowercase().as_str() {
        "http" => Some("http"),
        "https" => Some("https"),
        _ => None,
    };
    if let Some(fwd) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        let first = fwd.split(',').next().unwrap_or("");
        let (mut host, mut scheme) = (None, None);
        for pair in first.split(';') {
            match pair.split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("host") => host = Some(v.trim().trim_matches('"')),
                Some((k, v)) if k.trim().eq_ignore_ascii_case("proto") => scheme = proto(v),
                _ => {}
            }
        }
        if let Some(host) = host.filter(|h| valid_host(h)) {
            return Some((scheme, host.to_owned()));
        }
    }
    let first = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
    };
    let host = first("x-forwarded-host").filter(|h| valid_host(h))?;
    Some((first("x-forwarded-proto").as_deref().and_then(proto), host))
}

/// Parses `Upload-Metadata` under the size limit.
fn parse_metadata(headers: &HeaderMap, max: usize) -> Result<Metadata, TusError> {
    if headers.get(names::UPLOAD_METADATA).is_some_and(|v| v.len() > max) {
        return Err(TusError::MetadataTooLarge);
    }
    Ok(headers::get::<Metadata>(headers)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn forwarded_headers_give_the_public_origin() {
        let h = headers(&[("forwarded", "for=1.2.3.4;host=uploads.example.com;proto=https, for=5.6.7.8")]);
        assert_eq!(forwarded_origin(&h), Some((Some("https"), "uploads.example.com".to_owned())));
        let h = headers(&[("x-forwarded-host", "a.example:8443, b.example"), ("x-forwarded-proto", "https")]);
        assert_eq!(forwarded_origin(&h), Some((Some("https"), "a.example:8443".to_owned())));
        let h = headers(&[("x-forwarded-host", "evil.example/path"), ("x-forwarded-proto", "javascript")]);
        assert_eq!(forwarded_origin(&h), None);
        let h = headers(&[("x-forwarded-host", "ok.example"), ("x-forwarded-proto", "gopher")]);
        assert_eq!(forwarded_origin(&h), Some((None, "ok.example".to_owned())));
    }
}
