//! Proving a finished upload's whole-file digest (see [`crate::digest`]): the stored bytes are
//! hashed once, and when an inspector reads the whole file anyway (the clamd scan), in that
//! same read.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use super::Inner;
use crate::digest::{Digest, FileHasher};
use crate::error::TusError;
use crate::store::{ByteStream, Store, StoreError, UploadInfo};

/// Uploads up to this size with a declared digest are verified before the request that
/// completed them is answered, so a mismatch is that request's `460`. Hashing runs at about
/// 1.5 GiB/s on one core here and reading from the page cache faster, so this costs at most
/// a few tens of milliseconds; larger uploads are verified in the background (`processing`
/// until then, the verdict on `HEAD`).
pub const SYNC_VERIFY_MAX: u64 = 64 << 20;

impl Inner {
    /// The digests of `info`'s stored bytes: sha-256 and each declared algorithm.
    pub(super) async fn hash_stored(&self, info: &UploadInfo) -> Result<Vec<Digest>, TusError> {
        let mut hasher = FileHasher::new(&info.declared_digests);
        let mut stream = self.store.read(&info.id, 0..info.offset).await?;
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(hasher.finish())
    }
}

/// What inspectors read through during processing: the store, except that a read of the
/// whole upload is hashed as it streams, so the digest costs no read of its own.
#[derive(Debug)]
pub(super) struct HashingStore {
    store: Arc<dyn Store>,
    upload: UploadInfo,
    hashed: Arc<Mutex<Option<Vec<Digest>>>>,
}

impl HashingStore {
    pub(super) fn new(store: Arc<dyn Store>, upload: &UploadInfo) -> Self {
        HashingStore { store, upload: upload.clone(), hashed: Arc::default() }
    }

    /// The digests of a whole read that ran to its end, if one did.
    pub(super) fn digests(&self) -> Option<Vec<Digest>> {
        self.hashed.lock().ok().and_then(|mut d| d.take())
    }
}

crate::store::forward_store!(impl[] for HashingStore, |this| this.store, read(id, range) {
    let stream = this.store.read(id, range.clone()).await?;
    if *id != this.upload.id || range != (0..this.upload.offset) {
        return Ok(stream);
    }
    let hasher = Some(FileHasher::new(&this.upload.declared_digests));
    Ok(Box::pin(Hashing { stream, hasher, done: this.hashed.clone() }) as ByteStream)
});

/// A whole-file read, hashed chunk by chunk; the digests are kept once it ends cleanly.
struct Hashing {
    stream: ByteStream,
    hasher: Option<FileHasher>,
    done: Arc<Mutex<Option<Vec<Digest>>>>,
}

impl Stream for Hashing {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.stream.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(h) = self.hasher.as_mut() {
                    h.update(chunk);
                }
            }
            // An error: this read proves nothing.
            Poll::Ready(Some(Err(_))) => self.hasher = None,
            Poll::Ready(None) => {
                if let (Some(h), Ok(mut done)) = (self.hasher.take(), self.done.lock()) {
                    *done = Some(h.finish());
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}
