//! Store failures in process: a store that fails mid-append (S3 answering 5xx after some parts,
//! a disk filling up) or fails to read its info. The client must get a 5xx it can retry, the
//! upload must stay resumable, and nothing acknowledged may be lost. (The real full-disk case
//! on the filesystem store is the `disk-full` mode of the `reliability` harness.)
#![allow(clippy::unwrap_used)]

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};
use tus_core::store::{AppendOptions, ByteStream, ChunkStream, NewUpload};
use tus_core::{Capabilities, MemoryStore, Store, StoreError, TusService, UploadId, UploadInfo};

mod common;
use common::create;

/// No limit on the bytes an append may store before failing.
const NO_FAULT: u64 = u64::MAX;

/// A [`MemoryStore`] that can be told to fail.
#[derive(Debug, Clone, Default)]
struct FailingStore {
    inner: MemoryStore,
    /// Each append stores at most this many bytes, then fails (like S3 answering 503 after a
    /// few parts, or a disk that fills up). `NO_FAULT` (or 0 = unset) means no fault.
    fail_after: Arc<AtomicU64>,
    /// `info` fails (S3 unreachable).
    fail_info: Arc<AtomicBool>,
}

fn outage() -> StoreError {
    StoreError::Generic { store: "failing", source: "503 SlowDown: please reduce your request rate".into() }
}

impl FailingStore {
    fn heal(&self) {
        self.fail_after.store(NO_FAULT, Ordering::SeqCst);
        self.fail_info.store(false, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
        self.inner.create(upload).await
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
        if self.fail_info.load(Ordering::SeqCst) {
            return Err(outage());
        }
        self.inner.info(id).await
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        let budget = match self.fail_after.load(Ordering::SeqCst) {
            0 | NO_FAULT => return self.inner.append(id, offset, data, options).await,
            n => n,
        };
        if options.all_or_nothing {
            // A verified append that fails keeps nothing.
            return Err(outage());
        }
        // Store the first `budget` bytes, then fail.
        let limited = data.scan(budget, |left, chunk| {
            if *left == 0 {
                return std::future::ready(None);
            }
            let out = chunk.map(|c| {
                let n = (c.len() as u64).min(*left);
                *left -= n;
                c.slice(..n as usize)
            });
            std::future::ready(Some(out))
        });
        let stored = self.inner.append(id, offset, Box::pin(limited), options).await?;
        assert!(stored <= offset + budget);
        Err(outage())
    }

    async fn read(&self, id: &UploadId, range: Range<u64>) -> Result<ByteStream, StoreError> {
        self.inner.read(id, range).await
    }

    fn capabilities(&self) -> Capabilities<'_> {
        // Termination only: the fault cases need nothing else (the inner store's capabilities
        // would act on it behind this wrapper's back).
        Capabilities::none().with_terminate(self.inner.capabilities().terminate.expect("memory store terminates"))
    }
}

async fn head(svc: &TusService, url: &str) -> (StatusCode, Option<u64>) {
    let res = svc.handle(common::head(url)).await;
    let offset = res.headers().get("upload-offset").map(|v| v.to_str().unwrap().parse().unwrap());
    (res.status(), offset)
}

async fn patch(svc: &TusService, url: &str, offset: u64, data: &[u8], checksum: Option<&str>) -> StatusCode {
    let mut req = common::patch(url, offset, Full::new(Bytes::copy_from_slice(data)));
    if let Some(c) = checksum {
        req.headers_mut().insert("upload-checksum", c.parse().unwrap());
    }
    svc.handle(req).await.status()
}

async fn download(svc: &TusService, url: &str) -> Vec<u8> {
    let res = svc.handle(Request::get(url).body(Empty::<Bytes>::new()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap().to_bytes().to_vec()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A healthy store holding an upload of `len` bytes of [`data`] whose first `sent` bytes were
/// stored: where every fault case starts.
async fn partly_uploaded(len: usize, sent: usize) -> (FailingStore, TusService, Vec<u8>, String) {
    let store = FailingStore::default();
    let svc = TusService::builder(store.clone()).build();
    let bytes = data(len);
    let url = create(&svc, len as u64).await;
    assert_eq!(patch(&svc, &url, 0, &bytes[..sent], None).await, StatusCode::NO_CONTENT);
    (store, svc, bytes, url)
}

#[tokio::test]
async fn append_failing_mid_write_answers_5xx_keeps_what_was_stored_and_resumes() {
    let (store, svc, bytes, url) = partly_uploaded(1000, 300).await;
    let acked = 300;

    // The store fails after 200 more bytes: a retryable 5xx, and HEAD keeps what was stored.
    store.fail_after.store(200, Ordering::SeqCst);
    let status = patch(&svc, &url, acked, &bytes[300..], None).await;
    assert!(status.is_server_error(), "a failing store answered {status}");
    let (status, offset) = head(&svc, &url).await;
    assert_eq!(status, StatusCode::OK);
    let offset = offset.unwrap();
    assert!((acked..=acked + 200).contains(&offset), "offset {offset} after a failed append");

    // Still failing: the retry fails the same way, nothing is lost.
    let status = patch(&svc, &url, offset, &bytes[offset as usize..], None).await;
    assert!(status.is_server_error());
    let offset = head(&svc, &url).await.1.unwrap();
    assert!(offset >= acked);

    // A checksummed PATCH against a failing store keeps nothing of itself.
    let before = offset;
    let status = patch(&svc, &url, before, &bytes[before as usize..], Some("sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=")).await;
    assert!(status.is_server_error() || status.is_client_error(), "{status}");
    assert_eq!(head(&svc, &url).await.1, Some(before));

    // The store recovers: the client resumes from HEAD and the bytes are exactly right.
    store.heal();
    let offset = head(&svc, &url).await.1.unwrap();
    assert_eq!(patch(&svc, &url, offset, &bytes[offset as usize..], None).await, StatusCode::NO_CONTENT);
    assert_eq!(download(&svc, &url).await, bytes);
}

#[tokio::test]
async fn info_failing_answers_5xx_and_changes_nothing() {
    let (store, svc, bytes, url) = partly_uploaded(100, 40).await;

    store.fail_info.store(true, Ordering::SeqCst);
    let (status, _) = head(&svc, &url).await;
    assert!(status.is_server_error(), "HEAD with an unreachable store answered {status}");
    let status = patch(&svc, &url, 40, &bytes[40..], None).await;
    assert!(status.is_server_error(), "PATCH with an unreachable store answered {status}");
    store.heal();
    assert_eq!(head(&svc, &url).await, (StatusCode::OK, Some(40)));
    assert_eq!(patch(&svc, &url, 40, &bytes[40..], None).await, StatusCode::NO_CONTENT);
    assert_eq!(download(&svc, &url).await, bytes);
}
