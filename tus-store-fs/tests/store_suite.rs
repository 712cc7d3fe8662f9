//! The shared tus-core store suite against the filesystem store, synced and unsynced.

use tus_core::UploadId;
use tus_core::store::{AppendOptions, NewUpload, Store};
use tus_core::testing::chunks;
use tus_store_fs::FileStore;

/// Creates an upload of `length` bytes and stores `first` in it.
async fn started_upload(store: &FileStore, length: u64, first: &[u8]) -> UploadId {
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(length))).await.expect("create");
    store.append(&id, 0, chunks(&[first], None), AppendOptions::default()).await.expect("append");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    tus_core::store_suite!(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_file_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).sync(false).build().unwrap();
    tus_core::store_suite!(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_follow_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let id = started_upload(&store, 5, b"hel").await;
    assert_eq!(std::fs::read(dir.path().join(id.as_str())).unwrap(), b"hel");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("{id}.info"))).unwrap()).unwrap();
    assert_eq!(info["kind"], "live");
    assert_eq!(info["length"], 5);
    // A rejected checksummed (all-or-nothing) append is cut off and leaves no marker behind.
    let stream = chunks(&[b"lo"], Some(tus_core::store::BodyError::Rejected));
    store.append(&id, 3, stream, AppendOptions::default().with_all_or_nothing(true)).await.unwrap();
    assert!(!dir.path().join(format!("{id}.unverified")).exists());
    assert_eq!(std::fs::read(dir.path().join(id.as_str())).unwrap(), b"hel");
    // The offset is the data file's length.
    assert_eq!(store.info(&id).await.unwrap().offset, 3);
    // An info file created but never written (a create killed half-way) is no upload.
    let empty = UploadId::random();
    std::fs::write(dir.path().join(format!("{empty}.info")), b"").unwrap();
    assert!(matches!(store.info(&empty).await, Err(tus_core::store::StoreError::NotFound)));
}

/// A crash in the middle of a checksummed append leaves its marker and some unverified bytes:
/// they never count, and the next append cuts them off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_bytes_left_by_a_crash_never_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let id = started_upload(&store, 6, b"abc").await;
    // What a process killed mid-append leaves: the marker, then bytes past it.
    std::fs::write(dir.path().join(format!("{id}.unverified")), b"3\n").unwrap();
    let mut data = std::fs::OpenOptions::new().append(true).open(dir.path().join(id.as_str())).unwrap();
    std::io::Write::write_all(&mut data, b"XY").unwrap();
    assert_eq!(store.info(&id).await.unwrap().offset, 3);
    assert_eq!(tus_core::testing::read_all(&store, &id, 0..3).await, b"abc");
    // An append at the capped offset takes over from there.
    let stream = chunks(&[b"def"], None);
    let offset = store.append(&id, 3, stream, AppendOptions::default().with_all_or_nothing(true)).await.unwrap();
    assert_eq!(offset, 6);
    assert_eq!(std::fs::read(dir.path().join(id.as_str())).unwrap(), b"abcdef");
    assert!(!dir.path().join(format!("{id}.unverified")).exists());
    // A marker cut short before its offset was written caps nothing (no byte followed it),
    // not even when what is there reads as a smaller number.
    let other = started_upload(&store, 4, b"ab").await;
    for torn in [&b""[..], b"1"] {
        std::fs::write(dir.path().join(format!("{other}.unverified")), torn).unwrap();
        assert_eq!(store.info(&other).await.unwrap().offset, 2);
    }
    let stream = chunks(&[b"cd"], None);
    assert_eq!(store.append(&other, 2, stream, AppendOptions::default()).await.unwrap(), 4);
    assert!(!dir.path().join(format!("{other}.unverified")).exists());
}
