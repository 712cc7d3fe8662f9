//! Response bodies and the rendering of errors.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Frame, SizeHint};

use crate::error::TusError;
use crate::headers::{TUS_VERSION, names};
use crate::hooks::HookHttpResponse;
use crate::store::ByteStream;

/// Errors a response body can end with (a store failing mid-download).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the tus service sends.
pub struct ResponseBody(Kind);

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Stream { stream: ByteStream, remaining: u64 },
}

impl ResponseBody {
    /// No body.
    pub fn empty() -> Self {
        ResponseBody(Kind::Empty)
    }

    /// A body held in memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody(Kind::Full(Some(bytes.into())))
    }

    /// A body of exactly `len` bytes streamed from a store.
    pub fn stream(stream: ByteStream, len: u64) -> Self {
        ResponseBody(Kind::Stream { stream, remaining: len })
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseBody")
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream { stream, remaining } => match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    *remaining = remaining.saturating_sub(chunk.len() as u64);
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) if *remaining > 0 => {
                    Poll::Ready(Some(Err("stored upload shorter than its length".into())))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

/// A response with `Tus-Resumable` set, as every tus response must have.
pub(crate) fn tus_response(status: StatusCode) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = status;
    res.headers_mut().insert(names::TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    res
}

/// How an error's body is written: tus 1.0's short text, or the IETF draft's RFC 9457
/// problem details (from interop version 6 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorBody {
    /// `ERR_CODE: message` as text.
    Text,
    /// `application/problem+json` with the draft's problem type.
    Problem,
}

/// Renders `error` as tus 1.0 does.
pub(crate) fn error_response(error: &TusError, method: &Method) -> Response<ResponseBody> {
    render_error(error, method, ErrorBody::Text)
}

/// Renders `error`: status from the error table, a body in the dialect's form (none for HEAD),
/// and the headers some errors need. Every error response of both dialects comes from here,
/// so each carries its [`crate::error::ErrorCode`] for metrics.
pub(crate) fn render_error(error: &TusError, method: &Method, form: ErrorBody) -> Response<ResponseBody> {
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(code = error.code(), error = %error, "request failed");
    } else {
        tracing::debug!(code = error.code(), error = %error, "request rejected");
    }
    let mut res = tus_response(status);
    res.extensions_mut().insert(crate::error::ErrorCode(error.code()));
    let headers = res.headers_mut();
    match error {
        TusError::UnsupportedVersion => {
            headers.insert(names::TUS_VERSION, HeaderValue::from_static(TUS_VERSION));
        }
        TusError::MismatchedOffset { current, .. } => {
            headers.insert(names::UPLOAD_OFFSET, HeaderValue::from(*current));
        }
        TusError::ReadTimeout => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        TusError::DigestMismatch { stored: Some(digest), .. } => {
            headers.insert(names::REPR_DIGEST, digest.clone());
        }
        TusError::Unauthorized(why) => {
            let challenge = HeaderValue::from_str(&why.challenge).unwrap_or(HeaderValue::from_static("Bearer"));
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        _ => {}
    }
    if method != Method::HEAD {
        let (content_type, body) = match form {
            ErrorBody::Text => ("text/plain; charset=utf-8", format!("{}: {}\n", error.code(), error.message())),
            ErrorBody::Problem => ("application/problem+json", problem_details(error)),
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        *res.body_mut() = ResponseBody::full(body);
    }
    if let TusError::UploadRejected(changes) | TusError::TerminationRejected(changes) = error {
        apply_hook_response(&mut res, changes);
    }
    res
}

/// Applies the parts of a hook's `HTTPResponse` that are set to `res`.
pub(crate) fn apply_hook_response(res: &mut Response<ResponseBody>, changes: &HookHttpResponse) {
    if let Ok(status) = StatusCode::from_u16(changes.status_code) {
        *res.status_mut() = status;
    }
    for (name, value) in &changes.header {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            res.headers_mut().insert(name, value);
        }
    }
    if !changes.body.is_empty() {
        res.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(changes.body.len()));
        *res.body_mut() = ResponseBody::full(changes.body.clone());
    }
}

/// The RFC 9457 body of `error`: its problem type, its message as title, and the offsets the
/// draft asks for on a mismatch.
fn problem_details(error: &TusError) -> String {
    let mut json = serde_json::Map::new();
    json.insert("type".into(), error.problem_type().into());
    json.insert("title".into(), error.message().into());
    json.insert("status".into(), error.status().as_u16().into());
    if let TusError::MismatchedOffset { current, provided } = error {
        json.insert("expected-offset".into(), (*current).into());
        json.insert("provided-offset".into(), (*provided).into());
    }
    serde_json::Value::Object(json).to_string()
}

/// What processing found, on `HEAD` and `GET` of both dialects: `Repr-Digest` of a finished
/// upload whose stored bytes have been hashed (see [`crate::digest`]), and `Upload-Derivatives`.
pub(super) fn set_result_headers(headers: &mut http::HeaderMap, info: &crate::store::UploadInfo) {
    if let Some(value) = crate::digest::repr_digest(&info.digests) {
        headers.insert(crate::headers::names::REPR_DIGEST, value);
    }
    // Derivatives are listed once they may be served, which is when the original may.
    if info.state_allows_serving() && !info.derivatives.is_empty() {
        let list: Vec<String> = info.derivatives.iter().map(|d| d.name.to_string()).collect();
        if let Ok(value) = http::HeaderValue::from_str(&list.join(", ")) {
            headers.insert(super::UPLOAD_DERIVATIVES, value);
        }
    }
}
