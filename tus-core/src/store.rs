//! The storage contract: a small required [`Store`] trait plus optional capabilities.
//!
//! Every backend implements the four required methods (create, info, append, read). What else
//! it can do, it declares in one value, [`Store::capabilities`], built with `with_…` calls
//! (tusd's composer): the handler asks, never downcasts, and derives `Tus-Extension` from the
//! answer. A wrapper (`Arc`, `Box`, a timing or fault-injecting decorator) forwards that one
//! method and so cannot silently drop a capability.
//!
//! Stores are deliberately simple (as in tusd): the handler has already validated the offset,
//! capped the body at the upload's length or the maximum size, and holds the upload's lock
//! before it calls [`Store::append`].

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::headers::Metadata;
use crate::id::UploadId;

/// What an upload is in a concatenation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcatRole {
    /// Created with `Upload-Concat: partial`.
    Partial,
    /// Created with `Upload-Concat: final;...`: the partials, in order.
    Final {
        /// The partial uploads, in order (an ID may repeat).
        partials: Vec<UploadId>,
    },
}

/// Everything known about one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UploadInfo {
    /// The upload's ID.
    pub id: UploadId,
    /// Bytes durably stored, counted from the start. For a final upload this is only
    /// meaningful once it equals `length` (the concatenation is done).
    pub offset: u64,
    /// The total size, or `None` while deferred.
    pub length: Option<u64>,
    /// Metadata as the client sent it at creation.
    pub metadata: Metadata,
    /// Role in a concatenation, if any.
    pub concat: Option<ConcatRole>,
    /// When the upload was created.
    pub created_at: SystemTime,
    /// When bytes were last stored (or the upload created); the expiry clock starts here.
    pub updated_at: SystemTime,
    /// Post-upload processing state of a finished upload; `None` when no processing is
    /// configured or the upload is not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<UploadState>,
    /// The principal that created the upload, with the limits it had then (see
    /// [`crate::auth`]); `None` when no authorizer was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Box<crate::auth::Principal>>,
    /// Digests of the whole file the client declared at creation (see [`crate::digest`]),
    /// proven once the upload is complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_digests: Vec<crate::digest::Digest>,
    /// Digests of the stored file (sha-256 first, then each declared algorithm), recorded
    /// with its processing state once computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<crate::digest::Digest>,
    /// Files derived from the finished upload and stored beside it (thumbnails, a copy without
    /// metadata; see [`crate::derivative`]), in the order they were stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derivatives: Vec<crate::derivative::Derivative>,
}

/// Where a finished upload stands in post-upload processing (content check, virus scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// Finished; checks have not reached a verdict yet. Not servable.
    Processing,
    /// Checked and clean. Servable.
    Clean,
    /// A virus scanner found something; the data was moved out of the servable area.
    Quarantined,
    /// The content check refused it (type mismatch or not allowed). Not servable.
    Rejected,
}

impl UploadState {
    /// The state's name as shown in `Upload-State` and hook payloads.
    pub fn name(self) -> &'static str {
        match self {
            UploadState::Processing => "processing",
            UploadState::Clean => "clean",
            UploadState::Quarantined => "quarantined",
            UploadState::Rejected => "rejected",
        }
    }
}

impl UploadInfo {
    /// Whether every byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.length == Some(self.offset)
    }

    /// Whether this is a final upload of a concatenation.
    pub fn is_final(&self) -> bool {
        matches!(self.concat, Some(ConcatRole::Final { .. }))
    }

    /// Whether this is a partial upload of a concatenation.
    pub fn is_partial(&self) -> bool {
        matches!(self.concat, Some(ConcatRole::Partial))
    }

    /// Whether post-upload processing lets it (and its derivatives) be served: found clean, or
    /// never processed. The one reading of the state for downloads, the headers and the
    /// hook payloads that point at them.
    pub fn state_allows_serving(&self) -> bool {
        self.state.is_none_or(|s| s == UploadState::Clean)
    }
}

/// The description of an upload to create.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewUpload {
    /// The ID to create it under (chosen by the handler).
    pub id: UploadId,
    /// The total size, or `None` if deferred.
    pub length: Option<u64>,
    /// Client metadata.
    pub metadata: Metadata,
    /// Role in a concatenation.
    pub concat: Option<ConcatRole>,
    /// The principal creating it, if an authorizer is configured.
    pub owner: Option<Box<crate::auth::Principal>>,
    /// Digests of the whole file the client declared (see [`crate::digest`]).
    pub declared_digests: Vec<crate::digest::Digest>,
    /// The request that creates it also carries its first bytes (creation-with-upload): an
    /// [`Store::append`] of this upload follows at once, before the client hears of the
    /// creation. A store that syncs MAY leave the creation unsynced and make it durable with
    /// that append's sync (one sync instead of two); if the append fails, it must still make
    /// the creation durable before it returns.
    pub body_follows: bool,
}

impl NewUpload {
    /// A plain upload of `length` bytes (`None` = deferred) under `id`.
    pub fn new(id: UploadId, length: Option<u64>) -> Self {
        NewUpload {
            id,
            length,
            metadata: Metadata::default(),
            concat: None,
            owner: None,
            declared_digests: Vec::new(),
            body_follows: false,
        }
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the whole-file digests the client declared.
    pub fn with_declared_digests(mut self, digests: Vec<crate::digest::Digest>) -> Self {
        self.declared_digests = digests;
        self
    }

    /// Sets the concatenation role.
    pub fn with_concat(mut self, concat: ConcatRole) -> Self {
        self.concat = Some(concat);
        self
    }

    /// Sets the owner.
    pub fn with_owner(mut self, owner: Option<crate::auth::Principal>) -> Self {
        self.owner = owner.map(Box::new);
        self
    }

    /// The info of a freshly created upload: nothing stored yet.
    pub fn into_info(self, now: SystemTime) -> UploadInfo {
        UploadInfo {
            id: self.id,
            offset: 0,
            length: self.length,
            metadata: self.metadata,
            concat: self.concat,
            created_at: now,
            updated_at: now,
            state: None,
            owner: self.owner,
            declared_digests: self.declared_digests,
            digests: Vec::new(),
            derivatives: Vec::new(),
        }
    }
}

/// Options of one [`Store::append`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendOptions {
    /// The bytes are only valid as a whole (the request carried a checksum): the store MUST
    /// make none of them part of the upload unless the stream ends without error, even if the
    /// process crashes mid-way.
    pub all_or_nothing: bool,
}

impl AppendOptions {
    /// Sets [`AppendOptions::all_or_nothing`].
    pub fn with_all_or_nothing(mut self, yes: bool) -> Self {
        self.all_or_nothing = yes;
        self
    }
}

/// Why a request body stream ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The bytes must not be kept (for example, their checksum did not match): the store
    /// MUST discard everything this append received.
    #[error("request body rejected")]
    Rejected,
    /// The client went away, stalled, or was asked to stop: the store SHOULD keep every byte
    /// it received.
    #[error("request body interrupted")]
    Interrupted,
}

/// The bytes of one append, as they arrive.
pub type ChunkStream<'a> = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send + 'a>>;

/// Stored bytes read back.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send + 'static>>;

/// A storage error. Backends keep their own error types and convert into this one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such upload.
    #[error("upload not found")]
    NotFound,
    /// The upload existed but was terminated or expired.
    #[error("upload gone")]
    Gone,
    /// An upload with this ID already exists.
    #[error("upload already exists")]
    AlreadyExists,
    /// The store cannot do this.
    #[error("operation not supported by this store: {operation}")]
    NotSupported {
        /// What was attempted.
        operation: &'static str,
    },
    /// The request cannot be honoured in the upload's current state (for example, a final
    /// upload whose partial was terminated).
    #[error("{0}")]
    Conflict(String),
    /// The upload takes no bytes through this service: they arrive in the storage directly
    /// (a direct-to-S3 upload). Rendered as `403`, like a final upload's PATCH.
    #[error("{0}")]
    NotAppendable(String),
    /// Anything else: I/O, network, corrupt state.
    #[error("{store} store error: {source}")]
    Generic {
        /// Which backend.
        store: &'static str,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The storage backend.
///
/// Implementations MUST be safe to call concurrently for different uploads; the handler holds
/// a per-upload lock around appends, concatenation, length changes and termination.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Creates a new, empty upload described by `upload`. MUST fail with
    /// [`StoreError::AlreadyExists`] if the ID is taken.
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError>;

    /// The current info. `offset` MUST NOT exceed the bytes actually stored, and MUST include
    /// every byte an earlier `append` returned as stored.
    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError>;

    /// Appends the bytes of `data` at `offset` (which the handler checked equals the stored
    /// offset) and returns the new offset.
    ///
    /// At the first `Err` item the store stops reading: on [`BodyError::Interrupted`] it keeps
    /// and returns what it stored, on [`BodyError::Rejected`] it keeps nothing of this call and
    /// returns `offset`. Bytes counted in the returned offset MUST survive a crash unless the
    /// store documents that durability was traded for speed.
    ///
    /// What a store may assume: the handler holds the upload's lock from before this call
    /// until after it returns, and runs it on a task of its own to the end, so the returned
    /// future is never dropped half-way (a client that goes away only makes `data` end with
    /// [`BodyError::Interrupted`]). Only the whole process stopping can cut an append short;
    /// the crash rules above cover that.
    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError>;

    /// Streams bytes `range` of the upload back.
    async fn read(&self, id: &UploadId, range: Range<u64>) -> Result<ByteStream, StoreError>;

    /// What the store can do beyond the required methods (default: nothing).
    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::none()
    }

    /// Where the store keeps an upload, for hook payloads (tusd's `Storage`: `Type`, and for
    /// example `Path`, or `Bucket` and `Key`).
    fn describe(&self, id: &UploadId) -> std::collections::BTreeMap<String, String> {
        let _ = id;
        std::collections::BTreeMap::new()
    }
}

/// The optional capabilities of a [`Store`], each a reference to the store as the trait that
/// implements it. Build one with [`Capabilities::none`] and `with_…` calls:
///
/// ```
/// use tus_core::store::{Capabilities, DeferLength, Terminate};
///
/// // What a store's `fn capabilities(&self)` returns, with `self` for `store`.
/// fn capabilities<S: Terminate + DeferLength>(store: &S) -> Capabilities<'_> {
///     Capabilities::none().with_terminate(store).with_defer_length(store)
/// }
/// let store = tus_core::MemoryStore::new();
/// assert_eq!(capabilities(&store).names(), ["terminate", "defer_length"]);
/// ```
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub struct Capabilities<'a> {
    /// Deleting uploads (`termination`, and the expiry reaper).
    pub terminate: Option<&'a dyn Terminate>,
    /// Assembling final uploads (`concatenation`).
    pub concatenate: Option<&'a dyn Concatenate>,
    /// Declaring a deferred length (`creation-defer-length`).
    pub defer_length: Option<&'a dyn DeferLength>,
    /// Listing idle unfinished uploads (`expiration`); its trait includes [`Terminate`].
    pub list_expired: Option<&'a dyn ListExpired>,
    /// Recording processing states and quarantine (post-upload checks).
    pub record_state: Option<&'a dyn RecordState>,
    /// Direct, expiring download URLs (object stores).
    pub presign_get: Option<&'a dyn PresignGet>,
    /// Files derived from finished uploads, stored beside them (the media step).
    pub derivatives: Option<&'a dyn StoreDerivatives>,
}

/// The `with_…` setters of [`Capabilities`], one per field, each the same three lines.
macro_rules! with_capability {
    ($($(#[$doc:meta])* $name:ident: $field:ident, $trait:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, store: &'a dyn $trait) -> Self {
                self.$field = Some(store);
                self
            }
        )*
    };
}

impl<'a> Capabilities<'a> {
    /// No optional capability.
    pub fn none() -> Self {
        Capabilities::default()
    }

    with_capability! {
        /// Adds termination.
        with_terminate: terminate, Terminate;
        /// Adds concatenation.
        with_concatenate: concatenate, Concatenate;
        /// Adds deferred lengths.
        with_defer_length: defer_length, DeferLength;
        /// Adds processing states.
        with_record_state: record_state, RecordState;
        /// Adds presigned downloads.
        with_presign_get: presign_get, PresignGet;
        /// Adds derived files.
        with_derivatives: derivatives, StoreDerivatives;
    }

    /// Adds expiry listing, and with it termination (which the reaper needs and the trait
    /// requires).
    pub fn with_list_expired(mut self, store: &'a dyn ListExpired) -> Self {
        self.list_expired = Some(store);
        self.terminate = Some(store);
        self
    }

    /// The names of the capabilities present, for logs and tests.
    pub fn names(&self) -> Vec<&'static str> {
        let present = [
            ("terminate", self.terminate.is_some()),
            ("concatenate", self.concatenate.is_some()),
            ("defer_length", self.defer_length.is_some()),
            ("list_expired", self.list_expired.is_some()),
            ("record_state", self.record_state.is_some()),
            ("presign_get", self.presign_get.is_some()),
            ("derivatives", self.derivatives.is_some()),
        ];
        present.into_iter().filter(|(_, yes)| *yes).map(|(name, _)| name).collect()
    }
}

impl fmt::Debug for Capabilities<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Recording post-upload processing states, and quarantine.
#[async_trait]
pub trait RecordState: Send + Sync {
    /// Persists `state` in the upload's info, and `digests` of the stored file as
    /// [`UploadInfo::digests`] unless it is empty. For [`UploadState::Quarantined`] the data
    /// MUST also leave the servable area first: afterwards [`Store::read`] fails for this
    /// upload and no URL can reach the bytes (they are kept under a quarantine location for
    /// inspection).
    async fn set_state(
        &self,
        id: &UploadId,
        state: UploadState,
        digests: &[crate::digest::Digest],
    ) -> Result<(), StoreError>;

    /// Uploads awaiting a verdict: those whose state is [`UploadState::Processing`] (checks
    /// interrupted by a restart), and complete ones with no state at all (the process stopped
    /// between storing the last byte and recording `processing`). Unfinished uploads are not
    /// listed. The handler decides which of them it inspects.
    async fn list_processing(&self) -> Result<Vec<UploadId>, StoreError>;
}

/// Handing out direct, expiring download URLs for finished uploads.
#[async_trait]
pub trait PresignGet: Send + Sync {
    /// A URL that serves the upload's bytes (Range included) for `ttl`, without this server.
    async fn presign_get(&self, id: &UploadId, ttl: std::time::Duration) -> Result<String, StoreError>;

    /// A URL that serves the derivative `name` of the upload (see [`StoreDerivatives`]) for
    /// `ttl`, without this server. By default [`StoreError::NotSupported`]: the handler then
    /// serves the derivative itself.
    async fn presign_derivative(
        &self,
        id: &UploadId,
        name: crate::derivative::DerivativeName,
        ttl: std::time::Duration,
    ) -> Result<String, StoreError> {
        let _ = (id, name, ttl);
        Err(StoreError::NotSupported { operation: "presign_derivative" })
    }
}

/// Keeping files derived from a finished upload (thumbnails, a copy without metadata) beside
/// it: never over the original, served like it, removed with it.
#[async_trait]
pub trait StoreDerivatives: Send + Sync {
    /// Stores `bytes` as `derivative` of the finished upload `id`, replacing one of the same
    /// name, and lists it in the upload's [`UploadInfo::derivatives`] (after the bytes are
    /// stored, so a listed derivative can always be read) with its `size` set from `bytes`.
    /// Fails with [`StoreError::Gone`] or `NotFound`, keeping nothing, for an upload that was
    /// terminated. [`Terminate::terminate`] removes
    /// derivatives with their upload.
    async fn put_derivative(
        &self,
        id: &UploadId,
        derivative: crate::derivative::Derivative,
        bytes: Bytes,
    ) -> Result<(), StoreError>;

    /// Streams the derivative `name` of `id` back, whole; [`StoreError::NotFound`] if it was
    /// never stored.
    async fn read_derivative(
        &self,
        id: &UploadId,
        name: crate::derivative::DerivativeName,
    ) -> Result<ByteStream, StoreError>;
}

/// Deleting uploads (the `termination` extension and the expiry reaper).
#[async_trait]
pub trait Terminate: Send + Sync {
    /// Deletes the upload and its data. Afterwards [`Store::info`] SHOULD answer
    /// [`StoreError::Gone`] (the store remembers it for a while) or else `NotFound`.
    async fn terminate(&self, id: &UploadId) -> Result<(), StoreError>;
}

/// Assembling final uploads (the `concatenation` extension).
#[async_trait]
pub trait Concatenate: Send + Sync {
    /// Fills the already-created final upload `final_id` with the bytes of `partials` in
    /// order (all complete). Afterwards its info MUST show `offset == length == sum`. MUST be
    /// atomic: after a crash the final is either assembled entirely or not at all.
    async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), StoreError>;
}

/// Declaring the length of a deferred-length upload (`creation-defer-length`).
#[async_trait]
pub trait DeferLength: Send + Sync {
    /// Records the now-known length of `id` (the handler checked it is ≥ the offset).
    async fn declare_length(&self, id: &UploadId, length: u64) -> Result<(), StoreError>;
}

/// Finding unfinished uploads: those idle since before a moment (the `expiration` extension),
/// or all of them (reconciling quotas). The reaper removes what it lists, so a store that
/// lists must also terminate.
#[async_trait]
pub trait ListExpired: Terminate {
    /// IDs of unfinished uploads (final uploads included) whose `updated_at` is before
    /// `cutoff`. The store MAY remove tombstones older than `cutoff` as it goes.
    async fn list_expired(&self, cutoff: SystemTime) -> Result<Vec<UploadId>, StoreError>;

    /// IDs of every unfinished upload (final uploads included), however recent; removes
    /// nothing.
    async fn list_unfinished(&self) -> Result<Vec<UploadId>, StoreError>;
}

/// Implements [`Store`] for a wrapper by forwarding to the store it wraps, so that no wrapper
/// restates the trait's signatures. `$inner` reaches the wrapped store from `$this`, the
/// wrapper. With `required:` in front only the four required methods are forwarded, and
/// `capabilities` and `describe` keep the trait's defaults (nothing): a wrapper that hides
/// what it wraps. A trailing `read(id, range) { … }` replaces the forwarded `read` (its
/// block sees `$this`, `id` and `range`).
macro_rules! forward_store {
    (impl[$($generics:tt)*] for $ty:ty, |$this:ident| $inner:expr) => {
        $crate::store::forward_store!(impl[$($generics)*] for $ty, |$this| $inner,
            read(id, range) { ($inner).read(id, range).await });
    };
    (impl[$($generics:tt)*] for $ty:ty, |$this:ident| $inner:expr, read($id:ident, $range:ident) $read:block) => {
        $crate::store::forward_store!(@impl [$($generics)*] $ty, $this, $inner, read($id, $range) $read, {
            fn capabilities(&self) -> $crate::store::Capabilities<'_> {
                let $this = self;
                ($inner).capabilities()
            }
            fn describe(&self, id: &UploadId) -> std::collections::BTreeMap<String, String> {
                let $this = self;
                ($inner).describe(id)
            }
        });
    };
    (required: impl[$($generics:tt)*] for $ty:ty, |$this:ident| $inner:expr) => {
        $crate::store::forward_store!(@impl [$($generics)*] $ty, $this, $inner,
            read(id, range) { ($inner).read(id, range).await }, {});
    };
    (@impl [$($generics:tt)*] $ty:ty, $this:ident, $inner:expr, read($id:ident, $range:ident) $read:block, { $($optional:tt)* }) => {
        // In a block of its own, so that the names below need not be in scope where it is used.
        const _: () = {
            use std::ops::Range;

            use $crate::id::UploadId;
            use $crate::store::{AppendOptions, ByteStream, ChunkStream, NewUpload, Store, StoreError, UploadInfo};

            #[async_trait::async_trait]
            impl<$($generics)*> Store for $ty {
                async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
                    let $this = self;
                    ($inner).create(upload).await
                }
                async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
                    let $this = self;
                    ($inner).info(id).await
                }
                async fn append(
                    &self,
                    id: &UploadId,
                    offset: u64,
                    data: ChunkStream<'_>,
                    options: AppendOptions,
                ) -> Result<u64, StoreError> {
                    let $this = self;
                    ($inner).append(id, offset, data, options).await
                }
                async fn read(&self, $id: &UploadId, $range: Range<u64>) -> Result<ByteStream, StoreError> {
                    let $this = self;
                    $read
                }
                $($optional)*
            }
        };
    };
}
pub(crate) use forward_store;

forward_store!(impl[S: Store + ?Sized] for Arc<S>, |this| **this);
forward_store!(impl[S: Store + ?Sized] for Box<S>, |this| **this);
