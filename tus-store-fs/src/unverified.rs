//! The `<id>.unverified` marker: while a checksummed append streams into the data file it
//! records the offset before it, and the offset is capped at it, even after a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};

use tus_core::UploadId;

use crate::error::{Error, io_err};
use crate::layout::Dirs;

impl Dirs {
    /// The offset recorded in `<id>.unverified`, if a checksummed append is (or was, before
    /// a crash) streaming into the data file. An unreadable marker was never completed, and
    /// the marker is completed before any byte is written, so it caps nothing.
    pub(crate) fn unverified_from(&self, id: &UploadId) -> Result<Option<u64>, Error> {
        Ok(self.read_unverified(id)?.flatten())
    }

    /// `<id>.unverified`: `None` if absent, `Some(None)` if present but never completed (the
    /// newline comes last, so a torn write cannot pass for a smaller offset).
    pub(crate) fn read_unverified(&self, id: &UploadId) -> Result<Option<Option<u64>>, Error> {
        let path = self.unverified(id);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.strip_suffix('\n').and_then(|t| t.parse().ok()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Records that bytes past `offset` are unverified; durable before any of them is written.
    pub(crate) fn mark_unverified(&self, id: &UploadId, offset: u64) -> Result<(), Error> {
        let path = self.unverified(id);
        let mut f = File::create(&path).map_err(io_err("create", &path))?;
        f.write_all(format!("{offset}\n").as_bytes()).map_err(io_err("write", &path))?;
        self.sync_file(&f, &path)?;
        self.sync_dir()
    }

    /// Drops the marker: the bytes behind it are now verified (or were cut off).
    pub(crate) fn clear_unverified(&self, id: &UploadId) -> Result<(), Error> {
        Self::remove_if_exists(&self.unverified(id))?;
        self.sync_dir()
    }

    /// Cuts off what an append interrupted by a crash left past its marker. Called with the
    /// upload locked, so no append is running and any marker is stale.
    pub(crate) fn settle_unverified(&self, id: &UploadId) -> Result<(), Error> {
        let from = match self.read_unverified(id)? {
            None => return Ok(()),
            Some(None) => return self.clear_unverified(id),
            Some(Some(from)) => from,
        };
        let path = self.data(id);
        let f = OpenOptions::new().write(true).open(&path).map_err(io_err("open", &path))?;
        if f.metadata().map_err(io_err("stat", &path))?.len() > from {
            f.set_len(from).map_err(io_err("truncate", &path))?;
            self.sync_file(&f, &path)?;
        }
        self.clear_unverified(id)
    }
}
