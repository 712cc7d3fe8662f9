//! The backend-agnostic store test suite (feature `testing`).
//!
//! Every store crate runs [`run_all`] (or the individual functions) against its backend, the
//! way `object_store` runs one integration suite against each backend. Not a stable API. The
//! functions create uploads with random IDs and panic with a message on the first violation of
//! the [`Store`](crate::store::Store) contract.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::headers::Metadata;
use crate::id::UploadId;
use crate::store::{AppendOptions, BodyError, ChunkStream, ConcatRole, NewUpload, Store, StoreError, UploadState};

/// Runs [`run_all`] against a store of a concrete type, after checking that its
/// [`Store::capabilities`] expose exactly the capability traits the type implements: a store
/// that implements `Terminate` but forgets `with_terminate` fails here instead of silently
/// offering no termination. Use it in an async test: `tus_core::store_suite!(store);`.
#[macro_export]
macro_rules! store_suite {
    ($store:expr) => {{
        let store = std::sync::Arc::new($store);
        #[allow(unused_imports)]
        use $crate::testing::probe::*;
        let probe = &Probe(&*store);
        let implemented = [
            ("terminate", probe.terminate()),
            ("concatenate", probe.concatenate()),
            ("defer_length", probe.defer_length()),
            ("list_expired", probe.list_expired()),
            ("record_state", probe.record_state()),
            ("presign_get", probe.presign_get()),
            ("derivatives", probe.derivatives()),
        ];
        $crate::testing::check_capabilities(&$crate::store::Store::capabilities(&*store), &implemented);
        $crate::testing::run_all(&*store).await;
        $crate::testing::dropped_request_then_retry(store).await;
    }};
}

/// Which capability traits a concrete type implements, found at compile time by method
/// resolution (the "autoref" technique: the impl on `Probe` wins when the bound holds, the one
/// on `&Probe` otherwise). Used by [`store_suite!`](crate::store_suite).
#[doc(hidden)]
pub mod probe {
    use crate::store::{Concatenate, DeferLength, ListExpired, PresignGet, RecordState, StoreDerivatives, Terminate};

    /// Wraps the store under test.
    pub struct Probe<'a, T>(pub &'a T);

    macro_rules! probe {
        ($yes:ident, $no:ident, $method:ident, $bound:ident) => {
            /// The type implements the trait.
            pub trait $yes {
                /// `true`.
                fn $method(&self) -> bool {
                    true
                }
            }
            impl<T: $bound> $yes for Probe<'_, T> {}
            /// The type does not implement the trait.
            pub trait $no {
                /// `false`.
                fn $method(&self) -> bool {
                    false
                }
            }
            impl<T> $no for &Probe<'_, T> {}
        };
    }
    probe!(Terminates, DoesNotTerminate, terminate, Terminate);
    probe!(Concatenates, DoesNotConcatenate, concatenate, Concatenate);
    probe!(DefersLength, DoesNotDeferLength, defer_length, DeferLength);
    probe!(ListsExpired, DoesNotListExpired, list_expired, ListExpired);
    probe!(RecordsState, DoesNotRecordState, record_state, RecordState);
    probe!(Presigns, DoesNotPresign, presign_get, PresignGet);
    probe!(StoresDerivatives, DoesNotStoreDerivatives, derivatives, StoreDerivatives);
}

/// Panics unless `exposed` names exactly the capabilities in `implemented`.
pub fn check_capabilities(exposed: &crate::store::Capabilities<'_>, implemented: &[(&str, bool)]) {
    let exposed = exposed.names();
    for &(name, implements) in implemented {
        let offers = exposed.contains(&name);
        assert!(!implements || offers, "the store implements {name} but its capabilities() do not expose it");
        assert!(implements || !offers, "the store exposes {name} without implementing it");
    }
}

/// PATCHes whose requests are dropped half-way (the client gone, an HTTP/2 reset) and then
/// retried, through the handler, plain and checksummed: the dropped request's append runs to
/// its end on its own task while the upload stays locked, the offset `HEAD` reports afterwards
/// never grows later (a checksummed one keeps nothing), and a retry from it completes the
/// upload with exactly the bytes sent.
///
/// The store is wrapped so that its appends cannot be cancelled either (as blocking disk
/// work cannot): a handler that dropped an append half-way would see those bytes land after
/// its `HEAD`, and this test fail.
pub async fn dropped_request_then_retry(store: std::sync::Arc<dyn Store>) {
    let service = crate::TusService::builder(Uncancellable(store)).build();
    for checksummed in [false, true] {
        for round in 0..3u64 {
            dropped_patch_round(&service, checksummed, round).await;
        }
    }
}

async fn dropped_patch_round(service: &crate::TusService, checksummed: bool, round: u64) {
    use http::Request;
    use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
    const LEN: usize = 4 << 20;
    let what = format!("checksummed {checksummed}, round {round}");
    let tus = |req: http::request::Builder| req.header("tus-resumable", "1.0.0");
    let data: Vec<u8> = (0..LEN as u64).map(|i| (i.wrapping_mul(31).wrapping_add(round) % 251) as u8).collect();
    let created = service
        .handle(
            tus(Request::post("/files/"))
                .header("upload-length", LEN.to_string())
                .body(Empty::<Bytes>::new())
                .expect("request"),
        )
        .await;
    assert_eq!(created.status(), 201, "{what}: create");
    let location = created.headers()["location"].to_str().expect("location").to_owned();
    let path = location.rsplit_once("/files/").map(|(_, id)| format!("/files/{id}")).expect("path");
    let patch = |offset: u64| {
        tus(Request::patch(&path))
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
    };

    // The first PATCH announces all of it, sends half, and its request future is dropped
    // while those bytes are still on their way to the store.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(4);
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|f| (f, rx)) }));
    let mut first = patch(0);
    if checksummed {
        use base64::Engine as _;
        let mut hasher = crate::checksum::ChecksumAlgorithm::Sha1.hasher();
        hasher.update(&data);
        let digest = base64::engine::general_purpose::STANDARD.encode(hasher.finalize());
        first = first.header("upload-checksum", format!("sha1 {digest}"));
    }
    let first = first.body(body).expect("request");
    let running = tokio::spawn({
        let service = service.clone();
        async move { service.handle(first).await }
    });
    let feeder = tokio::spawn({
        let half = Bytes::copy_from_slice(&data[..LEN / 2]);
        async move {
            for start in (0..half.len()).step_by(256 * 1024) {
                let end = (start + 256 * 1024).min(half.len());
                if tx.send(Ok(http_body::Frame::data(half.slice(start..end)))).await.is_err() {
                    return;
                }
            }
            // Then the connection goes: the body ends in an error.
            let _ = tx.send(Err(std::io::Error::other("connection reset"))).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1 + round * 2)).await;
    running.abort();

    let head = || async {
        let res = service.handle(tus(Request::head(&path)).body(Empty::<Bytes>::new()).expect("request")).await;
        assert_eq!(res.status(), 200, "{what}: HEAD");
        res.headers()["upload-offset"].to_str().expect("offset").parse::<u64>().expect("offset")
    };
    let offset = head().await;
    let _ = feeder.await;
    assert!(offset <= (LEN / 2) as u64, "{what}: HEAD says {offset}, more than was sent");
    if checksummed {
        assert_eq!(offset, 0, "{what}: a checksummed body cut short kept bytes");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(head().await, offset, "{what}: the offset grew after HEAD reported it");

    let rest = Bytes::copy_from_slice(&data[usize::try_from(offset).expect("offset")..]);
    let retry = service.handle(patch(offset).body(Full::new(rest)).expect("request")).await;
    assert_eq!(retry.status(), 204, "{what}: retry");
    let got = service
        .handle(Request::get(&path).body(Empty::<Bytes>::new()).expect("request"))
        .await
        .into_body()
        .collect()
        .await
        .expect("download")
        .to_bytes();
    assert!(got == data, "{what}: the retried upload differs ({} of {} bytes)", got.len(), data.len());
}

/// A store whose appends go on after their future is dropped, landing what they received a
/// little later, the way a blocking write already handed to a thread does.
#[derive(Debug)]
struct Uncancellable(std::sync::Arc<dyn Store>);

#[async_trait::async_trait]
impl Store for Uncancellable {
    async fn create(&self, upload: crate::store::NewUpload) -> Result<crate::UploadInfo, StoreError> {
        self.0.create(upload).await
    }
    async fn info(&self, id: &UploadId) -> Result<crate::UploadInfo, StoreError> {
        self.0.info(id).await
    }
    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        mut data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (store, id) = (self.0.clone(), id.clone());
        let work = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let chunks = futures_util::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|c| (c, rx)) });
            store.append(&id, offset, Box::pin(chunks), options).await
        });
        while let Some(item) = data.next().await {
            let end = item.is_err();
            if tx.send(item).is_err() || end {
                break;
            }
        }
        drop(tx);
        work.await.map_err(|e| StoreError::Generic { store: "uncancellable", source: Box::new(e) })?
    }
    async fn read(&self, id: &UploadId, range: std::ops::Range<u64>) -> Result<crate::store::ByteStream, StoreError> {
        self.0.read(id, range).await
    }
    fn capabilities(&self) -> crate::store::Capabilities<'_> {
        self.0.capabilities()
    }
}

/// Runs every test the store's capabilities allow.
pub async fn run_all(store: &dyn Store) {
    create_and_info(store).await;
    creation_with_its_first_bytes(store).await;
    append_in_chunks_and_read_back(store).await;
    empty_append_changes_nothing(store).await;
    interrupted_append_keeps_received_bytes(store).await;
    rejected_append_keeps_nothing(store).await;
    all_or_nothing_append_commits_on_success(store).await;
    large_append_streams(store).await;
    if store.capabilities().defer_length.is_some() {
        deferred_length(store).await;
    }
    if store.capabilities().terminate.is_some() {
        terminate(store).await;
    }
    if store.capabilities().concatenate.is_some() {
        concatenate(store).await;
    }
    if store.capabilities().list_expired.is_some() {
        list_expired(store).await;
    }
    if store.capabilities().record_state.is_some() {
        record_state(store).await;
    }
    if store.capabilities().derivatives.is_some() {
        derivatives(store).await;
    }
}

/// A stream of the given chunks, optionally ending in an error.
pub fn chunks(parts: &[&[u8]], end: Option<BodyError>) -> ChunkStream<'static> {
    let mut items: Vec<Result<Bytes, BodyError>> = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    items.extend(end.map(Err));
    Box::pin(futures_util::stream::iter(items))
}

/// Reads `range` of an upload into memory.
pub async fn read_all(store: &dyn Store, id: &UploadId, range: std::ops::Range<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = store.read(id, range).await.expect("read");
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("read chunk"));
    }
    out
}

async fn new_upload(store: &dyn Store, length: Option<u64>) -> UploadId {
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), length)).await.expect("create");
    id
}

/// Created uploads start empty and keep their length and metadata; IDs are unique.
pub async fn create_and_info(store: &dyn Store) {
    let id = UploadId::random();
    let metadata = Metadata::parse("filename c8WCb8WEY2UudHh0,empty").expect("metadata");
    let declared = vec![crate::digest::parse_metadata_digest(b"md5 XrY7u+Ae7tCTyyK7j1rNww==").expect("digest")];
    let upload = NewUpload::new(id.clone(), Some(11)).with_metadata(metadata.clone());
    let created = store.create(upload.with_declared_digests(declared.clone())).await.expect("create");
    assert_eq!(created.offset, 0);
    let info = store.info(&id).await.expect("info");
    assert_eq!((info.offset, info.length), (0, Some(11)));
    assert_eq!(info.metadata, metadata);
    assert_eq!(info.declared_digests, declared, "declared digests not kept");
    assert_eq!(info.concat, None);
    assert!(matches!(store.create(NewUpload::new(id.clone(), Some(1))).await, Err(StoreError::AlreadyExists)));
    assert!(matches!(store.info(&UploadId::random()).await, Err(StoreError::NotFound)));

    let zero = new_upload(store, Some(0)).await;
    assert!(store.info(&zero).await.expect("info").is_complete());
}

/// Appends add up and the bytes read back in order, whole or by range.
pub async fn append_in_chunks_and_read_back(store: &dyn Store) {
    let id = new_upload(store, Some(11)).await;
    let opts = AppendOptions::default();
    assert_eq!(store.append(&id, 0, chunks(&[b"he", b"llo"], None), opts).await.expect("append"), 5);
    assert_eq!(store.append(&id, 5, chunks(&[b" world"], None), opts).await.expect("append"), 11);
    let info = store.info(&id).await.expect("info");
    assert!(info.is_complete());
    assert_eq!(read_all(store, &id, 0..11).await, b"hello world");
    assert_eq!(read_all(store, &id, 3..8).await, b"lo wo");
}

/// An append with no bytes changes nothing.
pub async fn empty_append_changes_nothing(store: &dyn Store) {
    let id = new_upload(store, Some(3)).await;
    assert_eq!(store.append(&id, 0, chunks(&[], None), AppendOptions::default()).await.expect("append"), 0);
    assert_eq!(store.info(&id).await.expect("info").offset, 0);
}

/// A body cut off mid-way keeps every byte that arrived.
pub async fn interrupted_append_keeps_received_bytes(store: &dyn Store) {
    let id = new_upload(store, Some(10)).await;
    let got = store
        .append(&id, 0, chunks(&[b"abc", b"de"], Some(BodyError::Interrupted)), AppendOptions::default())
        .await
        .expect("append");
    assert_eq!(got, 5);
    assert_eq!(store.info(&id).await.expect("info").offset, 5);
    assert_eq!(read_all(store, &id, 0..5).await, b"abcde");
}

/// A rejected body keeps nothing, whether or not it was announced as all-or-nothing.
pub async fn rejected_append_keeps_nothing(store: &dyn Store) {
    for all_or_nothing in [false, true] {
        let id = new_upload(store, Some(10)).await;
        let opts = AppendOptions::default().with_all_or_nothing(all_or_nothing);
        store.append(&id, 0, chunks(&[b"ok"], None), AppendOptions::default()).await.expect("append");
        let got =
            store.append(&id, 2, chunks(&[b"bad", b"bytes"], Some(BodyError::Rejected)), opts).await.expect("append");
        assert_eq!(got, 2, "all_or_nothing={all_or_nothing}");
        assert_eq!(store.info(&id).await.expect("info").offset, 2);
        assert_eq!(store.append(&id, 2, chunks(&[b"good"], None), opts).await.expect("append"), 6);
        assert_eq!(read_all(store, &id, 0..6).await, b"okgood");
    }
}

/// An all-or-nothing append that ends cleanly is stored like any other.
pub async fn all_or_nothing_append_commits_on_success(store: &dyn Store) {
    let id = new_upload(store, Some(6)).await;
    let opts = AppendOptions::default().with_all_or_nothing(true);
    assert_eq!(store.append(&id, 0, chunks(&[b"abc", b"def"], None), opts).await.expect("append"), 6);
    assert_eq!(read_all(store, &id, 0..6).await, b"abcdef");
    // An interrupted all-or-nothing append keeps nothing either.
    let id = new_upload(store, Some(6)).await;
    let got = store.append(&id, 0, chunks(&[b"abc"], Some(BodyError::Interrupted)), opts).await.expect("append");
    assert_eq!(got, 0);
}

/// Many chunks (a few MiB) stream through and come back identical.
pub async fn large_append_streams(store: &dyn Store) {
    const CHUNK: usize = 64 * 1024;
    const COUNT: usize = 80;
    let id = new_upload(store, Some((CHUNK * COUNT) as u64)).await;
    let chunk_at = |i: usize| Bytes::from((0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect::<Vec<_>>());
    let stream: ChunkStream<'static> = Box::pin(futures_util::stream::iter((0..COUNT).map(move |i| Ok(chunk_at(i)))));
    let end = store.append(&id, 0, stream, AppendOptions::default()).await.expect("append");
    assert_eq!(end, (CHUNK * COUNT) as u64);
    let back = read_all(store, &id, 0..end).await;
    for i in 0..COUNT {
        assert_eq!(&back[i * CHUNK..(i + 1) * CHUNK], &chunk_at(i)[..], "chunk {i}");
    }
}

/// A deferred length can be declared later.
pub async fn deferred_length(store: &dyn Store) {
    let id = new_upload(store, None).await;
    store.append(&id, 0, chunks(&[b"abc"], None), AppendOptions::default()).await.expect("append");
    assert_eq!(store.info(&id).await.expect("info").length, None);
    store.capabilities().defer_length.expect("capability").declare_length(&id, 5).await.expect("declare");
    let info = store.info(&id).await.expect("info");
    assert_eq!((info.offset, info.length), (3, Some(5)));
}

/// Terminated uploads are gone, data included.
pub async fn terminate(store: &dyn Store) {
    let id = new_upload(store, Some(3)).await;
    store.append(&id, 0, chunks(&[b"abc"], None), AppendOptions::default()).await.expect("append");
    store.capabilities().terminate.expect("capability").terminate(&id).await.expect("terminate");
    assert!(matches!(store.info(&id).await, Err(StoreError::Gone | StoreError::NotFound)));
    assert!(store.read(&id, 0..3).await.is_err());
}

/// Finals hold their partials' bytes in order (a partial may repeat); partials stay intact.
pub async fn concatenate(store: &dyn Store) {
    let mut partials = Vec::new();
    for part in [&b"hello"[..], b" world", b""] {
        let id = UploadId::random();
        store
            .create(NewUpload::new(id.clone(), Some(part.len() as u64)).with_concat(ConcatRole::Partial))
            .await
            .expect("create partial");
        store.append(&id, 0, chunks(&[part], None), AppendOptions::default()).await.expect("append");
        partials.push(store.info(&id).await.expect("info"));
    }
    let order = vec![partials[0].clone(), partials[1].clone(), partials[2].clone(), partials[0].clone()];
    let final_id = UploadId::random();
    store
        .create(
            NewUpload::new(final_id.clone(), Some(16))
                .with_concat(ConcatRole::Final { partials: order.iter().map(|p| p.id.clone()).collect() }),
        )
        .await
        .expect("create final");
    store.capabilities().concatenate.expect("capability").concatenate(&final_id, &order).await.expect("concatenate");
    let info = store.info(&final_id).await.expect("info");
    assert_eq!((info.offset, info.length), (16, Some(16)));
    assert!(info.is_final());
    assert_eq!(read_all(store, &final_id, 0..16).await, b"hello worldhello");
    assert_eq!(read_all(store, &partials[1].id, 0..6).await, b" world");
}

/// Idle unfinished uploads are listed; finished or fresh ones are not.
pub async fn list_expired(store: &dyn Store) {
    let idle = new_upload(store, Some(5)).await;
    let done = new_upload(store, Some(1)).await;
    store.append(&done, 0, chunks(&[b"x"], None), AppendOptions::default()).await.expect("append");
    let expirer = store.capabilities().list_expired.expect("capability");
    let future = SystemTime::now() + Duration::from_secs(5);
    let listed = expirer.list_expired(future).await.expect("list");
    assert!(listed.contains(&idle), "idle upload not listed");
    assert!(!listed.contains(&done), "finished upload listed");
    let past = SystemTime::now() - Duration::from_secs(3600);
    assert!(!expirer.list_expired(past).await.expect("list").contains(&idle));
    // Every unfinished upload, however recent; a terminated one no longer.
    let gone = new_upload(store, Some(3)).await;
    expirer.terminate(&gone).await.expect("terminate");
    let unfinished = expirer.list_unfinished().await.expect("list unfinished");
    assert!(unfinished.contains(&idle), "unfinished upload not listed");
    assert!(!unfinished.contains(&done), "finished upload listed as unfinished");
    assert!(!unfinished.contains(&gone), "terminated upload listed as unfinished");
    // A final over an unfinished partial is unfinished too, and can be idle.
    if store.capabilities().concatenate.is_some() {
        let partial = store.create(NewUpload::new(UploadId::random(), Some(2)).with_concat(ConcatRole::Partial));
        let partial = partial.await.expect("create partial").id;
        let role = ConcatRole::Final { partials: vec![partial] };
        let final_id = store.create(NewUpload::new(UploadId::random(), Some(2)).with_concat(role));
        let final_id = final_id.await.expect("create final").id;
        assert!(expirer.list_unfinished().await.expect("list").contains(&final_id), "unfinished final not listed");
        assert!(expirer.list_expired(future).await.expect("list").contains(&final_id), "idle final not listed");
    }
}

/// Processing states persist; quarantined uploads keep their info but can no longer be read.
pub async fn record_state(store: &dyn Store) {
    let recorder = store.capabilities().record_state.expect("capability");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = new_upload(store, Some(4)).await;
        store.append(&id, 0, chunks(&[b"data"], None), AppendOptions::default()).await.expect("append");
        recorder.set_state(&id, UploadState::Processing, &[]).await.expect("set state");
        ids.push(id);
    }
    // Complete without a state (a crash came before `processing` was recorded): listed too;
    // unfinished uploads are not.
    let uninspected = new_upload(store, Some(2)).await;
    store.append(&uninspected, 0, chunks(&[b"ok"], None), AppendOptions::default()).await.expect("append");
    let unfinished = new_upload(store, Some(9)).await;
    store.append(&unfinished, 0, chunks(&[b"part"], None), AppendOptions::default()).await.expect("append");
    let processing = recorder.list_processing().await.expect("list");
    assert!(ids.iter().all(|id| processing.contains(id)), "processing uploads not listed");
    assert!(processing.contains(&uninspected), "complete upload without a state not listed");
    assert!(!processing.contains(&unfinished), "unfinished upload listed");
    assert_eq!(store.info(&ids[0]).await.expect("info").state, Some(UploadState::Processing));

    // The stored file's digests are recorded with the verdict.
    let mut hasher = crate::digest::FileHasher::new(&[]);
    hasher.update(b"data");
    let digests = hasher.finish();
    recorder.set_state(&ids[0], UploadState::Clean, &digests).await.expect("set state");
    assert_eq!(read_all(store, &ids[0], 0..4).await, b"data");
    assert_eq!(store.info(&ids[0]).await.expect("info").digests, digests, "digests not recorded");
    recorder.set_state(&ids[1], UploadState::Quarantined, &[]).await.expect("set state");
    let info = store.info(&ids[1]).await.expect("info");
    assert_eq!((info.state, info.offset, info.length), (Some(UploadState::Quarantined), 4, Some(4)));
    assert!(store.read(&ids[1], 0..4).await.is_err(), "quarantined upload still readable");
    let processing = recorder.list_processing().await.expect("list");
    assert!(!processing.contains(&ids[0]) && !processing.contains(&ids[1]));
    recorder.set_state(&uninspected, UploadState::Clean, &[]).await.expect("set state");
    assert!(!recorder.list_processing().await.expect("list").contains(&uninspected));
}

/// Derivatives live beside the original, never over it: each is read back as stored and
/// listed in the info, a second one of the same name replaces the first, an unknown one is
/// `NotFound`, and termination removes them with the upload.
pub async fn derivatives(store: &dyn Store) {
    use crate::derivative::{Derivative, DerivativeName};
    let derived = store.capabilities().derivatives.expect("capability");
    let id = new_upload(store, Some(8)).await;
    store.append(&id, 0, chunks(&[b"original"], None), AppendOptions::default()).await.expect("append");
    let thumb =
        |size: u64| Derivative { name: DerivativeName::Thumbnail(256), content_type: "image/jpeg".into(), size };
    let stripped = Derivative { name: DerivativeName::Stripped, content_type: "image/png".into(), size: 3 };
    // The size listed is the bytes', whatever the caller said.
    derived.put_derivative(&id, thumb(999), Bytes::from_static(b"first")).await.expect("put");
    derived.put_derivative(&id, stripped.clone(), Bytes::from_static(b"png")).await.expect("put");
    derived.put_derivative(&id, thumb(0), Bytes::from_static(b"second")).await.expect("put again");
    let id = &id;
    let read = |name| async move {
        let mut stream = derived.read_derivative(id, name).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok::<_, StoreError>(out)
    };
    assert_eq!(read(DerivativeName::Thumbnail(256)).await.expect("read"), b"second");
    assert_eq!(read(DerivativeName::Stripped).await.expect("read"), b"png");
    assert!(matches!(read(DerivativeName::Thumbnail(1024)).await, Err(StoreError::NotFound)));
    // The original is untouched, and the info lists each derivative once, as last stored.
    assert_eq!(read_all(store, id, 0..8).await, b"original");
    let info = store.info(id).await.expect("info");
    assert_eq!((info.offset, info.length), (8, Some(8)));
    let mut listed = info.derivatives.clone();
    listed.sort_by_key(|d| d.name);
    assert_eq!(listed, [thumb(6), stripped]);
    if let Some(terminator) = store.capabilities().terminate {
        terminator.terminate(id).await.expect("terminate");
        assert!(read(DerivativeName::Stripped).await.is_err(), "derivative outlived its upload");
        // A media step still running when its upload was terminated stores nothing.
        let late = derived.put_derivative(id, thumb(4), Bytes::from_static(b"late")).await;
        assert!(matches!(late, Err(StoreError::Gone | StoreError::NotFound)), "stored for a terminated upload");
        assert!(read(DerivativeName::Thumbnail(256)).await.is_err());
    }
}

/// Creations whose first append follows at once ([`NewUpload::body_follows`], which lets a
/// store sync both together): many at the same time all land; one whose append fails still
/// exists and takes its bytes later.
pub async fn creation_with_its_first_bytes(store: &dyn Store) {
    let create = |length| async move {
        let id = UploadId::random();
        let mut upload = NewUpload::new(id.clone(), Some(length));
        upload.body_follows = true;
        store.create(upload).await.expect("create");
        id
    };
    let uploads = futures_util::future::join_all((0..32u8).map(|i| async move {
        let id = create(3).await;
        let appended = store.append(&id, 0, chunks(&[&[i, i, i]], None), AppendOptions::default()).await;
        (id, i, appended)
    }))
    .await;
    for (id, i, appended) in uploads {
        assert_eq!(appended.expect("append"), 3);
        assert_eq!(read_all(store, &id, 0..3).await, [i, i, i]);
    }
    let id = create(2).await;
    let wrong_offset = store.append(&id, 1, chunks(&[b"x"], None), AppendOptions::default()).await;
    assert!(wrong_offset.is_err(), "an append at the wrong offset was accepted");
    let info = store.info(&id).await.expect("the creation outlives its failed append");
    assert_eq!((info.offset, info.length), (0, Some(2)));
    store.append(&id, 0, chunks(&[b"ok"], None), AppendOptions::default()).await.expect("append");
    assert_eq!(read_all(store, &id, 0..2).await, b"ok");

    // The request failed before its append (a refused checksum, a quota): the creation stands
    // on its own and its bytes may come in a later request, after many other creations.
    let abandoned = create(2).await;
    for _ in 0..8 {
        create(1).await;
    }
    assert_eq!(store.info(&abandoned).await.expect("an abandoned creation exists").offset, 0);
    store.append(&abandoned, 0, chunks(&[b"ab"], None), AppendOptions::default()).await.expect("append later");
    assert_eq!(read_all(store, &abandoned, 0..2).await, b"ab");

    // A checksummed first append that is refused keeps nothing.
    let id = create(2).await;
    let opts = AppendOptions::default().with_all_or_nothing(true);
    let refused = store.append(&id, 0, chunks(&[b"n"], Some(BodyError::Rejected)), opts).await;
    assert!(refused.as_ref().is_err() || refused.as_ref().ok() == Some(&0), "a rejected first append kept bytes");
    assert_eq!(store.info(&id).await.expect("info").offset, 0);

    // Terminated between its creation and its first append: the append stores nothing.
    if let Some(terminate) = store.capabilities().terminate {
        let id = create(2).await;
        terminate.terminate(&id).await.expect("terminate");
        let late = store.append(&id, 0, chunks(&[b"zz"], None), AppendOptions::default()).await;
        assert!(late.is_err(), "a terminated creation took its first bytes");
        assert!(store.read(&id, 0..2).await.is_err(), "a terminated creation can be read");
    }
}
