//! External uploads: uploads whose bytes reach the store without passing through this service.
//! A direct-to-storage signer (such as `tus-store-s3`'s, for Uppy's S3 plugin) hands clients
//! presigned URLs and calls these methods, so that such an upload is authenticated, created,
//! counted, finished and checked exactly as a tus upload is: one set of decisions, two paths.

use std::sync::Arc;

use http::{HeaderMap, Request};

use super::append::LengthClaim;
use super::hooks::Call;
use super::{Inner, TusService};
use crate::auth::Principal;
use crate::error::TusError;
use crate::headers::Metadata;
use crate::id::UploadId;
use crate::locker::UploadLock;
use crate::store::{NewUpload, UploadInfo};

/// A request authenticated the way a tus request is, for the calls of an external upload.
#[derive(Debug, Clone)]
pub struct Caller {
    call: Call,
    origin: Option<String>,
    /// Work of the server itself (see [`Caller::background`]): acts for the upload's owner.
    system: bool,
}

impl Caller {
    /// The principal the request acts for (`None` when no authorizer is configured).
    pub fn principal(&self) -> Option<&Principal> {
        self.call.principal.as_ref()
    }

    /// `scheme://host` the request addressed, as URLs handed to it start.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// A caller for work no request asked for (a background sweep that found an upload's
    /// bytes): it acts for the upload's owner, and is reported to hooks as no request.
    pub fn background() -> Self {
        Caller { call: Call::default(), origin: None, system: true }
    }
}

impl TusService {
    /// Authenticates `req` as a tus request would be (the configured authorizer), and keeps
    /// what hooks report of it. A request without valid credentials gets `401`.
    pub async fn authenticate<B>(&self, req: &Request<B>) -> Result<Caller, TusError> {
        let inner = &self.inner;
        let principal = match &inner.authorizer {
            None => None,
            Some(authorizer) => {
                let mut parts = Request::new(()).into_parts().0;
                parts.method = req.method().clone();
                parts.uri = req.uri().clone();
                parts.version = req.version();
                parts.headers = req.headers().clone();
                Some(authorizer.authorize(&parts).await.map_err(TusError::Unauthorized)?)
            }
        };
        let hook = Arc::new(inner.hook_request(req, req.method()));
        let call = Call { hook, principal, signed: None, want_repr_digest: false };
        Ok(Caller { call, origin: inner.request_origin(req), system: false })
    }

    /// Creates an upload of `length` bytes (`None`: told when its bytes are in) whose bytes
    /// will arrive elsewhere, with every check a tus creation has: the maximum size (the
    /// server's and the caller's token's), the quota, `pre-create` (which may refuse it or
    /// change its ID and metadata) and `post-create`. The store creates it as it creates any
    /// upload; what `metadata` declares (`filetype`, a `checksum`) is checked the same way.
    pub async fn create_external(
        &self,
        length: Option<u64>,
        metadata: Metadata,
        caller: &Caller,
    ) -> Result<UploadInfo, TusError> {
        let upload = NewUpload::new(UploadId::random(), length)
            .with_metadata(metadata)
            .with_owner(caller.call.principal.clone());
        let created =
            self.inner.create_upload(upload, LengthClaim::default(), &HeaderMap::new(), None, &caller.call).await?;
        Ok(created.info)
    }

    /// The upload `id` as `caller` may see it, as a tus `HEAD` would: another owner's upload
    /// is `404`, as if it did not exist; an expired one is gone; a complete one not yet
    /// inspected is `processing`.
    pub async fn external_upload(&self, id: &UploadId, caller: &Caller) -> Result<UploadInfo, TusError> {
        self.inner.load_info(id, &caller.call).await
    }

    /// Takes the upload's lock (shared by every instance when the locker is): changes to an
    /// external upload's state are made under it, so two signals of one upload's completion
    /// finish it once.
    pub async fn lock_upload(&self, id: &UploadId) -> Result<Box<dyn UploadLock>, TusError> {
        self.inner.lock(id).await
    }

    /// Sets the length of an upload created without one, now that its bytes are in: checked
    /// against the maximum size and held in the owner's byte quota like a tus upload's
    /// declared length. Call with the upload's lock held.
    pub async fn declare_external_length(&self, info: &mut UploadInfo, length: u64) -> Result<(), TusError> {
        self.inner.accept_length(info, length).await
    }

    /// Starts what follows an upload's last byte, once the store records the upload as
    /// complete: `processing`, `pre-finish`, the inspection (content check, virus scan,
    /// declared digests) and `post-finish`. Returns the upload as the caller should report
    /// it (`state` is `processing` while it is checked). Call once per upload, with its lock
    /// held; the store's completion is what tells a second signal it came too late.
    pub async fn finish_external(&self, id: &UploadId, caller: &Caller) -> Result<UploadInfo, TusError> {
        let inner: &Inner = &self.inner;
        let mut info = inner.store.info(id).await?;
        if !info.is_complete() {
            return Err(TusError::NotFinished);
        }
        inner.release_upload(&info).await;
        inner.complete(&info, &caller.call).await?;
        if inner.inspects(&info) {
            info = inner.store.info(id).await?;
        }
        Ok(info)
    }

    /// Terminates an external upload for `caller` (an abandoned direct upload), as a tus
    /// `DELETE` would: the owner check, `pre-terminate`, the quota given back, `post-terminate`.
    pub async fn terminate_external(&self, id: &UploadId, caller: &Caller) -> Result<(), TusError> {
        let mut call = caller.call.clone();
        if caller.system {
            call.principal = self.inner.store.info(id).await?.owner.map(|owner| *owner);
        }
        self.inner.terminate(id, &call).await.map(drop)
    }

    /// Where the finished upload `id` is downloaded, as an URL for `caller`: signed (and
    /// expiring) when a URL signer is configured.
    pub fn download_url(&self, id: &UploadId, caller: &Caller) -> String {
        let inner = &self.inner;
        let url = inner.upload_url(caller.origin.as_deref(), id);
        match &inner.signer {
            Some(signer) => format!("{url}?{}", signer.sign(id, inner.config.hook_download_url_ttl).query),
            None => url,
        }
    }
}

/// A response extension on a refused request of an external upload's signer, carrying the
/// refusal's message. Uppy's S3 plugin shows only a failed response's status text, so a
/// server that can set the HTTP/1.1 reason phrase (hyper's `ReasonPhrase`) puts it there.
#[derive(Debug, Clone)]
pub struct RefusalMessage(pub String);
