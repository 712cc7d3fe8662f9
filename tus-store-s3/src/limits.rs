//! S3's limits on parts, objects and presigned URLs.

use std::time::Duration;

pub(crate) const MIB: u64 = 1024 * 1024;
/// S3's smallest part (except the last one of an upload).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's most parts per multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * MIB;
/// The longest lifetime of a presigned URL (SigV4 allows 7 days).
pub const MAX_PRESIGNED_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
