//! Signed, expiring download URLs.
//!
//! A [`UrlSigner`] signs `GET`, an upload ID and an expiry time with HMAC-SHA256. The query
//! `?expires=<unix seconds>&sig=<base64url>` appended to an upload's URL proves the holder was
//! given access to that one upload until then. Verification is constant-time and accepts any
//! of the configured keys, so keys can be rotated: sign with the new key while URLs signed with
//! the old one stay valid until they expire.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::derivative::DerivativeName;
use crate::id::UploadId;

type HmacSha256 = Hmac<Sha256>;

/// The longest lifetime a signature is given (about ten years); longer requests are cut to it.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Signs and verifies download URLs.
#[derive(Clone)]
pub struct UrlSigner {
    /// The first key signs; all keys verify.
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner").field("keys", &self.keys.len()).finish()
    }
}

/// A signed download: the query to append to the upload's URL, and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// `expires=<unix seconds>&sig=<signature>`.
    pub query: String,
    /// The moment the signature expires.
    pub expires: SystemTime,
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `expires`/`sig` in the query, or malformed.
    #[error("missing or malformed signature")]
    Malformed,
    /// The expiry has passed.
    #[error("signature expired")]
    Expired,
    /// The signature does not match (tampered, another upload, unknown key).
    #[error("invalid signature")]
    Invalid,
}

/// The signing key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing keys must be at least 16 bytes long")]
pub struct WeakKey;

impl UrlSigner {
    /// A signer with `key` (at least 16 bytes; use 32 random bytes).
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, WeakKey> {
        let key = key.into();
        if key.len() < 16 {
            return Err(WeakKey);
        }
        Ok(UrlSigner { keys: vec![key] })
    }

    /// Also accepts signatures made with `key` (a previous key during rotation).
    pub fn with_previous_key(mut self, key: impl Into<Vec<u8>>) -> Result<Self, WeakKey> {
        let key = key.into();
        if key.len() < 16 {
            return Err(WeakKey);
        }
        self.keys.push(key);
        Ok(self)
    }

    /// Signs a download of `id` valid for `ttl` from now.
    /// A `ttl` past [`MAX_TTL`] is cut to it.
    pub fn sign(&self, id: &UploadId, ttl: Duration) -> SignedUrl {
        self.sign_resource(id.as_str(), ttl)
    }

    /// Signs a download of the derivative `name` of `id` only (see [`crate::derivative`]): the
    /// URL of a thumbnail or a stripped copy, which must not open the original (whose metadata
    /// the stripped copy exists to keep private). The upload's own signature
    /// ([`UrlSigner::sign`]) also opens its derivatives.
    pub fn sign_derivative(&self, id: &UploadId, name: DerivativeName, ttl: Duration) -> SignedUrl {
        self.sign_resource(&format!("{id}/{name}"), ttl)
    }

    /// Checks the `expires` and `sig` parameters of `query` for a download of `id`; returns
    /// the expiry.
    pub fn verify(&self, id: &UploadId, query: Option<&str>) -> Result<SystemTime, SignatureError> {
        self.verify_resource(id.as_str(), query)
    }

    /// Checks `query` for a download of the derivative `name` of `id`: signed for that
    /// derivative, or for the whole upload.
    pub fn verify_derivative(
        &self,
        id: &UploadId,
        name: DerivativeName,
        query: Option<&str>,
    ) -> Result<SystemTime, SignatureError> {
        self.verify_resource(&format!("{id}/{name}"), query).or_else(|_| self.verify(id, query))
    }

    /// What a download URL names: an upload ID, or `<id>/<derivative>` (an ID has no `/`, so
    /// the two never collide).
    fn sign_resource(&self, resource: &str, ttl: Duration) -> SignedUrl {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let secs = now.saturating_add(ttl.min(MAX_TTL).as_secs());
        let sig = B64.encode(self.mac(&self.keys[0], resource, secs).finalize().into_bytes());
        SignedUrl { query: format!("expires={secs}&sig={sig}"), expires: UNIX_EPOCH + Duration::from_secs(secs) }
    }

    fn verify_resource(&self, resource: &str, query: Option<&str>) -> Result<SystemTime, SignatureError> {
        let (mut expires, mut sig) = (None, None);
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = crate::headers::parse_u64(v),
                Some(("sig", v)) => sig = B64.decode(v).ok(),
                _ => {}
            }
        }
        let (Some(secs), Some(sig)) = (expires, sig) else { return Err(SignatureError::Malformed) };
        let valid = self.keys.iter().any(|key| self.mac(key, resource, secs).verify_slice(&sig).is_ok());
        if !valid {
            return Err(SignatureError::Invalid);
        }
        // A client's number: `expires` far past any time the system can represent must not
        // overflow (our own signatures never go past `MAX_TTL` from now).
        let expires = UNIX_EPOCH.checked_add(Duration::from_secs(secs)).ok_or(SignatureError::Malformed)?;
        if expires <= SystemTime::now() {
            return Err(SignatureError::Expired);
        }
        Ok(expires)
    }

    fn mac(&self, key: &[u8], resource: &str, expires: u64) -> HmacSha256 {
        // Any key length is valid for HMAC; `new_from_slice` cannot fail here.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(format!("GET\n{resource}\n{expires}").as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &str) -> UrlSigner {
        UrlSigner::new(key.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn signed_urls_verify_only_for_their_upload_and_key() {
        let s = signer("0123456789abcdef-current");
        let id = UploadId::random();
        let url = s.sign(&id, Duration::from_secs(60));
        assert!(s.verify(&id, Some(&url.query)).is_ok());
        assert_eq!(s.verify(&UploadId::random(), Some(&url.query)), Err(SignatureError::Invalid));
        assert_eq!(signer("another-key-of-16+").verify(&id, Some(&url.query)), Err(SignatureError::Invalid));
        let tampered = url.query.replace("expires=", "expires=1");
        assert_eq!(s.verify(&id, Some(&tampered)), Err(SignatureError::Invalid));
        assert_eq!(s.verify(&id, None), Err(SignatureError::Malformed));
        assert_eq!(s.verify(&id, Some("expires=1&sig=!!")), Err(SignatureError::Malformed));
    }

    #[test]
    fn a_derivative_signature_opens_that_derivative_only() {
        let s = signer("0123456789abcdef-current");
        let id = UploadId::random();
        let (thumb, stripped) = (DerivativeName::Thumbnail(256), DerivativeName::Stripped);
        let url = s.sign_derivative(&id, stripped, Duration::from_secs(60));
        assert!(s.verify_derivative(&id, stripped, Some(&url.query)).is_ok());
        assert_eq!(s.verify(&id, Some(&url.query)), Err(SignatureError::Invalid), "opens the original");
        assert!(s.verify_derivative(&id, thumb, Some(&url.query)).is_err(), "opens another derivative");
        assert!(s.verify_derivative(&UploadId::random(), stripped, Some(&url.query)).is_err());
        // The upload's own signature opens its derivatives.
        let whole = s.sign(&id, Duration::from_secs(60));
        assert!(s.verify_derivative(&id, thumb, Some(&whole.query)).is_ok());
    }

    #[test]
    fn expired_signatures_are_refused() {
        let s = signer("0123456789abcdef-current");
        let id = UploadId::random();
        let sig = B64.encode(s.mac(&s.keys[0], id.as_str(), 1000).finalize().into_bytes());
        assert_eq!(s.verify(&id, Some(&format!("expires=1000&sig={sig}"))), Err(SignatureError::Expired));
    }

    #[test]
    fn client_numbers_never_overflow_time() {
        let s = signer("0123456789abcdef-current");
        let id = UploadId::random();
        // A genuinely signed URL whose `expires` no `SystemTime` can hold: refused, no panic.
        for secs in [u64::MAX, u64::MAX / 2, 99_999_999_999_999_999] {
            let sig = B64.encode(s.mac(&s.keys[0], id.as_str(), secs).finalize().into_bytes());
            let answer = s.verify(&id, Some(&format!("expires={secs}&sig={sig}")));
            assert!(matches!(answer, Err(SignatureError::Malformed) | Ok(_)), "{secs}: {answer:?}");
        }
        // An absurd lifetime is cut to the longest one, still verifying.
        let url = s.sign(&id, Duration::MAX);
        let until = s.verify(&id, Some(&url.query)).expect("verifies");
        assert!(until <= SystemTime::now() + MAX_TTL + Duration::from_secs(1));
    }

    #[test]
    fn rotation_keeps_old_urls_valid() {
        let old = signer("the-old-key-0123456");
        let id = UploadId::random();
        let url = old.sign(&id, Duration::from_secs(60));
        let rotated = signer("the-new-key-0123456").with_previous_key("the-old-key-0123456").unwrap();
        assert!(rotated.verify(&id, Some(&url.query)).is_ok());
        let fresh = rotated.sign(&id, Duration::from_secs(60));
        assert_eq!(old.verify(&id, Some(&fresh.query)), Err(SignatureError::Invalid));
        assert!(UrlSigner::new(b"short".to_vec()).is_err());
    }
}
