//! Direct uploads: the Companion S3 signing routes that Uppy's `@uppy/aws-s3` plugin calls,
//! so that the bytes go from the client straight to S3 while this server decides, verifies
//! and checks, as a [`tower_service::Service`] beside the tus service.
//!
//! | route (under the base, default `/s3`) | what it does |
//! |---|---|
//! | `POST /multipart` `{filename, type, metadata}` | creates the upload (the tus creation's checks and hooks) and its multipart upload; answers `{key, uploadId, bucket}` |
//! | `GET /multipart/<uploadId>?key=` | ListParts, every page: `[{PartNumber, Size, ETag}]` |
//! | `GET /multipart/<uploadId>/<partNumber>?key=` | a presigned UploadPart URL: `{url, expires}` |
//! | `GET /multipart/<uploadId>/batch?key=&partNumbers=1,2` | several: `{presignedUrls: {"1": url}}` |
//! | `POST /multipart/<uploadId>/complete?key=` `{parts}` | verifies the parts with S3, completes, starts the checks: `{location, key, bucket, id, state}` |
//! | `DELETE /multipart/<uploadId>?key=` | aborts (terminates) the upload: `{}` |
//! | `GET /params?filename=&type=&metadata[k]=` | a presigned POST policy for a single-request upload: `{method, url, fields, expires}` |
//! | `GET /uploads/<id>` | the upload's state, and its download URL once servable |
//! | `POST /events` | S3 event notifications (AWS and MinIO JSON), with the configured bearer token |
//! | `/sts` | refused: it would hand browsers credentials for the whole bucket |
//!
//! **The server owns the keys.** Every upload is an upload of the [`S3Store`] (its ID, info
//! object and owner), created through [`TusService::create_external`], so its key is the
//! store's data key for its ID and any instance serves any call: the `(uploadId, key)` of a
//! call must name an upload the caller owns and that upload's multipart upload, or the answer
//! is `404`. The multipart upload's parts are signed for minutes and checked at completion
//! (exactly the listed parts, numbered 1..N, with their ETags, each but the last at least
//! 5 MiB, the total within the limits); a single-request upload is bounded by its policy's
//! `content-length-range` and found by HeadObject (a sweep while its policy lives) or an S3
//! event. Either way, once the bytes are in, the upload finishes through
//! [`TusService::finish_external`]: the same checks, states, hooks and downloads as a tus
//! upload, and the store's promotion of clean uploads.

mod events;
mod multipart;
mod policy;
mod single;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt as _;
use serde::Serialize;
use tus_core::error::TusError;
use tus_core::handler::Caller;
use tus_core::headers::Metadata;
use tus_core::{ResponseBody, TusService, UploadId};

use crate::S3Store;
use crate::limits::MAX_PRESIGNED_LIFETIME;
use crate::state::{DirectKind, InfoObject, LiveInfo};

/// The largest JSON body a signing route reads (a completion listing 10 000 parts fits).
const MAX_BODY: usize = 1024 * 1024;
/// The most metadata entries a creation may carry.
const MAX_METADATA_ENTRIES: usize = 64;

/// The settings of [`DirectUploads`].
#[derive(Debug, Clone)]
pub struct DirectConfig {
    /// Where the routes are mounted (default `/s3`, Companion's).
    pub base_path: String,
    /// How long presigned URLs and POST policies are valid (default 5 minutes).
    pub url_ttl: Duration,
    /// MIME patterns a declared type must match to be signed (`image/*`, `application/pdf`;
    /// empty: any). The content check after the upload applies the same list to the bytes.
    pub allowed_types: Vec<String>,
    /// The bearer token `POST <base>/events` requires; `None` turns the route off.
    pub events_token: Option<String>,
    /// How often issued single-request uploads are looked for with HeadObject (default 2 s).
    pub sweep_interval: Duration,
}

impl Default for DirectConfig {
    fn default() -> Self {
        DirectConfig {
            base_path: "/s3".into(),
            url_ttl: Duration::from_secs(300),
            allowed_types: Vec::new(),
            events_token: None,
            sweep_interval: Duration::from_secs(2),
        }
    }
}

/// The Companion-compatible S3 signing service (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirectUploads {
    inner: Arc<Direct>,
}

#[derive(Debug)]
struct Direct {
    store: S3Store,
    tus: TusService,
    config: DirectConfig,
    /// Single-request uploads this instance signed, with the time their policy expires:
    /// the sweep looks for their objects until then.
    pending: Mutex<HashMap<UploadId, SystemTime>>,
}

/// Why a signing request failed: rendered as `{message, code}` with the status.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal { status, code, message: message.into() }
    }

    fn not_found() -> Self {
        Refusal::new(StatusCode::NOT_FOUND, "ERR_UPLOAD_NOT_FOUND", "no such upload")
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, "ERR_BAD_REQUEST", message)
    }

    pub(crate) fn parts(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, "ERR_PARTS_MISMATCH", message)
    }
}

impl From<TusError> for Refusal {
    fn from(e: TusError) -> Self {
        let mut refusal = Refusal { status: e.status(), code: e.code(), message: e.message() };
        // A hook's refusal answers as the hook asked, as it would a tus creation.
        if let TusError::UploadRejected(hook) = &e {
            if let Ok(status) = StatusCode::from_u16(hook.status_code)
                && status.is_client_error()
            {
                refusal.status = status;
            }
            if !hook.body.is_empty() {
                refusal.message = hook.body.clone();
            }
        }
        refusal
    }
}

impl From<tus_core::StoreError> for Refusal {
    fn from(e: tus_core::StoreError) -> Self {
        TusError::from(e).into()
    }
}

impl From<crate::error::Error> for Refusal {
    fn from(e: crate::error::Error) -> Self {
        tracing::warn!(error = %e, "direct upload: S3 request failed");
        tus_core::StoreError::from(e).into()
    }
}

type Answer = Result<Response<ResponseBody>, Refusal>;

impl DirectUploads {
    /// The signing service for uploads into `store`, finished through `tus` (a service built
    /// over the same store, whose authorizer, limits, hooks and checks apply).
    /// Fails with [`tus_core::StoreError`] if a setting is unusable.
    pub fn new(store: S3Store, tus: TusService, config: DirectConfig) -> Result<Self, tus_core::StoreError> {
        use crate::error::Error;
        if config.url_ttl.is_zero() || config.url_ttl > MAX_PRESIGNED_LIFETIME {
            return Err(Error::Config(format!(
                "presigned URL lifetime must be between 1 s and {} s",
                MAX_PRESIGNED_LIFETIME.as_secs()
            ))
            .into());
        }
        if !config.base_path.starts_with('/') || config.base_path.ends_with('/') {
            return Err(Error::Config(format!(
                "the direct upload path {:?} must start with `/` and not end with one",
                config.base_path
            ))
            .into());
        }
        let mut config = config;
        config.allowed_types = config.allowed_types.iter().map(|p| p.trim().to_ascii_lowercase()).collect();
        Ok(DirectUploads { inner: Arc::new(Direct { store, tus, config, pending: Mutex::default() }) })
    }

    /// Whether `path` is one of this service's routes (under its base path).
    pub fn serves(&self, path: &str) -> bool {
        let base = &self.inner.config.base_path;
        path.strip_prefix(base.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Looks for the objects of issued single-request uploads until their policies expire,
    /// every [`DirectConfig::sweep_interval`], and finishes those that arrived. Spawn it once.
    pub fn sweeper(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        async move { inner.sweep_forever().await }
    }

    /// Handles one request. Never fails: refusals become JSON responses.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        let cors = self.inner.tus.config().cors.clone();
        let (method, origin_headers) = (req.method().clone(), req.headers().clone());
        // On a task of its own: a client that goes away mid-completion cannot leave an upload
        // assembled in S3 but never adopted.
        let inner = self.inner.clone();
        let routed = tokio::spawn(async move { inner.route(req).await }).await;
        let routed = routed.unwrap_or_else(|_| Err(TusError::Internal("signing request failed").into()));
        let mut res = match routed {
            Ok(res) => res,
            Err(refusal) => refusal_response(&refusal),
        };
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(cors) = cors {
            cors.apply(&method, &origin_headers, &mut res);
        }
        res
    }
}

impl<B> tower_service::Service<Request<B>> for DirectUploads
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
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// A request's path segments after the base, percent-decoded.
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// The query's parameters (the last value of each name wins).
pub(crate) fn query(req_uri: &http::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(req_uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

impl Direct {
    async fn route<B>(&self, req: Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        // The head alone is kept across awaits (`Request<()>` is `Sync`, a body need not be).
        let (parts, body) = req.into_parts();
        let req = Request::from_parts(parts, ());
        let Some(rest) = req.uri().path().strip_prefix(self.config.base_path.as_str()) else {
            return Err(Refusal::not_found());
        };
        let segments = segments(rest);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = req.method().clone();
        if method == Method::OPTIONS {
            let mut res = Response::new(ResponseBody::empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            return Ok(res);
        }
        if segments.first() == Some(&"sts") {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "ERR_STS_REFUSED",
                "temporary credentials are not handed out: uploads are signed one request at a time",
            ));
        }
        if segments.as_slice() == ["events"] && method == Method::POST {
            self.events_authorized(req.headers().get(header::AUTHORIZATION))?;
            let body = read_body(body).await?;
            return self.events(&body).await;
        }
        let caller = self.tus.authenticate(&req).await?;
        let q = query(req.uri());
        match (&method, segments.as_slice()) {
            (&Method::POST, ["multipart"]) => {
                let body = read_body(body).await?;
                self.create_multipart(&body, &caller).await
            }
            (&Method::GET, ["multipart", upload_id]) => self.list_parts(upload_id, &q, &caller).await,
            (&Method::DELETE, ["multipart", upload_id]) => self.abort(upload_id, &q, &caller).await,
            (&Method::GET, ["multipart", upload_id, "batch"]) => self.sign_batch(upload_id, &q, &caller).await,
            (&Method::POST, ["multipart", upload_id, "complete"]) => {
                let upload_id = upload_id.to_string();
                let body = read_body(body).await?;
                self.complete(&upload_id, &q, &body, &caller).await
            }
            (&Method::GET, ["multipart", upload_id, part]) => self.sign_part(upload_id, part, &q, &caller).await,
            (&Method::GET, ["params"]) => self.params(&q, &caller).await,
            (&Method::GET, ["uploads", id]) => self.state(id, &caller).await,
            (_, ["multipart", ..] | ["params"] | ["uploads", _] | ["events"]) => {
                Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "ERR_METHOD_NOT_ALLOWED", "method not allowed"))
            }
            _ => Err(Refusal::not_found()),
        }
    }

    /// The declared type, checked against the allow-lists (the server's, the caller's token's).
    fn check_type(&self, declared: &str, caller: &Caller) -> Result<(), Refusal> {
        let mime = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let mime = if mime.is_empty() { "application/octet-stream".to_owned() } else { mime };
        let server = &self.config.allowed_types;
        let owner = caller.principal().and_then(|p| p.allowed_types.as_ref());
        let allowed = (server.is_empty() || tus_core::inspect::mime_matches(server, &mime))
            && owner.is_none_or(|patterns| {
                let patterns: Vec<String> = patterns.iter().map(|p| p.trim().to_ascii_lowercase()).collect();
                tus_core::inspect::mime_matches(&patterns, &mime)
            });
        if allowed {
            Ok(())
        } else {
            Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "ERR_TYPE_NOT_ALLOWED",
                format!("files of type {mime} are not accepted"),
            ))
        }
    }

    /// Creates the upload for a direct upload of a file named `filename` of type `mime` with
    /// the client's `metadata`, as a tus creation would (its ID, owner, checks, hooks), then
    /// marks it direct. Returns its ID.
    async fn create(
        &self,
        filename: &str,
        mime: &str,
        metadata: Vec<(String, String)>,
        kind: DirectKind,
        caller: &Caller,
    ) -> Result<(UploadId, LiveInfo), Refusal> {
        self.check_type(mime, caller)?;
        let meta = tus_metadata(filename, mime, metadata, self.tus.config().max_metadata_size)?;
        let info = self.tus.create_external(None, meta, caller).await?;
        let inner = &self.store.inner;
        let mut live = inner.live(&info.id).await?;
        if let DirectKind::Single { .. } = kind
            && let Some(upload_id) = live.multipart_upload_id.take()
        {
            // One POST writes the object: the multipart upload made for it is not needed.
            inner.bucket.abort(&inner.data_key(&info.id), &upload_id).await?;
        }
        live.direct = Some(kind);
        inner.write_info(&info.id, &InfoObject::Live(live.clone()), false).await?;
        tracing::info!(upload = %info.id, kind = ?kind, "direct upload signed");
        Ok((info.id, live))
    }

    /// The upload a call's `key` names, if `caller` owns it and it is a direct upload
    /// (with the multipart upload `upload_id`, when given): anything else is `404`, the same
    /// answer for another owner's upload as for one that does not exist.
    async fn lookup(
        &self,
        key: Option<&String>,
        upload_id: Option<&str>,
        caller: &Caller,
    ) -> Result<(UploadId, LiveInfo), Refusal> {
        let inner = &self.store.inner;
        let id = key
            .and_then(|k| k.strip_prefix(inner.prefix.as_str()))
            .and_then(|stem| UploadId::parse(stem).ok())
            .ok_or_else(Refusal::not_found)?;
        match self.tus.external_upload(&id, caller).await {
            Ok(_) => {}
            Err(TusError::NotFound | TusError::Gone) => return Err(Refusal::not_found()),
            Err(e) => return Err(e.into()),
        }
        let live = match inner.live(&id).await {
            Ok(live) => live,
            Err(crate::error::Error::NotFound | crate::error::Error::Gone) => return Err(Refusal::not_found()),
            Err(e) => return Err(e.into()),
        };
        let matches = live.direct.is_some()
            && upload_id.is_none_or(|u| live.multipart_upload_id.as_deref() == Some(u))
            && key.map(String::as_str) == Some(inner.data_key(&id).as_str());
        if matches { Ok((id, live)) } else { Err(Refusal::not_found()) }
    }

    /// Records the completed object of `id` (`size` bytes, as S3 reports it), under the
    /// upload's lock, then starts the checks. `Ok(None)`: another signal finished it first.
    async fn adopt(&self, id: &UploadId, size: u64, caller: &Caller) -> Result<Option<tus_core::UploadInfo>, Refusal> {
        let _lock = self.tus.lock_upload(id).await?;
        let inner = &self.store.inner;
        let mut live = inner.live(id).await?;
        if live.completed {
            return Ok(None);
        }
        let mut info = live.upload.clone();
        if info.length != Some(size) {
            // Too large for the server's or the owner's limit, or past the quota: refused, and
            // the bytes go with the upload.
            if let Err(e) = self.tus.declare_external_length(&mut info, size).await {
                drop(_lock);
                self.discard(id, caller).await;
                return Err(e.into());
            }
            live = inner.live(id).await?;
        }
        live.completed = true;
        live.upload.length = Some(size);
        live.upload.updated_at = SystemTime::now();
        inner.write_info(id, &InfoObject::Live(live), false).await?;
        let info = self.tus.finish_external(id, caller).await?;
        tracing::info!(upload = %id, size, state = ?info.state.map(|s| s.name()), "direct upload arrived");
        Ok(Some(info))
    }

    /// Terminates a direct upload that was refused: its multipart upload, object and record.
    async fn discard(&self, id: &UploadId, caller: &Caller) {
        let done = match self.tus.terminate_external(id, caller).await {
            Err(TusError::NotFound) => self.tus.terminate_external(id, &Caller::background()).await,
            other => other,
        };
        if let Err(e) = done {
            tracing::warn!(upload = %id, error = %e, "could not discard a refused direct upload");
        }
    }

    /// `GET /uploads/<id>`: the upload's state, and where to download it once servable.
    async fn state(&self, id: &str, caller: &Caller) -> Answer {
        let id = UploadId::parse(id).map_err(|_| Refusal::not_found())?;
        let info = self.tus.external_upload(&id, caller).await?;
        // Direct uploads, and uploads promoted by the same pipeline, only: the answer may carry
        // a signed download URL, which is not this route's to hand out for any tus upload.
        let live = self.store.inner.live(&id).await?;
        if live.direct.is_none() && live.promoted.is_none() {
            return Err(Refusal::not_found());
        }
        Ok(json(StatusCode::OK, &self.report(&info, caller)))
    }

    /// How an upload is reported to the client: its state and, once it may be served, its
    /// download URL as `location`; before that, `location` is the URL to poll.
    fn report(&self, info: &tus_core::UploadInfo, caller: &Caller) -> UploadReport {
        let inner = &self.store.inner;
        let servable = info.is_complete() && info.state_allows_serving();
        let state = match info.state {
            Some(state) => state.name(),
            None if info.is_complete() => "finished",
            None => "uploading",
        };
        let location = if servable {
            self.tus.download_url(&info.id, caller)
        } else {
            format!("{}{}/uploads/{}", caller.origin().unwrap_or(""), self.config.base_path, info.id)
        };
        UploadReport {
            location,
            key: inner.data_key(&info.id),
            bucket: inner.bucket.name.clone(),
            id: info.id.to_string(),
            state,
        }
    }
}

/// What completion and the state route answer (Companion's `location`, `key`, `bucket`, and
/// the upload's ID and state).
#[derive(Debug, Serialize)]
struct UploadReport {
    location: String,
    key: String,
    bucket: String,
    id: String,
    state: &'static str,
}

/// The upload's tus metadata: the client's entries (valid tus keys, at most 64, within the
/// service's metadata size), and `filename` / `filetype` from the file.
fn tus_metadata(
    filename: &str,
    mime: &str,
    entries: Vec<(String, String)>,
    max_size: usize,
) -> Result<Metadata, Refusal> {
    if entries.len() > MAX_METADATA_ENTRIES {
        return Err(Refusal::bad_request(format!("at most {MAX_METADATA_ENTRIES} metadata entries")));
    }
    let mut meta = Metadata::default();
    let mut size = filename.len() + mime.len();
    for (key, value) in entries {
        let valid = !key.is_empty() && key.len() <= 256 && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
        if !valid {
            return Err(Refusal::bad_request("metadata keys must be printable ASCII without spaces or commas"));
        }
        size += key.len() + value.len();
        if key != "filename" && key != "filetype" {
            meta.insert(key, value.into_bytes());
        }
    }
    if size > max_size {
        return Err(TusError::MetadataTooLarge.into());
    }
    if !filename.is_empty() {
        meta.insert("filename", filename.as_bytes().to_vec());
    }
    meta.insert("filetype", mime.as_bytes().to_vec());
    Ok(meta)
}

/// Reads a request body of at most [`MAX_BODY`] bytes.
async fn read_body<B>(body: B) -> Result<Bytes, Refusal>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    let body = body.map_err(|_| std::io::Error::other("the request body could not be read"));
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ERR_BODY_TOO_LARGE",
            format!("request bodies here are at most {MAX_BODY} bytes"),
        )),
    }
}

pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn refusal_response(refusal: &Refusal) -> Response<ResponseBody> {
    #[derive(Serialize)]
    struct Body<'a> {
        message: &'a str,
        code: &'a str,
    }
    let mut res = json(refusal.status, &Body { message: &refusal.message, code: refusal.code });
    res.extensions_mut().insert(tus_core::error::ErrorCode(refusal.code));
    res.extensions_mut().insert(tus_core::handler::RefusalMessage(refusal.message.clone()));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_bounded_and_keeps_the_file_name_and_type() {
        let meta =
            tus_metadata("a b.png", "image/png", vec![("name".into(), "a b.png".into())], 1024).unwrap_or_default();
        assert_eq!(meta.get_str("filename"), Some("a b.png"));
        assert_eq!(meta.get_str("filetype"), Some("image/png"));
        assert_eq!(meta.get_str("name"), Some("a b.png"));
        let many = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(tus_metadata("f", "t/t", many, 1 << 20).is_err());
        assert!(tus_metadata("f", "t/t", vec![("bad key".into(), "v".into())], 1024).is_err());
        assert!(tus_metadata("f", "t/t", vec![("k".into(), "v".repeat(2000))], 1024).is_err());
    }

    #[test]
    fn segments_are_decoded() {
        assert_eq!(segments("/multipart/a%2Fb/3"), vec!["multipart", "a/b", "3"]);
        assert_eq!(segments(""), Vec::<String>::new());
    }
}
