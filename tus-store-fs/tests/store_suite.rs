//! The shared tus-core store suite against the filesystem store, synced and unsynced.

use tus_store_fs::FileStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    tus_core::testing::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_file_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).sync(false).build().unwrap();
    tus_core::testing::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_follow_the_documented_layout() {
    use tus_core::store::{AppendOptions, NewUpload, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let id = tus_core::UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(5))).await.unwrap();
    let stream = tus_core::testing::chunks(&[b"hel"], None);
    store.append(&id, 0, stream, AppendOptions::default()).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join(id.as_str())).unwrap(), b"hel");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("{id}.info"))).unwrap()).unwrap();
    assert_eq!(info["kind"], "live");
    assert_eq!(info["length"], 5);
    // Checksummed (all-or-nothing) appends leave no stage file behind.
    let stream = tus_core::testing::chunks(&[b"lo"], Some(tus_core::store::BodyError::Rejected));
    store.append(&id, 3, stream, AppendOptions::default().with_all_or_nothing(true)).await.unwrap();
    assert!(!dir.path().join(format!("{id}.stage")).exists());
    // The offset is the data file's length.
    assert_eq!(store.info(&id).await.unwrap().offset, 3);
}
