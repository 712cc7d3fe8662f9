//! Single-request uploads: a presigned POST policy for the whole file, and finding the object
//! once it is there (a HeadObject sweep while the policy lives; S3 events in `events.rs`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde::Serialize;
use tus_core::UploadId;
use tus_core::handler::Caller;

use super::{Answer, Direct, Refusal, json, policy};
use crate::limits::MAX_PART_SIZE;
use crate::state::DirectKind;

/// How long after its policy expired an object is still looked for (a POST that began just
/// before the expiry may take a while to finish).
const SWEEP_GRACE: Duration = Duration::from_secs(120);

/// The most single-request uploads one instance waits for at once: each costs a HeadObject
/// per sweep, so signing more is refused (`503`) until some arrive or expire.
const MAX_PENDING: usize = 10_000;

impl Direct {
    /// `GET /params?filename=&type=&metadata[k]=v`: creates the upload and answers a POST
    /// policy for it: `{method: "POST", url, fields, expires}`.
    pub(super) async fn params(&self, q: &HashMap<String, String>, caller: &Caller) -> Answer {
        let filename = q.get("filename").cloned().unwrap_or_default();
        let mime = q.get("type").cloned().unwrap_or_else(|| "application/octet-stream".to_owned());
        let metadata: Vec<(String, String)> = q
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?.to_owned(), v.clone())))
            .collect();
        let name = metadata.iter().find(|(k, _)| k == "name").map(|(_, v)| v.clone()).unwrap_or(filename);
        if self.pending.lock().map(|p| p.len()).unwrap_or(0) >= MAX_PENDING {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ERR_TOO_MANY_PENDING",
                "too many single-request uploads are waiting for their files; try again later",
            ));
        }
        let until = SystemTime::now() + self.config.url_ttl;
        let (id, _) = self.create(&name, &mime, metadata, DirectKind::Single { until }, caller).await?;
        // One POST carries at most 5 GiB; the server's and the owner's limits may be lower.
        let limits = [self.tus.config().max_size, caller.principal().and_then(|p| p.max_size), Some(MAX_PART_SIZE)];
        let max = limits.into_iter().flatten().min().unwrap_or(MAX_PART_SIZE);
        let inner = &self.store.inner;
        let form = policy::post_form(inner, &inner.staging_key(&id), max, self.config.url_ttl).await?;
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(id, until);
        }
        #[derive(Serialize)]
        struct Params {
            method: &'static str,
            url: String,
            fields: std::collections::BTreeMap<String, String>,
            expires: u64,
        }
        let params =
            Params { method: "POST", url: form.url, fields: form.fields, expires: self.config.url_ttl.as_secs() };
        Ok(json(StatusCode::OK, &params))
    }

    /// Finishes the single-request upload `id` if its object is there. `Ok(false)`: not yet
    /// (or not a single-request upload still waiting for its object).
    pub(super) async fn find_single(&self, id: &UploadId) -> Result<bool, Refusal> {
        let inner = &self.store.inner;
        let live = match inner.live(id).await {
            Ok(live) => live,
            Err(crate::error::Error::NotFound | crate::error::Error::Gone) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if live.completed || !matches!(live.direct, Some(DirectKind::Single { .. })) {
            return Ok(false);
        }
        let staging = inner.staging_key(id);
        let Some(head) = inner.bucket.head(&staging).await? else { return Ok(false) };
        // One version of the posted object becomes the upload's bytes (a copy is atomic); a
        // later POST only replaces the staging object, which nothing reads.
        let _lock = self.tus.lock_upload(id).await?;
        if inner.live(id).await?.completed {
            return Ok(false);
        }
        inner.copy_object(&staging, &inner.data_key(id), head.size).await?;
        let size = inner.bucket.head(&inner.data_key(id)).await?.map(|h| h.size).unwrap_or(head.size);
        inner.bucket.delete(&staging).await?;
        drop(_lock);
        self.adopt(id, size, &Caller::background()).await?;
        Ok(true)
    }

    /// Sweeps forever (see [`super::DirectUploads::sweeper`]), starting with the uploads a
    /// restart left waiting.
    pub(super) async fn sweep_forever(&self) {
        if let Err(e) = self.resume_pending().await {
            tracing::warn!(error = %e, "could not list the single-request uploads still waiting");
        }
        loop {
            tokio::time::sleep(self.config.sweep_interval).await;
            self.sweep_once().await;
        }
    }

    /// Picks up the single-request uploads whose policies are still valid (signed by an
    /// instance that stopped, this one before a restart): only info objects written within a
    /// policy's lifetime are read.
    async fn resume_pending(&self) -> Result<(), crate::error::Error> {
        let inner = &self.store.inner;
        let recent = SystemTime::now() - (self.config.url_ttl + SWEEP_GRACE);
        let mut found = 0;
        for object in inner.bucket.list(&inner.prefix).await? {
            let stem = object.key.strip_prefix(inner.prefix.as_str()).and_then(|n| n.strip_suffix(".info"));
            let (Some(id), true) =
                (stem.and_then(|s| UploadId::parse(s).ok()), object.modified.is_some_and(|m| m > recent))
            else {
                continue;
            };
            if let Ok(live) = inner.live(&id).await
                && let (Some(DirectKind::Single { until }), false) = (live.direct, live.completed)
                && let Ok(mut pending) = self.pending.lock()
                && pending.len() < MAX_PENDING
            {
                pending.insert(id, until);
                found += 1;
            }
        }
        if found > 0 {
            tracing::info!(uploads = found, "waiting again for single-request uploads signed before a restart");
        }
        Ok(())
    }

    /// One pass: every pending single-request upload is looked for once; found, refused or
    /// past its policy (and the grace), it is no longer pending. An upload never posted is
    /// removed by the expiry reaper like any abandoned upload.
    pub(super) async fn sweep_once(&self) {
        let pending: Vec<(UploadId, SystemTime)> = match self.pending.lock() {
            Ok(p) => p.iter().map(|(id, until)| (id.clone(), *until)).collect(),
            Err(_) => return,
        };
        let now = SystemTime::now();
        for (id, until) in pending {
            let done = match self.find_single(&id).await {
                Ok(found) => found || now > until + SWEEP_GRACE,
                Err(refusal) => {
                    tracing::warn!(upload = %id, reason = %refusal.message, "direct upload refused on arrival");
                    refusal.status.is_client_error()
                }
            };
            if done && let Ok(mut p) = self.pending.lock() {
                p.remove(&id);
            }
        }
    }
}
