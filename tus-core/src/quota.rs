//! What one owner may hold in unfinished uploads.
//!
//! With an authorizer configured (see [`crate::auth`]), every unfinished upload counts against
//! its owner: one upload, and its length once known. A creation or length declaration that
//! would take an owner past [`QuotaLimits`] is refused with `413` and a body naming the quota
//! and what is left. An upload stops counting when it completes, is terminated or expires.
//!
//! A deferred-length upload holds what it has stored, and while a body streams into it, what
//! that body may still add (up to what is left of the owner's bytes): its bytes count before
//! its length is known. A final upload counts as one upload and no bytes (its partials hold
//! them).
//!
//! The counts live in a [`QuotaBook`], upload by upload: [`MemoryQuotaBook`] for one process,
//! or one shared by several instances (`tus-server` keeps them in Redis, where its locks are).
//! Either is reconciled with the store at start (see [`crate::TusService::reconcile_quotas`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::id::UploadId;

/// The most one owner may hold in unfinished uploads; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaLimits {
    /// Bytes: the declared length, or while the length is deferred what is stored and may
    /// still arrive.
    pub bytes: Option<u64>,
    /// Unfinished uploads.
    pub uploads: Option<u64>,
}

impl QuotaLimits {
    /// Limits of `bytes` and `uploads` (either may be `None`).
    pub fn new(bytes: Option<u64>, uploads: Option<u64>) -> Self {
        QuotaLimits { bytes, uploads }
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.uploads.is_some()
    }
}

/// Which quota a reservation would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// `--quota-bytes`.
    Bytes,
    /// `--quota-uploads`.
    Uploads,
}

impl Quota {
    /// `bytes` or `uploads`.
    pub fn name(self) -> &'static str {
        match self {
            Quota::Bytes => "bytes",
            Quota::Uploads => "uploads",
        }
    }
}

/// A reservation refused: which quota, its limit, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} quota exceeded: limit {limit}, {left} left", .quota.name())]
pub struct QuotaExceeded {
    /// The quota that would have been passed.
    pub quota: Quota,
    /// Its limit.
    pub limit: u64,
    /// What the owner may still add.
    pub left: u64,
}

/// The book could not be read or written (a shared backend down).
#[derive(Debug, thiserror::Error)]
#[error("quota book error: {0}")]
pub struct QuotaBookError(pub Box<dyn std::error::Error + Send + Sync>);

/// Keeps what each owner holds in unfinished uploads, upload by upload: every holding names
/// its upload, so giving it back twice gives back once, and the book can be reconciled with
/// the store (see [`crate::TusService::reconcile_quotas`]). Holds MUST be atomic per owner:
/// two concurrent holds never both pass a limit only one of them fits in.
#[async_trait]
pub trait QuotaBook: Send + Sync + fmt::Debug + 'static {
    /// Sets what `upload` of `owner` holds to `bytes` (and counts it as one upload if it was
    /// not held yet), if the owner's totals stay within `limits`; otherwise changes nothing
    /// and says which quota would have been passed. Returns what the upload held before.
    async fn hold(
        &self,
        owner: &str,
        upload: &UploadId,
        bytes: u64,
        limits: QuotaLimits,
    ) -> Result<Result<Option<u64>, QuotaExceeded>, QuotaBookError>;

    /// `upload` no longer counts against `owner`. Releasing what is not held does nothing.
    async fn release(&self, owner: &str, upload: &UploadId) -> Result<(), QuotaBookError>;

    /// Every holding, as (owner, upload): what a reconciliation checks against the store.
    async fn holdings(&self) -> Result<Vec<(String, UploadId)>, QuotaBookError>;
}

/// What a reconciliation of the quota book with the store changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Unfinished uploads found in the store and held.
    pub held: usize,
    /// Holdings given back: their upload is finished or no longer exists.
    pub released: usize,
}

/// What an owner holds in all: unfinished uploads and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Unfinished uploads.
    pub uploads: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Decides a hold against what the owner holds: `totals` in all, `before` for this upload
/// (`None`: not held yet), `bytes` asked for. Returns the totals afterwards. The one rule every
/// book applies.
pub fn check(totals: Totals, before: Option<u64>, bytes: u64, limits: QuotaLimits) -> Result<Totals, QuotaExceeded> {
    let adds_upload = before.is_none();
    let had = before.unwrap_or(0);
    let after = Totals {
        uploads: totals.uploads.saturating_add(u64::from(adds_upload)),
        bytes: totals.bytes.saturating_sub(had).saturating_add(bytes),
    };
    // A limit only stops what adds to it: declaring a deferred length adds no upload, and
    // shrinking a hold adds no bytes, so an owner over a lowered limit can still finish.
    if let Some(limit) = limits.uploads
        && adds_upload
        && after.uploads > limit
    {
        return Err(QuotaExceeded { quota: Quota::Uploads, limit, left: limit.saturating_sub(totals.uploads) });
    }
    if let Some(limit) = limits.bytes
        && bytes > had
        && after.bytes > limit
    {
        return Err(QuotaExceeded { quota: Quota::Bytes, limit, left: limit.saturating_sub(totals.bytes) });
    }
    Ok(after)
}

/// What one owner holds, upload by upload.
#[derive(Debug, Default)]
struct Holdings {
    totals: Totals,
    uploads: HashMap<UploadId, u64>,
}

/// The in-process [`QuotaBook`]: right for one server process.
#[derive(Debug, Default)]
pub struct MemoryQuotaBook {
    held: Mutex<HashMap<String, Holdings>>,
}

impl MemoryQuotaBook {
    /// An empty book.
    pub fn new() -> Self {
        MemoryQuotaBook::default()
    }

    fn poisoned() -> QuotaBookError {
        QuotaBookError("quota book lock poisoned".into())
    }
}

#[async_trait]
impl QuotaBook for MemoryQuotaBook {
    async fn hold(
        &self,
        owner: &str,
        upload: &UploadId,
        bytes: u64,
        limits: QuotaLimits,
    ) -> Result<Result<Option<u64>, QuotaExceeded>, QuotaBookError> {
        let mut held = self.held.lock().map_err(|_| Self::poisoned())?;
        let holdings = held.entry(owner.to_owned()).or_default();
        let before = holdings.uploads.get(upload).copied();
        Ok(check(holdings.totals, before, bytes, limits).map(|totals| {
            holdings.totals = totals;
            holdings.uploads.insert(upload.clone(), bytes);
            before
        }))
    }

    async fn release(&self, owner: &str, upload: &UploadId) -> Result<(), QuotaBookError> {
        let mut held = self.held.lock().map_err(|_| Self::poisoned())?;
        if let Some(holdings) = held.get_mut(owner)
            && let Some(bytes) = holdings.uploads.remove(upload)
        {
            holdings.totals.uploads = holdings.totals.uploads.saturating_sub(1);
            holdings.totals.bytes = holdings.totals.bytes.saturating_sub(bytes);
            if holdings.uploads.is_empty() {
                held.remove(owner);
            }
        }
        Ok(())
    }

    async fn holdings(&self) -> Result<Vec<(String, UploadId)>, QuotaBookError> {
        let held = self.held.lock().map_err(|_| Self::poisoned())?;
        Ok(held.iter().flat_map(|(owner, h)| h.uploads.keys().map(|id| (owner.clone(), id.clone()))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<UploadId> {
        (0..n).map(|_| UploadId::random()).collect()
    }

    #[tokio::test]
    async fn holds_stay_within_the_limits_and_releases_free_them() {
        let book = MemoryQuotaBook::new();
        let limits = QuotaLimits::new(Some(100), Some(2));
        let u = ids(4);
        assert_eq!(book.hold("a", &u[0], 60, limits).await.unwrap(), Ok(None));
        let refused = book.hold("a", &u[1], 50, limits).await.unwrap();
        assert_eq!(refused, Err(QuotaExceeded { quota: Quota::Bytes, limit: 100, left: 40 }));
        assert_eq!(book.hold("a", &u[1], 40, limits).await.unwrap(), Ok(None));
        let refused = book.hold("a", &u[2], 0, limits).await.unwrap();
        assert_eq!(refused, Err(QuotaExceeded { quota: Quota::Uploads, limit: 2, left: 0 }));
        assert_eq!(book.hold("b", &u[3], 100, limits).await.unwrap(), Ok(None), "owners are separate");
        book.release("a", &u[0]).await.unwrap();
        book.release("a", &u[0]).await.unwrap();
        assert_eq!(book.hold("a", &u[2], 60, limits).await.unwrap(), Ok(None), "released once, however often");
        let refused = book.hold("a", &u[0], 1, limits).await.unwrap();
        assert_eq!(refused.unwrap_err().quota, Quota::Uploads);
        let mut held = book.holdings().await.unwrap();
        held.sort();
        let mut expected =
            vec![("a".to_owned(), u[1].clone()), ("a".to_owned(), u[2].clone()), ("b".to_owned(), u[3].clone())];
        expected.sort();
        assert_eq!(held, expected);
    }

    #[tokio::test]
    async fn a_hold_grows_and_shrinks_in_place() {
        let book = MemoryQuotaBook::new();
        let limits = QuotaLimits::new(Some(100), Some(1));
        let u = ids(2);
        assert_eq!(book.hold("a", &u[0], 10, limits).await.unwrap(), Ok(None));
        assert_eq!(book.hold("a", &u[0], 100, limits).await.unwrap(), Ok(Some(10)), "one upload, not two");
        let refused = book.hold("a", &u[0], 101, limits).await.unwrap();
        assert_eq!(refused, Err(QuotaExceeded { quota: Quota::Bytes, limit: 100, left: 0 }));
        assert_eq!(book.hold("a", &u[0], 30, limits).await.unwrap(), Ok(Some(100)));
        book.release("a", &u[0]).await.unwrap();
        assert_eq!(book.hold("a", &u[1], 100, limits).await.unwrap(), Ok(None), "all 100 bytes free again");
    }

    #[test]
    fn a_limit_only_stops_what_adds_to_it() {
        let over = QuotaLimits::new(Some(100), Some(1));
        let held = Totals { uploads: 2, bytes: 10 };
        // Two uploads held (the limit was lowered): a length declaration adds no upload.
        assert_eq!(check(held, Some(0), 50, over), Ok(Totals { uploads: 2, bytes: 60 }));
        assert!(check(held, None, 0, over).is_err());
        assert!(check(Totals { uploads: 0, bytes: 90 }, Some(0), 20, over).is_err());
        // Over the byte limit, shrinking a hold still works.
        assert_eq!(
            check(Totals { uploads: 1, bytes: 150 }, Some(150), 120, over),
            Ok(Totals { uploads: 1, bytes: 120 })
        );
    }
}
