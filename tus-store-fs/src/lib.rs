//! Local filesystem storage for [`tus_core`].
//!
//! # Layout
//!
//! One directory holds, per upload `<id>` (IDs are validated by `tus-core` to
//! `[A-Za-z0-9_-]{1,128}`, so they are always plain file names):
//!
//! | file | content |
//! |---|---|
//! | `<id>` | the upload's bytes, in order; **its length is the upload's offset** |
//! | `<id>.info` | JSON: length, metadata, concatenation role, timestamps — or a tombstone |
//! | `<id>.unverified` | present while a checksummed PATCH streams into `<id>`: the offset before it |
//! | `<id>.assembling` | a final upload being concatenated, renamed over `<id>` when done |
//! | `quarantine/<id>` | the bytes of an upload a virus scan flagged, out of the servable area |
//!
//! # Durability
//!
//! By default every append is synced (`fdatasync`) before [`Store::append`] returns, so a
//! `204` means the bytes are on stable storage. Because the offset *is* the data file's
//! length, after a crash at any instant HEAD reports exactly the bytes in the file: never
//! more, and never fewer than were acknowledged. `FileStore::builder(dir).sync(false)` trades
//! that guarantee for speed (the bytes then reach the disk when the OS flushes them).
//!
//! [`Store::append`]: tus_core::store::Store::append
//!
//! While a synced append streams in, writeback of each buffer starts at once (Linux), so the
//! disk works while the rest of the PATCH arrives and the final `fdatasync` has little left.
//!
//! Info files are replaced atomically (write to a temp file, sync, rename, sync the
//! directory). Checksummed appends write straight into `<id>` (one copy of the bytes, not
//! two) after recording the offset before them in `<id>.unverified`: while that marker
//! exists the offset is capped at it, so unverified bytes never count, even after a crash;
//! a rejected append is cut off again, and the next append cuts off what a crash left behind.
//! Finals are assembled into `<id>.assembling` (with `copy_file_range` through
//! `std::io::copy`) and renamed into place.
//!
//! Terminated and expired uploads leave a small tombstone `<id>.info` so they answer `410
//! Gone`; tombstones are removed by the expiry pass once they are older than the expiry cutoff.
//!
//! ```no_run
//! use tus_core::TusService;
//! use tus_store_fs::FileStore;
//!
//! # fn main() -> std::io::Result<()> {
//! let store = FileStore::builder("./data").sync(true).build()?;
//! let service = TusService::builder(store).build();
//! # let _ = service; Ok(())
//! # }
//! ```

mod capabilities;
mod error;
mod info;
mod layout;
mod store;
mod unverified;
mod writer;

pub use store::{FileStore, FileStoreBuilder};
