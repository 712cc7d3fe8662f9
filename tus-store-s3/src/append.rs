//! Appending: streaming bytes after the tail into the multipart upload, committing the new
//! tail, and completing the upload when its last byte arrived.

use std::time::SystemTime;

use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use tus_core::UploadId;

use crate::error::Error;
use crate::layout::Inner;
use crate::ops::Marker;
use crate::state::{InfoObject, LiveInfo};
use crate::upload::{self, Input, Outcome, Pipeline};

impl Inner {
    pub(crate) fn pipeline<'a>(
        &'a self,
        key: &'a str,
        upload_id: &'a str,
        live: &LiveInfo,
        parts: u32,
        bytes: u64,
    ) -> Pipeline<'a> {
        let assumed_total = live.upload.length.unwrap_or(self.max_object_size);
        Pipeline {
            memory: &self.part_memory,
            bucket: &self.bucket,
            key,
            upload_id,
            part_size: upload::part_size(self.part_size, assumed_total, parts, bytes),
            length: live.upload.length,
            max_in_flight: self.max_parts_in_flight,
            parts,
            parts_bytes: bytes,
            etags: Vec::new(),
        }
    }

    /// Streams `input` after the tail into the upload and commits: completes the upload if it
    /// reached its length, else records the new tail. Returns the new offset.
    pub(crate) async fn append_input(&self, id: &UploadId, offset: u64, input: Input<'_>) -> Result<u64, Error> {
        let tail_key = self.tail_key(id);
        // One round trip for both: every PATCH waits for these before reading its body. (For
        // an upload found complete the tail was fetched for nothing; that is rare.)
        let (live, tail) = tokio::join!(self.live(id), self.bucket.get_small(&tail_key));
        let live = live?;
        if live.direct.is_some() {
            return Err(Error::NotAppendable(id.clone()));
        }
        let upload_id = match (&live.multipart_upload_id, live.completed) {
            (Some(upload_id), false) => upload_id.clone(),
            _ if live.upload.length == Some(offset) => return Ok(offset),
            _ => return Err(Error::Conflict(format!("upload {id} is already complete"))),
        };
        let (tail, marker) = tail?.unwrap_or_default();
        let current = marker.parts_bytes + tail.len() as u64;
        if current != offset {
            return Err(Error::Conflict(format!("offset is {current}, not {offset}")));
        }
        let data_key = self.data_key(id);
        let mut pipeline = self.pipeline(&data_key, &upload_id, &live, marker.parts, marker.parts_bytes);
        let tail_len = tail.len();
        // `_room` keeps the rest's memory reserved until it is stored.
        let (rest, _room) = match pipeline.run(tail, input).await? {
            Outcome::Discard => return Ok(offset),
            Outcome::Keep { rest, _room } => (rest, _room),
        };
        let new_offset = pipeline.parts_bytes + rest.len() as u64;
        if live.upload.length == Some(new_offset) {
            let (parts, etags) = (pipeline.parts, std::mem::take(&mut pipeline.etags));
            self.complete(id, live, parts, etags, rest).await?;
        } else if new_offset != offset || pipeline.parts != marker.parts || tail_len != rest.len() {
            let marker = Marker { parts: pipeline.parts, parts_bytes: pipeline.parts_bytes };
            self.bucket.put(&tail_key, rest, Some(marker), false, None).await?;
        }
        Ok(new_offset)
    }

    /// Uploads `last` as the last part, completes the multipart upload (an upload of no bytes
    /// at all becomes an empty object), records it and removes the tail.
    pub(crate) async fn complete(
        &self,
        id: &UploadId,
        mut live: LiveInfo,
        mut parts: u32,
        mut etags: Vec<(i32, Option<String>)>,
        last: Bytes,
    ) -> Result<(), Error> {
        let data_key = self.data_key(id);
        match &live.multipart_upload_id {
            Some(upload_id) if parts > 0 || !last.is_empty() => {
                if !last.is_empty() {
                    parts += 1;
                    let etag = self.bucket.upload_part(&data_key, upload_id, parts as i32, last).await?;
                    etags.push((parts as i32, etag));
                }
                let completed = self.completed_parts(&data_key, upload_id, parts, etags).await?;
                self.bucket.complete(&data_key, upload_id, completed).await?;
            }
            upload_id => {
                if let Some(upload_id) = upload_id {
                    self.bucket.abort(&data_key, upload_id).await?;
                }
                self.bucket.put(&data_key, Bytes::new(), None, false, None).await?;
            }
        }
        live.completed = true;
        live.upload.updated_at = SystemTime::now();
        self.write_info(id, &InfoObject::Live(live), false).await?;
        self.bucket.delete(&self.tail_key(id)).await?;
        tracing::debug!(upload = %id, parts, "multipart upload completed");
        Ok(())
    }

    /// Parts `1..=count` for CompleteMultipartUpload: ETags from this process where it
    /// uploaded them, from ListParts for the others.
    pub(crate) async fn completed_parts(
        &self,
        key: &str,
        upload_id: &str,
        count: u32,
        etags: Vec<(i32, Option<String>)>,
    ) -> Result<Vec<CompletedPart>, Error> {
        let mut known: std::collections::HashMap<i32, Option<String>> = etags.into_iter().collect();
        if (1..=count as i32).any(|n| !known.contains_key(&n)) {
            for part in self.bucket.list_parts(key, upload_id).await? {
                known.entry(part.number).or_insert(part.etag);
            }
        }
        (1..=count as i32)
            .map(|n| match known.remove(&n) {
                Some(etag) => Ok(CompletedPart::builder().part_number(n).set_e_tag(etag).build()),
                None => Err(Error::Conflict(format!("part {n} of {key} is missing in S3"))),
            })
            .collect()
    }
}
