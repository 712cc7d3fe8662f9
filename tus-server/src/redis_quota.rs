//! A [`QuotaBook`] in Redis, beside the locks: several instances share one count per owner.
//!
//! Owner `o` holds the hash `tus:quota:v2:<sha256(o)>` (the owner's ID is a client's token
//! claim: hashing it bounds the key) with the fields `owner` (`o` itself, for
//! reconciliation), `uploads` and `bytes` (the sums) and `u:<upload-id>` (what that upload
//! holds). A hold checks both limits and changes the upload's field and the sums in one
//! script, so concurrent holds on any instances never both pass a limit only one fits in; a
//! release removes the field and subtracts it once, however often it is asked.

use std::fmt;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use sha2::{Digest as _, Sha256};
use tus_core::UploadId;
use tus_core::quota::{Quota, QuotaBook, QuotaBookError, QuotaExceeded, QuotaLimits};

/// Version 2: one field per upload (version 1 kept only the sums, which nothing could
/// reconcile; its keys are left alone).
const KEY_PREFIX: &str = "tus:quota:v2:";

/// The field of one upload's holding in its owner's hash.
fn field(upload: &UploadId) -> String {
    format!("u:{upload}")
}

/// KEYS: the owner's hash. ARGV: owner, the upload's field, the bytes it is to hold, upload
/// limit, byte limit (`-1`: none), all integers below 2^53 (checked by the caller, so Lua's
/// doubles compare them exactly). Every check comes before any write, and the sums change
/// only by `HINCRBY` of integer strings as given or as stored (never a Lua-formatted number).
/// Returns `{0, 0}` when held anew, `{0, 1, before}` when an existing holding changed, or
/// `{which, limit, left}` (1 = uploads, 2 = bytes) when refused.
const HOLD: &str = r"
local before = redis.call('HGET', KEYS[1], ARGV[2])
local uploads = tonumber(redis.call('HGET', KEYS[1], 'uploads') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
local want = tonumber(ARGV[3])
local max_uploads, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local had = tonumber(before or '0')
if not before and max_uploads >= 0 and uploads + 1 > max_uploads then
  return {1, max_uploads, math.max(max_uploads - uploads, 0)}
end
if want > had and max_bytes >= 0 and bytes - had + want > max_bytes then
  return {2, max_bytes, math.max(max_bytes - bytes, 0)}
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[3])
if before then
  -- (Redis refuses '-0' as an integer.)
  if before ~= '0' then redis.call('HINCRBY', KEYS[1], 'bytes', '-' .. before) end
  return {0, 1, had}
end
redis.call('HINCRBY', KEYS[1], 'uploads', 1)
return {0, 0}
";

/// KEYS: the owner's hash. ARGV: the upload's field. Gives the holding back once; the hash
/// goes with the owner's last holding.
const RELEASE: &str = r"
local before = redis.call('HGET', KEYS[1], ARGV[1])
if not before then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if before ~= '0' then redis.call('HINCRBY', KEYS[1], 'bytes', '-' .. before) end
if redis.call('HINCRBY', KEYS[1], 'uploads', -1) <= 0 then redis.call('DEL', KEYS[1]) end
return 1
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

impl RedisQuotaBook {
    /// Runs one of the scripts, once more if the connection had dropped: both are idempotent
    /// (a hold sets, a release removes once), and the first request after a Redis restart
    /// must not fail because the manager reconnects only when a call fails.
    async fn invoke<T: redis::FromRedisValue>(&self, call: &redis::ScriptInvocation<'_>) -> Result<T, QuotaBookError> {
        let mut conn = self.conn.clone();
        match call.invoke_async(&mut conn).await {
            Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                call.invoke_async(&mut conn).await.map_err(backend)
            }
            other => other.map_err(backend),
        }
    }
}

#[async_trait]
impl QuotaBook for RedisQuotaBook {
    async fn hold(
        &self,
        owner: &str,
        upload: &UploadId,
        bytes: u64,
        limits: QuotaLimits,
    ) -> Result<Result<Option<u64>, QuotaExceeded>, QuotaBookError> {
        // Past what the script counts exactly is past any quota this server will see.
        if bytes >= MAX_EXACT {
            return Ok(Err(QuotaExceeded { quota: Quota::Bytes, limit: limits.bytes.unwrap_or(MAX_EXACT), left: 0 }));
        }
        let script = redis::Script::new(HOLD);
        let mut call = script.key(key(owner));
        call.arg(owner).arg(field(upload)).arg(bytes).arg(limit(limits.uploads)).arg(limit(limits.bytes));
        let answer: Vec<u64> = self.invoke(&call).await?;
        Ok(match answer.as_slice() {
            [1, limit, left] => Err(QuotaExceeded { quota: Quota::Uploads, limit: *limit, left: *left }),
            [2, limit, left] => Err(QuotaExceeded { quota: Quota::Bytes, limit: *limit, left: *left }),
            [0, 1, before] => Ok(Some(*before)),
            _ => Ok(None),
        })
    }

    async fn release(&self, owner: &str, upload: &UploadId) -> Result<(), QuotaBookError> {
        let script = redis::Script::new(RELEASE);
        let mut call = script.key(key(owner));
        call.arg(field(upload));
        let _: i64 = self.invoke(&call).await?;
        Ok(())
    }

    async fn holdings(&self) -> Result<Vec<(String, UploadId)>, QuotaBookError> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{KEY_PREFIX}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(backend)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut held = Vec::new();
        for key in keys {
            let fields: std::collections::HashMap<String, String> =
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.map_err(backend)?;
            let Some(owner) = fields.get("owner") else { continue };
            for name in fields.keys() {
                if let Some(id) = name.strip_prefix("u:").and_then(|id| UploadId::parse(id).ok()) {
                    held.push((owner.clone(), id));
                }
            }
        }
        Ok(held)
    }
}
