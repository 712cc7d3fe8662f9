//! Accounting of what each owner holds in unfinished uploads (see [`crate::quota`]): reserved
//! at creation and when a deferred length is declared, released once when the upload
//! completes, is terminated or expires.

use std::time::{Duration, SystemTime};

use super::Inner;
use crate::error::TusError;
use crate::quota::QuotaBookError;
use crate::store::{NewUpload, UploadInfo};

impl From<QuotaBookError> for TusError {
    fn from(e: QuotaBookError) -> Self {
        TusError::Store(crate::store::StoreError::Generic { store: "quota book", source: e.0 })
    }
}

impl Inner {
    /// The owner an upload counts against, if quotas are on and it counts (a final holds no
    /// bytes of its own: its partials count).
    fn counted_owner<'a>(&self, owner: Option<&'a crate::auth::Principal>, is_final: bool) -> Option<&'a str> {
        owner.filter(|_| self.config.quota.is_limited() && !is_final).map(|p| p.subject.as_str())
    }

    /// Reserves one upload and its length (if known) for a creation.
    pub(super) async fn reserve_upload(&self, upload: &NewUpload) -> Result<(), TusError> {
        let is_final = matches!(upload.concat, Some(crate::store::ConcatRole::Final { .. }));
        let Some(owner) = self.counted_owner(upload.owner.as_deref(), is_final) else { return Ok(()) };
        let bytes = upload.length.unwrap_or(0);
        self.quota_book.reserve(owner, 1, bytes, self.config.quota).await?.map_err(TusError::QuotaExceeded)
    }

    /// Reserves the bytes of a deferred length being declared.
    pub(super) async fn reserve_length(&self, info: &UploadInfo, length: u64) -> Result<(), TusError> {
        let Some(owner) = self.counted_owner(info.owner.as_deref(), info.is_final()) else { return Ok(()) };
        self.quota_book.reserve(owner, 0, length, self.config.quota).await?.map_err(TusError::QuotaExceeded)
    }

    /// Gives back `bytes` of a reservation that did not take effect.
    pub(super) async fn unreserve(
        &self,
        owner: Option<&crate::auth::Principal>,
        is_final: bool,
        uploads: u64,
        bytes: u64,
    ) {
        if let Some(owner) = self.counted_owner(owner, is_final)
            && let Err(e) = self.quota_book.release(owner, uploads, bytes).await
        {
            tracing::warn!(owner, error = %e, "could not give back a quota reservation");
        }
    }

    /// An unfinished upload stops counting: it completed, was terminated or expired.
    pub(super) async fn release_upload(&self, info: &UploadInfo) {
        self.unreserve(info.owner.as_deref(), info.is_final(), 1, info.length.unwrap_or(0)).await;
    }

    /// Counts every unfinished upload of the store again, from scratch (at start, for a book
    /// that lives in this process). Needs a store that can list unfinished uploads. Returns
    /// how many it counted.
    pub(crate) async fn rebuild_quotas(&self) -> Result<usize, TusError> {
        let Some(lister) = self.store.capabilities().list_expired.filter(|_| self.config.quota.is_limited()) else {
            return Ok(0);
        };
        self.quota_book.clear().await?;
        // Every unfinished upload was last active before a moment far ahead.
        let everything = SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let mut counted = 0;
        for id in lister.list_expired(everything).await? {
            let Ok(info) = self.store.info(&id).await else { continue };
            if let Some(owner) = self.counted_owner(info.owner.as_deref(), info.is_final()) {
                let unlimited = crate::quota::QuotaLimits::default();
                let _ = self.quota_book.reserve(owner, 1, info.length.unwrap_or(0), unlimited).await?;
                counted += 1;
            }
        }
        Ok(counted)
    }
}
