//! A [`Locker`] over Redis, for several `tus-server` instances sharing one store.
//!
//! # How it works
//!
//! - **Lease.** The lock of upload `<id>` is the key `tus:lock:<id>` holding a random token,
//!   set with `SET NX PX <lease>`. The holder renews it every third of the lease with a script
//!   that extends it only if the token is still its own; releasing deletes it the same way.
//!   A holder that dies simply stops renewing: the lease expires and others proceed.
//! - **Lock release across instances.** A request that finds the lock taken publishes the ID
//!   on `tus:lock:release`; every instance listens there and asks its local holder of that
//!   upload to stop. The holder saves what it received and releases; the waiter, polling
//!   `SET NX`, gets the lock within a bounded time instead of answering `423`.
//! - **Losing the lease.** If renewal fails (Redis unreachable, or the key expired and was
//!   taken by someone else), the holder is told to stop as if a release had been requested:
//!   its request stops reading, and the store keeps only what it had already accepted. Renewal
//!   runs every third of the lease, so a live holder loses its lease only if it cannot reach
//!   Redis for two thirds of it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tus_core::UploadId;
use tus_core::locker::{GuardedLock, LockError, Locker, UploadLock};

const KEY_PREFIX: &str = "tus:lock:";
const RELEASE_CHANNEL: &str = "tus:lock:release";

/// Extends the lease only if we still hold it.
const RENEW: &str =
    r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Deletes the lease only if we still hold it.
const RELEASE: &str =
    r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> LockError {
    LockError::Backend(Box::new(e))
}

/// Locks held on this instance, by upload ID: how to ask each holder to stop.
type Holders = Mutex<HashMap<String, HashMap<u64, watch::Sender<bool>>>>;

/// Upload locks shared by every instance using the same Redis.
#[derive(Clone)]
pub struct RedisLocker {
    shared: Arc<Shared>,
}

struct Shared {
    conn: ConnectionManager,
    lease: Duration,
    holders: Holders,
    next_local: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for RedisLocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLocker").field("lease", &self.shared.lease).finish()
    }
}

impl RedisLocker {
    /// Connects to `url` (`redis://host:port/db`) and starts listening for release requests.
    pub async fn connect(url: &str, lease: Duration) -> Result<Self, LockError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let conn = ConnectionManager::new(client.clone()).await.map_err(backend)?;
        let shared = Arc::new(Shared {
            conn,
            lease,
            holders: Mutex::default(),
            next_local: std::sync::atomic::AtomicU64::new(0),
        });
        // Fail fast if the release channel cannot be reached; reconnect later on errors.
        let pubsub = subscribe(&client).await.map_err(backend)?;
        tokio::spawn(listen_for_releases(client, pubsub, Arc::downgrade(&shared)));
        Ok(RedisLocker { shared })
    }

    /// Whether Redis answers (for readiness checks).
    pub async fn ping(&self) -> bool {
        let mut conn = self.shared.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(Duration::from_secs(2), ping).await, Ok(Ok(_)))
    }
}

#[async_trait]
impl crate::ops::Probe for RedisLocker {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn is_ready(&self) -> bool {
        self.ping().await
    }
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(RELEASE_CHANNEL).await?;
    Ok(pubsub)
}

/// Delivers release requests to local holders, resubscribing (with backoff) if the
/// subscription connection drops. Ends when the locker is gone.
async fn listen_for_releases(client: redis::Client, mut pubsub: redis::aio::PubSub, shared: std::sync::Weak<Shared>) {
    let mut delay = Duration::from_millis(100);
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Some(shared) = shared.upgrade() else { return };
                let Ok(id) = msg.get_payload::<String>() else { continue };
                if let Ok(holders) = shared.holders.lock()
                    && let Some(local) = holders.get(&id)
                {
                    for stop in local.values() {
                        stop.send_replace(true);
                    }
                }
                delay = Duration::from_millis(100);
            }
        }
        if shared.strong_count() == 0 {
            return;
        }
        tracing::warn!(retry_in = ?delay, "lost the Redis release-request subscription; resubscribing");
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            if let Ok(p) = subscribe(&client).await {
                pubsub = p;
                break;
            }
        }
    }
}

#[async_trait]
impl Locker for RedisLocker {
    async fn lock(&self, id: &UploadId, wait: Duration) -> Result<Box<dyn UploadLock>, LockError> {
        let key = format!("{KEY_PREFIX}{id}");
        let token = UploadId::random().to_string();
        let lease_ms = u64::try_from(self.shared.lease.as_millis()).unwrap_or(u64::MAX);
        let deadline = tokio::time::Instant::now() + wait;
        let mut conn = self.shared.conn.clone();
        let mut pause = Duration::from_millis(10);
        loop {
            let acquired: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            if acquired.is_some() {
                break;
            }
            // Someone holds it: ask them (on whichever instance) to let go, then retry.
            let _: i64 = redis::cmd("PUBLISH")
                .arg(RELEASE_CHANNEL)
                .arg(id.as_str())
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            if tokio::time::Instant::now() + pause > deadline {
                return Err(LockError::Timeout);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }

        let (stop, stop_rx) = watch::channel(false);
        let local = self.shared.next_local.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut holders) = self.shared.holders.lock() {
            holders.entry(id.to_string()).or_default().insert(local, stop.clone());
        }
        let renewal = tokio::spawn(renew(conn, key.clone(), token.clone(), self.shared.lease, stop));
        let guard = RedisLock { shared: self.shared.clone(), id: id.to_string(), key, token, local, renewal };
        Ok(Box::new(GuardedLock::new(stop_rx, guard)))
    }
}

/// Keeps the lease alive; on failure tells the holder to stop.
async fn renew(mut conn: ConnectionManager, key: String, token: String, lease: Duration, stop: watch::Sender<bool>) {
    let every = lease / 3;
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    let mut valid_until = tokio::time::Instant::now() + lease;
    let script = redis::Script::new(RENEW);
    loop {
        tokio::time::sleep(every).await;
        let mut invocation = script.key(&key);
        invocation.arg(&token).arg(lease_ms);
        let renewed = invocation.invoke_async::<i64>(&mut conn);
        match tokio::time::timeout(every, renewed).await {
            Ok(Ok(1)) => valid_until = tokio::time::Instant::now() + lease,
            Ok(Ok(_)) => {
                tracing::warn!(%key, "upload lock lease lost; stopping its request");
                stop.send_replace(true);
                return;
            }
            Ok(Err(_)) | Err(_) if tokio::time::Instant::now() + every >= valid_until => {
                tracing::warn!(%key, "cannot renew upload lock lease; stopping its request");
                stop.send_replace(true);
                return;
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
}

/// Gives a Redis lock back when dropped.
struct RedisLock {
    shared: Arc<Shared>,
    id: String,
    key: String,
    token: String,
    local: u64,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        self.renewal.abort();
        if let Ok(mut holders) = self.shared.holders.lock()
            && let Some(local) = holders.get_mut(&self.id)
        {
            local.remove(&self.local);
            if local.is_empty() {
                holders.remove(&self.id);
            }
        }
        let mut conn = self.shared.conn.clone();
        let (key, token) = (self.key.clone(), self.token.clone());
        // Dropping cannot wait; if this never runs (runtime gone), the lease expires instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let script = redis::Script::new(RELEASE);
                let mut invocation = script.key(&key);
                invocation.arg(&token);
                let released = invocation.invoke_async::<i64>(&mut conn);
                if let Err(e) = released.await {
                    tracing::warn!(%key, error = %e, "could not release upload lock; it will expire");
                }
            });
        }
    }
}
