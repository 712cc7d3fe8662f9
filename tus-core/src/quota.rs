//! What one owner may hold in unfinished uploads.
//!
//! With an authorizer configured (see [`crate::auth`]), every unfinished upload counts against
//! its owner: one upload, and its length once known. A creation or length declaration that
//! would take an owner past [`QuotaLimits`] is refused with `413` and a body naming the quota
//! and what is left. An upload stops counting when it completes, is terminated or expires.
//!
//! The counts live in a [`QuotaBook`]: [`MemoryQuotaBook`] for one process (rebuilt from the
//! store at start, see [`crate::TusService::rebuild_quotas`]), or one shared by several
//! instances (`tus-server` keeps them in Redis, where its locks are).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

/// The most one owner may hold in unfinished uploads; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaLimits {
    /// Bytes, counted by declared length.
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

/// Keeps what each owner holds in unfinished uploads. Reservations MUST be atomic per owner:
/// two concurrent reservations never both pass a limit only one of them fits in.
#[async_trait]
pub trait QuotaBook: Send + Sync + fmt::Debug + 'static {
    /// Adds `uploads` and `bytes` to `owner`'s holdings if both stay within `limits`;
    /// otherwise changes nothing and says which quota would have been passed.
    async fn reserve(
        &self,
        owner: &str,
        uploads: u64,
        bytes: u64,
        limits: QuotaLimits,
    ) -> Result<Result<(), QuotaExceeded>, QuotaBookError>;

    /// Gives back what an upload held (never below zero).
    async fn release(&self, owner: &str, uploads: u64, bytes: u64) -> Result<(), QuotaBookError>;

    /// Forgets every count (before rebuilding them from the store).
    async fn clear(&self) -> Result<(), QuotaBookError>;
}

/// Decides a reservation against what `owner` already holds: the one rule every book applies.
pub fn check(held: (u64, u64), add: (u64, u64), limits: QuotaLimits) -> Result<(u64, u64), QuotaExceeded> {
    let (held_uploads, held_bytes) = held;
    let (uploads, bytes) = (held_uploads.saturating_add(add.0), held_bytes.saturating_add(add.1));
    // A limit only stops what adds to it: declaring a deferred length adds no upload, so an
    // owner over a lowered upload limit can still finish what they hold.
    if let Some(limit) = limits.uploads
        && add.0 > 0
        && uploads > limit
    {
        return Err(QuotaExceeded { quota: Quota::Uploads, limit, left: limit.saturating_sub(held_uploads) });
    }
    if let Some(limit) = limits.bytes
        && add.1 > 0
        && bytes > limit
    {
        return Err(QuotaExceeded { quota: Quota::Bytes, limit, left: limit.saturating_sub(held_bytes) });
    }
    Ok((uploads, bytes))
}

/// The in-process [`QuotaBook`]: right for one server process.
#[derive(Debug, Default)]
pub struct MemoryQuotaBook {
    /// Owner → (unfinished uploads, their bytes).
    held: Mutex<HashMap<String, (u64, u64)>>,
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
    async fn reserve(
        &self,
        owner: &str,
        uploads: u64,
        bytes: u64,
        limits: QuotaLimits,
    ) -> Result<Result<(), QuotaExceeded>, QuotaBookError> {
        let mut held = self.held.lock().map_err(|_| Self::poisoned())?;
        let entry = held.entry(owner.to_owned()).or_default();
        Ok(check(*entry, (uploads, bytes), limits).map(|now| *entry = now))
    }

    async fn release(&self, owner: &str, uploads: u64, bytes: u64) -> Result<(), QuotaBookError> {
        let mut held = self.held.lock().map_err(|_| Self::poisoned())?;
        if let Some(entry) = held.get_mut(owner) {
            *entry = (entry.0.saturating_sub(uploads), entry.1.saturating_sub(bytes));
            if *entry == (0, 0) {
                held.remove(owner);
            }
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), QuotaBookError> {
        self.held.lock().map_err(|_| Self::poisoned())?.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_stay_within_the_limits_and_releases_free_them() {
        let book = MemoryQuotaBook::new();
        let limits = QuotaLimits::new(Some(100), Some(2));
        assert_eq!(book.reserve("a", 1, 60, limits).await.unwrap(), Ok(()));
        let refused = book.reserve("a", 1, 50, limits).await.unwrap();
        assert_eq!(refused, Err(QuotaExceeded { quota: Quota::Bytes, limit: 100, left: 40 }));
        assert_eq!(book.reserve("a", 1, 40, limits).await.unwrap(), Ok(()));
        let refused = book.reserve("a", 1, 0, limits).await.unwrap();
        assert_eq!(refused, Err(QuotaExceeded { quota: Quota::Uploads, limit: 2, left: 0 }));
        assert_eq!(book.reserve("b", 1, 100, limits).await.unwrap(), Ok(()), "owners are separate");
        book.release("a", 1, 60).await.unwrap();
        assert_eq!(book.reserve("a", 1, 60, limits).await.unwrap(), Ok(()));
        book.release("a", 5, 500).await.unwrap();
        assert_eq!(book.reserve("a", 2, 100, limits).await.unwrap(), Ok(()), "never below zero");
    }

    #[test]
    fn a_limit_only_stops_what_adds_to_it() {
        let over = QuotaLimits::new(Some(100), Some(1));
        // Two uploads held (the limit was lowered): a length declaration adds no upload.
        assert_eq!(check((2, 10), (0, 50), over), Ok((2, 60)));
        assert!(check((2, 10), (1, 0), over).is_err());
        assert!(check((0, 90), (0, 20), over).is_err());
    }
}
