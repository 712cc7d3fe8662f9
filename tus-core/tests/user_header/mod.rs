//! The authorizer the in-process ownership and hook-payload tests share: the principal is
//! named in the request itself.

use async_trait::async_trait;
use tus_core::auth::{Authorize, Principal, Unauthorized};

/// `Authorization: User <name>`, and `User <name> max=<bytes>` for a principal with a limit.
#[derive(Debug)]
pub(crate) struct UserHeader;

#[async_trait]
impl Authorize for UserHeader {
    async fn authorize(&self, request: &http::request::Parts) -> Result<Principal, Unauthorized> {
        let value = request.headers.get("authorization").and_then(|v| v.to_str().ok());
        let Some(rest) = value.and_then(|v| v.strip_prefix("User ")) else {
            return Err(Unauthorized::new("missing", "User realm=\"test\""));
        };
        let mut words = rest.split(' ');
        let mut principal = Principal::new(words.next().unwrap_or_default());
        if let Some(max) = words.next().and_then(|w| w.strip_prefix("max=")) {
            principal = principal.with_max_size(max.parse().unwrap());
        }
        Ok(principal)
    }
}
