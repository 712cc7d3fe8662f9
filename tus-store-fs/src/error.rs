//! This backend's error type and its conversion into [`StoreError`].

use std::io;
use std::path::{Path, PathBuf};

use tus_core::store::StoreError;

/// Errors of this backend, converted into [`StoreError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("corrupt info file {path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("upload not found")]
    NotFound,
    #[error("upload gone")]
    Gone,
    #[error("upload already exists")]
    AlreadyExists,
    #[error("{0}")]
    Conflict(String),
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => StoreError::NotFound,
            Error::Gone => StoreError::Gone,
            Error::AlreadyExists => StoreError::AlreadyExists,
            Error::Conflict(msg) => StoreError::Conflict(msg),
            other => StoreError::Generic { store: "fs", source: Box::new(other) },
        }
    }
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}
