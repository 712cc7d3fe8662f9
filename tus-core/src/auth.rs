//! Who may upload, and whose upload it is.
//!
//! An [`Authorize`] implementation turns a request's parts into the [`Principal`] it acts for,
//! or refuses it. The handler consults it on every request of every method and both dialects
//! before any store call, except `OPTIONS` (browsers send CORS preflights without credentials)
//! and downloads carrying a valid signed URL (the signature is the authorization). The
//! principal's `subject` is stored with every upload it creates; requests of anyone else for
//! that upload are answered exactly as for an upload that does not exist (`404`).
//!
//! ```
//! use tus_core::auth::{Authorize, Principal, Unauthorized};
//!
//! /// Trusts an `X-User` header set by a proxy in front of the service.
//! #[derive(Debug)]
//! struct FromProxy;
//!
//! #[async_trait::async_trait]
//! impl Authorize for FromProxy {
//!     async fn authorize(&self, request: &http::request::Parts) -> Result<Principal, Unauthorized> {
//!         match request.headers.get("x-user").and_then(|v| v.to_str().ok()) {
//!             Some(user) => Ok(Principal::new(user)),
//!             None => Err(Unauthorized::new("missing", "Bearer")),
//!         }
//!     }
//! }
//! let service = tus_core::TusService::builder(tus_core::MemoryStore::new()).authorizer(FromProxy).build();
//! # let _ = service;
//! ```

use std::fmt;

use async_trait::async_trait;

/// The user a request acts for, as an [`Authorize`] implementation established it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Principal {
    /// The owner ID stored with every upload this principal creates (a JWT's `sub`).
    pub subject: String,
    /// The largest upload this principal may create, narrowing the service's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// MIME patterns this principal's finished uploads must sniff as, narrowing the
    /// service's allow-list (kept with each upload for the post-upload checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_types: Option<Vec<String>>,
}

impl Principal {
    /// A principal with no limits of its own.
    pub fn new(subject: impl Into<String>) -> Self {
        Principal { subject: subject.into(), ..Principal::default() }
    }

    /// Narrows the largest upload.
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Narrows the allowed types.
    pub fn with_allowed_types(mut self, patterns: Vec<String>) -> Self {
        self.allowed_types = Some(patterns);
        self
    }
}

/// Why a request may not act at all: answered `401` with a `WWW-Authenticate` challenge and a
/// short reason, never more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unauthorized: {reason}")]
pub struct Unauthorized {
    /// A short reason from a fixed set the authorizer chooses (`missing`, `malformed`,
    /// `expired`, ...): shown to the client and used as a metric label, so never built from
    /// request data.
    pub reason: &'static str,
    /// The `WWW-Authenticate` value, e.g. `Bearer error="invalid_token"`.
    pub challenge: String,
}

impl Unauthorized {
    /// A refusal for `reason` with the challenge `challenge`.
    pub fn new(reason: &'static str, challenge: impl Into<String>) -> Self {
        Unauthorized { reason, challenge: challenge.into() }
    }
}

/// Decides who a request acts for.
#[async_trait]
pub trait Authorize: Send + Sync + fmt::Debug + 'static {
    /// The principal `request` acts for, or why it may not act at all. Must not fail for
    /// reasons of its own (a key server being down) in a way that lets a request through.
    async fn authorize(&self, request: &http::request::Parts) -> Result<Principal, Unauthorized>;
}
