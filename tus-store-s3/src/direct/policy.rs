//! Presigned POST policies (S3's browser-based uploads, SigV4): the form fields a client posts
//! with the file, bounding the object's key, type and size. The SDK presigns requests, not
//! forms; the key derivation and signature are `aws-sigv4`'s.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::ProvideCredentials as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use base64::Engine as _;
use serde_json::json;

use crate::error::Error;
use crate::layout::Inner;

/// A presigned POST: where to post, and the fields to post before the file.
#[derive(Debug)]
pub(super) struct PostForm {
    pub(super) url: String,
    pub(super) fields: BTreeMap<String, String>,
}

/// `2026-12-02T14:30:00Z` (whole seconds) and `20261202T143000Z`.
fn timestamps(at: SystemTime) -> Result<(String, String), Error> {
    let iso = DateTime::from(at).fmt(DateTimeFormat::DateTime).map_err(|e| Error::Config(e.to_string()))?;
    let basic = iso.replace(['-', ':'], "");
    Ok((iso, basic))
}

/// The URL objects of the bucket are posted to: a presigned request's URL without its key
/// and query (so path-style and virtual-hosted addressing come out as the client uses them).
async fn bucket_url(inner: &Inner, key: &str) -> Result<String, Error> {
    let config = PresigningConfig::expires_in(Duration::from_secs(60)).map_err(|e| Error::Config(e.to_string()))?;
    let presigned = inner
        .bucket
        .client
        .put_object()
        .bucket(&inner.bucket.name)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| Error::s3("PutObject (presign)", key, e))?;
    let uri = presigned.uri();
    let without_query = uri.split('?').next().unwrap_or(uri);
    without_query
        .strip_suffix(key)
        .map(|url| url.trim_end_matches('/').to_owned())
        .ok_or_else(|| Error::Config(format!("cannot derive the bucket URL from {without_query}")))
}

/// A POST policy for exactly `key`, at most `max_size` bytes, valid for `ttl`. The object's
/// `Content-Type` is `application/octet-stream` whatever the client declared: presigned S3
/// downloads serve the stored type, and a declared `text/html` must not render from the
/// bucket's origin (the declared type stays in the upload's metadata, checked by the content
/// check).
pub(super) async fn post_form(inner: &Inner, key: &str, max_size: u64, ttl: Duration) -> Result<PostForm, Error> {
    let credentials =
        inner.credentials.provide_credentials().await.map_err(|e| Error::Config(format!("S3 credentials: {e}")))?;
    let region = inner.region.as_str();
    // Whole seconds: the date in the credential scope and in the signing key must agree.
    let now =
        UNIX_EPOCH + Duration::from_secs(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
    let (_, amz_date) = timestamps(now)?;
    let (expiration, _) = timestamps(now + ttl)?;
    let day = amz_date.get(..8).unwrap_or_default();
    let credential = format!("{}/{day}/{region}/s3/aws4_request", credentials.access_key_id());
    let mut fields = BTreeMap::from([
        ("key".to_owned(), key.to_owned()),
        ("Content-Type".to_owned(), "application/octet-stream".to_owned()),
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date),
    ]);
    if let Some(token) = credentials.session_token() {
        fields.insert("x-amz-security-token".to_owned(), token.to_owned());
    }
    let mut conditions = vec![json!({ "bucket": inner.bucket.name }), json!(["content-length-range", 0, max_size])];
    conditions.extend(fields.iter().map(|(k, v)| json!({ k: v })));
    let policy = json!({ "expiration": expiration, "conditions": conditions });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(credentials.secret_access_key(), now, region, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, policy.as_bytes());
    fields.insert("policy".to_owned(), policy);
    fields.insert("x-amz-signature".to_owned(), signature);
    Ok(PostForm { url: bucket_url(inner, key).await?, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_both_forms() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_212_800);
        let (iso, basic) = timestamps(at).expect("formats");
        assert_eq!(iso, "2026-12-02T12:00:00Z");
        assert_eq!(basic, "20261202T120000Z");
    }
}
