//! Per-upload locks with lock release.
//!
//! Only one request may write to an upload at a time. A client whose connection dropped
//! usually retries (HEAD, then PATCH) while the server is still reading the dead request; a
//! plain mutex would answer that retry with `423 Locked`. Instead, a request that wants a held
//! lock asks the holder to stop ([`UploadLock::release_requested`] fires), the holder saves what
//! it received and lets go, and the waiter proceeds. Only a holder that does not let go within
//! the wait leads to [`LockError::Timeout`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::id::UploadId;

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The holder did not release within the wait.
    #[error("timed out waiting for the upload lock")]
    Timeout,
    /// The lock backend failed.
    #[error("lock backend error: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// Hands out exclusive per-upload locks.
#[async_trait]
pub trait Locker: Send + Sync + fmt::Debug + 'static {
    /// Takes the lock of `id`, asking a current holder to release and waiting at most `wait`.
    async fn lock(&self, id: &UploadId, wait: Duration) -> Result<Box<dyn UploadLock>, LockError>;

    /// Whether `id` is locked right now, if the locker can tell at no cost (an in-process
    /// locker can; a shared one answers `None`). A `HEAD` of an upload nobody holds then skips
    /// the lock. Default `None`.
    fn is_held(&self, id: &UploadId) -> Option<bool> {
        let _ = id;
        None
    }
}

/// A held lock. Dropping it releases it.
#[async_trait]
pub trait UploadLock: Send + Sync {
    /// Completes when another request asked for this lock; the holder should then stop, save
    /// what it has, and drop the lock. Cancel-safe; may be awaited repeatedly.
    async fn release_requested(&self);
}

/// An [`UploadLock`] made of what every lock has: the receiver its [`Locker`] asks for a release
/// through (by sending `true`), and a guard whose drop gives the lock back. Lockers return this
/// rather than each implementing [`UploadLock`] again.
#[derive(Debug)]
pub struct GuardedLock<G> {
    release: watch::Receiver<bool>,
    _guard: G,
}

impl<G> GuardedLock<G> {
    /// A lock that `guard` gives back when dropped, asked to let go through `release`.
    pub fn new(release: watch::Receiver<bool>, guard: G) -> Self {
        GuardedLock { release, _guard: guard }
    }
}

#[async_trait]
impl<G: Send + Sync> UploadLock for GuardedLock<G> {
    async fn release_requested(&self) {
        let mut release = self.release.clone();
        // With the sender gone nobody can ask any more: the request never comes.
        if release.wait_for(|asked| *asked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The in-process [`Locker`]: correct for a single server process.
#[derive(Clone, Default)]
pub struct MemoryLocker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    held: Mutex<HashMap<UploadId, Held>>,
    next_token: AtomicU64,
}

struct Held {
    token: u64,
    /// Set to `true` to ask the holder to release.
    stop: watch::Sender<bool>,
    /// Dropped (closing every subscriber) when the lock is released.
    freed: watch::Sender<()>,
}

impl MemoryLocker {
    /// A locker with no locks held.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many uploads are locked right now.
    pub fn held_count(&self) -> usize {
        self.inner.held.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl fmt::Debug for MemoryLocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLocker").field("held", &self.held_count()).finish()
    }
}

#[async_trait]
impl Locker for MemoryLocker {
    fn is_held(&self, id: &UploadId) -> Option<bool> {
        self.inner.held.lock().ok().map(|held| held.contains_key(id))
    }

    async fn lock(&self, id: &UploadId, wait: Duration) -> Result<Box<dyn UploadLock>, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut freed = {
                let mut held = self.inner.held.lock().map_err(|_| poisoned())?;
                match held.get(id) {
                    None => {
                        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
                        let (stop, stop_rx) = watch::channel(false);
                        let (freed, _) = watch::channel(());
                        held.insert(id.clone(), Held { token, stop, freed });
                        let guard = MemoryLock { inner: self.inner.clone(), id: id.clone(), token };
                        return Ok(Box::new(GuardedLock::new(stop_rx, guard)));
                    }
                    Some(holder) => {
                        holder.stop.send_replace(true);
                        // Subscribing under the map lock: a release after this point closes it.
                        holder.freed.subscribe()
                    }
                }
            };
            // `changed` fails once the holder's sender is dropped, i.e. the lock was released.
            if tokio::time::timeout_at(deadline, async { while freed.changed().await.is_ok() {} }).await.is_err() {
                return Err(LockError::Timeout);
            }
        }
    }
}

fn poisoned() -> LockError {
    LockError::Backend("memory locker mutex poisoned".into())
}

/// Gives a [`MemoryLocker`] lock back when dropped.
struct MemoryLock {
    inner: Arc<Inner>,
    id: UploadId,
    token: u64,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        if let Ok(mut held) = self.inner.held.lock()
            && held.get(&self.id).is_some_and(|h| h.token == self.token)
        {
            held.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_request_asks_holder_to_release() {
        let locker = MemoryLocker::new();
        let id = UploadId::random();
        let first = locker.lock(&id, Duration::from_secs(1)).await.unwrap();
        let l2 = locker.clone();
        let id2 = id.clone();
        let waiter = tokio::spawn(async move { l2.lock(&id2, Duration::from_secs(5)).await.map(|_| ()) });
        // The holder hears the request, "saves", and releases.
        tokio::time::timeout(Duration::from_secs(2), first.release_requested()).await.unwrap();
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(locker.held_count(), 0);
    }

    #[tokio::test]
    async fn a_holder_that_never_releases_times_out_the_waiter() {
        let locker = MemoryLocker::new();
        let id = UploadId::random();
        let _held = locker.lock(&id, Duration::from_secs(1)).await.unwrap();
        let err = locker.lock(&id, Duration::from_millis(50)).await.err().unwrap();
        assert!(matches!(err, LockError::Timeout));
    }

    #[tokio::test]
    async fn different_uploads_do_not_contend() {
        let locker = MemoryLocker::new();
        let _a = locker.lock(&UploadId::random(), Duration::ZERO).await.unwrap();
        let _b = locker.lock(&UploadId::random(), Duration::ZERO).await.unwrap();
        assert_eq!(locker.held_count(), 2);
    }
}
