//! Amazon S3 (and S3-compatible: MinIO, Ceph, R2, …) storage for [`tus_core`].
//!
//! # Layout
//!
//! Per upload `<id>`, under the configured object prefix `<prefix>` (IDs are validated by
//! `tus-core` to `[A-Za-z0-9_-]{1,128}`):
//!
//! | object | content |
//! |---|---|
//! | multipart upload on `<prefix><id>` | the upload's bytes in parts; once the upload is complete, it is completed into the object `<prefix><id>` (what GET reads) |
//! | `<prefix><id>.info` | JSON: length, metadata, concatenation role, timestamps, the multipart upload ID and whether it is completed — or a tombstone |
//! | `<prefix>quarantine/<id>` | the bytes of a finished upload a virus scan flagged, out of the servable area |
//! | `<prefix><id>.part` | the *tail*: bytes after the last part, fewer than a part; its metadata `x-amz-meta-tus-parts` / `x-amz-meta-tus-parts-bytes` records how many parts (and bytes) precede it |
//!
//! # Offsets come from S3
//!
//! No state is kept in the process, so any number of server instances can share a bucket.
//! The offset of an unfinished upload is the size of parts `1..=n` as ListParts (paginated)
//! reports them, plus the tail object's size, where `n` is the part count recorded on the tail
//! object. Every append ends by writing the tail object (its *commit*): parts uploaded by an
//! append that failed or crashed before committing lie beyond `n`, are not counted, and are
//! overwritten by the next append. A completed upload's offset is its length.
//!
//! # S3's rules, handled here
//!
//! Parts are at least 5 MiB (all but the last) and at most 5 GiB, at most 10 000 per upload,
//! objects at most 5 TiB. Clients may send PATCHes of any size: bytes that do not fill a part
//! stay in the tail object and are merged into the next part. The part size is the configured
//! one (default 8 MiB), grown whenever needed so that the bytes still to come fit into the
//! part numbers left; an upload of deferred length is assumed to be as large as the configured
//! maximum object size (default 5 TiB, so its parts are 525 MiB: declare a maximum with
//! [`S3StoreBuilder::max_object_size`] to keep them small).
//!
//! # Resources
//!
//! A PATCH body streams to S3 as it arrives: full parts are uploaded while the next one
//! fills, at most `max_parts_in_flight` (default 4) at a time. Memory per append is therefore
//! bounded by `part_size × (max_parts_in_flight + 1)` (40 MiB with the defaults). The tail is
//! read back into that buffer at the start of an append. Checksummed (all-or-nothing) bodies
//! are staged first — up to 1 MiB in memory, beyond that in an unlinked temp file in the
//! staging directory — and uploaded only once the body ended cleanly, so unverified bytes
//! never become a part. Every request has a time limit (small requests
//! [`S3StoreBuilder::request_timeout`], data transfers that plus one second per MiB) and the
//! SDK's standard retry mode with at most 3 attempts.
//!
//! # Completion, termination, concatenation, expiry
//!
//! When the last byte arrives the remaining tail is uploaded as the last part and the
//! multipart upload is completed (a zero-byte upload becomes an empty object), so GET reads
//! one object with Range requests; [`S3Store::presigned_get_url`] mints a presigned GetObject
//! URL for it. Termination writes a tombstone info object first (the upload then answers
//! `Gone`), aborts the multipart upload and deletes the data and tail objects. Final uploads
//! are assembled inside S3 with UploadPartCopy when every non-empty partial but the last is at
//! least 5 MiB; otherwise they are streamed through the same bounded pipeline as appends.
//! The expiry listing scans `<prefix>*.info` with ListObjectsV2 and uses the objects' S3
//! `LastModified` to skip fresh and completed uploads. As a backstop, configure a bucket
//! lifecycle rule that aborts incomplete multipart uploads after a few days (see the README).
//!
//! # IAM permissions
//!
//! On `arn:aws:s3:::<bucket>/<prefix>*`: `s3:PutObject`, `s3:GetObject`, `s3:DeleteObject`,
//! `s3:AbortMultipartUpload`, `s3:ListMultipartUploadParts`. On `arn:aws:s3:::<bucket>`:
//! `s3:ListBucket` (expiry listing, and HeadObject answering 404 rather than 403).
//! CreateMultipartUpload, UploadPart, UploadPartCopy and CompleteMultipartUpload are covered
//! by `s3:PutObject` (UploadPartCopy also reads its source with `s3:GetObject`).
//!
//! # Example
//!
//! ```no_run
//! use tus_core::TusService;
//! use tus_store_s3::S3Store;
//!
//! # fn main() -> Result<(), tus_core::StoreError> {
//! // Credentials come from the standard AWS environment variables or profile chain.
//! let store = S3Store::builder("my-uploads")
//!     .endpoint("http://127.0.0.1:9000")
//!     .force_path_style(true)
//!     .region("us-east-1")
//!     .object_prefix("tus/")
//!     .build()?;
//! let service = TusService::builder(store).build();
//! # let _ = service; Ok(())
//! # }
//! ```

mod compat;
mod error;
mod ops;
mod upload;

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, ProvideCredentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider, StalledStreamProtectionConfig,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tus_core::UploadId;
use tus_core::store::{
    AppendOptions, ByteStream, ChunkStream, ConcatRole, Concatenate, DeferLength, ListExpired, NewUpload, PresignGet,
    RecordState, Store, StoreError, Terminate, UploadInfo, UploadState,
};

use crate::error::Error;
use crate::ops::{Bucket, Marker};
use crate::upload::{Input, Outcome, Pipeline, StreamEnd};

const MIB: u64 = 1024 * 1024;
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
/// Default part size.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// Default number of parts uploading concurrently per upload.
pub const DEFAULT_MAX_PARTS_IN_FLIGHT: usize = 4;
/// Default memory for part buffers across all uploads of a store.
pub const DEFAULT_PART_MEMORY: u64 = 256 * MIB;
/// Default time limit of small S3 requests.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What `<id>.info` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum InfoObject {
    /// A live upload; the `offset` field is ignored (S3 says what is stored).
    Live(LiveInfo),
    /// Terminated or expired.
    Gone { at: SystemTime },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LiveInfo {
    #[serde(flatten)]
    upload: UploadInfo,
    /// The multipart upload holding the bytes (none for zero-byte uploads).
    multipart_upload_id: Option<String>,
    /// The multipart upload was completed into the object `<prefix><id>`.
    completed: bool,
}

/// Builds an [`S3Store`].
#[derive(Clone)]
pub struct S3StoreBuilder {
    bucket: String,
    endpoint: Option<String>,
    region: Option<String>,
    prefix: String,
    force_path_style: bool,
    part_size: u64,
    max_parts_in_flight: usize,
    max_object_size: u64,
    request_timeout: Duration,
    credentials: Option<Credentials>,
    staging_dir: Option<PathBuf>,
    part_memory: u64,
}

impl fmt::Debug for S3StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3StoreBuilder")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("max_parts_in_flight", &self.max_parts_in_flight)
            .finish_non_exhaustive()
    }
}

impl S3StoreBuilder {
    /// A custom endpoint URL (MinIO, R2, a test server). Default: AWS for the region.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A prefix put before every key (for example `tus/`). Default: none.
    pub fn object_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted ones; most
    /// S3-compatible servers need this. Default `false`.
    pub fn force_path_style(mut self, yes: bool) -> Self {
        self.force_path_style = yes;
        self
    }

    /// The preferred part size in bytes, 5 MiB to 5 GiB (default 8 MiB); grown per upload
    /// when 10 000 parts of it would not hold the upload.
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Parts uploading concurrently per upload, at least 1 (default 4).
    pub fn max_parts_in_flight(mut self, n: usize) -> Self {
        self.max_parts_in_flight = n;
        self
    }

    /// The largest upload to plan parts for when the length is deferred (default and at most
    /// 5 TiB). Set it to the server's maximum upload size to keep those parts small.
    pub fn max_object_size(mut self, bytes: u64) -> Self {
        self.max_object_size = bytes;
        self
    }

    /// Time limit of small S3 requests (default 30 s); data transfers get one more second per
    /// MiB.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Static credentials instead of the standard AWS environment variables / profile chain.
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.credentials =
            Some(Credentials::new(access_key_id.into(), secret_access_key.into(), None, None, "tus-store-s3"));
        self
    }

    /// Memory for part buffers across all uploads of this store (default 256 MiB). Uploads
    /// beyond it wait, slowed down by TCP flow control, instead of the server growing by a part
    /// per concurrent upload. A part larger than the whole budget still proceeds, alone.
    pub fn part_memory(mut self, bytes: u64) -> Self {
        self.part_memory = bytes;
        self
    }

    /// Where checksummed bodies over 1 MiB are staged (default: the system temp directory).
    pub fn staging_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.staging_dir = Some(dir.into());
        self
    }

    /// Checks the settings and returns the store. Makes no request: a wrong bucket or
    /// credentials show up on the first upload.
    pub fn build(self) -> Result<S3Store, StoreError> {
        Ok(self.try_build()?)
    }

    fn try_build(self) -> Result<S3Store, Error> {
        if self.bucket.is_empty() {
            return Err(Error::Config("the bucket name is empty".into()));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(Error::Config(format!(
                "part size {} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE})",
                self.part_size
            )));
        }
        if self.max_parts_in_flight == 0 {
            return Err(Error::Config("at least one part must be allowed in flight".into()));
        }
        if self.max_object_size == 0 || self.max_object_size > MAX_OBJECT_SIZE {
            return Err(Error::Config(format!("maximum object size must be 1..={MAX_OBJECT_SIZE}")));
        }
        let region = self
            .region
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let credentials = match self.credentials {
            Some(c) => SharedCredentialsProvider::new(c),
            None => SharedCredentialsProvider::new(DefaultChain::default()),
        };
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(credentials)
            .force_path_style(self.force_path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(10)).build())
            // A transfer that moves no byte for this long is cut (then retried).
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled().grace_period(self.request_timeout).build(),
            )
            // Plain Content-MD5 (on every object; parts are covered by the signed payload hash)
            // is what S3-compatible servers understand; the SDK's newer default trailing
            // checksums are not.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = aws_sdk_s3::Client::from_conf(config.build());
        let staging_dir = self.staging_dir.unwrap_or_else(std::env::temp_dir);
        Ok(S3Store {
            inner: Arc::new(Inner {
                bucket: Bucket { client, name: self.bucket, timeout: self.request_timeout },
                prefix: self.prefix,
                part_size: self.part_size,
                max_parts_in_flight: self.max_parts_in_flight,
                max_object_size: self.max_object_size,
                staging_dir,
                part_memory: upload::PartMemory::new(self.part_memory),
            }),
        })
    }
}

/// The standard AWS credential chain (environment, profile, web identity, container, IMDS),
/// built on first use so that building the store needs no runtime.
#[derive(Debug, Default)]
struct DefaultChain(tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>);

impl ProvideCredentials for DefaultChain {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let chain = self
                .0
                .get_or_init(|| aws_config::default_provider::credentials::DefaultCredentialsChain::builder().build())
                .await;
            chain.provide_credentials().await
        })
    }
}

/// Uploads as S3 multipart uploads. See the crate docs for the layout.
#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bucket: Bucket,
    prefix: String,
    part_size: u64,
    max_parts_in_flight: usize,
    max_object_size: u64,
    staging_dir: PathBuf,
    part_memory: upload::PartMemory,
}

/// An unfinished upload as S3 holds it.
#[derive(Debug)]
struct Stored {
    parts: u32,
    parts_bytes: u64,
    tail_len: u64,
    tail_modified: Option<SystemTime>,
}

impl S3Store {
    /// A builder for a store in `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3StoreBuilder {
        S3StoreBuilder {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            prefix: String::new(),
            force_path_style: false,
            part_size: DEFAULT_PART_SIZE,
            max_parts_in_flight: DEFAULT_MAX_PARTS_IN_FLIGHT,
            max_object_size: MAX_OBJECT_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            credentials: None,
            staging_dir: None,
            part_memory: DEFAULT_PART_MEMORY,
        }
    }

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
    /// [`MAX_PRESIGNED_LIFETIME`]). Fails with [`StoreError::Conflict`] if the upload is not
    /// finished.
    pub async fn presigned_get_url(&self, id: &UploadId, expires_in: Duration) -> Result<String, StoreError> {
        if expires_in.is_zero() || expires_in > MAX_PRESIGNED_LIFETIME {
            return Err(Error::Config(format!(
                "presigned URL lifetime must be between 1 s and {} s",
                MAX_PRESIGNED_LIFETIME.as_secs()
            ))
            .into());
        }
        let info = self.info(id).await?;
        if !info.is_complete() || info.state == Some(UploadState::Quarantined) {
            return Err(Error::Conflict(format!("upload {id} is not finished or quarantined")).into());
        }
        let key = self.inner.data_key(id);
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| Error::Config(e.to_string()))?;
        let presigned = self
            .inner
            .bucket
            .client
            .get_object()
            .bucket(&self.inner.bucket.name)
            .key(&key)
            .presigned(config)
            .await
            .map_err(|e| Error::s3("GetObject (presign)", &key, e))?;
        Ok(presigned.uri().to_owned())
    }
}

impl Inner {
    fn data_key(&self, id: &UploadId) -> String {
        format!("{}{id}", self.prefix)
    }
    fn info_key(&self, id: &UploadId) -> String {
        format!("{}{id}.info", self.prefix)
    }
    fn tail_key(&self, id: &UploadId) -> String {
        format!("{}{id}.part", self.prefix)
    }
    fn quarantine_key(&self, id: &UploadId) -> String {
        format!("{}quarantine/{id}", self.prefix)
    }

    /// Copies a finished object of `len` bytes: CopyObject up to 5 GiB, a multipart copy
    /// beyond.
    async fn copy_object(&self, source: &str, target: &str, len: u64) -> Result<(), Error> {
        if len <= MAX_PART_SIZE {
            return self.bucket.copy(source, target, len).await;
        }
        let upload_id = self.bucket.create_multipart(target).await?;
        let pieces = copy_plan(&[(source.to_owned(), len)]).unwrap_or_default();
        let mut parts = Vec::with_capacity(pieces.len());
        for (i, (source, start, end)) in pieces.into_iter().enumerate() {
            let number = i as i32 + 1;
            let etag = self.bucket.upload_part_copy(target, &upload_id, number, &source, start, end).await?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(etag).build());
        }
        self.bucket.complete(target, &upload_id, parts).await
    }

    /// IDs of uploads under the prefix whose info and data objects both exist (finished).
    async fn finished_ids(&self) -> Result<Vec<UploadId>, Error> {
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

    async fn read_info_object(&self, id: &UploadId) -> Result<InfoObject, Error> {
        let key = self.info_key(id);
        let (bytes, _) = self.bucket.get_small(&key).await?.ok_or(Error::NotFound)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { key, source })
    }

    async fn live(&self, id: &UploadId) -> Result<LiveInfo, Error> {
        match self.read_info_object(id).await? {
            InfoObject::Live(live) => Ok(live),
            InfoObject::Gone { .. } => Err(Error::Gone),
        }
    }

    async fn write_info(&self, id: &UploadId, info: &InfoObject, create: bool) -> Result<(), Error> {
        let key = self.info_key(id);
        let json = serde_json::to_vec(info).map_err(|source| Error::Json { key: key.clone(), source })?;
        self.bucket.put(&key, Bytes::from(json), None, create).await
    }

    /// Where an unfinished upload stands according to S3: parts `1..=n` (n from the tail's
    /// marker) as ListParts reports them, plus the tail. `None` if the multipart upload turns
    /// out to have been completed already (a crash between completing and recording it).
    async fn stored(&self, id: &UploadId, live: &LiveInfo) -> Result<Option<Stored>, Error> {
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

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, Error> {
        let mut live = self.live(id).await?;
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

    fn pipeline<'a>(
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
    async fn append_input(&self, id: &UploadId, offset: u64, input: Input<'_>) -> Result<u64, Error> {
        let tail_key = self.tail_key(id);
        // One round trip for both: every PATCH waits for these before reading its body. (For
        // an upload found complete the tail was fetched for nothing; that is rare.)
        let (live, tail) = tokio::join!(self.live(id), self.bucket.get_small(&tail_key));
        let live = live?;
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
            self.bucket.put(&tail_key, rest, Some(marker), false).await?;
        }
        Ok(new_offset)
    }

    /// Uploads `last` as the last part, completes the multipart upload (an upload of no bytes
    /// at all becomes an empty object), records it and removes the tail.
    async fn complete(
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
                self.bucket.put(&data_key, Bytes::new(), None, false).await?;
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
    async fn completed_parts(
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

    /// The bytes of finished uploads, one after the other, streamed.
    fn objects_input(&self, sources: Vec<(String, u64)>) -> Input<'static> {
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
                    Ok(body) => Box::pin(futures_util::stream::unfold((key, Some(body)), |(key, body)| async move {
                        let mut body = body?;
                        match body.next().await {
                            None => None,
                            Some(Ok(bytes)) => Some((Ok(bytes), (key, Some(body)))),
                            Some(Err(e)) => {
                                let e = Error::Body { key: key.clone(), message: e.to_string() };
                                Some((Err(StreamEnd::Failed(e)), (key, None)))
                            }
                        }
                    })),
                }
            });
        Box::pin(stream)
    }

    async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), Error> {
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
                    let etag = bucket.upload_part_copy(&key, &upload_id, number, &source, start, end).await?;
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
        let live = LiveInfo { upload: info.clone(), multipart_upload_id, completed: false };
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
        let stream = futures_util::stream::unfold((key, Some(body)), |(key, body)| async move {
            let mut body = body?;
            match body.next().await {
                None => None,
                Some(Ok(bytes)) => Some((Ok(bytes), (key, Some(body)))),
                Some(Err(e)) => {
                    let e = Error::Body { key: key.clone(), message: e.to_string() };
                    Some((Err(e.into()), (key, None)))
                }
            }
        });
        Ok(Box::pin(stream))
    }

    fn terminater(&self) -> Option<&dyn Terminate> {
        Some(self)
    }
    fn concatenater(&self) -> Option<&dyn Concatenate> {
        Some(self)
    }
    fn length_deferrer(&self) -> Option<&dyn DeferLength> {
        Some(self)
    }
    fn expirer(&self) -> Option<&dyn ListExpired> {
        Some(self)
    }
    fn state_recorder(&self) -> Option<&dyn RecordState> {
        Some(self)
    }
    fn presigner(&self) -> Option<&dyn PresignGet> {
        Some(self)
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

#[async_trait]
impl RecordState for S3Store {
    async fn set_state(&self, id: &UploadId, state: UploadState) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut live = inner.live(id).await?;
        if state == UploadState::Quarantined && live.upload.state != Some(UploadState::Quarantined) {
            // Move the bytes out first: from here on nothing at `<prefix><id>` serves them.
            let (data_key, target) = (inner.data_key(id), inner.quarantine_key(id));
            let len = live.upload.length.unwrap_or(0);
            inner.copy_object(&data_key, &target, len).await?;
            inner.bucket.delete(&data_key).await?;
        }
        live.upload.state = Some(state);
        inner.write_info(id, &InfoObject::Live(live), false).await?;
        Ok(())
    }

    async fn list_processing(&self) -> Result<Vec<UploadId>, StoreError> {
        let inner = &self.inner;
        let mut found = Vec::new();
        // Finished uploads only: their data object exists.
        for id in inner.finished_ids().await? {
            if let Ok(InfoObject::Live(live)) = inner.read_info_object(&id).await
                && live.upload.state.is_none_or(|s| s == UploadState::Processing)
            {
                found.push(id);
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl PresignGet for S3Store {
    async fn presign_get(&self, id: &UploadId, ttl: Duration) -> Result<String, StoreError> {
        self.presigned_get_url(id, ttl).await
    }
}

#[async_trait]
impl Terminate for S3Store {
    async fn terminate(&self, id: &UploadId) -> Result<(), StoreError> {
        let inner = &self.inner;
        let live = inner.live(id).await?;
        // Tombstone first: from here on the upload answers Gone, whatever happens next.
        inner.write_info(id, &InfoObject::Gone { at: SystemTime::now() }, false).await?;
        let data_key = inner.data_key(id);
        if let (Some(upload_id), false) = (&live.multipart_upload_id, live.completed) {
            inner.bucket.abort(&data_key, upload_id).await?;
        }
        inner.bucket.delete(&data_key).await?;
        inner.bucket.delete(&inner.tail_key(id)).await?;
        inner.bucket.delete(&inner.quarantine_key(id)).await?;
        Ok(())
    }
}

#[async_trait]
impl Concatenate for S3Store {
    async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), StoreError> {
        Ok(self.inner.concatenate(final_id, partials).await?)
    }
}

#[async_trait]
impl DeferLength for S3Store {
    async fn declare_length(&self, id: &UploadId, length: u64) -> Result<(), StoreError> {
        let inner = &self.inner;
        if length > MAX_OBJECT_SIZE {
            return Err(Error::Conflict(format!("uploads larger than {MAX_OBJECT_SIZE} bytes do not fit in S3")).into());
        }
        let mut live = inner.live(id).await?;
        live.upload.length = Some(length);
        inner.write_info(id, &InfoObject::Live(live.clone()), false).await?;
        // Declaring the length the upload already has finishes it.
        if !live.completed
            && let Some(Stored { parts, parts_bytes, tail_len, .. }) = inner.stored(id, &live).await?
            && parts_bytes + tail_len == length
        {
            let tail = match inner.bucket.get_small(&inner.tail_key(id)).await? {
                Some((tail, _)) if tail_len > 0 => tail,
                _ => Bytes::new(),
            };
            inner.complete(id, live, parts, Vec::new(), tail).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ListExpired for S3Store {
    async fn list_expired(&self, cutoff: SystemTime) -> Result<Vec<UploadId>, StoreError> {
        let inner = &self.inner;
        let listed = inner.bucket.list(&inner.prefix).await?;
        let mut infos = Vec::new();
        let mut newest: std::collections::HashMap<&str, Option<SystemTime>> = std::collections::HashMap::new();
        let mut completed = std::collections::HashSet::new();
        for object in &listed {
            let Some(name) = object.key.strip_prefix(inner.prefix.as_str()) else { continue };
            let (stem, suffix) = match name.rsplit_once('.') {
                Some((stem, suffix @ ("info" | "part"))) => (stem, suffix),
                _ => {
                    completed.insert(name);
                    continue;
                }
            };
            if UploadId::parse(stem).is_err() {
                continue;
            }
            let entry = newest.entry(stem).or_insert(object.modified);
            *entry = (*entry).max(object.modified);
            if suffix == "info" {
                infos.push(stem);
            }
        }
        let mut expired = Vec::new();
        for stem in infos {
            // Completed (the data object exists) or touched since the cutoff: not expired.
            if completed.contains(stem) || newest.get(stem).copied().flatten().is_some_and(|t| t >= cutoff) {
                continue;
            }
            let Ok(id) = UploadId::parse(stem) else { continue };
            match inner.read_info_object(&id).await {
                Ok(InfoObject::Gone { at }) if at < cutoff => inner.bucket.delete(&inner.info_key(&id)).await?,
                Ok(InfoObject::Live(live)) => {
                    let final_upload = matches!(live.upload.concat, Some(ConcatRole::Final { .. }));
                    if !live.completed && !final_upload && live.upload.updated_at < cutoff {
                        expired.push(id);
                    }
                }
                Ok(InfoObject::Gone { .. }) | Err(Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(expired)
    }
}
