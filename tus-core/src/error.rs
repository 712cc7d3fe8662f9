//! Protocol errors and the one table that maps them to HTTP.

use http::StatusCode;

use crate::headers::HeaderError;
use crate::hooks::{HookError, HookHttpResponse};
use crate::signing::SignatureError;
use crate::store::StoreError;
use crate::store::UploadState;

/// Everything a tus request can fail with. [`TusError::status`], [`TusError::code`] and
/// [`TusError::message`] are the single mapping to HTTP; the handler renders every error
/// through them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TusError {
    /// `Tus-Resumable` missing or not `1.0.0`.
    #[error("unsupported tus version")]
    UnsupportedVersion,
    /// A malformed header value.
    #[error("invalid header")]
    InvalidHeader(#[from] HeaderError),
    /// PATCH without `Upload-Offset`.
    #[error("missing Upload-Offset")]
    MissingOffset,
    /// Creation without `Upload-Length` or `Upload-Defer-Length: 1`, or with both.
    #[error("exactly one of Upload-Length or Upload-Defer-Length: 1 is required")]
    InvalidLengthHeaders,
    /// A PATCH tried to change an already-known length, or declared one below the offset.
    #[error("invalid Upload-Length")]
    InvalidLength,
    /// `Upload-Metadata` larger than the configured limit.
    #[error("Upload-Metadata too large")]
    MetadataTooLarge,
    /// `Upload-Concat` names something that is not a usable partial upload.
    #[error("invalid Upload-Concat")]
    InvalidConcat,
    /// PATCH body with a content type other than `application/offset+octet-stream`.
    #[error("Content-Type must be application/offset+octet-stream")]
    InvalidContentType,
    /// `Upload-Offset` differs from the stored offset.
    #[error("Upload-Offset does not match the upload's offset")]
    MismatchedOffset {
        /// The upload's real offset, sent back in `Upload-Offset`.
        current: u64,
        /// The offset the request named.
        provided: u64,
    },
    /// An append to an upload that already has all its bytes (IETF draft).
    #[error("upload is already complete")]
    UploadCompleted,
    /// The body runs past `Upload-Length`, or the length past the maximum size.
    #[error("upload size exceeded")]
    SizeExceeded,
    /// No such upload.
    #[error("upload not found")]
    NotFound,
    /// The upload was terminated or expired.
    #[error("upload gone")]
    Gone,
    /// PATCH (or a creation body) against a final upload.
    #[error("final uploads cannot be modified")]
    ModifyFinal,
    /// PATCH of an upload whose bytes arrive in the storage directly (not through tus).
    #[error("this upload's bytes are uploaded to the storage directly, not with PATCH")]
    NotAppendable,
    /// The body did not match `Upload-Checksum`.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// A malformed `Repr-Digest`/`Content-Digest`, or `checksum` metadata.
    #[error("{0}")]
    InvalidDigest(crate::digest::DigestError),
    /// The stored file does not match the digest the client declared at creation; the upload
    /// is `rejected` and never served.
    #[error("the stored file does not match its declared {algorithm} digest")]
    DigestMismatch {
        /// The declared algorithm that did not match.
        algorithm: crate::checksum::ChecksumAlgorithm,
        /// `Repr-Digest` of the stored file, sent along so the client sees what arrived.
        stored: Option<http::HeaderValue>,
    },
    /// Another request holds the upload and did not let go in time.
    #[error("upload is locked by another request")]
    Locked,
    /// A newer request for the same upload (or shutdown) stopped this one; what arrived is kept.
    #[error("upload interrupted by a newer request")]
    Interrupted,
    /// The client stopped sending for longer than the read timeout; what arrived is kept.
    #[error("timed out reading the request body")]
    ReadTimeout,
    /// The body ended in an error (connection reset, malformed chunking); what arrived is kept.
    #[error("request body ended unexpectedly")]
    UnexpectedEof,
    /// GET of an upload that is not complete.
    #[error("upload is not finished")]
    NotFinished,
    /// The method is not served here.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request needs an extension this server does not offer.
    #[error("extension not supported")]
    NotImplemented,
    /// A `pre-create` hook refused the upload (status and body may come from the hook).
    #[error("upload rejected")]
    UploadRejected(HookHttpResponse),
    /// A `pre-terminate` hook refused the termination.
    #[error("termination rejected")]
    TerminationRejected(HookHttpResponse),
    /// A `post-receive` hook stopped the upload; it was terminated.
    #[error("upload stopped")]
    UploadStopped,
    /// A blocking hook failed; nothing was changed by the request.
    #[error("hook failed")]
    Hook(HookError),
    /// The upload is finished but not (yet, or ever) servable.
    #[error("upload is {}", .0.name())]
    NotServable(UploadState),
    /// A download without a valid signature while signing is required.
    #[error("{0}")]
    Signature(SignatureError),
    /// The store failed; logged in full, shown to the client as a generic 500.
    #[error("store error: {0}")]
    Store(StoreError),
    /// A download's `If-Match` names no tag of the upload.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A creation or length declaration would take its owner past a quota.
    #[error("{0}")]
    QuotaExceeded(crate::quota::QuotaExceeded),
    /// No acceptable credentials (see [`crate::auth`]): `401` with `WWW-Authenticate`.
    #[error("{0}")]
    Unauthorized(crate::auth::Unauthorized),
    /// A transfer coding other than `chunked` (the body would be stored still coded).
    #[error("transfer coding not supported; send the body unencoded or chunked")]
    UnsupportedTransferCoding,
    /// The request's framing is malformed (two `Host` lines, `chunked` twice).
    #[error("malformed request")]
    MalformedRequest,
    /// The server failed on its own (not the store, not the client): a generic 500.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// A response extension naming the [`TusError::code`] an error response was rendered from,
/// so middleware (metrics, access logs) can count errors by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// The tus "checksum mismatch" status.
pub const CHECKSUM_MISMATCH: u16 = 460;

impl TusError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        use TusError::*;
        let code = match self {
            UnsupportedVersion => 412,
            InvalidHeader(HeaderError::Invalid(_) | HeaderError::UnsupportedChecksumAlgorithm) => 400,
            MissingOffset | InvalidLengthHeaders | InvalidLength | MetadataTooLarge | InvalidConcat => 400,
            UploadCompleted => 400,
            InvalidContentType => 415,
            MismatchedOffset { .. } => 409,
            SizeExceeded | QuotaExceeded(_) => 413,
            NotFound => 404,
            Gone => 410,
            ModifyFinal | NotAppendable => 403,
            ChecksumMismatch | DigestMismatch { .. } => CHECKSUM_MISMATCH,
            InvalidDigest(_) => 400,
            Locked => 423,
            Interrupted | UnexpectedEof => 400,
            // 500 on purpose, as tusd does: clients retry on 5xx and resume.
            ReadTimeout => 500,
            NotFinished => 409,
            MethodNotAllowed => 405,
            NotImplemented | UnsupportedTransferCoding => 501,
            MalformedRequest => 400,
            Unauthorized(_) => 401,
            PreconditionFailed => 412,
            UploadRejected(_) | TerminationRejected(_) | UploadStopped => 400,
            Hook(_) => 500,
            NotServable(UploadState::Processing) => 409,
            NotServable(_) => 403,
            Signature(_) => 403,
            Store(_) | Internal(_) => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A stable machine-readable code (tusd's names where tusd has one).
    pub fn code(&self) -> &'static str {
        use TusError::*;
        match self {
            UnsupportedVersion => "ERR_UNSUPPORTED_VERSION",
            InvalidHeader(HeaderError::UnsupportedChecksumAlgorithm) => "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM",
            InvalidHeader(HeaderError::Invalid(_)) => "ERR_INVALID_HEADER",
            MissingOffset => "ERR_INVALID_OFFSET",
            InvalidLengthHeaders | InvalidLength => "ERR_INVALID_UPLOAD_LENGTH",
            MetadataTooLarge => "ERR_INVALID_METADATA",
            InvalidConcat => "ERR_INVALID_CONCAT",
            InvalidContentType => "ERR_INVALID_CONTENT_TYPE",
            MismatchedOffset { .. } => "ERR_MISMATCHED_OFFSET",
            UploadCompleted => "ERR_UPLOAD_COMPLETED",
            SizeExceeded => "ERR_UPLOAD_SIZE_EXCEEDED",
            QuotaExceeded(q) if q.quota == crate::quota::Quota::Bytes => "ERR_QUOTA_BYTES_EXCEEDED",
            QuotaExceeded(_) => "ERR_QUOTA_UPLOADS_EXCEEDED",
            NotFound => "ERR_UPLOAD_NOT_FOUND",
            Gone => "ERR_UPLOAD_GONE",
            ModifyFinal => "ERR_MODIFY_FINAL",
            NotAppendable => "ERR_UPLOAD_NOT_APPENDABLE",
            ChecksumMismatch => "ERR_CHECKSUM_MISMATCH",
            InvalidDigest(_) => "ERR_INVALID_DIGEST",
            DigestMismatch { .. } => "ERR_DIGEST_MISMATCH",
            Locked => "ERR_UPLOAD_LOCKED",
            Interrupted => "ERR_UPLOAD_INTERRUPTED",
            ReadTimeout => "ERR_READ_TIMEOUT",
            UnexpectedEof => "ERR_UNEXPECTED_EOF",
            NotFinished => "ERR_UPLOAD_NOT_FINISHED",
            MethodNotAllowed => "ERR_METHOD_NOT_ALLOWED",
            NotImplemented => "ERR_NOT_IMPLEMENTED",
            UnsupportedTransferCoding => "ERR_UNSUPPORTED_TRANSFER_CODING",
            MalformedRequest => "ERR_MALFORMED_REQUEST",
            Unauthorized(_) => "ERR_UNAUTHORIZED",
            PreconditionFailed => "ERR_PRECONDITION_FAILED",
            UploadRejected(_) => "ERR_UPLOAD_REJECTED",
            TerminationRejected(_) => "ERR_UPLOAD_TERMINATION_REJECTED",
            UploadStopped => "ERR_UPLOAD_STOPPED",
            Hook(_) => "ERR_HOOK_FAILED",
            NotServable(_) => "ERR_UPLOAD_NOT_SERVABLE",
            Signature(_) => "ERR_INVALID_SIGNATURE",
            Store(_) | Internal(_) => "ERR_INTERNAL_SERVER_ERROR",
        }
    }

    /// The IETF draft's problem type (RFC 9457 `type`) for errors the draft names; others are
    /// `about:blank`, described by their status and title alone.
    pub fn problem_type(&self) -> &'static str {
        match self {
            TusError::MismatchedOffset { .. } => {
                "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
            }
            TusError::InvalidLength => "https://iana.org/assignments/http-problem-types#inconsistent-upload-length",
            TusError::UploadCompleted => "https://iana.org/assignments/http-problem-types#completed-upload",
            _ => "about:blank",
        }
    }

    /// The short text sent as the response body. Internal details never leak.
    pub fn message(&self) -> String {
        match self {
            TusError::Store(_) | TusError::Internal(_) => "internal server error".to_owned(),
            TusError::Hook(_) => "a hook failed; nothing was changed".to_owned(),
            TusError::InvalidHeader(e) => e.to_string(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for TusError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => TusError::NotFound,
            StoreError::Gone => TusError::Gone,
            StoreError::NotSupported { .. } => TusError::NotImplemented,
            StoreError::NotAppendable(_) => TusError::NotAppendable,
            other => TusError::Store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_spec() {
        assert_eq!(TusError::UnsupportedVersion.status(), 412);
        assert_eq!(TusError::MismatchedOffset { current: 3, provided: 1 }.status(), 409);
        assert_eq!(TusError::InvalidContentType.status(), 415);
        assert_eq!(TusError::SizeExceeded.status(), 413);
        assert_eq!(TusError::ChecksumMismatch.status(), 460);
        assert_eq!(TusError::ModifyFinal.status(), 403);
        assert_eq!(TusError::from(StoreError::Gone).status(), 410);
        assert_eq!(TusError::from(HeaderError::UnsupportedChecksumAlgorithm).status(), 400);
        let internal = TusError::from(StoreError::Generic { store: "x", source: "disk on fire at /secret".into() });
        assert_eq!(internal.status(), 500);
        assert!(!internal.message().contains("secret"));
    }
}
