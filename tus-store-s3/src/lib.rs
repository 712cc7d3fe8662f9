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
//! | `<promote prefix><id>` (optionally in another bucket) | a clean upload, promoted out of the temporary `<prefix>` when [`S3StoreBuilder::promote_to`] is set: copied, recorded in the info, deleted from `<prefix><id>` |
//! | `<data key>.derived/thumbnail-<size>`, `<data key>.derived/stripped` | files derived from a clean upload (the media step), beside its data object (`<prefix><id>`, or the promoted key: promoted with it), listed in the info, deleted with the upload |
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
//! # Direct uploads
//!
//! [`direct::DirectUploads`] is a `tower::Service` answering the Companion S3 signing routes
//! that Uppy's `@uppy/aws-s3` plugin calls: the client's bytes go straight to S3 over
//! presigned URLs, and each direct upload is an upload of this store (marked direct in its
//! info object, so tus appends to it are refused), finished through the same
//! [`TusService`](tus_core::TusService) pipeline as tus uploads once S3 holds its bytes.
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

mod append;
mod builder;
mod capabilities;
mod compat;
mod concat;
mod derived;
pub mod direct;
mod error;
mod layout;
mod limits;
mod ops;
mod state;
mod store;
mod upload;

pub use builder::{
    DEFAULT_MAX_PARTS_IN_FLIGHT, DEFAULT_PART_MEMORY, DEFAULT_PART_SIZE, DEFAULT_REQUEST_TIMEOUT, S3StoreBuilder,
};
pub use limits::{MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MAX_PRESIGNED_LIFETIME, MIN_PART_SIZE};
pub use store::S3Store;
