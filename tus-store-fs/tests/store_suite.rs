//! The shared tus-core store suite against the filesystem store, synced and unsynced.

use tus_store_fs::FileStore;

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
    // A rejected checksummed (all-or-nothing) append is cut off and leaves no marker behind.
    let stream = tus_core::testing::chunks(&[b"lo"], Some(tus_core::store::BodyError::Rejected));
    store.append(&id, 3, stream, AppendOptions::default().with_all_or_nothing(true)).await.unwrap();
    assert!(!dir.path().join(format!("{id}.unverified")).exists());
    assert_eq!(std::fs::read(dir.path().join(id.as_str())).unwrap(), b"hel");
    // The offset is the data file's length.
    assert_eq!(store.info(&id).await.unwrap().offset, 3);
    // An info file created but never written (a create killed half-way) is no upload.
    let empty = tus_core::UploadId::random();
    std::fs::write(dir.path().join(format!("{empty}.info")), b"").unwrap();
    assert!(matches!(store.info(&empty).await, Err(tus_core::store::StoreError::NotFound)));
}

/// A crash in the middle of a checksummed append leaves its marker and some unverified bytes:
/// they never count, and the next append cuts them off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_bytes_left_by_a_crash_never_count() {
    use tus_core::store::{AppendOptions, NewUpload, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let id = tus_core::UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(6))).await.unwrap();
    store.append(&id, 0, tus_core::testing::chunks(&[b"abc"], None), AppendOptions::default()).await.unwrap();
    // What a process killed mid-append leaves: the marker, then bytes past it.
    std::fs::write(dir.path().join(format!("{id}.unverified")), b"3\n").unwrap();
    let mut data = std::fs::OpenOptions::new().append(true).open(dir.path().join(id.as_str())).unwrap();
    std::io::Write::write_all(&mut data, b"XY").unwrap();
    assert_eq!(store.info(&id).await.unwrap().offset, 3);
    let mut body = Vec::new();
    let mut stream = store.read(&id, 0..3).await.unwrap();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        body.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(body, b"abc");
    // An append at the capped offset takes over from there.
    let stream = tus_core::testing::chunks(&[b"def"], None);
    let offset = store.append(&id, 3, stream, AppendOptions::default().with_all_or_nothing(true)).await.unwrap();
    assert_eq!(offset, 6);
    assert_eq!(std::fs::read(dir.path().join(id.as_str())).unwrap(), b"abcdef");
    assert!(!dir.path().join(format!("{id}.unverified")).exists());
    // A marker cut short before its offset was written caps nothing (no byte followed it),
    // not even when what is there reads as a smaller number.
    let other = tus_core::UploadId::random();
    store.create(NewUpload::new(other.clone(), Some(4))).await.unwrap();
    store.append(&other, 0, tus_core::testing::chunks(&[b"ab"], None), AppendOptions::default()).await.unwrap();
    for torn in [&b""[..], b"1"] {
        std::fs::write(dir.path().join(format!("{other}.unverified")), torn).unwrap();
        assert_eq!(store.info(&other).await.unwrap().offset, 2);
    }
    let stream = tus_core::testing::chunks(&[b"cd"], None);
    assert_eq!(store.append(&other, 2, stream, AppendOptions::default()).await.unwrap(), 4);
    assert!(!dir.path().join(format!("{other}.unverified")).exists());
}

/// A checksummed append whose request is dropped mid-body (an HTTP/2 reset, a timeout layer)
/// counts none of its bytes, and the retry right after it is neither cut off nor unmarked by
/// the dropped append's leftover disk work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_checksummed_append_leaves_nothing_in_the_way() {
    use futures_util::StreamExt as _;
    use tus_core::store::{AppendOptions, NewUpload, Store};
    const LEN: usize = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).sync(false).build().unwrap();
    let id = tus_core::UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(LEN as u64))).await.unwrap();
    let retry_bytes = vec![b'y'; LEN];
    for round in 0..10 {
        // Many buffers still to write when the request goes, then a body that never ends.
        let first = futures_util::stream::iter([Ok(bytes::Bytes::from(vec![b'x'; LEN / 2]))]);
        let body = Box::pin(first.chain(futures_util::stream::pending()));
        let dropped = {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(
                async move { store.append(&id, 0, body, AppendOptions::default().with_all_or_nothing(true)).await },
            )
        };
        tokio::time::sleep(std::time::Duration::from_millis(round % 3)).await;
        dropped.abort();
        let retry = tus_core::testing::chunks(&[&retry_bytes[..]], None);
        let offset = store.append(&id, 0, retry, AppendOptions::default().with_all_or_nothing(true)).await.unwrap();
        assert_eq!(offset, LEN as u64);
        assert_eq!(store.info(&id).await.unwrap().offset, LEN as u64);
        assert!(std::fs::read(dir.path().join(id.as_str())).unwrap() == retry_bytes, "round {round}: bytes mixed");
        assert!(!dir.path().join(format!("{id}.unverified")).exists());
        // Start over for the next round.
        std::fs::write(dir.path().join(id.as_str()), b"").unwrap();
    }
}

/// The offset read right after an append's request was dropped is final: the bytes that
/// append still had on their way to disk do not land after it (a client resuming from that
/// HEAD would otherwise be told its next PATCH is at the wrong offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offset_after_a_dropped_append_does_not_grow_later() {
    use futures_util::StreamExt as _;
    use tus_core::store::{AppendOptions, NewUpload, Store};
    const LEN: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).sync(false).build().unwrap();
    for round in 0..10u64 {
        let id = tus_core::UploadId::random();
        store.create(NewUpload::new(id.clone(), Some(LEN as u64))).await.unwrap();
        let first = futures_util::stream::iter([Ok(bytes::Bytes::from(vec![b'x'; LEN / 2]))]);
        let body = Box::pin(first.chain(futures_util::stream::pending()));
        let dropped = {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.append(&id, 0, body, AppendOptions::default()).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(1 + round % 3)).await;
        dropped.abort();
        let _ = dropped.await;
        let seen = store.info(&id).await.unwrap().offset;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(store.info(&id).await.unwrap().offset, seen, "round {round}: the offset grew after it was read");
    }
}
