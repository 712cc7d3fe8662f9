//! An in-memory [`Store`] with every capability: the reference backend for tests, fuzzing and
//! examples. Not for production: everything is lost when the process ends.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;

use crate::derivative::{Derivative, DerivativeName};
use crate::digest::Digest;
use crate::id::UploadId;
use crate::store::{
    AppendOptions, BodyError, ByteStream, Capabilities, ChunkStream, Concatenate, DeferLength, ListExpired, NewUpload,
    RecordState, Store, StoreDerivatives, StoreError, Terminate, UploadInfo, UploadState,
};

/// An in-memory store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    uploads: Arc<Mutex<HashMap<UploadId, Entry>>>,
    /// Derived files, by upload and name.
    derived: Arc<Mutex<HashMap<(UploadId, DerivativeName), Bytes>>>,
}

#[derive(Debug)]
enum Entry {
    // Boxed: an info is far larger than a tombstone.
    Live { info: Box<UploadInfo>, data: BytesMut },
    Gone,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<UploadId, Entry>) -> T) -> Result<T, StoreError> {
        let mut map = self
            .uploads
            .lock()
            .map_err(|_| StoreError::Generic { store: "memory", source: "mutex poisoned".into() })?;
        Ok(f(&mut map))
    }

    fn live<T>(&self, id: &UploadId, f: impl FnOnce(&mut UploadInfo, &mut BytesMut) -> T) -> Result<T, StoreError> {
        self.with(|map| match map.get_mut(id) {
            Some(Entry::Live { info, data }) => Ok(f(info, data)),
            Some(Entry::Gone) => Err(StoreError::Gone),
            None => Err(StoreError::NotFound),
        })?
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
        let info = upload.into_info(SystemTime::now());
        self.with(|map| {
            if map.contains_key(&info.id) {
                return Err(StoreError::AlreadyExists);
            }
            map.insert(info.id.clone(), Entry::Live { info: Box::new(info.clone()), data: BytesMut::new() });
            Ok(info)
        })?
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
        self.live(id, |info, _| info.clone())
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        mut data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        let mut staged = BytesMut::new();
        let mut outcome = Ok(());
        while let Some(item) = data.next().await {
            match item {
                Ok(chunk) if options.all_or_nothing => staged.extend_from_slice(&chunk),
                Ok(chunk) => self.commit(id, offset, &chunk)?,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        match outcome {
            Ok(()) if options.all_or_nothing => self.commit(id, offset, &staged)?,
            Ok(()) | Err(BodyError::Interrupted) => {}
            Err(BodyError::Rejected) => self.live(id, |info, data| {
                data.truncate(usize::try_from(offset).unwrap_or(usize::MAX));
                info.offset = offset;
            })?,
        }
        self.live(id, |info, _| info.offset)
    }

    async fn read(&self, id: &UploadId, range: Range<u64>) -> Result<ByteStream, StoreError> {
        let bytes = self.live(id, |info, data| {
            if info.state == Some(UploadState::Quarantined) {
                return Err(StoreError::Conflict("upload is quarantined".into()));
            }
            let end = usize::try_from(range.end).unwrap_or(usize::MAX).min(data.len());
            let start = usize::try_from(range.start).unwrap_or(usize::MAX).min(end);
            Ok(Bytes::copy_from_slice(&data[start..end]))
        })??;
        Ok(Box::pin(futures_util::stream::iter([Ok(bytes)])))
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::none()
            .with_terminate(self)
            .with_concatenate(self)
            .with_defer_length(self)
            .with_list_expired(self)
            .with_record_state(self)
            .with_derivatives(self)
    }
}

#[async_trait]
impl RecordState for MemoryStore {
    async fn set_state(&self, id: &UploadId, state: UploadState, digests: &[Digest]) -> Result<(), StoreError> {
        self.live(id, |info, _| {
            info.state = Some(state);
            if !digests.is_empty() {
                info.digests = digests.to_vec();
            }
        })
    }

    async fn list_processing(&self) -> Result<Vec<UploadId>, StoreError> {
        self.with(|map| {
            map.values()
                .filter_map(|e| match e {
                    Entry::Live { info, .. }
                        if info.state == Some(UploadState::Processing)
                            || info.state.is_none() && info.is_complete() =>
                    {
                        Some(info.id.clone())
                    }
                    _ => None,
                })
                .collect()
        })
    }
}

impl MemoryStore {
    fn commit(&self, id: &UploadId, offset: u64, chunk: &[u8]) -> Result<(), StoreError> {
        self.live(id, |info, data| {
            if data.len() as u64 != info.offset || info.offset < offset {
                return Err(StoreError::Conflict("offset moved during append".into()));
            }
            data.extend_from_slice(chunk);
            info.offset = data.len() as u64;
            info.updated_at = SystemTime::now();
            Ok(())
        })?
    }
}

#[async_trait]
impl Terminate for MemoryStore {
    async fn terminate(&self, id: &UploadId) -> Result<(), StoreError> {
        self.live(id, |_, _| ())?;
        self.with(|map| map.insert(id.clone(), Entry::Gone))?;
        self.with_derived(|derived| derived.retain(|(of, _), _| of != id))
    }
}

#[async_trait]
impl StoreDerivatives for MemoryStore {
    async fn put_derivative(&self, id: &UploadId, mut derivative: Derivative, bytes: Bytes) -> Result<(), StoreError> {
        derivative.size = bytes.len() as u64;
        self.live(id, |_, _| ())?;
        self.with_derived(|derived| derived.insert((id.clone(), derivative.name), bytes))?;
        self.live(id, |info, _| {
            info.derivatives.retain(|d| d.name != derivative.name);
            info.derivatives.push(derivative);
        })
    }

    async fn read_derivative(&self, id: &UploadId, name: DerivativeName) -> Result<ByteStream, StoreError> {
        self.live(id, |_, _| ())?;
        let bytes = self.with_derived(|derived| derived.get(&(id.clone(), name)).cloned())?;
        let bytes = bytes.ok_or(StoreError::NotFound)?;
        Ok(Box::pin(futures_util::stream::iter([Ok(bytes)])))
    }
}

impl MemoryStore {
    fn with_derived<T>(
        &self,
        f: impl FnOnce(&mut HashMap<(UploadId, DerivativeName), Bytes>) -> T,
    ) -> Result<T, StoreError> {
        let mut map = self
            .derived
            .lock()
            .map_err(|_| StoreError::Generic { store: "memory", source: "mutex poisoned".into() })?;
        Ok(f(&mut map))
    }
}

#[async_trait]
impl Concatenate for MemoryStore {
    async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), StoreError> {
        let mut joined = BytesMut::new();
        for p in partials {
            joined.extend_from_slice(&self.live(&p.id, |_, data| data.clone())?);
        }
        self.live(final_id, |info, data| {
            *data = joined;
            info.offset = data.len() as u64;
            info.length = Some(info.offset);
            info.updated_at = SystemTime::now();
        })
    }
}

#[async_trait]
impl DeferLength for MemoryStore {
    async fn declare_length(&self, id: &UploadId, length: u64) -> Result<(), StoreError> {
        self.live(id, |info, _| info.length = Some(length))
    }
}

#[async_trait]
impl ListExpired for MemoryStore {
    async fn list_expired(&self, cutoff: SystemTime) -> Result<Vec<UploadId>, StoreError> {
        self.unfinished(|info| info.updated_at < cutoff)
    }

    async fn list_unfinished(&self) -> Result<Vec<UploadId>, StoreError> {
        self.unfinished(|_| true)
    }
}

impl MemoryStore {
    fn unfinished(&self, keep: impl Fn(&UploadInfo) -> bool) -> Result<Vec<UploadId>, StoreError> {
        self.with(|map| {
            map.values()
                .filter_map(|e| match e {
                    Entry::Live { info, .. } if !info.is_complete() && keep(info) => Some(info.id.clone()),
                    _ => None,
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use crate::id::UploadId;
    use crate::store::{StoreError, Terminate};

    #[tokio::test]
    async fn memory_store_passes_the_store_suite() {
        crate::store_suite!(super::MemoryStore::new());
    }

    /// Implements termination but forgets to expose it.
    #[derive(Debug, Default)]
    struct Forgetful(super::MemoryStore);

    crate::store::forward_store!(required: impl[] for Forgetful, |this| this.0);

    #[async_trait]
    impl Terminate for Forgetful {
        async fn terminate(&self, id: &UploadId) -> Result<(), StoreError> {
            Terminate::terminate(&self.0, id).await
        }
    }

    #[tokio::test]
    #[should_panic(expected = "implements terminate but its capabilities() do not expose it")]
    async fn the_suite_catches_a_capability_that_is_not_exposed() {
        crate::store_suite!(Forgetful::default());
    }
}
