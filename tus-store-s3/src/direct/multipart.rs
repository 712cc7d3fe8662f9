//! The multipart routes: creation, ListParts, part signing, completion (verified with S3
//! first) and abort.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::CompletedPart;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tus_core::UploadId;
use tus_core::handler::Caller;

use super::{Answer, Direct, Refusal, json};
use crate::error::Error;
use crate::limits::{MAX_PARTS, MIN_PART_SIZE};
use crate::ops::Part;
use crate::state::DirectKind;

/// `POST /multipart`'s body, as the plugin sends it.
#[derive(Debug, Deserialize)]
struct CreateRequest {
    #[serde(default)]
    filename: String,
    #[serde(default, rename = "type")]
    mime: String,
    #[serde(default)]
    metadata: HashMap<String, serde_json::Value>,
}

/// One part as a completion lists it.
#[derive(Debug, Deserialize)]
struct ListedPart {
    #[serde(rename = "PartNumber")]
    number: i64,
    #[serde(rename = "ETag")]
    etag: String,
}

#[derive(Debug, Deserialize)]
struct CompleteRequest {
    parts: Vec<ListedPart>,
}

/// A part as ListParts reports it to the client (S3's field names, as Companion passes them).
#[derive(Debug, Serialize)]
struct ReportedPart {
    #[serde(rename = "PartNumber")]
    number: i32,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "ETag")]
    etag: String,
}

/// S3 quotes ETags; clients may or may not keep the quotes.
fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// Metadata values as tus metadata holds them: strings as they are, anything else as JSON.
pub(super) fn metadata_entries(metadata: HashMap<String, serde_json::Value>) -> Vec<(String, String)> {
    metadata
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

impl Direct {
    /// `POST /multipart`: creates the upload and its multipart upload.
    pub(super) async fn create_multipart(&self, body: &[u8], caller: &Caller) -> Answer {
        let req: CreateRequest =
            serde_json::from_slice(body).map_err(|e| Refusal::bad_request(format!("invalid JSON body: {e}")))?;
        let name = match req.metadata.get("name") {
            Some(serde_json::Value::String(name)) => name.clone(),
            _ => req.filename.clone(),
        };
        let metadata = metadata_entries(req.metadata);
        let (id, live) = self.create(&name, &req.mime, metadata, DirectKind::Multipart, caller).await?;
        let upload_id = live.multipart_upload_id.ok_or_else(|| Refusal::bad_request("nothing to upload"))?;
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            key: String,
            upload_id: String,
            bucket: String,
        }
        let inner = &self.store.inner;
        Ok(json(StatusCode::OK, &Created { key: inner.data_key(&id), upload_id, bucket: inner.bucket.name.clone() }))
    }

    /// `GET /multipart/<uploadId>?key=`: the parts S3 holds, every page.
    pub(super) async fn list_parts(&self, upload_id: &str, q: &HashMap<String, String>, caller: &Caller) -> Answer {
        let (id, live) = self.lookup(q.get("key"), Some(upload_id), caller).await?;
        if live.completed {
            return Err(completed_refusal());
        }
        let inner = &self.store.inner;
        let parts = inner.bucket.list_parts(&inner.data_key(&id), upload_id).await?;
        let reported: Vec<ReportedPart> = parts
            .into_iter()
            .map(|p| ReportedPart { number: p.number, size: p.size, etag: p.etag.unwrap_or_default() })
            .collect();
        Ok(json(StatusCode::OK, &reported))
    }

    /// A presigned UploadPart URL for part `number` of `id`'s multipart upload.
    async fn presign_part(&self, id: &UploadId, upload_id: &str, number: i32) -> Result<String, Refusal> {
        let inner = &self.store.inner;
        let key = inner.data_key(id);
        let config = PresigningConfig::expires_in(self.config.url_ttl).map_err(|e| Error::Config(e.to_string()))?;
        let presigned = inner
            .bucket
            .client
            .upload_part()
            .bucket(&inner.bucket.name)
            .key(&key)
            .upload_id(upload_id)
            .part_number(number)
            .presigned(config)
            .await
            .map_err(|e| Error::s3("UploadPart (presign)", &key, e))?;
        Ok(presigned.uri().to_owned())
    }

    /// When URLs signed now expire, in seconds (Companion's `expires`).
    fn expires(&self) -> u64 {
        self.config.url_ttl.as_secs()
    }

    /// `GET /multipart/<uploadId>/<partNumber>?key=`: one presigned part URL.
    pub(super) async fn sign_part(
        &self,
        upload_id: &str,
        part: &str,
        q: &HashMap<String, String>,
        caller: &Caller,
    ) -> Answer {
        let number = part_number(part)?;
        let (id, live) = self.lookup(q.get("key"), Some(upload_id), caller).await?;
        self.touch(&id, live).await?;
        let url = self.presign_part(&id, upload_id, number).await?;
        #[derive(Serialize)]
        struct Signed {
            url: String,
            expires: u64,
        }
        Ok(json(StatusCode::OK, &Signed { url, expires: self.expires() }))
    }

    /// `GET /multipart/<uploadId>/batch?key=&partNumbers=1,2`: several presigned part URLs.
    pub(super) async fn sign_batch(&self, upload_id: &str, q: &HashMap<String, String>, caller: &Caller) -> Answer {
        let numbers = q.get("partNumbers").map(String::as_str).unwrap_or("");
        let numbers: Vec<i32> =
            numbers.split(',').filter(|n| !n.is_empty()).map(part_number).collect::<Result<_, _>>()?;
        // A batch larger than this is not a client's: each URL is one signature.
        if numbers.is_empty() || numbers.len() > 1000 {
            return Err(Refusal::bad_request("partNumbers must list 1 to 1000 part numbers"));
        }
        let (id, live) = self.lookup(q.get("key"), Some(upload_id), caller).await?;
        self.touch(&id, live).await?;
        let mut urls = BTreeMap::new();
        for number in numbers {
            urls.insert(number.to_string(), self.presign_part(&id, upload_id, number).await?);
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Batch {
            presigned_urls: BTreeMap<String, String>,
        }
        Ok(json(StatusCode::OK, &Batch { presigned_urls: urls }))
    }

    /// `DELETE /multipart/<uploadId>?key=`: the upload is terminated (its multipart upload
    /// aborted, its record a tombstone), as a tus `DELETE` would.
    pub(super) async fn abort(&self, upload_id: &str, q: &HashMap<String, String>, caller: &Caller) -> Answer {
        let (id, live) = self.lookup(q.get("key"), Some(upload_id), caller).await?;
        if live.completed {
            return Err(completed_refusal());
        }
        self.tus.terminate_external(&id, caller).await?;
        Ok(json(StatusCode::OK, &serde_json::json!({})))
    }

    /// `POST /multipart/<uploadId>/complete?key=`: verifies the listed parts against what S3
    /// holds, completes the multipart upload, checks the object's size, and starts the
    /// checks. A mismatch terminates the upload (nothing of it is ever used).
    pub(super) async fn complete(
        &self,
        upload_id: &str,
        q: &HashMap<String, String>,
        body: &[u8],
        caller: &Caller,
    ) -> Answer {
        let req: CompleteRequest =
            serde_json::from_slice(body).map_err(|e| Refusal::bad_request(format!("invalid JSON body: {e}")))?;
        let (id, live) = self.lookup(q.get("key"), Some(upload_id), caller).await?;
        if live.completed {
            // A retried completion: answer what the first one did.
            let info = self.tus.external_upload(&id, caller).await?;
            return Ok(json(StatusCode::OK, &self.report(&info, caller)));
        }
        let inner = &self.store.inner;
        let key = inner.data_key(&id);
        let stored = inner.bucket.list_parts(&key, upload_id).await?;
        let (completed, total, unverified) = match verify_parts(&req.parts, &stored) {
            Ok(verified) => verified,
            Err(refusal) => {
                tracing::warn!(upload = %id, reason = %refusal.message, "direct upload refused at completion");
                self.discard(&id, caller).await;
                return Err(refusal);
            }
        };
        // The size limits before S3 assembles anything: refused here, nothing is completed.
        {
            let _lock = self.tus.lock_upload(&id).await?;
            let mut info = inner.live(&id).await?.upload;
            if let Err(e) = self.tus.declare_external_length(&mut info, total).await {
                drop(_lock);
                self.discard(&id, caller).await;
                return Err(e.into());
            }
        }
        let claimed_etags: Vec<&str> = req.parts.iter().map(|p| bare_etag(&p.etag)).collect();
        if let Err(e) = inner.bucket.complete(&key, upload_id, completed).await {
            // A part replaced or removed since ListParts, or a second completion racing this
            // one: the client's to sort out, not a server error.
            if let crate::error::Error::S3 { code: Some(code), .. } = &e
                && matches!(code.as_str(), "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "NoSuchUpload")
            {
                return Err(Refusal::new(
                    StatusCode::CONFLICT,
                    "ERR_PARTS_CHANGED",
                    format!("S3 refused the completion: {code}"),
                ));
            }
            return Err(e.into());
        }
        let head = inner.bucket.head(&key).await?;
        let size = head.as_ref().map(|h| h.size);
        if size != Some(total) {
            tracing::warn!(upload = %id, ?size, total, "completed object does not have the parts' size");
            self.discard_completed(&id, caller).await;
            return Err(Refusal::parts("the completed object's size does not match its parts"));
        }
        // A server whose ListParts tells no ETags: the object's multipart ETag must be the
        // one the client's part ETags make.
        let object_etag = head.and_then(|h| h.etag).unwrap_or_default();
        if unverified && bare_etag(&object_etag) != multipart_etag(&claimed_etags) {
            tracing::warn!(upload = %id, "completed object's ETag does not match the listed parts' ETags");
            self.discard_completed(&id, caller).await;
            return Err(Refusal::parts("the listed ETags do not match the parts S3 holds"));
        }
        let info = match self.adopt(&id, total, caller).await? {
            Some(info) => info,
            None => self.tus.external_upload(&id, caller).await?,
        };
        Ok(json(StatusCode::OK, &self.report(&info, caller)))
    }
}

/// How stale an upload's recorded activity may get before signing a part records it again.
const ACTIVITY_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(60);

impl Direct {
    /// Records that the upload is active (its parts reach S3 without the server seeing them,
    /// and the expiry reaper judges by recorded activity), at most once a minute.
    async fn touch(&self, id: &tus_core::UploadId, live: crate::state::LiveInfo) -> Result<(), Refusal> {
        if live.completed {
            return Err(completed_refusal());
        }
        let now = std::time::SystemTime::now();
        if now.duration_since(live.upload.updated_at).unwrap_or_default() < ACTIVITY_RESOLUTION {
            return Ok(());
        }
        // Under the lock, from a fresh read: a completion may be recording itself meanwhile.
        let _lock = self.tus.lock_upload(id).await?;
        let mut live = self.store.inner.live(id).await?;
        if live.completed {
            return Ok(());
        }
        live.upload.updated_at = now;
        Ok(self.store.inner.write_info(id, &crate::state::InfoObject::Live(live), false).await?)
    }

    /// [`Direct::discard`] of an upload whose multipart upload S3 already completed: recorded
    /// as completed first, so that termination deletes the object instead of aborting an
    /// upload S3 no longer knows (which some S3 servers refuse).
    async fn discard_completed(&self, id: &tus_core::UploadId, caller: &Caller) {
        let inner = &self.store.inner;
        if let Ok(mut live) = inner.live(id).await {
            live.completed = true;
            if let Err(e) = inner.write_info(id, &crate::state::InfoObject::Live(live), false).await {
                tracing::warn!(upload = %id, error = %e, "could not record a refused completion");
            }
        }
        self.discard(id, caller).await;
    }
}

/// A call for parts of an upload already completed.
fn completed_refusal() -> Refusal {
    Refusal::new(StatusCode::CONFLICT, "ERR_UPLOAD_COMPLETED", "the upload is complete")
}

/// A part number from a route: 1 to 10 000.
fn part_number(s: &str) -> Result<i32, Refusal> {
    match s.parse::<i32>() {
        Ok(n) if (1..=MAX_PARTS as i32).contains(&n) => Ok(n),
        _ => Err(Refusal::bad_request(format!("part numbers are 1 to {MAX_PARTS}"))),
    }
}

/// The ETag S3 gives an object completed from parts with these ETags (MD5 hex each): the
/// MD5 of their binary MD5s, then `-` and the part count.
fn multipart_etag(part_etags: &[&str]) -> String {
    use md5::Digest as _;
    let mut md5 = md5::Md5::new();
    for etag in part_etags {
        let bytes: Vec<u8> = (0..etag.len() / 2)
            .filter_map(|i| etag.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        md5.update(&bytes);
    }
    let hex: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{}", part_etags.len())
}

/// Checks a completion's part list against ListParts: exactly the parts `1..=N`, in order,
/// each with the ETag S3 reports, each but the last at least 5 MiB. Returns the parts to
/// complete with (the client's ETags), the total size, and whether S3's ListParts told no
/// ETags to compare with (some S3-compatible servers), so that the completed object's ETag
/// must be checked instead.
fn verify_parts(listed: &[ListedPart], stored: &[Part]) -> Result<(Vec<CompletedPart>, u64, bool), Refusal> {
    if listed.is_empty() {
        return Err(Refusal::parts("a completion must list at least one part"));
    }
    if listed.len() > MAX_PARTS as usize {
        return Err(Refusal::parts(format!("at most {MAX_PARTS} parts")));
    }
    if stored.len() != listed.len() {
        return Err(Refusal::parts(format!(
            "the completion lists {} parts, S3 holds {} for this upload",
            listed.len(),
            stored.len()
        )));
    }
    let mut total = 0u64;
    let mut unverified = false;
    let mut completed = Vec::with_capacity(listed.len());
    for (i, (claimed, held)) in listed.iter().zip(stored).enumerate() {
        let number = i as i64 + 1;
        if claimed.number != number || held.number as i64 != number {
            return Err(Refusal::parts(format!("part {number} is missing or out of order")));
        }
        let held_etag = held.etag.as_deref().map(bare_etag).unwrap_or("");
        if held_etag.is_empty() {
            unverified = true;
        } else if bare_etag(&claimed.etag) != held_etag {
            return Err(Refusal::parts(format!("part {number}'s ETag does not match what S3 holds")));
        }
        if i + 1 < listed.len() && held.size < MIN_PART_SIZE {
            return Err(Refusal::parts(format!(
                "part {number} has {} bytes; every part but the last needs at least {MIN_PART_SIZE}",
                held.size
            )));
        }
        total += held.size;
        let etag = format!("\"{}\"", bare_etag(&claimed.etag));
        completed.push(CompletedPart::builder().part_number(held.number).e_tag(etag).build());
    }
    Ok((completed, total, unverified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(sizes: &[u64]) -> Vec<Part> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Part { number: i as i32 + 1, size, etag: Some(format!("\"e{}\"", i + 1)) })
            .collect()
    }

    fn listed(n: usize) -> Vec<ListedPart> {
        (1..=n).map(|i| ListedPart { number: i as i64, etag: format!("e{i}") }).collect()
    }

    #[test]
    fn exact_parts_verify_with_or_without_quotes() {
        let (parts, total, unverified) = verify_parts(&listed(2), &stored(&[MIN_PART_SIZE, 3])).expect("verifies");
        assert_eq!((parts.len(), total, unverified), (2, MIN_PART_SIZE + 3, false));
        let quoted: Vec<ListedPart> = (1..=2).map(|i| ListedPart { number: i, etag: format!("\"e{i}\"") }).collect();
        assert!(verify_parts(&quoted, &stored(&[MIN_PART_SIZE, 3])).is_ok());
    }

    #[test]
    fn parts_without_etags_in_listparts_are_checked_by_the_object_etag() {
        let mut bare = stored(&[MIN_PART_SIZE, 3]);
        bare.iter_mut().for_each(|p| p.etag = None);
        let (_, _, unverified) = verify_parts(&listed(2), &bare).expect("sizes and numbers verify");
        assert!(unverified);
        // Two parts of MD5 0x00…01 and 0x00…02: the MD5 of their 32 bytes, then "-2".
        let a = "00000000000000000000000000000001";
        let b = "00000000000000000000000000000002";
        let etag = multipart_etag(&[a, b]);
        assert!(etag.ends_with("-2") && etag.len() == 34, "{etag}");
        assert_ne!(etag, multipart_etag(&[b, a]));
    }

    #[test]
    fn wrong_missing_extra_small_or_misnumbered_parts_are_refused() {
        let big = MIN_PART_SIZE;
        let mut wrong = listed(2);
        wrong[1].etag = "other".into();
        assert!(verify_parts(&wrong, &stored(&[big, 3])).is_err(), "wrong ETag");
        assert!(verify_parts(&listed(1), &stored(&[big, 3])).is_err(), "S3 holds a part not listed");
        assert!(verify_parts(&listed(2), &stored(&[big])).is_err(), "a listed part is missing");
        assert!(verify_parts(&listed(2), &stored(&[big - 1, 3])).is_err(), "a small part before the last");
        let mut gap = stored(&[big, 3]);
        gap[1].number = 3;
        assert!(verify_parts(&listed(2), &gap).is_err(), "a gap in S3's numbering");
        let swapped = vec![ListedPart { number: 2, etag: "e2".into() }, ListedPart { number: 1, etag: "e1".into() }];
        assert!(verify_parts(&swapped, &stored(&[big, big])).is_err(), "out of order");
        assert!(verify_parts(&[], &[]).is_err(), "nothing listed");
    }
}
