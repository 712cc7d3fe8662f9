//! GET: downloading a finished upload, with ranges and conditional requests.
//!
//! Not part of tus 1.0, but what every tusd user expects. Uploaded bytes are untrusted: the
//! response never lets a browser render them as active content. `Content-Disposition` is
//! `inline` only for an allow-list of passive types, everything else is an attachment, and
//! `X-Content-Type-Options: nosniff` plus a sandboxing CSP are always sent.

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode, Uri};
use http_range_header::{EndPosition, StartPosition};

use super::Inner;
use super::hooks::Call;
use super::response::{ResponseBody, set_result_headers, tus_response};
use crate::derivative::DerivativeName;
use crate::error::TusError;
use crate::id::UploadId;
use crate::store::{UploadInfo, UploadState};

/// Types a browser may show inline: passive media and plain text.
const INLINE_TYPES: &[&str] =
    &["text/plain", "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"];

impl Inner {
    /// GET: the bytes of a finished upload.
    pub(super) async fn get(
        &self,
        id: &UploadId,
        headers: &HeaderMap,
        uri: &Uri,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let (info, length, signed_until) = self.servable(id, None, uri, call).await?;
        if let (Some(until), Some(presigner)) = (signed_until, self.store.capabilities().presign_get) {
            // Object stores serve the bytes themselves: send the client there, for no longer
            // than its signature allows.
            return Ok(redirect(&presigner.presign_get(id, self.presign_ttl(until)).await?));
        }
        let etag = format!("\"{}-{}\"", info.id, length);
        let mut res = tus_response(StatusCode::OK);
        let h = res.headers_mut();
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        set_content_headers(h, &info);
        set_result_headers(h, &info);

        if !if_match(headers, &etag) {
            return Err(TusError::PreconditionFailed);
        }
        if if_none_match(headers, &etag) {
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(res);
        }
        let range = match requested_range(headers, length, &etag) {
            RangeRequest::Whole => 0..length,
            RangeRequest::Partial(r) => {
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                let v = format!("bytes {}-{}/{}", r.start, r.end - 1, length);
                if let Ok(v) = HeaderValue::from_str(&v) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                r
            }
            RangeRequest::Unsatisfiable => {
                *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}")) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                return Ok(res);
            }
        };
        let len = range.end - range.start;
        let stream = self.store.read(id, range).await?;
        res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        *res.body_mut() = ResponseBody::stream(stream, len);
        Ok(res)
    }
}

impl Inner {
    /// GET of a derivative (`/files/<id>/thumbnails/256`, `/files/<id>/stripped`): served
    /// exactly when and to whom the original would be (a signature for the upload covers its
    /// derivatives); `404` until it exists.
    pub(super) async fn get_derivative(
        &self,
        id: &UploadId,
        name: DerivativeName,
        headers: &HeaderMap,
        uri: &Uri,
        head_only: bool,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let (info, _, signed_until) = self.servable(id, Some(name), uri, call).await?;
        let (Some(derivative), Some(store)) =
            (info.derivatives.iter().find(|d| d.name == name), self.store.capabilities().derivatives)
        else {
            return Err(TusError::NotFound);
        };
        // A HEAD is answered here: a presigned URL is signed for GET alone.
        if let (Some(until), Some(presigner), false) = (signed_until, self.store.capabilities().presign_get, head_only)
        {
            match presigner.presign_derivative(id, name, self.presign_ttl(until)).await {
                Ok(url) => return Ok(redirect(&url)),
                Err(crate::store::StoreError::NotSupported { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let etag = format!("\"{}-{}-{}\"", info.id, name.file_name(), derivative.size);
        let mut res = tus_response(StatusCode::OK);
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        let content_type =
            normalize_mime(&derivative.content_type).unwrap_or_else(|| "application/octet-stream".into());
        let disposition = if INLINE_TYPES.contains(&content_type.as_str()) { "inline" } else { "attachment" };
        if let Ok(v) = HeaderValue::from_str(&content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(disposition));
        set_untrusted_content_headers(h);
        if if_none_match(headers, &etag) {
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(res);
        }
        res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(derivative.size));
        if head_only {
            return Ok(res);
        }
        let stream = store.read_derivative(id, name).await?;
        *res.body_mut() = ResponseBody::stream(stream, derivative.size);
        Ok(res)
    }

    /// A finished upload that may be served to this request, its length, and until when its
    /// signature (if signing is on) allows it: the one decision for the original and its
    /// derivatives.
    async fn servable(
        &self,
        id: &UploadId,
        derivative: Option<DerivativeName>,
        uri: &Uri,
        call: &Call,
    ) -> Result<(UploadInfo, u64, Option<SystemTime>), TusError> {
        // With signing on, nothing is served without a valid signature for this very file.
        let signed_until = match &self.signer {
            Some(signer) => Some(verify_download(signer, id, derivative, uri.query()).map_err(TusError::Signature)?),
            None => None,
        };
        let info = self.load_info(id, call).await?;
        let Some(length) = info.length.filter(|_| info.is_complete()) else {
            return Err(TusError::NotFinished);
        };
        if let Some(state) = info.state.filter(|_| !info.state_allows_serving()) {
            return Err(TusError::NotServable(state));
        }
        // Partials are never inspected (their final is): with checks configured they are not
        // served, or a partial would be a way around them.
        if info.is_partial() && self.inspector.is_some() {
            return Err(TusError::NotServable(UploadState::Rejected));
        }
        Ok((info, length, signed_until))
    }

    /// How long a presigned URL may live for a signature valid `until`.
    fn presign_ttl(&self, until: SystemTime) -> std::time::Duration {
        let left = until.duration_since(SystemTime::now()).unwrap_or_default();
        left.min(self.config.max_presign_ttl)
    }
}

/// Checks a download's signature: for the upload itself, or for one of its derivatives (whose
/// own signature opens only it; the upload's opens them all).
pub(super) fn verify_download(
    signer: &crate::signing::UrlSigner,
    id: &UploadId,
    derivative: Option<DerivativeName>,
    query: Option<&str>,
) -> Result<SystemTime, crate::signing::SignatureError> {
    match derivative {
        None => signer.verify(id, query),
        Some(name) => signer.verify_derivative(id, name, query),
    }
}

/// A `307` to where the object store serves the bytes.
fn redirect(url: &str) -> Response<ResponseBody> {
    let mut res = tus_response(StatusCode::TEMPORARY_REDIRECT);
    if let Ok(v) = HeaderValue::from_str(url) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

enum RangeRequest {
    Whole,
    Partial(std::ops::Range<u64>),
    Unsatisfiable,
}

/// A single byte range is honoured; malformed or multi-range requests get the whole body,
/// which RFC 9110 allows, and so does a range whose `If-Range` validator does not match ours
/// (a date never does: downloads carry no `Last-Modified`). A suffix longer than the file
/// selects all of it (RFC 9110 §14.1.3).
fn requested_range(headers: &HeaderMap, length: u64, etag: &str) -> RangeRequest {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Whole;
    };
    if let Some(validator) = headers.get(header::IF_RANGE) {
        // A strong comparison: a weak tag never matches.
        if validator.as_bytes() != etag.as_bytes() {
            return RangeRequest::Whole;
        }
    }
    let parsed = match http_range_header::parse_range_header(value) {
        Ok(parsed) => parsed,
        // `bytes=-0` selects nothing.
        Err(http_range_header::RangeUnsatisfiableError::ZeroSuffix) => return RangeRequest::Unsatisfiable,
        Err(_) => return RangeRequest::Whole,
    };
    let [range] = parsed.ranges.as_slice() else { return RangeRequest::Whole };
    let start = match range.start {
        StartPosition::Index(i) => i,
        StartPosition::FromLast(0) => return RangeRequest::Unsatisfiable,
        StartPosition::FromLast(n) => length.saturating_sub(n),
    };
    let end = match range.end {
        EndPosition::Index(i) => i.saturating_add(1).min(length),
        EndPosition::LastByte => length,
    };
    if start >= end { RangeRequest::Unsatisfiable } else { RangeRequest::Partial(start..end) }
}

/// `If-Match` (RFC 9110 §13.1.1): absent, `*`, or one of its tags strongly equal to ours.
fn if_match(headers: &HeaderMap, etag: &str) -> bool {
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    values.filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim).any(|t| t == "*" || t == etag)
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn set_content_headers(h: &mut HeaderMap, info: &UploadInfo) {
    let mime = info.metadata.get_str("filetype").and_then(normalize_mime);
    let inline = mime
        .as_deref()
        .is_some_and(|m| INLINE_TYPES.contains(&m) || m.starts_with("audio/") || m.starts_with("video/"));
    let content_type = mime.unwrap_or_else(|| "application/octet-stream".to_owned());
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let mut disposition = if inline { "inline".to_owned() } else { "attachment".to_owned() };
    if let Some(name) = info.metadata.get_str("filename").filter(|n| !n.is_empty()) {
        disposition.push_str(&content_disposition_filename(name));
    }
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    set_untrusted_content_headers(h);
}

/// What every response carrying uploaded (or derived) bytes sends: no sniffing, no scripts.
fn set_untrusted_content_headers(h: &mut HeaderMap) {
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
}

/// `type/subtype` in lower case if `s` is a valid media type (parameters dropped).
fn normalize_mime(s: &str) -> Option<String> {
    let essence = s.split(';').next()?.trim();
    let (ty, sub) = essence.split_once('/')?;
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    (token(ty) && token(sub)).then(|| essence.to_ascii_lowercase())
}

/// `; filename="ascii fallback"; filename*=UTF-8''percent-encoded` (RFC 6266), immune to
/// quote, CR/LF and other header injection.
fn content_disposition_filename(name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_cannot_inject() {
        let d = content_disposition_filename("a\"b\r\nX-Evil: 1;ł.txt");
        assert!(HeaderValue::from_str(&d).is_ok());
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(d.starts_with("; filename=\"a_b__X-Evil: 1;_.txt\""), "{d}");
        assert!(d.ends_with("filename*=UTF-8''a%22b%0D%0AX-Evil%3A%201%3B%C5%82.txt"), "{d}");
    }

    fn range(value: &str, extra: &[(header::HeaderName, &str)]) -> Option<std::ops::Range<u64>> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        for (name, v) in extra {
            h.insert(name.clone(), HeaderValue::from_str(v).unwrap());
        }
        match requested_range(&h, 100, "\"e-100\"") {
            RangeRequest::Whole => Some(0..u64::MAX),
            RangeRequest::Partial(r) => Some(r),
            RangeRequest::Unsatisfiable => None,
        }
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range("bytes=10-19", &[]), Some(10..20));
        assert_eq!(range("bytes=90-", &[]), Some(90..100));
        assert_eq!(range("bytes=90-500", &[]), Some(90..100));
        assert_eq!(range("bytes=-10", &[]), Some(90..100));
        // A suffix longer than the file selects all of it.
        assert_eq!(range("bytes=-500", &[]), Some(0..100));
        assert_eq!(range("bytes=100-", &[]), None);
        assert_eq!(range("bytes=-0", &[]), None);
        // Several ranges, or nonsense: the whole file.
        assert_eq!(range("bytes=0-1,5-6", &[]), Some(0..u64::MAX));
        assert_eq!(range("pages=1", &[]), Some(0..u64::MAX));
        // If-Range: only our exact, strong validator keeps the range.
        assert_eq!(range("bytes=0-9", &[(header::IF_RANGE, "\"e-100\"")]), Some(0..10));
        assert_eq!(range("bytes=0-9", &[(header::IF_RANGE, "\"other\"")]), Some(0..u64::MAX));
        assert_eq!(range("bytes=0-9", &[(header::IF_RANGE, "W/\"e-100\"")]), Some(0..u64::MAX));
        assert_eq!(range("bytes=0-9", &[(header::IF_RANGE, "Wed, 21 Oct 2015 07:28:00 GMT")]), Some(0..u64::MAX));
    }

    #[test]
    fn if_match_is_a_strong_comparison() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
            if_match(&h, "\"e-1\"")
        };
        assert!(if_match(&HeaderMap::new(), "\"e-1\""));
        assert!(with("*") && with("\"e-1\"") && with("\"x\", \"e-1\""));
        assert!(!with("\"x\"") && !with("W/\"e-1\""));
    }

    #[test]
    fn mime_types_are_validated() {
        assert_eq!(normalize_mime("Image/PNG").as_deref(), Some("image/png"));
        assert_eq!(normalize_mime("text/plain; charset=utf-8").as_deref(), Some("text/plain"));
        for bad in ["", "png", "text/", "/x", "a b/c", "text/ht ml"] {
            assert_eq!(normalize_mime(bad), None, "{bad:?}");
        }
    }
}
