//! Derivatives (thumbnails, a copy without metadata) as objects beside the upload's data
//! object: `<data key>.derived/<name>`, where the data key is `<prefix><id>`, or the promoted
//! key once the upload was promoted (derivatives are promoted with it).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tus_core::UploadId;
use tus_core::derivative::{Derivative, DerivativeName};
use tus_core::store::{ByteStream, StoreDerivatives, StoreError};

use crate::S3Store;
use crate::error::Error;
use crate::layout::Inner;
use crate::ops::{Bucket, object_chunks};
use crate::state::{InfoObject, LiveInfo, ObjectLocation};

impl Inner {
    /// The key of derivative `name` beside the data object `data_key`.
    pub(crate) fn derivative_key(data_key: &str, name: DerivativeName) -> String {
        format!("{data_key}.derived/{}", name.file_name())
    }

    /// Where the upload's data object is now: promoted, or under the store's prefix.
    pub(crate) fn data_location(&self, id: &UploadId, live: &LiveInfo) -> ObjectLocation {
        match &live.promoted {
            Some(promoted) => promoted.clone(),
            None => ObjectLocation { bucket: self.bucket.name.clone(), key: self.data_key(id) },
        }
    }

    /// The bucket and key of derivative `name` of the upload, beside its data object.
    fn derivative_location(&self, id: &UploadId, live: &LiveInfo, name: DerivativeName) -> (Bucket, String) {
        let data = self.data_location(id, live);
        (self.bucket_of(&data), Self::derivative_key(&data.key, name))
    }
}

#[async_trait]
impl StoreDerivatives for S3Store {
    async fn put_derivative(&self, id: &UploadId, mut derivative: Derivative, bytes: Bytes) -> Result<(), StoreError> {
        derivative.size = bytes.len() as u64;
        let inner = &self.inner;
        let live = inner.live(id).await?;
        let (bucket, key) = inner.derivative_location(id, &live, derivative.name);
        // Typed, so the object serves right from a public bucket or a CDN too.
        bucket.put(&key, bytes, None, false, Some(&derivative.content_type)).await?;
        // Listed only once its bytes are in place; from a fresh read, as the put may be slow.
        // An upload terminated meanwhile takes the object back out.
        let mut live = match inner.live(id).await {
            Err(gone @ (Error::Gone | Error::NotFound)) => {
                bucket.delete(&key).await?;
                return Err(gone.into());
            }
            other => other?,
        };
        live.upload.derivatives.retain(|listed| listed.name != derivative.name);
        live.upload.derivatives.push(derivative);
        inner.write_info(id, &InfoObject::Live(live), false).await?;
        Ok(())
    }

    async fn read_derivative(&self, id: &UploadId, name: DerivativeName) -> Result<ByteStream, StoreError> {
        let inner = &self.inner;
        let live = inner.live(id).await?;
        let Some(size) = live.upload.derivatives.iter().find(|d| d.name == name).map(|d| d.size) else {
            return Err(StoreError::NotFound);
        };
        if size == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let (bucket, key) = inner.derivative_location(id, &live, name);
        let body = bucket.get_range(&key, 0, size).await?;
        Ok(Box::pin(object_chunks(key, body).map(|r| r.map_err(StoreError::from))))
    }
}

impl S3Store {
    /// A presigned GetObject URL for derivative `name` of `id`, valid for `expires_in` (at most
    /// [`MAX_PRESIGNED_LIFETIME`]), answered with the derivative's `Content-Type`.
    pub async fn presigned_derivative_url(
        &self,
        id: &UploadId,
        name: DerivativeName,
        expires_in: Duration,
    ) -> Result<String, StoreError> {
        let inner = &self.inner;
        let live = inner.live(id).await?;
        if live.upload.state != Some(tus_core::UploadState::Clean) {
            return Err(Error::Conflict(format!("upload {id} is not clean")).into());
        }
        let Some(derivative) = live.upload.derivatives.iter().find(|d| d.name == name) else {
            return Err(StoreError::NotFound);
        };
        let (bucket, key) = inner.derivative_location(id, &live, name);
        Ok(bucket.presign_get(&key, Some(&derivative.content_type), expires_in).await?)
    }
}
