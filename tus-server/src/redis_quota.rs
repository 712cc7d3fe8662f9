//! A [`QuotaBook`] in Redis, beside the locks: several instances share one count per owner.
//!
//! Owner `o` holds the hash `tus:quota:<sha256(o)>` with fields `uploads` and `bytes` (the
//! owner's ID is a client's token claim: hashing it bounds the key). A reservation checks
//! both limits and adds in one script, so concurrent reservations on any instances never
//! both pass a limit only one fits in; a release subtracts, never below zero.

use std::fmt;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use sha2::{Digest as _, Sha256};
use tus_core::quota::{Quota, QuotaBook, QuotaBookError, QuotaExceeded, QuotaLimits};

const KEY_PREFIX: &str = "tus:quota:";

/// ARGV: uploads to add, bytes to add, upload limit, byte limit (`-1`: none). Returns
/// `{0}` when added, or `{which, limit, left}` (1 = uploads, 2 = bytes) when refused.
const RESERVE: &str = r"
local uploads = tonumber(redis.call('HGET', KEYS[1], 'uploads') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
local add_uploads, add_bytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_uploads, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
if max_uploads >= 0 and uploads + add_uploads > max_uploads then
  return {1, max_uploads, math.max(max_uploads - uploads, 0)}
end
if max_bytes >= 0 and bytes + add_bytes > max_bytes then
  return {2, max_bytes, math.max(max_bytes - bytes, 0)}
end
redis.call('HINCRBY', KEYS[1], 'uploads', add_uploads)
redis.call('HINCRBY', KEYS[1], 'bytes', add_bytes)
return {0}
";

/// ARGV: uploads and bytes to give back.
const RELEASE: &str = r"
local uploads = math.max(tonumber(redis.call('HGET', KEYS[1], 'uploads') or '0') - tonumber(ARGV[1]), 0)
local bytes = math.max(tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0') - tonumber(ARGV[2]), 0)
if uploads == 0 and bytes == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'uploads', uploads, 'bytes', bytes)
end
return 0
";

/// Quota counts shared by every instance using the same Redis.
#[derive(Clone)]
pub struct RedisQuotaBook {
    conn: ConnectionManager,
}

impl fmt::Debug for RedisQuotaBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisQuotaBook")
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> QuotaBookError {
    QuotaBookError(Box::new(e))
}

fn key(owner: &str) -> String {
    let digest = Sha256::digest(owner.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{KEY_PREFIX}{hex}")
}

/// A limit as the script reads it.
fn limit(value: Option<u64>) -> i64 {
    value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl RedisQuotaBook {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<Self, QuotaBookError> {
        let client = redis::Client::open(url).map_err(backend)?;
        Ok(RedisQuotaBook { conn: ConnectionManager::new(client).await.map_err(backend)? })
    }
}

#[async_trait]
impl QuotaBook for RedisQuotaBook {
    async fn reserve(
        &self,
        owner: &str,
        uploads: u64,
        bytes: u64,
        limits: QuotaLimits,
    ) -> Result<Result<(), QuotaExceeded>, QuotaBookError> {
        let mut conn = self.conn.clone();
        let answer: Vec<u64> = redis::Script::new(RESERVE)
            .key(key(owner))
            .arg(uploads)
            .arg(bytes)
            .arg(limit(limits.uploads))
            .arg(limit(limits.bytes))
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(match answer.as_slice() {
            [1, limit, left] => Err(QuotaExceeded { quota: Quota::Uploads, limit: *limit, left: *left }),
            [2, limit, left] => Err(QuotaExceeded { quota: Quota::Bytes, limit: *limit, left: *left }),
            _ => Ok(()),
        })
    }

    async fn release(&self, owner: &str, uploads: u64, bytes: u64) -> Result<(), QuotaBookError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(RELEASE)
            .key(key(owner))
            .arg(uploads)
            .arg(bytes)
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn clear(&self) -> Result<(), QuotaBookError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{KEY_PREFIX}*")).query_async(&mut conn).await.map_err(backend)?;
        for key in keys {
            let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await.map_err(backend)?;
        }
        Ok(())
    }
}
