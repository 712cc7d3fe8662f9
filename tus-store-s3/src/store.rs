//! The store itself: [`S3Store`], its accessors, and the four operations every store has
//! (create, info, append, read).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tus_core::UploadId;
use tus_core::store::{
    AppendOptions, ByteStream, Capabilities, ChunkStream, NewUpload, Store, StoreError, UploadInfo, UploadState,
};

use crate::error::Error;
use crate::layout::Inner;
use crate::limits::MAX_OBJECT_SIZE;
use crate::ops::object_chunks;
use crate::state::{InfoObject, LiveInfo};
use crate::upload;

/// Uploads as S3 multipart uploads. See the crate docs for the layout.
#[derive(Debug, Clone)]
pub struct S3Store {
    pub(crate) inner: Arc<Inner>,
}

impl S3Store {
    /// The bucket uploads live in.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket.name
    }

    /// The key prefix.
    pub fn object_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The underlying SDK client (to manage the bucket, for example).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.inner.bucket.client
    }

    /// A presigned GetObject URL for the finished upload `id`, valid for `expires_in` (at most
    /// [`MAX_PRESIGNED_LIFETIME`](crate::MAX_PRESIGNED_LIFETIME)). Fails with [`StoreError::Conflict`] if the upload is not
    /// finished.
    pub async fn presigned_get_url(&self, id: &UploadId, expires_in: Duration) -> Result<String, StoreError> {
        let info = self.info(id).await?;
        if !info.is_complete() || info.state == Some(UploadState::Quarantined) {
            return Err(Error::Conflict(format!("upload {id} is not finished or quarantined")).into());
        }
        let inner = &self.inner;
        let location = inner.data_location(id, &inner.live(id).await?);
        Ok(inner.bucket_of(&location).presign_get(&location.key, None, expires_in).await?)
    }
}

#[async_trait]
impl Store for S3Store {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
        let inner = &self.inner;
        if upload.length.is_some_and(|len| len > MAX_OBJECT_SIZE) {
            return Err(Error::Conflict(format!("uploads larger than {MAX_OBJECT_SIZE} bytes do not fit in S3")).into());
        }
        let info = upload.into_info(SystemTime::now());
        let id = info.id.clone();
        if inner.bucket.head(&inner.info_key(&id)).await?.is_some() {
            return Err(Error::AlreadyExists.into());
        }
        let complete_now = info.length == Some(0) && !info.is_final();
        let multipart_upload_id =
            if complete_now { None } else { Some(inner.bucket.create_multipart(&inner.data_key(&id)).await?) };
        let live =
            LiveInfo { upload: info.clone(), multipart_upload_id, completed: false, direct: None, promoted: None };
        match inner.write_info(&id, &InfoObject::Live(live.clone()), true).await {
            Err(e) if e.is_precondition_failed() => {
                if let Some(upload_id) = &live.multipart_upload_id {
                    inner.bucket.abort(&inner.data_key(&id), upload_id).await?;
                }
                return Err(Error::AlreadyExists.into());
            }
            other => other?,
        }
        if complete_now {
            inner.complete(&id, live, 0, Vec::new(), Bytes::new()).await?;
        }
        tracing::debug!(upload = %id, "upload created");
        Ok(info)
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
        Ok(self.inner.info(id).await?)
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        let inner = &self.inner;
        if options.all_or_nothing {
            // Unverified bytes never reach S3: stage the body, upload it once it ended cleanly.
            let Some(staged) = upload::stage(data, &inner.staging_dir).await? else {
                return Ok(offset);
            };
            return Ok(inner.append_input(id, offset, staged.into_input()).await?);
        }
        Ok(inner.append_input(id, offset, upload::from_body(data)).await?)
    }

    async fn read(&self, id: &UploadId, range: Range<u64>) -> Result<ByteStream, StoreError> {
        let inner = &self.inner;
        if range.is_empty() {
            inner.info(id).await?;
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let mut key = inner.data_key(id);
        let body = match inner.bucket.get_range(&key, range.start, range.end).await {
            Ok(body) => body,
            Err(e) if e.is_not_found() => {
                // Unknown, gone, quarantined, or not finished: bytes still in the tail object can
                // be read, bytes already in parts only once S3 completed the upload.
                let live = inner.live(id).await?;
                if live.upload.state == Some(UploadState::Quarantined) {
                    return Err(Error::Conflict(format!("upload {id} is quarantined")).into());
                }
                if let Some(promoted) = &live.promoted {
                    let body = inner.bucket_of(promoted).get_range(&promoted.key, range.start, range.end).await?;
                    let stream = object_chunks(promoted.key.clone(), body).map(|r| r.map_err(StoreError::from));
                    return Ok(Box::pin(stream));
                }
                let stored = match live.completed {
                    false => inner.stored(id, &live).await?,
                    true => None,
                };
                let Some(stored) =
                    stored.filter(|s| range.start >= s.parts_bytes && range.end <= s.parts_bytes + s.tail_len)
                else {
                    return Err(Error::Conflict(format!(
                        "bytes {}..{} of upload {id} are not readable: S3 serves an upload's parts only once it is \
                         finished",
                        range.start, range.end
                    ))
                    .into());
                };
                key = inner.tail_key(id);
                let (start, end) = (range.start - stored.parts_bytes, range.end - stored.parts_bytes);
                inner.bucket.get_range(&key, start, end).await?
            }
            Err(e) => return Err(e.into()),
        };
        let stream = object_chunks(key, body).map(|r| r.map_err(StoreError::from));
        Ok(Box::pin(stream))
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::none()
            .with_terminate(self)
            .with_concatenate(self)
            .with_defer_length(self)
            .with_list_expired(self)
            .with_record_state(self)
            .with_presign_get(self)
            .with_derivatives(self)
    }
    fn describe(&self, id: &UploadId) -> std::collections::BTreeMap<String, String> {
        [
            ("Type".to_owned(), "s3store".to_owned()),
            ("Bucket".to_owned(), self.inner.bucket.name.clone()),
            ("Key".to_owned(), self.inner.data_key(id)),
        ]
        .into()
    }
}
