//! The optional capabilities of the store: recorded state (quarantine), termination,
//! concatenation, deferred length, the expiry listing and derivatives.

use std::fs::{self, File};
use std::io;
use std::time::SystemTime;

use async_trait::async_trait;
use tus_core::UploadId;
use tus_core::derivative::{Derivative, DerivativeName};
use tus_core::digest::Digest;
use tus_core::store::{
    ByteStream, Concatenate, DeferLength, ListExpired, RecordState, StoreDerivatives, StoreError, Terminate,
    UploadInfo, UploadState,
};

use crate::FileStore;
use crate::error::{Error, io_err};
use crate::info::InfoFile;
use crate::layout::{Dirs, QUARANTINE_DIR};

#[async_trait]
impl RecordState for FileStore {
    async fn set_state(&self, id: &UploadId, state: UploadState, digests: &[Digest]) -> Result<(), StoreError> {
        let (id, digests) = (id.clone(), digests.to_vec());
        self.blocking(move |d| {
            let _info = d.info_lock(&id);
            let mut info = d.info(&id)?;
            if state == UploadState::Quarantined && info.state != Some(UploadState::Quarantined) {
                // Move the bytes out first: from here on nothing under `<dir>/<id>` serves them.
                let target = d.quarantined(&id);
                let qdir = d.dir.join(QUARANTINE_DIR);
                fs::create_dir_all(&qdir).map_err(io_err("create", &qdir))?;
                fs::rename(d.data(&id), &target).map_err(io_err("quarantine", &target))?;
                // Keep an empty data file so the ID stays taken.
                File::create(d.data(&id)).map_err(io_err("create", &d.data(&id)))?;
            }
            info.state = Some(state);
            if !digests.is_empty() {
                info.digests = digests;
            }
            d.write_info(&id, &InfoFile::Live(info))
        })
        .await
    }

    async fn list_processing(&self) -> Result<Vec<UploadId>, StoreError> {
        self.blocking(|d| {
            let mut found = Vec::new();
            for id in d.info_ids()? {
                let awaits_verdict = match d.read_info_file(&id) {
                    Ok(InfoFile::Live(info)) => match info.state {
                        Some(state) => state == UploadState::Processing,
                        // Only a complete upload awaits one; the offset comes from the data.
                        None => d.info(&id).is_ok_and(|info| info.is_complete()),
                    },
                    _ => false,
                };
                if awaits_verdict {
                    found.push(id);
                }
            }
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl Terminate for FileStore {
    async fn terminate(&self, id: &UploadId) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |d| {
            let _info = d.info_lock(&id);
            d.info(&id)?;
            // A creation's data file kept for its first append must not take bytes now.
            drop(d.take_fresh_creation(&id));
            // Tombstone first: from here on the upload answers 410, whatever happens next.
            d.write_info(&id, &InfoFile::Gone { at: SystemTime::now() })?;
            for path in [d.data(&id), d.unverified(&id), d.assembling(&id), d.quarantined(&id)] {
                Dirs::remove_if_exists(&path)?;
            }
            let derived = d.derived_dir(&id);
            match fs::remove_dir_all(&derived) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &derived)(e)),
                _ => Ok(()),
            }
        })
        .await
    }
}

#[async_trait]
impl StoreDerivatives for FileStore {
    async fn put_derivative(
        &self,
        id: &UploadId,
        mut derivative: Derivative,
        bytes: bytes::Bytes,
    ) -> Result<(), StoreError> {
        derivative.size = bytes.len() as u64;
        let id = id.clone();
        self.blocking(move |d| {
            d.info(&id)?;
            let dir = d.derived_dir(&id);
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            // Written aside and renamed into place: a reader sees the old file or the new one.
            let path = d.derivative(&id, derivative.name);
            let tmp = path.with_extension("tmp");
            let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            io::Write::write_all(&mut f, &bytes).map_err(io_err("write", &tmp))?;
            d.sync_file(&f, &tmp)?;
            fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
            if d.sync {
                File::open(&dir).and_then(|f| f.sync_all()).map_err(io_err("sync", &dir))?;
            }
            // Listed only once its bytes are in place. An upload terminated since the check
            // above (tombstone first, then its files) takes them back out here.
            let _info = d.info_lock(&id);
            let mut info = match d.info(&id) {
                Err(gone @ (Error::Gone | Error::NotFound)) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(gone);
                }
                other => other?,
            };
            info.derivatives.retain(|listed| listed.name != derivative.name);
            info.derivatives.push(derivative);
            d.write_info(&id, &InfoFile::Live(info))
        })
        .await
    }

    async fn read_derivative(&self, id: &UploadId, name: DerivativeName) -> Result<ByteStream, StoreError> {
        let id = id.clone();
        let file = self
            .blocking(move |d| {
                d.info(&id)?;
                let path = d.derivative(&id, name);
                match File::open(&path) {
                    Ok(f) => Ok(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound),
                    Err(e) => Err(io_err("open", &path)(e)),
                }
            })
            .await?;
        Ok(crate::store::stream_file(file, u64::MAX))
    }
}

#[async_trait]
impl Concatenate for FileStore {
    async fn concatenate(&self, final_id: &UploadId, partials: &[UploadInfo]) -> Result<(), StoreError> {
        let final_id = final_id.clone();
        let partials: Vec<(UploadId, u64)> = partials.iter().map(|p| (p.id.clone(), p.offset)).collect();
        self.blocking(move |d| {
            let mut info = d.info(&final_id)?;
            let tmp = d.assembling(&final_id);
            let mut out = File::create(&tmp).map_err(io_err("create", &tmp))?;
            let mut total = 0u64;
            for (id, len) in &partials {
                let path = d.data(id);
                let src = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => Error::Conflict(format!("partial upload {id} is gone")),
                    _ => io_err("open", &path)(e),
                })?;
                // Only the partial's offset: bytes past it (an unverified append) are not its.
                total += io::copy(&mut io::Read::take(src, *len), &mut out).map_err(io_err("copy", &tmp))?;
            }
            d.sync_file(&out, &tmp)?;
            if info.length != Some(total) {
                info.length = Some(total);
                d.write_info(&final_id, &InfoFile::Live(info))?;
            }
            fs::rename(&tmp, d.data(&final_id)).map_err(io_err("rename", &tmp))?;
            d.sync_dir()
        })
        .await
    }
}

#[async_trait]
impl DeferLength for FileStore {
    async fn declare_length(&self, id: &UploadId, length: u64) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |d| {
            let _info = d.info_lock(&id);
            let mut info = d.info(&id)?;
            info.length = Some(length);
            d.write_info(&id, &InfoFile::Live(info))
        })
        .await
    }
}

#[async_trait]
impl ListExpired for FileStore {
    async fn list_expired(&self, cutoff: SystemTime) -> Result<Vec<UploadId>, StoreError> {
        self.blocking(move |d| d.unfinished(Some(cutoff))).await
    }

    async fn list_unfinished(&self) -> Result<Vec<UploadId>, StoreError> {
        self.blocking(|d| d.unfinished(None)).await
    }
}

impl Dirs {
    /// Unfinished uploads idle since before `cutoff` (removing tombstones older than it), or
    /// with no cutoff all of them (removing nothing).
    fn unfinished(&self, cutoff: Option<SystemTime>) -> Result<Vec<UploadId>, Error> {
        let mut listed = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".info")).and_then(|n| UploadId::parse(n).ok())
            else {
                continue;
            };
            let idle = |at: SystemTime| cutoff.is_none_or(|cutoff| at < cutoff);
            match self.read_info_file(&id) {
                Ok(InfoFile::Gone { at }) if cutoff.is_some() && idle(at) => {
                    Self::remove_if_exists(&self.info_path(&id))?;
                }
                Ok(InfoFile::Live(_)) => match self.info(&id) {
                    Ok(info) if !info.is_complete() && idle(info.updated_at) => listed.push(id),
                    _ => {}
                },
                _ => {}
            }
        }
        Ok(listed)
    }
}
