//! `POST <base>/events`: S3 event notifications (AWS's `Records`, which MinIO's webhook also
//! sends, or MinIO's top-level `Key`), each naming an object that may be an issued
//! single-request upload's. Deduplicated by the upload's completion, under its lock.

use http::StatusCode;
use http::header::HeaderValue;
use serde_json::Value;
use tus_core::UploadId;

use super::{Answer, Direct, Refusal, json};

/// The most objects one notification may name.
const MAX_RECORDS: usize = 1000;

/// Compares without an early exit, so the time taken tells nothing about the token.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The object keys of the `ObjectCreated` events in `value` for `bucket`.
fn created_keys(value: &Value, bucket: &str) -> Vec<String> {
    let decode = |key: &str| -> String {
        // Keys in S3 events are URL-encoded as in a form (`+` for a space).
        form_urlencoded::parse(format!("k={key}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    let mut keys = Vec::new();
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        for record in records.iter().take(MAX_RECORDS) {
            let created = record.get("eventName").and_then(Value::as_str).is_some_and(|n| n.contains("ObjectCreated"));
            let s3 = record.get("s3");
            let in_bucket = s3.and_then(|s| s.pointer("/bucket/name")).and_then(Value::as_str) == Some(bucket);
            if let (true, true, Some(key)) =
                (created, in_bucket, s3.and_then(|s| s.pointer("/object/key")).and_then(Value::as_str))
            {
                keys.push(decode(key));
            }
        }
    } else if let Some(key) = value.get("Key").and_then(Value::as_str) {
        // MinIO without `Records`: `bucket/key`.
        let created = value.get("EventName").and_then(Value::as_str).is_some_and(|n| n.contains("ObjectCreated"));
        if let (true, Some(key)) = (created, key.strip_prefix(bucket).and_then(|k| k.strip_prefix('/'))) {
            keys.push(decode(key));
        }
    }
    keys
}

impl Direct {
    /// Whether `authorization` carries the events token (checked before the body is read).
    pub(super) fn events_authorized(&self, authorization: Option<&HeaderValue>) -> Result<(), Refusal> {
        let Some(expected) = &self.config.events_token else {
            return Err(Refusal::new(StatusCode::NOT_FOUND, "ERR_NOT_FOUND", "event notifications are not configured"));
        };
        let presented = authorization.and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|token| same_secret(token.trim().as_bytes(), expected.as_bytes())) {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "ERR_UNAUTHORIZED", "a valid bearer token is required"));
        }
        Ok(())
    }

    /// Accepts a notification whose sender [`Self::events_authorized`] admitted.
    pub(super) async fn events(&self, body: &[u8]) -> Answer {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| Refusal::bad_request(format!("invalid JSON body: {e}")))?;
        let inner = &self.store.inner;
        let mut accepted = 0;
        for key in created_keys(&value, &inner.bucket.name) {
            let stem = key.strip_prefix(inner.prefix.as_str()).and_then(|name| name.strip_suffix(".post"));
            let Some(id) = stem.and_then(|stem| UploadId::parse(stem).ok()) else {
                continue;
            };
            match self.find_single(&id).await {
                Ok(true) => {
                    accepted += 1;
                    if let Ok(mut pending) = self.pending.lock() {
                        pending.remove(&id);
                    }
                }
                Ok(false) => {}
                Err(refusal) => {
                    tracing::warn!(upload = %id, reason = %refusal.message, "direct upload refused on arrival")
                }
            }
        }
        Ok(json(StatusCode::OK, &serde_json::json!({ "accepted": accepted })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_and_minio_shapes_give_their_created_keys() {
        let aws = serde_json::json!({ "Records": [
            { "eventName": "ObjectCreated:Post", "s3": { "bucket": { "name": "b" }, "object": { "key": "tmp/a+b%2Bc.post", "size": 3 } } },
            { "eventName": "ObjectRemoved:Delete", "s3": { "bucket": { "name": "b" }, "object": { "key": "tmp/gone" } } },
            { "eventName": "ObjectCreated:Put", "s3": { "bucket": { "name": "other" }, "object": { "key": "tmp/x" } } },
        ]});
        assert_eq!(created_keys(&aws, "b"), vec!["tmp/a b+c.post"]);
        let minio = serde_json::json!({ "EventName": "s3:ObjectCreated:Post", "Key": "b/tmp/id1" });
        assert_eq!(created_keys(&minio, "b"), vec!["tmp/id1"]);
        assert!(created_keys(&serde_json::json!({ "Key": "b/tmp/id1" }), "b").is_empty());
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
