//! CORS, so browsers (Uppy, tus-js-client) can upload from other origins.
//!
//! The default lets any origin use the endpoint without credentials (`*`): uploads are
//! authorised by tokens a `pre-create` hook checks, not by cookies. An allow-list restricts
//! the origins and may allow credentials. A disallowed origin simply gets no grant (the
//! browser then blocks the response); the request itself is answered as usual.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response};

use super::response::ResponseBody;

/// Request headers browsers may send (preflight `Access-Control-Allow-Headers`).
const ALLOW_HEADERS: &str = "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, \
    Content-Type, Content-Length, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, \
    Upload-Defer-Length, Upload-Concat, Upload-Checksum, Upload-Complete, Upload-Incomplete, \
    Upload-Draft-Interop-Version, Range, If-None-Match";

/// Response headers scripts may read (`Access-Control-Expose-Headers`).
const EXPOSE_HEADERS: &str = "Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, \
    Upload-Defer-Length, Upload-Concat, Upload-State, Upload-Complete, Upload-Incomplete, Upload-Limit, \
    Upload-Draft-Interop-Version, Tus-Version, Tus-Resumable, Tus-Max-Size, Tus-Extension, \
    Tus-Checksum-Algorithm, Content-Range, ETag, WWW-Authenticate, Upload-Derivatives";

const ALLOW_METHODS: &str = "POST, HEAD, PATCH, DELETE, GET, OPTIONS";

/// Which origins get a CORS grant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsOrigins {
    /// Any origin, never with credentials (the default).
    Any,
    /// Only these origins (exact `scheme://host[:port]`).
    List(Vec<String>),
}

/// CORS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsConfig {
    /// Allowed origins.
    pub origins: CorsOrigins,
    /// Send `Access-Control-Allow-Credentials: true` (only with an origin list).
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight.
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig { origins: CorsOrigins::Any, allow_credentials: false, max_age: Duration::from_secs(86400) }
    }
}

impl CorsConfig {
    /// Only `origins` get grants.
    pub fn allow_origins(origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let origins = origins.into_iter().map(|o| o.into().trim_end_matches('/').to_owned()).collect();
        CorsConfig { origins: CorsOrigins::List(origins), ..CorsConfig::default() }
    }

    /// Also allow credentials (cookies, HTTP auth) for the listed origins.
    pub fn with_credentials(mut self, yes: bool) -> Self {
        self.allow_credentials = yes;
        self
    }

    /// Adds the CORS headers `res` needs for a request with `headers` and `method`.
    pub fn apply(&self, method: &Method, headers: &HeaderMap, res: &mut Response<ResponseBody>) {
        let Some(origin) = headers.get(header::ORIGIN) else { return };
        let h = res.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        let allowed = match &self.origins {
            CorsOrigins::Any => HeaderValue::from_static("*"),
            CorsOrigins::List(list) => {
                let Ok(o) = origin.to_str() else { return };
                if !list.iter().any(|allowed| allowed == o) {
                    return;
                }
                origin.clone()
            }
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if self.allow_credentials && matches!(self.origins, CorsOrigins::List(_)) {
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        let preflight = *method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age.as_secs()));
        } else {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(config: &CorsConfig, method: Method, origin: &str, preflight: bool) -> HeaderMap {
        let mut req = HeaderMap::new();
        req.insert(header::ORIGIN, origin.parse().unwrap());
        if preflight {
            req.insert(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH".parse().unwrap());
        }
        let mut res = Response::new(ResponseBody::empty());
        config.apply(&method, &req, &mut res);
        res.headers().clone()
    }

    #[test]
    fn default_allows_any_origin_without_credentials() {
        let h = cors(&CorsConfig::default(), Method::OPTIONS, "https://a.example", true);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().contains("Upload-Offset"));
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "86400");
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        let h = cors(&CorsConfig::default(), Method::POST, "https://a.example", false);
        assert!(h[header::ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap().contains("Location"));
        assert_eq!(h[header::VARY], "Origin");
    }

    #[test]
    fn allow_list_grants_only_listed_origins() {
        let config = CorsConfig::allow_origins(["https://app.example/"]).with_credentials(true);
        let h = cors(&config, Method::PATCH, "https://app.example", false);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let h = cors(&config, Method::OPTIONS, "https://evil.example", true);
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS));
        assert_eq!(h[header::VARY], "Origin");
    }
}
