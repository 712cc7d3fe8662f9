//! The smallest useful [`Store`]: the four required methods and nothing else, which is all a
//! third backend has to write. No optional capability is exposed, so the handler offers
//! `creation`, `creation-with-upload` and `checksum` (and refuses deferred lengths, termination,
//! concatenation and expiry with their documented errors).
//!
//! What the contract asks (see [`Store::append`]): the handler has checked the offset, capped
//! the body and holds the upload's lock; the store appends what the stream yields until its
//! first error, keeping what arrived on [`BodyError::Interrupted`] and nothing of this call on
//! [`BodyError::Rejected`] (or, with `all_or_nothing`, unless the stream ended cleanly).
//!
//! ```
//! # async fn demo() {
//! let service = tus_core::TusService::builder(example_custom_store::VecStore::default()).build();
//! assert!(service.extensions().contains(&"creation"));
//! # }
//! ```

use std::collections::HashMap;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::RwLock;
use tus_core::store::{AppendOptions, BodyError, ByteStream, ChunkStream, NewUpload, Store, StoreError};
use tus_core::{UploadId, UploadInfo};

/// Uploads held in memory, each as its info and its bytes.
#[derive(Debug, Default)]
pub struct VecStore {
    uploads: RwLock<HashMap<UploadId, (UploadInfo, Vec<u8>)>>,
}

#[async_trait]
impl Store for VecStore {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
        let mut uploads = self.uploads.write().await;
        if uploads.contains_key(&upload.id) {
            return Err(StoreError::AlreadyExists);
        }
        let info = upload.into_info(SystemTime::now());
        uploads.insert(info.id.clone(), (info.clone(), Vec::new()));
        Ok(info)
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
        self.uploads.read().await.get(id).map(|(info, _)| info.clone()).ok_or(StoreError::NotFound)
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        mut data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        // Gather this call's bytes first: a rejected or (all-or-nothing) interrupted body then
        // simply leaves the upload as it was. The lock is not held while the client sends.
        let mut received = Vec::new();
        let mut ended = None;
        while let Some(item) = data.next().await {
            match item {
                Ok(chunk) => received.extend_from_slice(&chunk),
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
        }
        let keep = match ended {
            None => true,
            Some(BodyError::Interrupted) => !options.all_or_nothing,
            Some(BodyError::Rejected) => false,
        };
        let mut uploads = self.uploads.write().await;
        let (info, bytes) = uploads.get_mut(id).ok_or(StoreError::NotFound)?;
        if info.offset != offset {
            return Err(StoreError::Conflict(format!("offset {offset} is not the stored {}", info.offset)));
        }
        if keep && !received.is_empty() {
            bytes.extend_from_slice(&received);
            info.offset += received.len() as u64;
            info.updated_at = SystemTime::now();
        }
        Ok(info.offset)
    }

    async fn read(&self, id: &UploadId, range: Range<u64>) -> Result<ByteStream, StoreError> {
        let uploads = self.uploads.read().await;
        let (_, bytes) = uploads.get(id).ok_or(StoreError::NotFound)?;
        let end = usize::try_from(range.end).unwrap_or(usize::MAX).min(bytes.len());
        let start = usize::try_from(range.start).unwrap_or(usize::MAX).min(end);
        let chunk = Bytes::copy_from_slice(&bytes[start..end]);
        Ok(Box::pin(futures_util::stream::iter([Ok(chunk)])))
    }
}
