//! Accounting of what each owner holds in unfinished uploads (see [`crate::quota`]): held at
//! creation, grown while a body streams into a deferred-length upload and when its length is
//! declared, released when the upload completes, is terminated or expires, and reconciled
//! with the store at start.

use std::time::Duration;

use super::Inner;
use crate::auth::Principal;
use crate::error::TusError;
use crate::id::UploadId;
use crate::quota::{Quota, QuotaBookError, QuotaExceeded, QuotaLimits, Reconciled};
use crate::store::{NewUpload, StoreError, UploadInfo};

/// How long a reconciliation waits before giving back holdings whose upload it cannot find:
/// another instance may be between holding an upload and creating it.
const MISSING_GRACE: Duration = Duration::from_secs(10);

impl From<QuotaBookError> for TusError {
    fn from(e: QuotaBookError) -> Self {
        TusError::Store(crate::store::StoreError::Generic { store: "quota book", source: e.0 })
    }
}

/// A change to one upload's holding, to undo if what it was for fails.
#[must_use]
pub(super) struct Holding {
    /// Whose holding changed; `None`: nothing was held.
    owner: Option<String>,
    id: UploadId,
    /// What the upload held before (`None`: it was not held).
    before: Option<u64>,
}

impl Holding {
    fn none(id: &UploadId) -> Self {
        Holding { owner: None, id: id.clone(), before: None }
    }
}

/// What `info` holds: its length, or while that is deferred what is stored. A final holds no
/// bytes of its own (its partials hold them).
fn held_bytes(info: &UploadInfo) -> u64 {
    if info.is_final() { 0 } else { info.length.unwrap_or(info.offset) }
}

/// Limits that never refuse: for putting back what the book already allowed.
const UNLIMITED: QuotaLimits = QuotaLimits { bytes: None, uploads: None };

impl Inner {
    /// The owner an upload counts against, if quotas are on.
    fn counted_owner<'a>(&self, owner: Option<&'a Principal>) -> Option<&'a str> {
        owner.filter(|_| self.config.quota.is_limited()).map(|p| p.subject.as_str())
    }

    async fn hold(&self, owner: &str, id: &UploadId, bytes: u64, limits: QuotaLimits) -> Result<Option<u64>, TusError> {
        self.quota_book.hold(owner, id, bytes, limits).await?.map_err(TusError::QuotaExceeded)
    }

    /// Holds one upload and its length (if known) for a creation. [`Self::undo`] gives it
    /// back if the creation fails.
    pub(super) async fn hold_new_upload(&self, upload: &NewUpload) -> Result<Holding, TusError> {
        // A zero-length upload is complete at once and never counts.
        let counted = self.counted_owner(upload.owner.as_deref()).filter(|_| upload.length != Some(0));
        let Some(owner) = counted else { return Ok(Holding::none(&upload.id)) };
        let is_final = matches!(upload.concat, Some(crate::store::ConcatRole::Final { .. }));
        let bytes = if is_final { 0 } else { upload.length.unwrap_or(0) };
        let before = self.hold(owner, &upload.id, bytes, self.config.quota).await?;
        Ok(Holding { owner: Some(owner.to_owned()), id: upload.id.clone(), before })
    }

    /// Holds the bytes of a deferred length being declared. [`Self::undo`] gives them back if
    /// the declaration fails.
    pub(super) async fn hold_length(&self, info: &UploadInfo, length: u64) -> Result<Holding, TusError> {
        let Some(owner) = self.counted_owner(info.owner.as_deref()) else { return Ok(Holding::none(&info.id)) };
        let before = self.hold(owner, &info.id, length, self.config.quota).await?;
        Ok(Holding { owner: Some(owner.to_owned()), id: info.id.clone(), before })
    }

    /// Puts a holding back to what it was, after a change that did not take effect.
    pub(super) async fn undo(&self, holding: Holding) {
        let Holding { owner: Some(owner), id, before } = holding else { return };
        let restored = match before {
            Some(bytes) => self.quota_book.hold(&owner, &id, bytes, UNLIMITED).await.map(drop),
            None => self.quota_book.release(&owner, &id).await,
        };
        if let Err(e) = restored {
            tracing::warn!(owner, upload = %id, error = %e, "could not give back a quota reservation");
        }
    }

    /// Before a body streams into a deferred-length upload: holds what it may add, and returns
    /// how much it may carry (`limit`, or less if that is all that is left of the owner's
    /// bytes). Without this, bytes stored under a deferred length would count only once the
    /// length is declared: an owner could hold `uploads × max-size` past the byte quota.
    /// `true` in the second value: the hold grew and [`Self::settle_body_hold`] must
    /// shrink it to what was stored.
    pub(super) async fn hold_for_body(
        &self,
        info: &UploadInfo,
        limit: u64,
        declared: Option<u64>,
    ) -> Result<(u64, bool), TusError> {
        let Some(owner) = self.counted_owner(info.owner.as_deref()) else { return Ok((limit, false)) };
        if info.length.is_some() || info.is_final() || self.config.quota.bytes.is_none() {
            return Ok((limit, false));
        }
        // Never more than the whole quota: a shared book counts exactly only below 2^53.
        let quota = self.config.quota.bytes.unwrap_or(u64::MAX);
        let want = declared.unwrap_or(limit).min(limit).min(quota);
        match self.hold(owner, &info.id, info.offset.saturating_add(want), self.config.quota).await {
            Ok(_) => Ok((want, true)),
            // A body of unknown size takes what is left (the upload's own holding is its
            // offset, so `left` comes on top of it).
            Err(TusError::QuotaExceeded(QuotaExceeded { quota: Quota::Bytes, left, .. }))
                if declared.is_none() && left > 0 =>
            {
                let want = left.min(limit);
                self.hold(owner, &info.id, info.offset.saturating_add(want), self.config.quota).await?;
                Ok((want, true))
            }
            Err(e) => Err(e),
        }
    }

    /// After a body streamed into a deferred-length upload: its holding shrinks to what is
    /// stored (`stored`, or the store's offset when the append failed and it is unknown).
    pub(super) async fn settle_body_hold(&self, info: &UploadInfo, stored: Option<u64>) {
        let Some(owner) = self.counted_owner(info.owner.as_deref()) else { return };
        let offset = match stored {
            Some(offset) => offset,
            None => match self.store.info(&info.id).await {
                Ok(now) => held_bytes(&now),
                // Unknown: the larger holding stays until the next append, declaration or
                // reconciliation (counting too much, never too little).
                Err(_) => return,
            },
        };
        if let Err(e) = self.quota_book.hold(owner, &info.id, offset, UNLIMITED).await {
            tracing::warn!(owner, upload = %info.id, error = %e, "could not settle a quota holding");
        }
    }

    /// An unfinished upload stops counting: it completed, was terminated or expired.
    pub(super) async fn release_upload(&self, info: &UploadInfo) {
        if let Some(owner) = self.counted_owner(info.owner.as_deref())
            && let Err(e) = self.quota_book.release(owner, &info.id).await
        {
            tracing::warn!(owner, upload = %info.id, error = %e, "could not give back a quota reservation");
        }
    }

    /// Makes the quota book agree with the store: every unfinished upload is held at what it
    /// holds, and holdings of uploads that finished or no longer exist are given back. Safe
    /// while other instances serve (every step is idempotent). Needs a store that can list
    /// unfinished uploads.
    pub(crate) async fn reconcile_quotas(&self) -> Result<Reconciled, TusError> {
        let mut done = Reconciled::default();
        let Some(lister) = self.store.capabilities().list_expired.filter(|_| self.config.quota.is_limited()) else {
            return Ok(done);
        };
        for id in lister.list_unfinished().await? {
            let Ok(info) = self.store.info(&id).await else { continue };
            let Some(owner) = self.counted_owner(info.owner.as_deref()) else { continue };
            self.quota_book.hold(owner, &id, held_bytes(&info), UNLIMITED).await?.ok();
            done.held += 1;
            // Completed meanwhile, its release before this hold: give it back now.
            if self.store.info(&id).await.is_ok_and(|now| now.is_complete()) {
                self.quota_book.release(owner, &id).await?;
            }
        }
        let mut missing = Vec::new();
        for (owner, id) in self.quota_book.holdings().await? {
            match self.store.info(&id).await {
                Ok(info) if info.is_complete() => {
                    self.quota_book.release(&owner, &id).await?;
                    done.released += 1;
                }
                Ok(_) => {}
                Err(StoreError::NotFound | StoreError::Gone) => missing.push((owner, id)),
                Err(e) => return Err(e.into()),
            }
        }
        if !missing.is_empty() {
            tokio::time::sleep(MISSING_GRACE).await;
        }
        for (owner, id) in missing {
            if matches!(self.store.info(&id).await, Err(StoreError::NotFound | StoreError::Gone)) {
                self.quota_book.release(&owner, &id).await?;
                done.released += 1;
            }
        }
        Ok(done)
    }
}
