//! Building the URLs we hand out (`Location`, `Upload-Concat`, signed download URLs) from the
//! origin the client addressed, and only from values that are safe to copy.

use http::Request;
use http::header::{self, HeaderMap};

use super::hooks::Call;
use super::{Inner, LocationStyle};
use crate::derivative::DerivativeName;
use crate::id::UploadId;

impl Inner {
    /// The URL of an upload, absolute when configured and the request's origin is known.
    pub(super) fn upload_url(&self, origin: Option<&str>, id: &UploadId) -> String {
        let path = format!("{}{}", self.config.base_path, id);
        match (self.config.location, origin) {
            (LocationStyle::Absolute, Some(origin)) => format!("{origin}{path}"),
            _ => path,
        }
    }

    /// `scheme://host` the client addressed: from `Host` (or the URI's authority), or, when
    /// trusted, from the proxy's `Forwarded` / `X-Forwarded-*` headers.
    pub(super) fn request_origin<B>(&self, req: &Request<B>) -> Option<String> {
        let headers = req.headers();
        if self.config.trust_forwarded
            && let Some((proto, host)) = forwarded_origin(headers)
        {
            return Some(format!("{}://{host}", proto.unwrap_or(&self.config.scheme)));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .filter(|h| valid_host(h))?;
        // The scheme we serve, never one copied from an absolute-form request target.
        Some(format!("{}://{host}", self.config.scheme))
    }

    /// A signed absolute download URL for `id` (for `post-finish` payloads), if signing is on.
    pub(super) fn signed_download_url(&self, id: &UploadId, call: &Call) -> Option<String> {
        let signed = self.signer.as_ref()?.sign(id, self.config.hook_download_url_ttl);
        Some(format!("{}?{}", self.upload_url(self.hook_origin(call).as_deref(), id), signed.query))
    }

    /// The download URL of a derivative of `id` (for `post-finish` payloads): the upload's URL
    /// and the derivative's name, signed when signing is on for that derivative alone (a
    /// shared thumbnail or stripped copy must not open the original and its metadata).
    pub(super) fn derivative_url(&self, id: &UploadId, name: DerivativeName, call: &Call) -> String {
        let url = format!("{}/{name}", self.upload_url(self.hook_origin(call).as_deref(), id));
        match &self.signer {
            Some(signer) => {
                format!("{url}?{}", signer.sign_derivative(id, name, self.config.hook_download_url_ttl).query)
            }
            None => url,
        }
    }

    /// The origin the request behind a hook addressed, from its `Host`.
    fn hook_origin(&self, call: &Call) -> Option<String> {
        call.hook.header.get("Host").and_then(|h| h.first()).map(|host| format!("{}://{host}", self.config.scheme))
    }
}

/// The longest `Host` (with port) we copy into URLs.
pub(super) const MAX_HOST_LEN: usize = 270;

/// Characters a host (with optional port, or an IPv6 literal) may contain.
pub(super) fn valid_host(host: &str) -> bool {
    // A DNS name is at most 253 characters; with a port or an IPv6 literal's brackets, 270
    // is plenty. Longer ones are refused: each would be copied into every URL we write.
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// `(proto, host)` from `Forwarded` (RFC 7239, first element) or `X-Forwarded-Host` /
/// `X-Forwarded-Proto`; values that are not a plain host or `http`/`https` are ignored.
pub(super) fn forwarded_origin(headers: &HeaderMap) -> Option<(Option<&'static str>, String)> {
    let proto = |p: &str| match p.trim().trim_matches('"').to_ascii_lowercase().as_str() {
        "http" => Some("http"),
        "https" => Some("https"),
        _ => None,
    };
    if let Some(fwd) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        let first = fwd.split(',').next().unwrap_or("");
        let (mut host, mut scheme) = (None, None);
        for pair in first.split(';') {
            match pair.split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("host") => host = Some(v.trim().trim_matches('"')),
                Some((k, v)) if k.trim().eq_ignore_ascii_case("proto") => scheme = proto(v),
                _ => {}
            }
        }
        if let Some(host) = host.filter(|h| valid_host(h)) {
            return Some((scheme, host.to_owned()));
        }
    }
    let first = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
    };
    let host = first("x-forwarded-host").filter(|h| valid_host(h))?;
    Some((first("x-forwarded-proto").as_deref().and_then(proto), host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn forwarded_headers_give_the_public_origin() {
        let h = headers(&[("forwarded", "for=1.2.3.4;host=uploads.example.com;proto=https, for=5.6.7.8")]);
        assert_eq!(forwarded_origin(&h), Some((Some("https"), "uploads.example.com".to_owned())));
        let h = headers(&[("x-forwarded-host", "a.example:8443, b.example"), ("x-forwarded-proto", "https")]);
        assert_eq!(forwarded_origin(&h), Some((Some("https"), "a.example:8443".to_owned())));
        let h = headers(&[("x-forwarded-host", "evil.example/path"), ("x-forwarded-proto", "javascript")]);
        assert_eq!(forwarded_origin(&h), None);
        let h = headers(&[("x-forwarded-host", "ok.example"), ("x-forwarded-proto", "gopher")]);
        assert_eq!(forwarded_origin(&h), Some((None, "ok.example".to_owned())));
    }
}
