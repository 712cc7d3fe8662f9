//! The IETF "Resumable Uploads for HTTP" draft (draft-ietf-httpbis-resumable-upload), interop
//! versions 3 to 9 (drafts -01 to -12), served side by side with tus 1.0 on the same endpoint
//! and stores: a request carrying `Upload-Draft-Interop-Version: <n>` is handled as draft `n`.
//!
//! What differs between versions:
//!
//! | interop | draft | differences handled here |
//! |---|---|---|
//! | 3 | -01 | `Upload-Incomplete` (inverted) instead of `Upload-Complete` |
//! | 4, 5 | -02, -03 | `Upload-Complete`; any PATCH content type |
//! | 6 | -04, -05 | PATCH needs `application/partial-upload`; problem details; `Upload-Limit` `expires` |
//! | 7, 8 | -06 … -11 | `Upload-Limit` `max-age`; OPTIONS carries `Accept-Patch` |
//! | 9 | -12 | no `Accept-Patch`; `Upload-Complete: ?0` on every refusal of a creation or append (it now says the protocol, not the target resource, answered); `GET` is offset retrieval; no *completed-upload* problem (a `409` or an inconsistent length instead); a `413` carries `Upload-Limit` |
//!
//! Interop 9's `GET` answers as `HEAD` does; the draft asks nothing of its content, and a
//! finished upload's bytes come along where the download path would serve them to the request.
//! Its `min-size` (a threshold for offering resumability) and "empty creations are not held to
//! `min-append-size`" need nothing here: we announce `min-size=0` and no append sizes.
//!
//! Offset retrieval answers `204` (required up to interop 4, allowed after), unless a `GET`
//! brings the bytes (the download's `200`/`206`). The interim `104 Upload Resumption
//! Supported` is **not** sent: hyper's server API has no way to emit an informational
//! response other than `100 Continue`. Clients therefore learn the upload URL from the final
//! `201` response; a client whose creation request is cut off before that cannot resume it
//! and starts over (tus-js-client's draft modes create with an empty body first, so they are
//! unaffected).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};

use super::RequestBody;
use super::append::LengthClaim;
use super::hooks::Call;
use super::request::{content_length, content_type_is, has_body};
use super::response::{ErrorBody, ResponseBody, apply_hook_response, render_error, tus_response};
use super::{Inner, Target};
use crate::error::TusError;
use crate::headers::{self, HeaderError, Metadata, names, parse_sf_bool, parse_sf_uint};
use crate::id::UploadId;
use crate::store::{NewUpload, UploadInfo};

/// `Accept-Patch` (RFC 5789), which interop 8 requires in OPTIONS responses and 9 no longer
/// does (on the creation URL it would claim PATCH is allowed there).
const ACCEPT_PATCH: header::HeaderName = header::HeaderName::from_static("accept-patch");

/// The media type of an append's body from interop version 6 on.
const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// The draft a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Draft(u64);

impl Draft {
    /// The oldest and newest supported interop versions.
    pub(crate) const SUPPORTED: std::ops::RangeInclusive<u64> = 3..=9;

    /// The draft named by `Upload-Draft-Interop-Version`, if it is one we speak.
    /// A request naming the version on two lines is refused (`400`): it is no valid Item.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Option<Draft>, TusError> {
        let name = names::UPLOAD_DRAFT_INTEROP_VERSION;
        if headers.get_all(&name).iter().nth(1).is_some() {
            return Err(invalid(&name));
        }
        let version = headers.get(&name).and_then(parse_sf_uint);
        Ok(version.filter(|v| Self::SUPPORTED.contains(v)).map(Draft))
    }

    /// Whether the request says it carries the upload's last byte (required).
    fn complete(self, headers: &HeaderMap) -> Result<bool, TusError> {
        let (name, inverted) =
            if self.0 == 3 { (names::UPLOAD_INCOMPLETE, true) } else { (names::UPLOAD_COMPLETE, false) };
        let value = headers::get_item(headers, &name, parse_sf_bool)?.ok_or_else(|| invalid(&name))?;
        Ok(value != inverted)
    }

    fn set_complete(self, headers: &mut HeaderMap, complete: bool) {
        let (name, value) =
            if self.0 == 3 { (names::UPLOAD_INCOMPLETE, !complete) } else { (names::UPLOAD_COMPLETE, complete) };
        headers.insert(name, HeaderValue::from_static(if value { "?1" } else { "?0" }));
    }

    fn stamp(self, res: &mut Response<ResponseBody>) {
        res.headers_mut().insert(names::UPLOAD_DRAFT_INTEROP_VERSION, HeaderValue::from(self.0));
    }

    /// How errors are written: problem details from interop 6 on, plain text before.
    fn error_body(self) -> ErrorBody {
        if self.0 >= 6 { ErrorBody::Problem } else { ErrorBody::Text }
    }

    /// Draft -12 (interop 9) on: `Upload-Complete` says who answered, `GET` is offset
    /// retrieval, no *completed-upload* problem type, limit refusals carry `Upload-Limit`.
    fn since_12(self) -> bool {
        self.0 >= 9
    }
}

fn invalid(name: &header::HeaderName) -> TusError {
    TusError::InvalidHeader(HeaderError::Invalid(name.clone()))
}

impl Inner {
    /// Handles a request that speaks interop version `draft`.
    pub(super) async fn ietf(
        &self,
        draft: Draft,
        method: &Method,
        target: Target,
        req: Request<RequestBody>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let appended = match (method, &target) {
            (&Method::POST, Target::Collection) => Some(None),
            (&Method::PATCH, Target::Upload(id)) => Some(Some(id.clone())),
            _ => None,
        };
        let result = match (method, target) {
            (&Method::OPTIONS, _) => Ok(self.ietf_options(draft)),
            (&Method::POST, Target::Collection) => self.ietf_create(draft, req, call).await,
            (&Method::HEAD, Target::Upload(id)) => self.ietf_head(draft, &id, call).await,
            (&Method::PATCH, Target::Upload(id)) => self.ietf_append(draft, &id, req, call).await,
            (&Method::DELETE, Target::Upload(id)) if self.termination().is_some() => self.delete(&id, call).await,
            (&Method::GET, Target::Upload(id)) if draft.since_12() => {
                self.ietf_get(draft, &id, req.headers(), req.uri(), call).await
            }
            (&Method::GET, Target::Upload(id)) if self.config.download => {
                self.get(&id, req.headers(), req.uri(), call).await
            }
            _ => Err(TusError::MethodNotAllowed),
        };
        let mut res = result.unwrap_or_else(|e| render_error(&e, method, draft.error_body()));
        if let Some(upload) = appended {
            self.protocol_answer(draft, &mut res, upload.as_ref()).await;
        }
        draft.stamp(&mut res);
        Ok(res)
    }

    /// Interop 9: a creation or append the protocol refused says `Upload-Complete: ?0` (a
    /// success already says where the upload stands), and a `413` carries the upload's limits.
    async fn protocol_answer(&self, draft: Draft, res: &mut Response<ResponseBody>, upload: Option<&UploadId>) {
        if !draft.since_12() {
            return;
        }
        if !res.headers().contains_key(names::UPLOAD_COMPLETE) {
            draft.set_complete(res.headers_mut(), false);
        }
        if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !res.headers().contains_key(names::UPLOAD_LIMIT) {
            // The upload as it stands now (its lifetime moved with whatever was stored).
            let info = match upload {
                Some(id) => self.store.info(id).await.ok(),
                None => None,
            };
            res.headers_mut().insert(names::UPLOAD_LIMIT, self.upload_limit(draft, info.as_ref()));
        }
    }

    /// `Upload-Limit` for `draft`: `min-size=0`, `max-size` if there is a maximum, and the
    /// remaining lifetime of `info` (or the full period) when uploads expire.
    fn upload_limit(&self, draft: Draft, info: Option<&UploadInfo>) -> HeaderValue {
        let mut parts = vec!["min-size=0".to_owned()];
        if let Some(max) = self.config.max_size {
            parts.push(format!("max-size={max}"));
        }
        let age = match info {
            Some(info) => {
                self.expires_at(info).map(|at| at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
            }
            None => self.expiration(),
        };
        if let Some(age) = age {
            let key = if draft.0 >= 7 { "max-age" } else { "expires" };
            parts.push(format!("{key}={}", age.as_secs()));
        }
        HeaderValue::from_str(&parts.join(", ")).unwrap_or_else(|_| HeaderValue::from_static("min-size=0"))
    }

    fn ietf_options(&self, draft: Draft) -> Response<ResponseBody> {
        let mut res = self.options();
        if !draft.since_12() {
            res.headers_mut().insert(ACCEPT_PATCH, HeaderValue::from_static(PARTIAL_UPLOAD));
        }
        res.headers_mut().insert(names::UPLOAD_LIMIT, self.upload_limit(draft, None));
        res
    }

    /// Offset retrieval.
    async fn ietf_head(&self, draft: Draft, id: &UploadId, call: &Call) -> Result<Response<ResponseBody>, TusError> {
        let info = self.retrieve_offset(id, call).await?;
        let mut res = tus_response(StatusCode::NO_CONTENT);
        self.describe_retrieved(draft, &mut res, &info);
        Ok(res)
    }

    /// Offset retrieval by `GET` (interop 9 on): `HEAD`'s answer, with a finished upload's
    /// bytes where the download path serves them to this request itself (not where downloads
    /// are off, unsigned, unservable, or a presigned redirect that would lose these fields).
    async fn ietf_get(
        &self,
        draft: Draft,
        id: &UploadId,
        headers: &HeaderMap,
        uri: &Uri,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let info = self.retrieve_offset(id, call).await?;
        let download = if info.is_complete() && self.config.download {
            match self.get(id, headers, uri, call).await {
                Ok(res) if res.status().is_redirection() && res.status() != StatusCode::NOT_MODIFIED => None,
                Ok(res) => Some(res),
                Err(TusError::Signature(_) | TusError::NotServable(_) | TusError::NotFinished) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let mut res = download.unwrap_or_else(|| tus_response(StatusCode::NO_CONTENT));
        self.describe_retrieved(draft, &mut res, &info);
        Ok(res)
    }

    /// The upload as offset retrieval reports it.
    async fn retrieve_offset(&self, id: &UploadId, call: &Call) -> Result<UploadInfo, TusError> {
        // As for tus: a HEAD stops a stale request still writing, so the offset is final. Only
        // a principal's request may ask the upload's holder to let go, never a download by
        // signed URL.
        let info = self.upload_info(id, call).await?;
        if call.signed.is_none() && self.stop_stalled_append(id).await {
            return self.load_info(id, call).await;
        }
        self.settle_info(info, call).await
    }

    fn describe_retrieved(&self, draft: Draft, res: &mut Response<ResponseBody>, info: &UploadInfo) {
        self.describe_upload(draft, res, info);
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        super::response::set_result_headers(res.headers_mut(), info);
    }

    fn describe_upload(&self, draft: Draft, res: &mut Response<ResponseBody>, info: &UploadInfo) {
        let h = res.headers_mut();
        h.insert(names::UPLOAD_OFFSET, HeaderValue::from(info.offset));
        if let Some(len) = info.length {
            h.insert(names::UPLOAD_LENGTH, HeaderValue::from(len));
        }
        h.insert(names::UPLOAD_LIMIT, self.upload_limit(draft, Some(info)));
        draft.set_complete(h, info.is_complete());
    }

    /// Upload creation: any POST to the endpoint with `Upload-Complete`.
    async fn ietf_create(
        &self,
        draft: Draft,
        req: Request<RequestBody>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let h = req.headers();
        let complete = draft.complete(h)?;
        let declared = headers::get_item(h, &names::UPLOAD_LENGTH, parse_sf_uint)?;
        let length = match (complete, content_length(h), declared) {
            (true, Some(cl), Some(l)) if cl != l => return Err(TusError::InvalidLength),
            (true, Some(cl), _) => Some(cl),
            (_, _, declared) => declared,
        };
        let upload = NewUpload::new(UploadId::random(), length)
            .with_metadata(representation_metadata(h))
            .with_owner(call.principal.clone());
        let host = self.request_origin(&req);
        let (parts, body) = req.into_parts();
        let claim = LengthClaim { declared: None, ends_upload: complete };
        let created = match self.create_upload(upload, claim, &parts.headers, Some(body), call).await {
            Ok(created) => created,
            Err(e @ TusError::SizeExceeded) => {
                let mut res = render_error(&e, &Method::POST, draft.error_body());
                res.headers_mut().insert(names::UPLOAD_LIMIT, self.upload_limit(draft, None));
                return Ok(res);
            }
            Err(e) => return Err(e),
        };
        let location = self.upload_url(host.as_deref(), &created.info.id);
        // (The draft's creation always passes a body along, possibly empty.)
        let mut res = match created.appended.unwrap_or_else(|| Ok(created.info.clone())) {
            Ok(written) => {
                let mut res = tus_response(StatusCode::CREATED);
                self.describe_upload(draft, &mut res, &written);
                apply_hook_response(&mut res, &created.pre_create);
                apply_hook_response(&mut res, &created.finish);
                res
            }
            Err(e) => {
                // The upload exists: tell the client where, so it can resume.
                let mut res = render_error(&e, &parts.method, draft.error_body());
                draft.set_complete(res.headers_mut(), false);
                res
            }
        };
        if let Ok(v) = HeaderValue::from_str(&location) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Ok(res)
    }

    /// Upload append.
    async fn ietf_append(
        &self,
        draft: Draft,
        id: &UploadId,
        req: Request<RequestBody>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let h = req.headers();
        if draft.0 >= 6 && !content_type_is(h, PARTIAL_UPLOAD) {
            return Err(TusError::InvalidContentType);
        }
        let offset = headers::get_item(h, &names::UPLOAD_OFFSET, parse_sf_uint)?
            .ok_or_else(|| invalid(&names::UPLOAD_OFFSET))?;
        let complete = draft.complete(h)?;
        let declared = headers::get_item(h, &names::UPLOAD_LENGTH, parse_sf_uint)?;
        let body_expected = has_body(h, req.body());

        self.check_access(id, call).await?;
        let lock = self.lock(id).await?;
        let info = self.upload_info(id, call).await?;
        if self.is_expired(&info) {
            return Err(TusError::Gone);
        }
        if info.is_final() {
            return Err(TusError::ModifyFinal);
        }
        if info.is_complete() {
            if !body_expected && complete && offset == info.offset {
                // A retried final append: the upload already has it all.
                let mut res = tus_response(StatusCode::NO_CONTENT);
                self.describe_upload(draft, &mut res, &info);
                return Ok(res);
            }
            // Draft -12 dropped the completed-upload problem type: any other append to a
            // completed upload is at the wrong offset (below), or inconsistent with its length.
            if !draft.since_12() {
                return Err(TusError::UploadCompleted);
            }
            if offset == info.offset {
                return Err(TusError::InvalidLength);
            }
        }
        if offset != info.offset {
            let error = TusError::MismatchedOffset { current: info.offset, provided: offset };
            let mut res = render_error(&error, &Method::PATCH, draft.error_body());
            draft.set_complete(res.headers_mut(), false);
            return Ok(res);
        }
        // The length this request tells, if it does: `Upload-Length`, or the end that
        // `Upload-Complete: ?1` with a `Content-Length` implies. They must agree.
        let implied = match (complete, content_length(h)) {
            (true, Some(cl)) => Some(offset.checked_add(cl).ok_or(TusError::SizeExceeded)?),
            _ => None,
        };
        let declared = match (implied, declared) {
            (Some(a), Some(b)) if a != b => return Err(TusError::InvalidLength),
            (a, b) => a.or(b),
        };
        let (parts, body) = req.into_parts();
        let claim = LengthClaim { declared, ends_upload: complete };
        match self.append_body(info, claim, &parts.headers, body, lock, call).await {
            Ok((written, finish)) => {
                let mut res = tus_response(StatusCode::NO_CONTENT);
                self.describe_upload(draft, &mut res, &written);
                apply_hook_response(&mut res, &finish);
                Ok(res)
            }
            Err(e) => {
                let mut res = render_error(&e, &parts.method, draft.error_body());
                draft.set_complete(res.headers_mut(), false);
                Ok(res)
            }
        }
    }
}

/// `Content-Type` and `Content-Disposition` of a creation request describe the uploaded
/// representation; they become the `filetype` and `filename` metadata tus clients use.
fn representation_metadata(headers: &HeaderMap) -> Metadata {
    let mut metadata = Metadata::default();
    if let Some(t) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
        && !t.starts_with(PARTIAL_UPLOAD)
    {
        metadata.insert("filetype", t.as_bytes().to_vec());
    }
    let disposition = headers.get(header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let filename = disposition
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("filename="))
        .map(|f| f.trim_matches('"'))
        .find(|f| !f.is_empty());
    if let Some(name) = filename {
        metadata.insert("filename", name.as_bytes().to_vec());
    }
    metadata
}
