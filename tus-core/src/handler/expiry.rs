//! The expiration extension: when an unfinished upload expires, `Upload-Expires`, and the
//! reaper that removes expired uploads (and unfinished finals whose partials are gone).

use std::time::{Duration, SystemTime};

use http::header::HeaderMap;

use super::Inner;
use crate::error::TusError;
use crate::headers::{self, UploadExpires};
use crate::store::UploadInfo;

impl Inner {
    pub(super) fn expires_at(&self, info: &UploadInfo) -> Option<SystemTime> {
        let period = self.expiration()?;
        (!info.is_complete() && !info.is_final()).then(|| info.updated_at + period)
    }

    pub(super) fn is_expired(&self, info: &UploadInfo) -> bool {
        self.expires_at(info).is_some_and(|at| at <= SystemTime::now())
    }

    pub(super) fn set_expires_header(&self, headers: &mut HeaderMap, info: &UploadInfo) {
        if let Some(at) = self.expires_at(info) {
            headers::set(headers, &UploadExpires(at));
        }
    }

    /// Every `expiration / 4`, between 1 s and 60 s.
    pub(super) fn reap_interval(&self) -> Option<Duration> {
        self.expiration().map(|period| (period / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)))
    }

    /// The one reaper loop: a pass every `reap_interval`, `on_removed` told what each removed.
    pub(super) async fn reap_forever(&self, mut on_removed: impl FnMut(usize)) {
        let Some(every) = self.reap_interval() else { return };
        loop {
            tokio::time::sleep(every).await;
            match self.reap_once().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(removed = n, "expired uploads removed");
                    on_removed(n);
                }
                Err(e) => tracing::warn!(error = %e, "expiry pass failed"),
            }
        }
    }

    pub(super) async fn reap_once(&self) -> Result<usize, TusError> {
        let (Some(period), Some(expirer)) = (self.expiration(), self.store.capabilities().list_expired) else {
            return Ok(0);
        };
        let mut removed = 0;
        let cutoff = SystemTime::now() - period;
        for id in expirer.list_expired(cutoff).await? {
            let Ok(_lock) = self.lock(&id).await else { continue };
            // Re-check under the lock: a PATCH may have moved the clock since the listing.
            let Ok(info) = self.store.info(&id).await else { continue };
            if self.is_expired(&info) || self.is_abandoned_final(&info, cutoff).await {
                expirer.terminate(&id).await?;
                self.release_upload(&info).await;
                self.forget_waiting(&info);
                removed += 1;
            }
        }
        Ok(removed)
    }
}
