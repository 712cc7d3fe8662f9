//! The tus HTTP handler: a [`tower_service::Service`] over any request body type.
//!
//! The protocol at a glance, one file per method, each reading like its section of the spec:
//! `options.rs`, `post.rs` (creation), `head.rs`, `patch.rs`, `delete.rs` (termination),
//! `get.rs` (downloads), and `ietf.rs` for the IETF draft's dialect of the same requests.
//! What they share, each in its own module:
//!
//! | module | what it decides |
//! |---|---|
//! | `request` | reading a request: method override, framing, version, content type, metadata |
//! | `length` | every length check (creation, declared, implied, a final's sum) against `--max-size` |
//! | `append` | appending a body (both dialects, creation-with-upload) and completion from what was stored |
//! | `body` | the body as a bounded, checksummed stream of chunks |
//! | `completion` | what follows the last byte: `processing`, `pre-finish`, inspection, `post-finish` |
//! | `concat` | final uploads: creation, assembly, `Upload-Concat` |
//! | `expiry` | `Upload-Expires` and the reaper |
//! | `url` | the URLs we hand out, from the origin the client addressed |
//! | `hooks` | hook events and calls |
//! | `response` | response bodies and rendering errors from the one table in [`crate::error`] |
//! | `config` | [`TusConfig`] and [`TusServiceBuilder`] |
//!
//! Protocol errors are values of [`TusError`], rendered by one function; the service itself
//! never fails (`Error = Infallible`). The request body's type is erased once, in
//! [`TusService::handle`] and `call`, so nothing inside is generic over it.

mod append;
mod body;
mod completion;
mod concat;
mod config;
mod cors;
mod delete;
mod expiry;
mod external;
mod get;
mod head;
mod hooks;
mod ietf;
mod length;
mod options;
mod patch;
mod post;
mod quota;
mod request;
mod response;
mod url;
mod verify;
pub use external::{Caller, RefusalMessage};
pub use verify::SYNC_VERIFY_MAX;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::watch;

pub use self::config::{LocationStyle, TusConfig, TusServiceBuilder};
pub use self::cors::{CorsConfig, CorsOrigins};
use self::hooks::Call;
use self::request::{check_framing, check_version, cors_request_headers, effective_method};
use self::response::error_response;
pub use self::response::{BoxError, ResponseBody};
use crate::auth::{Authorize, Principal};
use crate::error::TusError;
use crate::hooks::Hooks;

use crate::id::UploadId;
use crate::inspect::Inspect;
use crate::locker::{LockError, Locker, MemoryLocker, UploadLock};
use crate::signing::UrlSigner;
use crate::store::{Store, StoreError, UploadInfo, UploadState};

/// The tus protocol as a `tower::Service<http::Request<B>>` for any request body `B`.
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
    authorizer: Option<Arc<dyn Authorize>>,
    quota_book: Arc<dyn crate::quota::QuotaBook>,
    shutdown: watch::Sender<bool>,
    /// For spawning background work (hooks, processing) that outlives a request.
    me: Weak<Inner>,
    /// Final uploads created over unfinished partials, by partial: settled as soon as a
    /// partial completes on this instance (and lazily on any HEAD/GET otherwise).
    waiting_finals: Mutex<HashMap<UploadId, HashSet<UploadId>>>,
    /// Bodies streaming into uploads in this process, by upload (see `head.rs`).
    live_appends: Mutex<HashMap<UploadId, Arc<body::Progress>>>,
}

/// What a request path names.
enum Target {
    /// The creation URL (`/files/`).
    Collection,
    /// One upload (`/files/<id>`).
    Upload(UploadId),
    /// A file derived from one upload (`/files/<id>/thumbnails/256`, `/files/<id>/stripped`).
    Derivative(UploadId, crate::derivative::DerivativeName),
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
            authorizer: None,
            quota_book: None,
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

    /// Removes expired uploads forever (a [`reap_expired`](Self::reap_expired) pass every
    /// [`reap_interval`](Self::reap_interval)). Returns at once if expiration is off. Spawn it
    /// once.
    pub fn reaper(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reaper_with(|_| {})
    }

    /// [`reaper`](Self::reaper), calling `on_removed(n)` after every pass that removed `n > 0`
    /// uploads (to count them in metrics, say).
    pub fn reaper_with(
        &self,
        on_removed: impl FnMut(usize) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        async move { inner.reap_forever(on_removed).await }
    }

    /// Makes the quota book agree with the store (call once at start, with a book in this
    /// process or a shared one): every unfinished upload counts against its owner at what it
    /// holds, and holdings of uploads that finished or no longer exist are given back (those
    /// of missing uploads after a grace period of a few seconds, for creations in flight on
    /// other instances). Repairs what a crash or a Redis restart left behind.
    pub async fn reconcile_quotas(&self) -> Result<crate::quota::Reconciled, TusError> {
        self.inner.reconcile_quotas().await
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
        self.inner.reap_interval()
    }

    /// Runs one pass of the reaper now, returning how many uploads it removed.
    pub async fn reap_expired(&self) -> Result<usize, TusError> {
        self.inner.reap_once().await
    }

    /// Handles one request. Never fails: errors become responses.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        self.inner.handle(erase_body(req)).await
    }
}

impl<B> tower_service::Service<Request<B>> for TusService
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let req = erase_body(req);
        Box::pin(async move { Ok(inner.handle(req).await) })
    }
}

/// A request body as the handler sees it: its type erased once, here at the service boundary,
/// so nothing inside is generic over the body.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, BodyReadError>;

/// A request body failed to arrive (connection reset, malformed chunking). The cause is the
/// client's and not kept: what arrived before it is what counts.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read")]
pub(crate) struct BodyReadError;

fn erase_body<B>(req: Request<B>) -> Request<RequestBody>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    req.map(|body| {
        body.map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
            .map_err(|_| BodyReadError)
            .boxed_unsync()
    })
}

impl Inner {
    async fn handle(&self, req: Request<RequestBody>) -> Response<ResponseBody> {
        let method = effective_method(&req);
        // Only what CORS needs from the request outlives it.
        let origin_headers = self.config.cors.as_ref().map(|_| cors_request_headers(req.headers()));
        let result = match (check_framing(req.headers()), self.route(req.uri().path())) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(TusError::NotFound),
            (Ok(()), Some(target)) => match self.authorize(&method, &target, req).await {
                Ok((req, principal, signed)) => {
                    let hook = Arc::new(self.hook_request(&req, &method));
                    let want_repr_digest = req.headers().contains_key(crate::headers::names::WANT_REPR_DIGEST);
                    let call = Call { hook, principal, signed, want_repr_digest };
                    self.dispatch(&method, target, req, &call).await
                }
                Err(e) => Err(e),
            },
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

    /// The principal `req` acts for, decided once for every method and both dialects before
    /// anything else looks at the request. `OPTIONS` needs none (browsers send CORS preflights
    /// without credentials), and neither does a `GET` of an upload whose signed URL verifies:
    /// the signature is its authorization, for that upload only (see [`Call::signed`]).
    async fn authorize(
        &self,
        method: &Method,
        target: &Target,
        req: Request<RequestBody>,
    ) -> Result<(Request<RequestBody>, Option<Principal>, Option<UploadId>), TusError> {
        let Some(authorizer) = &self.authorizer else { return Ok((req, None, None)) };
        if *method == Method::OPTIONS {
            return Ok((req, None, None));
        }
        let download = match target {
            Target::Upload(id) => Some((id, None)),
            Target::Derivative(id, name) => Some((id, Some(*name))),
            Target::Collection => None,
        };
        if let (&Method::GET, Some((id, name)), Some(signer)) = (method, download, &self.signer)
            && get::verify_download(signer, id, name, req.uri().query()).is_ok()
        {
            return Ok((req, None, Some(id.clone())));
        }
        let (parts, body) = req.into_parts();
        let principal = authorizer.authorize(&parts).await.map_err(TusError::Unauthorized)?;
        Ok((Request::from_parts(parts, body), Some(principal), None))
    }

    fn route(&self, path: &str) -> Option<Target> {
        let base = &self.config.base_path;
        if path == base || Some(path) == base.strip_suffix('/') {
            return Some(Target::Collection);
        }
        let rest = path.strip_prefix(base.as_str())?;
        match rest.split_once('/') {
            None => UploadId::parse(rest).ok().map(Target::Upload),
            Some((id, derived)) => {
                Some(Target::Derivative(UploadId::parse(id).ok()?, crate::derivative::DerivativeName::parse(derived)?))
            }
        }
    }

    async fn dispatch(
        &self,
        method: &Method,
        target: Target,
        req: Request<RequestBody>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        // Derived files are plain downloads in either dialect (and may be preflighted).
        if let Target::Derivative(id, name) = target {
            return match *method {
                Method::OPTIONS => Ok(self.options()),
                Method::GET | Method::HEAD if self.config.download => {
                    let head_only = *method == Method::HEAD;
                    self.get_derivative(&id, name, req.headers(), req.uri(), head_only, call).await
                }
                _ => Err(TusError::MethodNotAllowed),
            };
        }
        if let Some(draft) = ietf::Draft::of(req.headers())? {
            return self.ietf(draft, method, target, req, call).await;
        }
        // Every tus request must speak our version; OPTIONS is exempt by the spec and GET is a
        // plain download a browser link must be able to make.
        if *method != Method::OPTIONS && *method != Method::GET {
            check_version(req.headers())?;
        }
        match (method, target) {
            (&Method::OPTIONS, _) => Ok(self.options()),
            (&Method::POST, Target::Collection) => self.post(req, call).await,
            (&Method::HEAD, Target::Upload(id)) => self.head(&id, self.request_origin(&req).as_deref(), call).await,
            (&Method::PATCH, Target::Upload(id)) => self.patch(&id, req, call).await,
            (&Method::DELETE, Target::Upload(id)) if self.termination().is_some() => self.delete(&id, call).await,
            (&Method::GET, Target::Upload(id)) if self.config.download => {
                self.get(&id, req.headers(), req.uri(), call).await
            }
            _ => Err(TusError::MethodNotAllowed),
        }
    }

    fn extensions(&self) -> Vec<&'static str> {
        let store = &self.store;
        let mut ext = vec!["creation", "creation-with-upload"];
        if store.capabilities().defer_length.is_some() {
            ext.push("creation-defer-length");
        }
        if self.termination().is_some() {
            ext.push("termination");
        }
        if store.capabilities().concatenate.is_some() {
            ext.extend(["concatenation", "concatenation-unfinished"]);
        }
        ext.extend(["checksum", "checksum-trailer"]);
        if self.expiration().is_some() {
            ext.push("expiration");
        }
        ext
    }

    /// Termination as offered to clients: the store can, and the configuration allows it.
    fn termination(&self) -> Option<&dyn crate::store::Terminate> {
        self.store.capabilities().terminate.filter(|_| self.config.termination)
    }

    /// The expiry period, if expiration is on and the store can list (and so delete).
    fn expiration(&self) -> Option<Duration> {
        self.config.expiration.filter(|_| self.store.capabilities().list_expired.is_some())
    }

    /// Takes the upload's lock, asking a current holder to let go.
    async fn lock(&self, id: &UploadId) -> Result<Box<dyn UploadLock>, TusError> {
        self.locker.lock(id, self.config.lock_timeout).await.map_err(|e| match e {
            LockError::Timeout => TusError::Locked,
            other => TusError::Store(StoreError::Generic { store: "locker", source: Box::new(other) }),
        })
    }

    /// The upload's info for a request that acts for `call`'s principal: another owner's
    /// upload is answered exactly as one that does not exist (no oracle). With an authorizer
    /// configured, an upload without an owner (created before) belongs to nobody. The one
    /// place that decides ownership, for every method and both dialects.
    async fn upload_info(&self, id: &UploadId, call: &Call) -> Result<UploadInfo, TusError> {
        if self.authorizer.is_none() {
            return Ok(self.store.info(id).await?);
        }
        let info = match self.store.info(id).await {
            // A tombstone has no owner to compare: "gone" would tell anyone it existed.
            Err(crate::store::StoreError::Gone) => return Err(TusError::NotFound),
            other => other?,
        };
        let allowed = match &call.principal {
            Some(principal) => info.owner.as_ref().is_some_and(|owner| owner.subject == principal.subject),
            // No principal: only the upload a verified signature names (fail closed).
            None => call.signed.as_ref() == Some(id),
        };
        if allowed { Ok(info) } else { Err(TusError::NotFound) }
    }

    /// Refuses a request for another owner's upload before it takes the upload's lock: taking
    /// it asks the holder to let go, and nobody but the owner may interrupt an upload.
    async fn check_access(&self, id: &UploadId, call: &Call) -> Result<(), TusError> {
        if self.authorizer.is_some() {
            self.upload_info(id, call).await?;
        }
        Ok(())
    }

    /// The upload's info as clients should see it: expired uploads are gone, and a final
    /// upload whose partials have all finished is settled first.
    async fn load_info(&self, id: &UploadId, call: &Call) -> Result<UploadInfo, TusError> {
        let info = self.upload_info(id, call).await?;
        self.settle_info(info, call).await
    }

    /// [`Self::load_info`] for an info already read (with [`Self::upload_info`]).
    async fn settle_info(&self, info: UploadInfo, call: &Call) -> Result<UploadInfo, TusError> {
        if self.is_expired(&info) {
            return Err(TusError::Gone);
        }
        let mut info = if info.is_final() && !info.is_complete() { self.settle_final(info, call).await? } else { info };
        // Complete but never inspected (its completion is under way, or was cut short and is
        // picked up at the next start): as unservable as any upload still being checked.
        if info.state.is_none() && info.is_complete() && self.inspects(&info) {
            info.state = Some(UploadState::Processing);
        }
        Ok(info)
    }
}

/// The response header showing a finished upload's processing state.
pub const UPLOAD_STATE: http::header::HeaderName = http::header::HeaderName::from_static("upload-state");

/// The response header (`HEAD`, `GET`) listing the derivatives a servable upload has, as paths
/// under its URL: `thumbnails/256, thumbnails/1024, stripped`.
pub const UPLOAD_DERIVATIVES: http::header::HeaderName = http::header::HeaderName::from_static("upload-derivatives");
