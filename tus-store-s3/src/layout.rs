//! Where an upload's objects live: the store's bucket, its settings and the keys of an
//! upload's objects.

use std::path::PathBuf;

use tus_core::UploadId;

use crate::ops::Bucket;
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
    pub(crate) fn quarantine_key(&self, id: &UploadId) -> String {
        format!("{}quarantine/{id}", self.prefix)
    }
}
