//! This crate's error type, converted into [`StoreError`] at the trait boundary.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tus_core::StoreError;

/// Errors of the S3 backend.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// An S3 request failed (after the SDK's bounded retries).
    #[error("S3 {op} {key}: {message}")]
    S3 { op: &'static str, key: String, code: Option<String>, status: Option<u16>, message: String },
    /// An S3 request took longer than its time limit.
    #[error("S3 {op} {key}: no answer within {secs} s")]
    Timeout { op: &'static str, key: String, secs: u64 },
    /// Reading a streamed object failed midway.
    #[error("reading S3 object {key}: {message}")]
    Body { key: String, message: String },
    #[error("corrupt info object {key}: {source}")]
    Json { key: String, source: serde_json::Error },
    #[error("staging file: {0}")]
    Io(#[from] std::io::Error),
    #[error("part upload task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("invalid S3 store configuration: {0}")]
    Config(String),
    #[error("upload not found")]
    NotFound,
    #[error("upload gone")]
    Gone,
    #[error("upload already exists")]
    AlreadyExists,
    #[error("{0}")]
    Conflict(String),
    /// A direct upload: its bytes go to S3 through presigned URLs, not through appends.
    #[error("upload {0} arrives in S3 directly")]
    NotAppendable(tus_core::UploadId),
    /// No room for another part buffer within the time limit (see `S3StoreBuilder::part_memory`).
    #[error("no part memory free within {secs} s")]
    Busy { secs: u64 },
}

impl Error {
    /// Wraps an SDK error, keeping the S3 error code and HTTP status for classification.
    pub(crate) fn s3<E, R>(op: &'static str, key: &str, err: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let code = err.code().map(str::to_owned);
        let status = err.raw_response().and_then(HttpStatus::status);
        let message = DisplayErrorContext(&err).to_string();
        Error::S3 { op, key: key.to_owned(), code, status, message }
    }

    /// Whether S3 said the key, bucket entry or multipart upload does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        match self {
            Error::S3 { code, status, .. } => {
                matches!(code.as_deref(), Some("NoSuchKey" | "NotFound" | "NoSuchUpload")) || *status == Some(404)
            }
            _ => false,
        }
    }

    /// Whether S3 said the multipart upload does not exist (aborted or completed).
    pub(crate) fn is_no_such_upload(&self) -> bool {
        matches!(self, Error::S3 { code: Some(code), .. } if code == "NoSuchUpload")
    }

    /// Whether a conditional write failed because the object exists.
    pub(crate) fn is_precondition_failed(&self) -> bool {
        match self {
            Error::S3 { code, status, .. } => code.as_deref() == Some("PreconditionFailed") || *status == Some(412),
            _ => false,
        }
    }
}

/// The HTTP status of a raw SDK response, if there is one.
pub(crate) trait HttpStatus {
    fn status(&self) -> Option<u16>;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => StoreError::NotFound,
            Error::Gone => StoreError::Gone,
            Error::AlreadyExists => StoreError::AlreadyExists,
            Error::Conflict(msg) => StoreError::Conflict(msg),
            Error::NotAppendable(id) => StoreError::NotAppendable(format!("upload {id} arrives in S3 directly")),
            other => StoreError::Generic { store: "s3", source: Box::new(other) },
        }
    }
}
