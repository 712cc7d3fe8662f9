//! What `<id>.info` holds, and reading and writing it: the live info of an upload, with its
//! offset taken from the data file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tus_core::UploadId;
use tus_core::store::{UploadInfo, UploadState};

use crate::error::{Error, io_err};
use crate::layout::Dirs;

/// What `<id>.info` holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum InfoFile {
    /// A live upload; its `offset` field is ignored (the data file's length is the offset).
    Live(UploadInfo),
    /// Terminated or expired.
    Gone { at: SystemTime },
}

impl Dirs {
    pub(crate) fn read_info_file(&self, id: &UploadId) -> Result<InfoFile, Error> {
        let path = self.info_path(id);
        let bytes = match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound),
            other => other.map_err(io_err("read", &path))?,
        };
        if bytes.is_empty() {
            // Created but never written: a create cut short before it answered.
            return Err(Error::NotFound);
        }
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
    }

    /// The live info, with offset and activity time taken from the data file.
    pub(crate) fn info(&self, id: &UploadId) -> Result<UploadInfo, Error> {
        let mut info = match self.read_info_file(id)? {
            InfoFile::Live(info) => info,
            InfoFile::Gone { .. } => return Err(Error::Gone),
        };
        let path = if info.state == Some(UploadState::Quarantined) { self.quarantined(id) } else { self.data(id) };
        // The marker is read before and after the length: an append that is rejected in
        // between cuts its bytes off first and drops the marker second, so one of the two
        // readings still caps the length taken before the cut.
        let before = self.unverified_from(id)?;
        match fs::metadata(&path) {
            Ok(meta) => {
                info.offset = meta.len();
                if let Ok(modified) = meta.modified() {
                    info.updated_at = info.updated_at.max(modified);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => info.offset = 0,
            Err(e) => return Err(io_err("stat", &path)(e)),
        }
        for cap in [before, self.unverified_from(id)?].into_iter().flatten() {
            info.offset = info.offset.min(cap);
        }
        Ok(info)
    }

    /// Replaces `<id>.info` atomically.
    pub(crate) fn write_info(&self, id: &UploadId, info: &InfoFile) -> Result<(), Error> {
        let path = self.info_path(id);
        let tmp = self.dir.join(format!("{id}.info.tmp"));
        let json = serde_json::to_vec(info).map_err(|source| Error::Json { path: path.clone(), source })?;
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&json).map_err(io_err("write", &tmp))?;
        if self.sync {
            f.sync_all().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        self.sync_dir()
    }

    /// IDs of every upload with an info file (live or tombstone).
    pub(crate) fn info_ids(&self) -> Result<Vec<UploadId>, Error> {
        let entries = fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".info").and_then(|n| UploadId::parse(n).ok()))
            .collect())
    }
}
