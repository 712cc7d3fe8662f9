//! Post-upload processing: checking finished uploads before they may be served.
//!
//! When a [`TusService`](crate::TusService) has an [`Inspect`] and its store can record states
//! ([`RecordState`](crate::store::RecordState)), every finished upload (partials excepted) is
//! marked `processing` before the request that completed it is answered, then inspected in the
//! background. The verdict becomes its state: `clean` (servable), `rejected`, or `quarantined`
//! (moved out of the servable area). An inspector that fails (a scanner that is down) is retried
//! with backoff; the upload stays unservable until a verdict exists. Uploads still `processing`
//! after a restart are picked up again by
//! [`TusService::resume_processing`](crate::TusService::resume_processing).

use std::fmt;

use async_trait::async_trait;

use crate::store::{Store, UploadInfo};

/// The outcome of inspecting a finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong found.
    Clean,
    /// Not acceptable content (wrong or disallowed type); the reason is logged.
    Rejected(String),
    /// Malware found; the signature name is logged.
    Infected(String),
}

/// Inspection could not reach a verdict; it will be retried.
#[derive(Debug, thiserror::Error)]
#[error("inspection failed: {0}")]
pub struct InspectError(pub Box<dyn std::error::Error + Send + Sync>);

/// Checks a finished upload.
#[async_trait]
pub trait Inspect: Send + Sync + fmt::Debug + 'static {
    /// Reads what it needs through `store` (streaming; never the whole upload in memory).
    async fn inspect(&self, store: &dyn Store, info: &UploadInfo) -> Result<Verdict, InspectError>;
}

/// Runs inspectors in order; the first verdict that is not clean wins.
#[derive(Debug, Default)]
pub struct InspectChain(Vec<Box<dyn Inspect>>);

impl InspectChain {
    /// An empty chain (everything is clean).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an inspector at the end.
    pub fn then(mut self, inspector: impl Inspect) -> Self {
        self.0.push(Box::new(inspector));
        self
    }

    /// Whether no inspector was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[async_trait]
impl Inspect for InspectChain {
    async fn inspect(&self, store: &dyn Store, info: &UploadInfo) -> Result<Verdict, InspectError> {
        for inspector in &self.0 {
            let verdict = inspector.inspect(store, info).await?;
            if verdict != Verdict::Clean {
                return Ok(verdict);
            }
        }
        Ok(Verdict::Clean)
    }
}

/// Whether the MIME type `mime` matches one of `patterns` (`type/subtype` or `type/*`, lower
/// case): the one reading of a type allow-list, for checks after an upload and for signers
/// that refuse a declared type up front.
pub fn mime_matches(patterns: &[String], mime: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix("/*") {
        Some(prefix) => mime.split('/').next() == Some(prefix),
        None => p == mime,
    })
}
