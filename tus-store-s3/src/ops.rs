//! Every S3 request the store makes, each with a time limit and errors classified.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use bytes::Bytes;
use futures_core::Stream;
use md5::Digest as _;

use crate::error::Error;
use crate::limits::MAX_PRESIGNED_LIFETIME;

/// Metadata key of the tail object: how many parts precede it.
pub(crate) const META_PARTS: &str = "tus-parts";
/// Metadata key of the tail object: how many bytes those parts hold.
pub(crate) const META_PARTS_BYTES: &str = "tus-parts-bytes";

/// Slowest transfer rate a part upload or copy is allowed before it times out.
const MIN_THROUGHPUT: u64 = 1024 * 1024;

/// One part of a multipart upload, as ListParts reports it.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) number: i32,
    pub(crate) size: u64,
    pub(crate) etag: Option<String>,
}

/// The tail object's marker (how many parts it follows) and size.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Marker {
    pub(crate) parts: u32,
    pub(crate) parts_bytes: u64,
}

/// What HeadObject says about an object.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) size: u64,
    pub(crate) modified: Option<SystemTime>,
    pub(crate) marker: Marker,
    pub(crate) etag: Option<String>,
}

/// An object key with its LastModified time, from a listing.
#[derive(Debug)]
pub(crate) struct Listed {
    pub(crate) key: String,
    pub(crate) modified: Option<SystemTime>,
}

/// The S3 client bound to one bucket, with time limits.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub(crate) client: Client,
    pub(crate) name: String,
    /// Time limit of requests that carry little data.
    pub(crate) timeout: Duration,
}

fn content_md5(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

fn marker_from(metadata: Option<&HashMap<String, String>>) -> Marker {
    let get = |k: &str| metadata.and_then(|m| m.get(k)).and_then(|v| v.parse().ok());
    Marker { parts: get(META_PARTS).unwrap_or(0) as u32, parts_bytes: get(META_PARTS_BYTES).unwrap_or(0) }
}

fn system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

impl Bucket {
    /// A presigned GetObject URL for `key`, valid for `expires_in` (at most
    /// [`MAX_PRESIGNED_LIFETIME`]), answered with `content_type` if given.
    pub(crate) async fn presign_get(
        &self,
        key: &str,
        content_type: Option<&str>,
        expires_in: Duration,
    ) -> Result<String, Error> {
        if expires_in.is_zero() || expires_in > MAX_PRESIGNED_LIFETIME {
            return Err(Error::Config(format!(
                "presigned URL lifetime must be between 1 s and {} s",
                MAX_PRESIGNED_LIFETIME.as_secs()
            )));
        }
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| Error::Config(e.to_string()))?;
        let presigned = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .set_response_content_type(content_type.map(str::to_owned))
            .presigned(config)
            .await
            .map_err(|e| Error::s3("GetObject (presign)", key, e))?;
        Ok(presigned.uri().to_owned())
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        key: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { op, key: key.to_owned(), secs: limit.as_secs() }),
        }
    }

    /// The time limit for moving `len` bytes.
    fn transfer_limit(&self, len: u64) -> Duration {
        self.timeout + Duration::from_secs(len / MIN_THROUGHPUT)
    }

    /// GetObject of a small object into memory; `None` if it does not exist.
    pub(crate) async fn get_small(&self, key: &str) -> Result<Option<(Bytes, Marker)>, Error> {
        self.timed("GetObject", key, self.timeout, async {
            let out = match self.client.get_object().bucket(&self.name).key(key).send().await {
                Ok(out) => out,
                Err(e) => {
                    let e = Error::s3("GetObject", key, e);
                    return if e.is_not_found() { Ok(None) } else { Err(e) };
                }
            };
            let marker = marker_from(out.metadata());
            let body =
                out.body.collect().await.map_err(|e| Error::Body { key: key.to_owned(), message: e.to_string() })?;
            Ok(Some((body.into_bytes(), marker)))
        })
        .await
    }

    /// HeadObject; `None` if the object does not exist.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<Head>, Error> {
        self.timed("HeadObject", key, self.timeout, async {
            match self.client.head_object().bucket(&self.name).key(key).send().await {
                Ok(out) => Ok(Some(Head {
                    size: out.content_length().unwrap_or(0).max(0) as u64,
                    modified: system_time(out.last_modified()),
                    marker: marker_from(out.metadata()),
                    etag: out.e_tag().map(str::to_owned),
                })),
                Err(e) => {
                    let e = Error::s3("HeadObject", key, e);
                    if e.is_not_found() { Ok(None) } else { Err(e) }
                }
            }
        })
        .await
    }

    /// PutObject of bytes held in memory, with Content-MD5, an optional tail marker and an
    /// optional Content-Type.
    pub(crate) async fn put(
        &self,
        key: &str,
        data: Bytes,
        marker: Option<Marker>,
        if_none_match: bool,
        content_type: Option<&str>,
    ) -> Result<(), Error> {
        let limit = self.transfer_limit(data.len() as u64);
        self.timed("PutObject", key, limit, async {
            let mut req = self
                .client
                .put_object()
                .bucket(&self.name)
                .key(key)
                .content_md5(content_md5(&data))
                .content_length(data.len() as i64)
                .set_content_type(content_type.map(str::to_owned))
                .body(ByteStream::from(data));
            if let Some(m) = marker {
                req =
                    req.metadata(META_PARTS, m.parts.to_string()).metadata(META_PARTS_BYTES, m.parts_bytes.to_string());
            }
            if if_none_match {
                req = req.if_none_match("*");
            }
            req.send().await.map(drop).map_err(|e| Error::s3("PutObject", key, e))
        })
        .await
    }

    /// DeleteObject (deleting a missing key succeeds, as in S3).
    pub(crate) async fn delete(&self, key: &str) -> Result<(), Error> {
        self.timed("DeleteObject", key, self.timeout, async {
            match self.client.delete_object().bucket(&self.name).key(key).send().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = Error::s3("DeleteObject", key, e);
                    if e.is_not_found() { Ok(()) } else { Err(e) }
                }
            }
        })
        .await
    }

    /// GetObject of `range` (end exclusive, not empty), streamed.
    pub(crate) async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<ByteStream, Error> {
        self.timed("GetObject", key, self.timeout, async {
            let range = format!("bytes={}-{}", start, end - 1);
            let out = self
                .client
                .get_object()
                .bucket(&self.name)
                .key(key)
                .range(range)
                .send()
                .await
                .map_err(|e| Error::s3("GetObject", key, e))?;
            Ok(out.body)
        })
        .await
    }

    /// CopyObject into this bucket of `source_key` in the bucket `source_bucket` (sources up
    /// to 5 GiB).
    pub(crate) async fn copy(&self, source_bucket: &str, source_key: &str, key: &str, len: u64) -> Result<(), Error> {
        let limit = self.transfer_limit(len);
        self.timed("CopyObject", key, limit, async {
            self.client
                .copy_object()
                .bucket(&self.name)
                .key(key)
                .copy_source(format!("{source_bucket}/{source_key}"))
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::s3("CopyObject", key, e))
        })
        .await
    }

    /// CreateMultipartUpload; returns the upload ID.
    pub(crate) async fn create_multipart(&self, key: &str) -> Result<String, Error> {
        self.timed("CreateMultipartUpload", key, self.timeout, async {
            let out = self
                .client
                .create_multipart_upload()
                .bucket(&self.name)
                .key(key)
                .content_type("application/octet-stream")
                .send()
                .await
                .map_err(|e| Error::s3("CreateMultipartUpload", key, e))?;
            out.upload_id.ok_or_else(|| Error::Conflict(format!("S3 returned no upload ID for {key}")))
        })
        .await
    }

    /// UploadPart; returns the part's ETag.
    ///
    /// No Content-MD5 here: the SigV4 signature already covers the payload's SHA-256, which S3
    /// checks, and hashing every part a second time (MD5 has no hardware help) sat on the
    /// critical path of every PATCH.
    pub(crate) async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        data: Bytes,
    ) -> Result<Option<String>, Error> {
        let limit = self.transfer_limit(data.len() as u64);
        self.timed("UploadPart", key, limit, async {
            let out = self
                .client
                .upload_part()
                .bucket(&self.name)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(data.len() as i64)
                .body(ByteStream::from(data))
                .send()
                .await
                .map_err(|e| Error::s3("UploadPart", key, e))?;
            Ok(out.e_tag)
        })
        .await
    }

    /// UploadPartCopy of bytes `start..end` of `source_key` in the bucket `source_bucket`;
    /// returns the ETag.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        source_bucket: &str,
        source_key: &str,
        start: u64,
        end: u64,
    ) -> Result<Option<String>, Error> {
        let limit = self.transfer_limit(end - start);
        self.timed("UploadPartCopy", key, limit, async {
            let out = self
                .client
                .upload_part_copy()
                .bucket(&self.name)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(format!("{source_bucket}/{source_key}"))
                .copy_source_range(format!("bytes={}-{}", start, end - 1))
                .send()
                .await
                .map_err(|e| Error::s3("UploadPartCopy", key, e))?;
            Ok(out.copy_part_result.and_then(|r| r.e_tag))
        })
        .await
    }

    /// ListParts, every page, sorted by part number.
    pub(crate) async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>, Error> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        // 10 000 parts at 1 000 per page: a server that never stops paging is cut off.
        for _ in 0..=crate::MAX_PARTS / 1000 {
            let page = self
                .timed("ListParts", key, self.timeout, async {
                    self.client
                        .list_parts()
                        .bucket(&self.name)
                        .key(key)
                        .upload_id(upload_id)
                        .set_part_number_marker(marker.clone())
                        .customize()
                        .interceptor(crate::compat::ListPartsRoot)
                        .send()
                        .await
                        .map_err(|e| Error::s3("ListParts", key, e))
                })
                .await?;
            for p in page.parts() {
                if let Some(number) = p.part_number() {
                    let size = p.size().unwrap_or(0).max(0) as u64;
                    parts.push(Part { number, size, etag: p.e_tag().map(str::to_owned) });
                }
            }
            let next = page.next_part_number_marker().map(str::to_owned);
            if page.is_truncated() != Some(true) || next.is_none() || next == marker {
                break;
            }
            marker = next;
        }
        parts.sort_by_key(|p| p.number);
        parts.dedup_by_key(|p| p.number);
        Ok(parts)
    }

    /// CompleteMultipartUpload with `parts` (in order).
    pub(crate) async fn complete(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> Result<(), Error> {
        // S3 may take a while to assemble a large object; it keeps the connection alive meanwhile.
        let limit = self.timeout * 10;
        self.timed("CompleteMultipartUpload", key, limit, async {
            self.client
                .complete_multipart_upload()
                .bucket(&self.name)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::s3("CompleteMultipartUpload", key, e))
        })
        .await
    }

    /// AbortMultipartUpload (an unknown upload counts as aborted).
    pub(crate) async fn abort(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        self.timed("AbortMultipartUpload", key, self.timeout, async {
            match self.client.abort_multipart_upload().bucket(&self.name).key(key).upload_id(upload_id).send().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = Error::s3("AbortMultipartUpload", key, e);
                    if e.is_not_found() { Ok(()) } else { Err(e) }
                }
            }
        })
        .await
    }

    /// ListObjectsV2 under `prefix`, every page.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<Listed>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .timed("ListObjectsV2", prefix, self.timeout, async {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.name)
                        .prefix(prefix)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| Error::s3("ListObjectsV2", prefix, e))
                })
                .await?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    out.push(Listed { key: key.to_owned(), modified: system_time(object.last_modified()) });
                }
            }
            let next = page.next_continuation_token().map(str::to_owned);
            if page.is_truncated() != Some(true) || next.is_none() || next == token {
                break;
            }
            token = next;
        }
        Ok(out)
    }
}

/// The body of a GetObject of `key` as a stream of chunks; a read failing midway ends it with
/// [`Error::Body`].
pub(crate) fn object_chunks(key: String, body: ByteStream) -> impl Stream<Item = Result<Bytes, Error>> + Send {
    futures_util::stream::unfold((key, Some(body)), |(key, body)| async move {
        let mut body = body?;
        match body.next().await {
            None => None,
            Some(Ok(bytes)) => Some((Ok(bytes), (key, Some(body)))),
            Some(Err(e)) => {
                let e = Error::Body { key: key.clone(), message: e.to_string() };
                Some((Err(e), (key, None)))
            }
        }
    })
}
