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
        let bytes = match read_small(&path) {
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

/// Info files are a few hundred bytes: one `read` into a buffer larger than that usually gets
/// the whole file, and coming back short means it hit the end. That spares the `stat` and the
/// second `read` (which only confirms the end) of `fs::read`: three syscalls per `HEAD`
/// instead of five. A file that fills the buffer is read on to its end.
fn read_small(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    const FIRST_READ: usize = 4096;
    let mut f = File::open(path)?;
    let mut buf = vec![0; FIRST_READ];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other?,
        }
    };
    buf.truncate(n);
    if n == FIRST_READ {
        f.read_to_end(&mut buf)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reads_return_whole_files_of_any_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [0, 1, 300, 4095, 4096, 4097, 8192, 100_000] {
            let path = dir.path().join(format!("f{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            fs::write(&path, &bytes).expect("write");
            assert_eq!(read_small(&path).expect("read"), bytes, "length {len}");
        }
        let missing = read_small(&dir.path().join("missing")).expect_err("missing file");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
