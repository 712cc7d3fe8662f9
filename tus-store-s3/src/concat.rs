//! Concatenation inside S3: final uploads assembled with UploadPartCopy where S3's part rules
//! allow, streamed through the append pipeline where not; and copies of finished objects.

use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tus_core::UploadId;
use tus_core::store::UploadInfo;

use crate::error::Error;
use crate::layout::Inner;
use crate::limits::{MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE};
use crate::ops::{Bucket, object_chunks};
use crate::state::InfoObject;
use crate::upload::{Input, Outcome, StreamEnd};

impl Inner {
    /// Copies a finished object of `len` bytes within the bucket: CopyObject up to 5 GiB, a
    /// multipart copy beyond.
    pub(crate) async fn copy_object(&self, source: &str, target: &str, len: u64) -> Result<(), Error> {
        self.copy_object_to(&self.bucket, source, target, len).await
    }

    /// [`Self::copy_object`] into the bucket `to` (the store's own, or the promotion bucket).
    pub(crate) async fn copy_object_to(&self, to: &Bucket, source: &str, target: &str, len: u64) -> Result<(), Error> {
        let from = &self.bucket.name;
        if len <= MAX_PART_SIZE {
            return to.copy(from, source, target, len).await;
        }
        let upload_id = to.create_multipart(target).await?;
        let pieces = copy_plan(&[(source.to_owned(), len)]).unwrap_or_default();
        let mut parts = Vec::with_capacity(pieces.len());
        for (i, (source, start, end)) in pieces.into_iter().enumerate() {
            let number = i as i32 + 1;
            let etag = to.upload_part_copy(target, &upload_id, number, from, &source, start, end).await?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(etag).build());
        }
        to.complete(target, &upload_id, parts).await
    }

    /// The bytes of finished uploads, one after the other, streamed.
    pub(crate) fn objects_input(&self, sources: Vec<(String, u64)>) -> Input<'static> {
        let bucket = self.bucket.clone();
        let stream = futures_util::stream::iter(sources)
            .then(move |(key, len)| {
                let bucket = bucket.clone();
                async move {
                    let body = bucket.get_range(&key, 0, len).await;
                    (key, body)
                }
            })
            .flat_map(|(key, body)| -> Input<'static> {
                match body {
                    Err(e) => Box::pin(futures_util::stream::iter([Err(StreamEnd::Failed(e))])),
                    Ok(body) => Box::pin(object_chunks(key, body).map(|r| r.map_err(StreamEnd::Failed))),
                }
            });
        Box::pin(stream)
    }

    pub(crate) async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), Error> {
        let mut live = self.live(final_id).await?;
        let sources: Vec<(String, u64)> =
            partials.iter().filter(|p| p.offset > 0).map(|p| (self.data_key(&p.id), p.offset)).collect();
        let total: u64 = sources.iter().map(|(_, len)| len).sum();
        if total > MAX_OBJECT_SIZE {
            return Err(Error::Conflict(format!("a final upload of {total} bytes exceeds S3's object size limit")));
        }
        if live.completed {
            return Ok(());
        }
        if live.upload.length != Some(total) {
            live.upload.length = Some(total);
            self.write_info(final_id, &InfoObject::Live(live.clone()), false).await?;
        }
        let data_key = self.data_key(final_id);
        // A process that crashed after completing but before recording it.
        if total > 0 && self.bucket.head(&data_key).await?.is_some_and(|h| h.size == total) {
            live.completed = true;
            return self.write_info(final_id, &InfoObject::Live(live), false).await;
        }
        let Some(upload_id) = live.multipart_upload_id.clone() else {
            return self.complete(final_id, live, 0, Vec::new(), Bytes::new()).await;
        };
        let pieces = copy_plan(&sources);
        if let Some(pieces) = pieces {
            tracing::debug!(upload = %final_id, parts = pieces.len(), "concatenating with UploadPartCopy");
            let mut etags = Vec::with_capacity(pieces.len());
            let mut in_flight = tokio::task::JoinSet::new();
            for (i, (source, start, end)) in pieces.into_iter().enumerate() {
                while in_flight.len() >= self.max_parts_in_flight {
                    if let Some(done) = in_flight.join_next().await {
                        etags.push(done??);
                    }
                }
                let (bucket, key, upload_id) = (self.bucket.clone(), data_key.clone(), upload_id.clone());
                let number = i as i32 + 1;
                in_flight.spawn(async move {
                    let etag =
                        bucket.upload_part_copy(&key, &upload_id, number, &bucket.name, &source, start, end).await?;
                    Ok::<_, Error>((number, etag))
                });
            }
            while let Some(done) = in_flight.join_next().await {
                etags.push(done??);
            }
            let parts = etags.len() as u32;
            return self.complete(final_id, live, parts, etags, Bytes::new()).await;
        }
        tracing::debug!(upload = %final_id, "concatenating by streaming the partials");
        let mut pipeline = self.pipeline(&data_key, &upload_id, &live, 0, 0);
        let (rest, _room) = match pipeline.run(Bytes::new(), self.objects_input(sources)).await? {
            Outcome::Keep { rest, _room } => (rest, _room),
            Outcome::Discard => return Err(Error::Conflict("concatenation input discarded".into())),
        };
        let (parts, etags) = (pipeline.parts, std::mem::take(&mut pipeline.etags));
        self.complete(final_id, live, parts, etags, rest).await
    }
}

/// UploadPartCopy pieces `(source, start, end)` for a concatenation, if S3's part rules allow
/// one: every piece at most 5 GiB and, except the very last, at least 5 MiB; at most 10 000.
fn copy_plan(sources: &[(String, u64)]) -> Option<Vec<(String, u64, u64)>> {
    let mut pieces = Vec::new();
    for (i, (key, len)) in sources.iter().enumerate() {
        let last = i + 1 == sources.len();
        if !last && *len < MIN_PART_SIZE {
            return None;
        }
        let count = len.div_ceil(MAX_PART_SIZE);
        let size = len.div_ceil(count);
        let mut start = 0;
        while start < *len {
            let end = (start + size).min(*len);
            pieces.push((key.clone(), start, end));
            start = end;
        }
    }
    (!pieces.is_empty() && pieces.len() as u64 <= MAX_PARTS).then_some(pieces)
}
