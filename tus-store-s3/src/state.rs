//! What is read from S3: the info object of an upload, and where an unfinished upload stands
//! (its parts and tail), which is its offset.

use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tus_core::UploadId;
use tus_core::store::UploadInfo;

use crate::error::Error;
use crate::layout::Inner;

/// What `<id>.info` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Not boxed: one lives per request, briefly, between reading and writing an info.
#[allow(clippy::large_enum_variant)]
pub(crate) enum InfoObject {
    /// A live upload; the `offset` field is ignored (S3 says what is stored).
    Live(LiveInfo),
    /// Terminated or expired.
    Gone { at: SystemTime },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LiveInfo {
    #[serde(flatten)]
    pub(crate) upload: UploadInfo,
    /// The multipart upload holding the bytes (none for zero-byte uploads).
    pub(crate) multipart_upload_id: Option<String>,
    /// The multipart upload was completed into the object `<prefix><id>`.
    pub(crate) completed: bool,
    /// The bytes arrive straight from the client through presigned URLs (see
    /// [`crate::direct`]), never through tus appends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) direct: Option<DirectKind>,
    /// Where the object was promoted to once it was found clean (it is served only from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) promoted: Option<ObjectLocation>,
}

/// How a direct upload's bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DirectKind {
    /// Parts uploaded to presigned UploadPart URLs, completed through the server.
    Multipart,
    /// One presigned POST (policy) of the whole object; found by HeadObject or an S3 event.
    Single {
        /// When the presigned POST stops being accepted.
        until: SystemTime,
    },
}

/// An object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectLocation {
    pub(crate) bucket: String,
    pub(crate) key: String,
}

/// An unfinished upload as S3 holds it.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) parts: u32,
    pub(crate) parts_bytes: u64,
    pub(crate) tail_len: u64,
    pub(crate) tail_modified: Option<SystemTime>,
}

impl Inner {
    /// IDs of uploads under the prefix whose info and data objects both exist (finished).
    pub(crate) async fn finished_ids(&self) -> Result<Vec<UploadId>, Error> {
        let listed = self.bucket.list(&self.prefix).await?;
        let names: std::collections::HashSet<&str> =
            listed.iter().filter_map(|o| o.key.strip_prefix(self.prefix.as_str())).collect();
        Ok(names
            .iter()
            .filter_map(|n| n.strip_suffix(".info"))
            .filter(|stem| names.contains(stem))
            .filter_map(|stem| UploadId::parse(stem).ok())
            .collect())
    }

    pub(crate) async fn read_info_object(&self, id: &UploadId) -> Result<InfoObject, Error> {
        let key = self.info_key(id);
        let (bytes, _) = self.bucket.get_small(&key).await?.ok_or(Error::NotFound)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { key, source })
    }

    pub(crate) async fn live(&self, id: &UploadId) -> Result<LiveInfo, Error> {
        match self.read_info_object(id).await? {
            InfoObject::Live(live) => Ok(live),
            InfoObject::Gone { .. } => Err(Error::Gone),
        }
    }

    pub(crate) async fn write_info(&self, id: &UploadId, info: &InfoObject, create: bool) -> Result<(), Error> {
        let key = self.info_key(id);
        let json = serde_json::to_vec(info).map_err(|source| Error::Json { key: key.clone(), source })?;
        self.bucket.put(&key, Bytes::from(json), None, create, Some("application/json")).await
    }

    /// Where an unfinished upload stands according to S3: parts `1..=n` (n from the tail's
    /// marker) as ListParts reports them, plus the tail. `None` if the multipart upload turns
    /// out to have been completed already (a crash between completing and recording it).
    pub(crate) async fn stored(&self, id: &UploadId, live: &LiveInfo) -> Result<Option<Stored>, Error> {
        let Some(upload_id) = &live.multipart_upload_id else {
            return Ok(Some(Stored { parts: 0, parts_bytes: 0, tail_len: 0, tail_modified: None }));
        };
        let (data_key, tail_key) = (self.data_key(id), self.tail_key(id));
        let (listed, tail) = tokio::join!(self.bucket.list_parts(&data_key, upload_id), self.bucket.head(&tail_key));
        let tail = tail?;
        let marker = tail.as_ref().map(|t| t.marker).unwrap_or_default();
        let listed = match listed {
            Ok(parts) => Some(parts),
            Err(e) if e.is_no_such_upload() => None,
            Err(e) => return Err(e),
        };
        // Parts 1..=n, contiguous.
        let mut parts_bytes = 0;
        let mut contiguous = 0u32;
        for part in listed.iter().flatten() {
            if part.number != contiguous as i32 + 1 || contiguous >= marker.parts {
                break;
            }
            contiguous += 1;
            parts_bytes += part.size;
        }
        if listed.is_none() || contiguous < marker.parts {
            // The multipart upload is gone or lost parts: completed by a process that crashed
            // before recording it, or aborted behind our back (a lifecycle rule).
            if let Some(head) = self.bucket.head(&data_key).await?
                && live.upload.length == Some(head.size)
            {
                return Ok(None);
            }
            if listed.is_none() {
                tracing::warn!(upload = %id, "multipart upload no longer exists");
                return Err(Error::Gone);
            }
            tracing::warn!(upload = %id, listed = contiguous, marker = marker.parts, "parts missing from S3");
            return Ok(Some(Stored { parts: contiguous, parts_bytes, tail_len: 0, tail_modified: None }));
        }
        let (tail_len, tail_modified) = tail.map(|t| (t.size, t.modified)).unwrap_or((0, None));
        Ok(Some(Stored { parts: contiguous, parts_bytes, tail_len, tail_modified }))
    }

    pub(crate) async fn info(&self, id: &UploadId) -> Result<UploadInfo, Error> {
        let mut live = self.live(id).await?;
        if !live.completed && live.direct.is_some() {
            // Its bytes reach S3 without us: it is complete only once the signing service
            // verified and adopted them (a completed multipart upload is not enough).
            live.upload.offset = 0;
            return Ok(live.upload);
        }
        if !live.completed {
            match self.stored(id, &live).await? {
                Some(stored) => {
                    live.upload.offset = stored.parts_bytes + stored.tail_len;
                    if let Some(modified) = stored.tail_modified {
                        live.upload.updated_at = live.upload.updated_at.max(modified);
                    }
                    return Ok(live.upload);
                }
                None => {
                    live.completed = true;
                    self.write_info(id, &InfoObject::Live(live.clone()), false).await?;
                }
            }
        }
        live.upload.offset = live.upload.length.unwrap_or(0);
        Ok(live.upload)
    }
}
