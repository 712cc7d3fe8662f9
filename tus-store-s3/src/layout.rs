//! Where an upload's objects live: the store's bucket, its settings and the keys of an
//! upload's objects.

use std::path::PathBuf;

use tus_core::UploadId;

use crate::ops::Bucket;
use crate::state::ObjectLocation;
use crate::upload;

/// What every handle of an [`S3Store`](crate::S3Store) shares: the bucket and the settings.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) bucket: Bucket,
    pub(crate) prefix: String,
    pub(crate) part_size: u64,
    pub(crate) max_parts_in_flight: usize,
    pub(crate) max_object_size: u64,
    pub(crate) staging_dir: PathBuf,
    pub(crate) part_memory: upload::PartMemory,
    /// The client's credentials and region, for signing POST policies.
    pub(crate) credentials: aws_sdk_s3::config::SharedCredentialsProvider,
    pub(crate) region: String,
    /// Where clean uploads are promoted to, if anywhere.
    pub(crate) promotion: Option<Promotion>,
}

/// The production area clean uploads are moved to: `<prefix><id>` in `bucket`.
#[derive(Debug)]
pub(crate) struct Promotion {
    pub(crate) bucket: Bucket,
    pub(crate) prefix: String,
}

impl Inner {
    pub(crate) fn data_key(&self, id: &UploadId) -> String {
        format!("{}{id}", self.prefix)
    }
    pub(crate) fn info_key(&self, id: &UploadId) -> String {
        format!("{}{id}.info", self.prefix)
    }
    pub(crate) fn tail_key(&self, id: &UploadId) -> String {
        format!("{}{id}.part", self.prefix)
    }
    /// Where a single-request direct upload's POST lands: never read or served, only copied
    /// to the data key once, when the upload is adopted (a policy cannot be revoked, so a
    /// second POST must not replace bytes already checked).
    pub(crate) fn staging_key(&self, id: &UploadId) -> String {
        format!("{}{id}.post", self.prefix)
    }

    pub(crate) fn quarantine_key(&self, id: &UploadId) -> String {
        format!("{}quarantine/{id}", self.prefix)
    }

    /// The bucket handle of `location` (the store's own, the promotion bucket, or another).
    pub(crate) fn bucket_of(&self, location: &ObjectLocation) -> Bucket {
        match &self.promotion {
            _ if location.bucket == self.bucket.name => self.bucket.clone(),
            Some(p) if location.bucket == p.bucket.name => p.bucket.clone(),
            _ => Bucket { name: location.bucket.clone(), ..self.bucket.clone() },
        }
    }
}
