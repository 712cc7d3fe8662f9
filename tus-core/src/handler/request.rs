//! Reading the request itself, the same for every method and both dialects: which method it
//! stands for, its framing, version, content type, length and metadata.

use http::header::{self, HeaderMap};
use http::{Method, Request};
use http_body::Body as _;

use super::RequestBody;
use crate::digest::Digest;
use crate::error::TusError;
use crate::headers::{self, Metadata, TusResumable, names};

pub(super) fn cors_request_headers(headers: &HeaderMap) -> HeaderMap {
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
pub(super) fn effective_method(req: &Request<RequestBody>) -> Method {
    let overridden =
        req.headers().get(names::X_HTTP_METHOD_OVERRIDE).and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    match overridden {
        Some(m) if req.method() == Method::POST => m,
        _ => req.method().clone(),
    }
}

/// How the request's body is framed, checked before anything reads it: `chunked` is the only
/// transfer coding we decode, so any other would have its still-coded bytes stored as the
/// upload (`501`, RFC 9112 §6.1); `chunked` twice, or two `Host` lines, are malformed (`400`).
pub(super) fn check_framing(headers: &HeaderMap) -> Result<(), TusError> {
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

pub(super) fn check_version(headers: &HeaderMap) -> Result<(), TusError> {
    match headers::get::<TusResumable>(headers) {
        Ok(Some(v)) if v.is_supported() => Ok(()),
        _ => Err(TusError::UnsupportedVersion),
    }
}

/// Parses `Upload-Metadata` under the size limit.
pub(super) fn parse_metadata(headers: &HeaderMap, max: usize) -> Result<Metadata, TusError> {
    if headers.get(names::UPLOAD_METADATA).is_some_and(|v| v.len() > max) {
        return Err(TusError::MetadataTooLarge);
    }
    Ok(headers::get::<Metadata>(headers)?.unwrap_or_default())
}

/// The only content type a PATCH body may have.
pub(crate) const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// 415 unless the body is `application/offset+octet-stream` (parameters ignored).
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), TusError> {
    if content_type_is(headers, OFFSET_OCTET_STREAM) { Ok(()) } else { Err(TusError::InvalidContentType) }
}

/// Whether the body's media type (parameters ignored) is `expected`.
pub(super) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|t| t.eq_ignore_ascii_case(expected))
}

/// `Content-Length`, if present and valid.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(headers::parse_u64)
}

/// Whether a request carries a body: a positive `Content-Length`, or none and a body that is
/// not known to be empty (chunked, HTTP/2 data frames).
pub(super) fn has_body(headers: &HeaderMap, body: &RequestBody) -> bool {
    match content_length(headers) {
        Some(n) => n > 0,
        None => !body.is_end_stream(),
    }
}

pub(super) fn announces_checksum_trailer(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case(names::UPLOAD_CHECKSUM.as_str()))
}

/// The whole-file digests a creation declares: the known algorithms of `Repr-Digest`, and the
/// `checksum` metadata key (`<alg> <base64>`). A malformed field or value is `400`; two
/// different values for one algorithm are too (no upload could match both).
pub(super) fn declared_digests(headers: &HeaderMap, metadata: &Metadata) -> Result<Vec<Digest>, TusError> {
    let lines = headers.get_all(names::REPR_DIGEST);
    let mut declared = if lines.iter().next().is_some() {
        crate::digest::parse_digest_field(lines.iter()).map_err(TusError::InvalidDigest)?
    } else {
        Vec::new()
    };
    if let Some(value) = metadata.get(crate::digest::METADATA_KEY) {
        declared.push(crate::digest::parse_metadata_digest(value).map_err(TusError::InvalidDigest)?);
    }
    let mut unique: Vec<Digest> = Vec::with_capacity(declared.len());
    for digest in declared {
        match unique.iter().find(|d| d.algorithm == digest.algorithm) {
            Some(same) if same.value == digest.value => {}
            Some(_) => return Err(TusError::InvalidDigest(crate::digest::DigestError::Conflict)),
            None => unique.push(digest),
        }
    }
    Ok(unique)
}
