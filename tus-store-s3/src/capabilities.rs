//! The optional capabilities of the store: recorded state (quarantine), presigned downloads,
//! termination, concatenation, deferred length and the expiry listing.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tus_core::UploadId;
use tus_core::store::{
    Concatenate, DeferLength, ListExpired, PresignGet, RecordState, StoreError, Terminate, UploadInfo, UploadState,
};

use crate::S3Store;
use crate::error::Error;
use crate::layout::Inner;
use crate::limits::MAX_OBJECT_SIZE;
use crate::ops::Bucket;
use crate::state::{InfoObject, LiveInfo, ObjectLocation, Stored};
use tus_core::digest::Digest;

#[async_trait]
impl RecordState for S3Store {
    async fn set_state(&self, id: &UploadId, state: UploadState, digests: &[Digest]) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut live = inner.live(id).await?;
        if state == UploadState::Quarantined && live.upload.state != Some(UploadState::Quarantined) {
            // Move the bytes out first: from here on nothing at `<prefix><id>` serves them.
            let (data_key, target) = (inner.data_key(id), inner.quarantine_key(id));
            let len = live.upload.length.unwrap_or(0);
            inner.copy_object(&data_key, &target, len).await?;
            inner.bucket.delete(&data_key).await?;
        }
        live.upload.state = Some(state);
        if !digests.is_empty() {
            live.upload.digests = digests.to_vec();
        }
        let promote = match &inner.promotion {
            Some(p) if state == UploadState::Clean && live.promoted.is_none() && !live.upload.is_partial() => Some(p),
            _ => None,
        };
        if let Some(promotion) = promote {
            // Copy, record, then delete: a crash in between leaves a copy behind, never an
            // upload without its bytes; a retry copies again.
            let target = format!("{}{id}", promotion.prefix);
            let copied = inner.copy_for_promotion(&promotion.bucket, id, &live, &target).await;
            // The copies may take minutes: an upload terminated meanwhile (perhaps the reason a
            // copy failed: its source is gone) stays terminated, with nothing left in the
            // production area.
            if let InfoObject::Gone { .. } = inner.read_info_object(id).await? {
                inner.delete_with_derivatives(&promotion.bucket, &target, &live).await?;
                return Ok(());
            }
            copied?;
            live.promoted = Some(ObjectLocation { bucket: promotion.bucket.name.clone(), key: target });
            inner.write_info(id, &InfoObject::Live(live.clone()), false).await?;
            inner.delete_with_derivatives(&inner.bucket, &inner.data_key(id), &live).await?;
            tracing::info!(upload = %id, "clean upload promoted out of the temporary area");
            return Ok(());
        }
        let promoted = live.promoted.is_some();
        inner.write_info(id, &InfoObject::Live(live.clone()), false).await?;
        if promoted {
            // A retry after a failed delete: the temporary copies must not stay behind.
            inner.delete_with_derivatives(&inner.bucket, &inner.data_key(id), &live).await?;
        }
        Ok(())
    }

    async fn list_processing(&self) -> Result<Vec<UploadId>, StoreError> {
        let inner = &self.inner;
        let mut found = Vec::new();
        // Finished uploads only: their data object exists.
        for id in inner.finished_ids().await? {
            if let Ok(InfoObject::Live(live)) = inner.read_info_object(&id).await
                && live.upload.state.is_none_or(|s| s == UploadState::Processing)
            {
                found.push(id);
            }
        }
        Ok(found)
    }
}

impl Inner {
    /// Copies the upload's data object and its derivatives to `target` (and `target`'s
    /// derivative keys) in `to`.
    async fn copy_for_promotion(&self, to: &Bucket, id: &UploadId, live: &LiveInfo, target: &str) -> Result<(), Error> {
        let data_key = self.data_key(id);
        self.copy_object_to(to, &data_key, target, live.upload.length.unwrap_or(0)).await?;
        for d in &live.upload.derivatives {
            let (from, to_key) = (Inner::derivative_key(&data_key, d.name), Inner::derivative_key(target, d.name));
            self.copy_object_to(to, &from, &to_key, d.size).await?;
        }
        Ok(())
    }

    /// Deletes the object `key` in `bucket` and the derivatives `live` lists beside it.
    async fn delete_with_derivatives(&self, bucket: &Bucket, key: &str, live: &LiveInfo) -> Result<(), Error> {
        bucket.delete(key).await?;
        for d in &live.upload.derivatives {
            bucket.delete(&Inner::derivative_key(key, d.name)).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl PresignGet for S3Store {
    async fn presign_get(&self, id: &UploadId, ttl: Duration) -> Result<String, StoreError> {
        self.presigned_get_url(id, ttl).await
    }

    async fn presign_derivative(
        &self,
        id: &UploadId,
        name: tus_core::derivative::DerivativeName,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        self.presigned_derivative_url(id, name, ttl).await
    }
}

#[async_trait]
impl Terminate for S3Store {
    async fn terminate(&self, id: &UploadId) -> Result<(), StoreError> {
        let inner = &self.inner;
        let live = inner.live(id).await?;
        // Tombstone first: from here on the upload answers Gone, whatever happens next.
        inner.write_info(id, &InfoObject::Gone { at: SystemTime::now() }, false).await?;
        let data_key = inner.data_key(id);
        if let (Some(upload_id), false) = (&live.multipart_upload_id, live.completed) {
            inner.bucket.abort(&data_key, upload_id).await?;
        }
        inner.delete_with_derivatives(&inner.bucket, &data_key, &live).await?;
        inner.bucket.delete(&inner.tail_key(id)).await?;
        inner.bucket.delete(&inner.quarantine_key(id)).await?;
        if matches!(live.direct, Some(crate::state::DirectKind::Single { .. })) {
            inner.bucket.delete(&inner.staging_key(id)).await?;
        }
        if let Some(promoted) = &live.promoted {
            inner.delete_with_derivatives(&inner.bucket_of(promoted), &promoted.key, &live).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Concatenate for S3Store {
    async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), StoreError> {
        Ok(self.inner.concatenate(final_id, partials).await?)
    }
}

#[async_trait]
impl DeferLength for S3Store {
    async fn declare_length(&self, id: &UploadId, length: u64) -> Result<(), StoreError> {
        let inner = &self.inner;
        if length > MAX_OBJECT_SIZE {
            return Err(Error::Conflict(format!("uploads larger than {MAX_OBJECT_SIZE} bytes do not fit in S3")).into());
        }
        let mut live = inner.live(id).await?;
        live.upload.length = Some(length);
        inner.write_info(id, &InfoObject::Live(live.clone()), false).await?;
        // Declaring the length the upload already has finishes it.
        if !live.completed
            && let Some(Stored { parts, parts_bytes, tail_len, .. }) = inner.stored(id, &live).await?
            && parts_bytes + tail_len == length
        {
            let tail = match inner.bucket.get_small(&inner.tail_key(id)).await? {
                Some((tail, _)) if tail_len > 0 => tail,
                _ => Bytes::new(),
            };
            inner.complete(id, live, parts, Vec::new(), tail).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ListExpired for S3Store {
    async fn list_expired(&self, cutoff: SystemTime) -> Result<Vec<UploadId>, StoreError> {
        self.unfinished(Some(cutoff)).await
    }

    async fn list_unfinished(&self) -> Result<Vec<UploadId>, StoreError> {
        self.unfinished(None).await
    }
}

impl S3Store {
    /// Unfinished uploads idle since before `cutoff` (removing tombstones older than it), or
    /// with no cutoff all of them (removing nothing).
    async fn unfinished(&self, cutoff: Option<SystemTime>) -> Result<Vec<UploadId>, StoreError> {
        let inner = &self.inner;
        let idle = |at: SystemTime| cutoff.is_none_or(|cutoff| at < cutoff);
        let listed = inner.bucket.list(&inner.prefix).await?;
        let mut infos = Vec::new();
        let mut newest: std::collections::HashMap<&str, Option<SystemTime>> = std::collections::HashMap::new();
        let mut completed = std::collections::HashSet::new();
        for object in &listed {
            let Some(name) = object.key.strip_prefix(inner.prefix.as_str()) else { continue };
            let (stem, suffix) = match name.rsplit_once('.') {
                Some((stem, suffix @ ("info" | "part"))) => (stem, suffix),
                _ => {
                    completed.insert(name);
                    continue;
                }
            };
            if UploadId::parse(stem).is_err() {
                continue;
            }
            let entry = newest.entry(stem).or_insert(object.modified);
            *entry = (*entry).max(object.modified);
            if suffix == "info" {
                infos.push(stem);
            }
        }
        let mut expired = Vec::new();
        for stem in infos {
            // Completed (the data object exists) or touched since the cutoff: not expired.
            if completed.contains(stem) || newest.get(stem).copied().flatten().is_some_and(|t| !idle(t)) {
                continue;
            }
            let Ok(id) = UploadId::parse(stem) else { continue };
            match inner.read_info_object(&id).await {
                Ok(InfoObject::Gone { at }) if cutoff.is_some() && idle(at) => {
                    inner.bucket.delete(&inner.info_key(&id)).await?
                }
                Ok(InfoObject::Live(live)) => {
                    if !live.completed && idle(live.upload.updated_at) {
                        expired.push(id);
                    }
                }
                Ok(InfoObject::Gone { .. }) | Err(Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(expired)
    }
}
