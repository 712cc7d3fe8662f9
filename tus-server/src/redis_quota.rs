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

/// ARGV: uploads to add, bytes to add, upload limit, byte limit (`-1`: none), all integers
/// below 2^53 (checked by the caller, so Lua's doubles hold them exactly). Every check comes
/// before any write, and the writes are `HINCRBY` of the integer strings as given. Returns
/// `{0}` when added, or `{which, limit, left}` (1 = uploads, 2 = bytes) when refused.
const RESERVE: &str = r"
local uploads = tonumber(redis.call('HGET', KEYS[1], 'uploads') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
local add_uploads, add_bytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_uploads, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
if add_uploads > 0 and max_uploads >= 0 and uploads + add_uploads > max_uploads then
  return {1, max_uploads, math.max(max_uploads - uploads, 0)}
end
if add_bytes > 0 and max_bytes >= 0 and bytes + add_bytes > max_bytes then
  return {2, max_bytes, math.max(max_bytes - bytes, 0)}
end
redis.call('HINCRBY', KEYS[1], 'uploads', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[2])
return {0}
";

/// ARGV: uploads and bytes to give back (integers). Subtracts with `HINCRBY` and clamps at zero.
const RELEASE: &str = r"
local uploads = redis.call('HINCRBY', KEYS[1], 'uploads', '-' .. ARGV[1])
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', '-' .. ARGV[2])
if uploads < 0 then redis.call('HSET', KEYS[1], 'uploads', 0); uploads = 0 end
if bytes < 0 then redis.call('HSET', KEYS[1], 'bytes', 0); bytes = 0 end
if uploads == 0 and bytes == 0 then redis.call('DEL', KEYS[1]) end
return 0
";

/// The largest count the scripts handle exactly (Lua numbers are doubles).
const MAX_EXACT: u64 = 1 << 53;

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

/// A limit as the script reads it (`-1`: none; larger than the script counts: no limit).
fn limit(value: Option<u64>) -> i64 {
    value.filter(|v| *v < MAX_EXACT).map_or(-1, |v| i64::try_from(v).unwrap_or(-1))
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
        // Past what the script counts exactly is past any quota this server will see.
        if uploads >= MAX_EXACT || bytes >= MAX_EXACT {
            let (quota, limit) = if bytes >= MAX_EXACT {
                (Quota::Bytes, limits.bytes.unwrap_or(MAX_EXACT))
            } else {
                (Quota::Uploads, limits.uploads.unwrap_or(MAX_EXACT))
            };
            return Ok(Err(QuotaExceeded { quota, limit, left: 0 }));
        }
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
        let (uploads, bytes) = (uploads.min(MAX_EXACT), bytes.min(MAX_EXACT));
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
