//! The length decisions both dialects share, made once: a new upload's length, a length an
//! append declares, and how many bytes a body may carry. `--max-size` holds because every path
//! (tus 1.0 and the IETF draft, creation, creation-with-upload, appends, concatenation) asks
//! here and nowhere else.

use super::Inner;
use crate::auth::Principal;
use crate::error::TusError;
use crate::store::UploadInfo;

impl Inner {
    /// The largest upload `owner` may have: the service's maximum, narrowed by the owner's
    /// own (a token's `max_size`).
    pub(super) fn max_size_for(&self, owner: Option<&Principal>) -> Option<u64> {
        match (self.config.max_size, owner.and_then(|p| p.max_size)) {
            (Some(service), Some(own)) => Some(service.min(own)),
            (service, own) => service.or(own),
        }
    }

    /// A length for an upload of `owner` about to exist (a creation, or a final upload's sum
    /// of partials, checked again before it is assembled): within the maximum size.
    pub(super) fn check_length(&self, length: u64, owner: Option<&Principal>) -> Result<(), TusError> {
        if self.max_size_for(owner).is_some_and(|max| length > max) { Err(TusError::SizeExceeded) } else { Ok(()) }
    }

    /// A length an append tells: it must agree with a known length; a deferred length is set
    /// once, at or past the offset and within the maximum size.
    pub(super) async fn accept_length(&self, info: &mut UploadInfo, told: u64) -> Result<(), TusError> {
        match info.length {
            Some(known) if known == told => Ok(()),
            Some(_) => Err(TusError::InvalidLength),
            None if told < info.offset => Err(TusError::InvalidLength),
            None => {
                self.check_length(told, info.owner.as_deref())?;
                let deferrer = self.store.capabilities().defer_length.ok_or(TusError::NotImplemented)?;
                let holding = self.hold_length(info, told).await?;
                if let Err(e) = deferrer.declare_length(&info.id, told).await {
                    self.undo(holding).await;
                    return Err(e.into());
                }
                info.length = Some(told);
                Ok(())
            }
        }
    }

    /// Bytes the next body of `info` may carry: up to its length, or up to the maximum size
    /// while the length is deferred.
    pub(super) fn body_limit(&self, info: &UploadInfo) -> u64 {
        let end = info.length.or(self.max_size_for(info.owner.as_deref())).unwrap_or(u64::MAX);
        end.saturating_sub(info.offset)
    }
}
