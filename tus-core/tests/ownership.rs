//! Authorization, ownership and quotas through the handler, in process: every request but `OPTIONS`
//! and signed downloads needs a principal, uploads belong to the principal that created them,
//! and anyone else's requests for them are answered as for an upload that does not exist, on
//! every method and both dialects, concatenation included. A principal's own limits narrow
//! the service's.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tower::ServiceExt as _;
use tus_core::{MemoryStore, ResponseBody, TusService, UrlSigner};

mod user_header;
use user_header::UserHeader;

const KEY: &str = "ownership-test-signing-key-0123456789";

fn service() -> TusService {
    TusService::builder(MemoryStore::new())
        .authorizer(UserHeader)
        .url_signer(UrlSigner::new(KEY.as_bytes().to_vec()).unwrap())
        .lock_timeout(Duration::from_secs(5))
        .build()
}

async fn call(svc: &TusService, req: Request<Full<Bytes>>) -> Response<ResponseBody> {
    let res: Result<_, Infallible> = svc.clone().oneshot(req).await;
    res.unwrap()
}

fn req(method: &str, uri: &str, user: Option<&str>) -> http::request::Builder {
    let mut b = Request::builder().method(method).uri(format!("http://h{uri}")).header("tus-resumable", "1.0.0");
    if let Some(user) = user {
        b = b.header("authorization", format!("User {user}"));
    }
    b
}

async fn create(svc: &TusService, user: &str, extra: &[(&str, &str)]) -> (StatusCode, String) {
    let mut b = req("POST", "/files/", Some(user));
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let res = call(svc, b.body(Full::default()).unwrap()).await;
    let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    (res.status(), location.trim_start_matches("http://h").to_owned())
}

async fn patch(svc: &TusService, user: &str, path: &str, offset: u64, data: &'static [u8]) -> StatusCode {
    let b = req("PATCH", path, Some(user))
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream");
    call(svc, b.body(Full::new(Bytes::from_static(data))).unwrap()).await.status()
}

#[tokio::test]
async fn requests_without_a_principal_get_401_with_a_challenge_but_options_does_not() {
    let svc = service();
    let (_, path) = create(&svc, "alice", &[("upload-length", "5")]).await;
    for (method, uri) in
        [("POST", "/files/"), ("HEAD", path.as_str()), ("PATCH", path.as_str()), ("DELETE", path.as_str())]
    {
        let res = call(&svc, req(method, uri, None).body(Full::default()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method}");
        assert_eq!(res.headers()["www-authenticate"], "User realm=\"test\"", "{method}");
    }
    let get = call(&svc, Request::get(format!("http://h{path}")).body(Full::default()).unwrap()).await;
    assert_eq!(get.status(), StatusCode::UNAUTHORIZED, "GET without a signature");
    let ietf = Request::head(format!("http://h{path}")).header("upload-draft-interop-version", "6");
    assert_eq!(call(&svc, ietf.body(Full::default()).unwrap()).await.status(), StatusCode::UNAUTHORIZED, "IETF HEAD");
    let options = call(&svc, Request::options("http://h/files/").body(Full::default()).unwrap()).await;
    assert_eq!(options.status(), StatusCode::OK, "OPTIONS (CORS preflights carry no credentials)");
}

#[tokio::test]
async fn another_principal_sees_no_upload_on_any_method_or_dialect() {
    let svc = service();
    let (status, path) = create(&svc, "alice", &[("upload-length", "5")]).await;
    assert_eq!(status, StatusCode::CREATED);
    let unknown = "/files/0123456789abcdef0123456789abcdef";
    for target in [path.as_str(), unknown] {
        let head = call(&svc, req("HEAD", target, Some("bob")).body(Full::default()).unwrap()).await;
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "HEAD {target}");
        assert_eq!(patch(&svc, "bob", target, 0, b"evil!").await, StatusCode::NOT_FOUND, "PATCH {target}");
        let get = call(&svc, req("GET", target, Some("bob")).body(Full::default()).unwrap()).await;
        assert_eq!(get.status(), StatusCode::FORBIDDEN, "GET {target} needs a signature here");
        let delete = call(&svc, req("DELETE", target, Some("bob")).body(Full::default()).unwrap()).await;
        assert_eq!(delete.status(), StatusCode::NOT_FOUND, "DELETE {target}");
        let ietf_head = req("HEAD", target, Some("bob")).header("upload-draft-interop-version", "6");
        let ietf_head = call(&svc, ietf_head.body(Full::default()).unwrap()).await;
        assert_eq!(ietf_head.status(), StatusCode::NOT_FOUND, "IETF HEAD {target}");
        let append = req("PATCH", target, Some("bob"))
            .header("upload-draft-interop-version", "6")
            .header("upload-offset", "0")
            .header("upload-complete", "?1")
            .header("content-type", "application/partial-upload");
        let append = call(&svc, append.body(Full::new(Bytes::from_static(b"evil!"))).unwrap()).await;
        assert_eq!(append.status(), StatusCode::NOT_FOUND, "IETF append {target}");
    }
    // Nothing of Bob's reached Alice's upload, and she carries on.
    let head = call(&svc, req("HEAD", &path, Some("alice")).body(Full::default()).unwrap()).await;
    assert_eq!((head.status(), &head.headers()["upload-offset"]), (StatusCode::OK, &"0".parse().unwrap()));
    assert_eq!(patch(&svc, "alice", &path, 0, b"hello").await, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_final_may_list_only_its_owners_partials() {
    let svc = service();
    let (_, partial) = create(&svc, "alice", &[("upload-length", "5"), ("upload-concat", "partial")]).await;
    assert_eq!(patch(&svc, "alice", &partial, 0, b"hello").await, StatusCode::NO_CONTENT);
    let list = format!("final;{partial} {partial}");
    let (status, _) = create(&svc, "bob", &[("upload-concat", &list)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "Bob assembled Alice's partial");
    let (status, final_path) = create(&svc, "alice", &[("upload-concat", &list)]).await;
    assert_eq!(status, StatusCode::CREATED);
    let head = call(&svc, req("HEAD", &final_path, Some("alice")).body(Full::default()).unwrap()).await;
    assert_eq!(head.headers()["upload-offset"], "10");
}

#[tokio::test]
async fn a_signed_download_needs_no_principal_and_a_principal_limit_narrows_the_maximum() {
    let svc = service();
    let (_, path) = create(&svc, "alice", &[("upload-length", "5")]).await;
    assert_eq!(patch(&svc, "alice", &path, 0, b"hello").await, StatusCode::NO_CONTENT);
    let id = path.trim_start_matches("/files/");
    let signed = svc.signed_download_path(&tus_core::UploadId::parse(id).unwrap(), Duration::from_secs(60)).unwrap();
    let res = call(&svc, Request::get(format!("http://h{signed}")).body(Full::default()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");

    let (status, _) = create(&svc, "carol max=10", &[("upload-length", "11")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "a length past the principal's own maximum");
    let (status, deferred) = create(&svc, "carol max=10", &[("upload-defer-length", "1")]).await;
    assert_eq!(status, StatusCode::CREATED);
    let declare = req("PATCH", &deferred, Some("carol max=10"))
        .header("upload-offset", "0")
        .header("upload-length", "11")
        .header("content-type", "application/offset+octet-stream");
    let declared = call(&svc, declare.body(Full::default()).unwrap()).await;
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE, "a deferred length past the principal's maximum");
}

#[tokio::test]
async fn another_principal_cannot_interrupt_an_upload_in_flight() {
    use http_body_util::StreamBody;
    let svc = service();
    let (_, path) = create(&svc, "alice", &[("upload-length", "10")]).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(2);
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|f| (f, rx)) }));
    let alice = req("PATCH", &path, Some("alice"))
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(body)
        .unwrap();
    let in_flight = tokio::spawn({
        let svc = svc.clone();
        async move { svc.oneshot(alice).await.unwrap().status() }
    });
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"hello")))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A HEAD of the owner would ask this PATCH to let go; Bob's must not reach the lock.
    let bob = call(&svc, req("HEAD", &path, Some("bob")).body(Full::default()).unwrap()).await;
    assert_eq!(bob.status(), StatusCode::NOT_FOUND);
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"world")))).await.unwrap();
    drop(tx);
    assert_eq!(in_flight.await.unwrap(), StatusCode::NO_CONTENT, "Bob's HEAD interrupted Alice's upload");
}

fn quota_service(store: MemoryStore, bytes: Option<u64>, uploads: Option<u64>) -> TusService {
    TusService::builder(store)
        .authorizer(UserHeader)
        .quota(tus_core::quota::QuotaLimits::new(bytes, uploads))
        .expiration(Duration::from_secs(3600))
        .build()
}

async fn refusal(svc: &TusService, user: &str, extra: &[(&str, &str)]) -> (StatusCode, String) {
    let mut b = req("POST", "/files/", Some(user));
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let res = call(svc, b.body(Full::default()).unwrap()).await;
    let status = res.status();
    (status, String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
}

#[tokio::test]
async fn the_upload_quota_refuses_the_upload_that_would_cross_it_and_frees_up_on_completion() {
    let svc = quota_service(MemoryStore::new(), None, Some(2));
    let (_, first) = create(&svc, "alice", &[("upload-length", "5")]).await;
    let (_, second) = create(&svc, "alice", &[("upload-length", "5")]).await;
    let (status, body) = refusal(&svc, "alice", &[("upload-length", "5")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("uploads quota exceeded: limit 2, 0 left"), "{body}");
    assert_eq!(create(&svc, "bob", &[("upload-length", "5")]).await.0, StatusCode::CREATED, "owners are separate");
    // Completing one frees its place; terminating the other frees another.
    assert_eq!(patch(&svc, "alice", &first, 0, b"hello").await, StatusCode::NO_CONTENT);
    assert_eq!(create(&svc, "alice", &[("upload-length", "5")]).await.0, StatusCode::CREATED);
    let delete = call(&svc, req("DELETE", &second, Some("alice")).body(Full::default()).unwrap()).await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_eq!(create(&svc, "alice", &[("upload-length", "5")]).await.0, StatusCode::CREATED);
    assert_eq!(refusal(&svc, "alice", &[("upload-length", "5")]).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // Zero-length uploads are complete at once and never count.
    assert_eq!(create(&svc, "alice", &[("upload-length", "0")]).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn the_byte_quota_counts_declared_lengths_and_survives_a_restart() {
    let store = MemoryStore::new();
    let svc = quota_service(store.clone(), Some(100), None);
    assert_eq!(create(&svc, "alice", &[("upload-length", "60")]).await.0, StatusCode::CREATED);
    let (status, body) = refusal(&svc, "alice", &[("upload-length", "50")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("bytes quota exceeded: limit 100, 40 left"), "{body}");
    // A deferred length is counted when it is declared.
    let (_, deferred) = create(&svc, "alice", &[("upload-defer-length", "1")]).await;
    let declare = |length: &str| {
        req("PATCH", &deferred, Some("alice"))
            .header("upload-offset", "0")
            .header("upload-length", length)
            .header("content-type", "application/offset+octet-stream")
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(call(&svc, declare("41")).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(call(&svc, declare("40")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(refusal(&svc, "alice", &[("upload-length", "1")]).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    // A new process over the same store counts again from what is stored.
    let restarted = quota_service(store, Some(100), None);
    assert_eq!(restarted.reconcile_quotas().await.unwrap().held, 2);
    assert_eq!(refusal(&restarted, "alice", &[("upload-length", "1")]).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(create(&restarted, "bob", &[("upload-length", "100")]).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn only_a_verified_signature_stands_in_for_a_principal_and_only_for_its_upload() {
    let svc = service();
    let (_, path) = create(&svc, "alice", &[("upload-length", "10")]).await;
    assert_eq!(patch(&svc, "alice", &path, 0, b"hello").await, StatusCode::NO_CONTENT);
    let (_, other) = create(&svc, "alice", &[("upload-length", "10")]).await;
    let signed_other = {
        let id = other.trim_start_matches("/files/");
        svc.signed_download_path(&tus_core::UploadId::parse(id).unwrap(), Duration::from_secs(60)).unwrap()
    };
    let query = signed_other.split_once('?').unwrap().1.to_owned();
    for (what, uri) in
        [("a made-up sig", format!("{path}?sig=x")), ("another upload's signature", format!("{path}?{query}"))]
    {
        for version in [None, Some("9")] {
            let mut b = Request::get(format!("http://h{uri}"));
            if let Some(v) = version {
                b = b.header("upload-draft-interop-version", v);
            }
            let res = call(&svc, b.body(Full::default()).unwrap()).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}, interop {version:?}");
            assert!(!res.headers().contains_key("upload-offset"), "{what}: the offset leaked");
        }
    }
    // A deleted upload of someone else is as unknown as one that never existed.
    let delete = call(&svc, req("DELETE", &other, Some("alice")).body(Full::default()).unwrap()).await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let head = call(&svc, req("HEAD", &other, Some("bob")).body(Full::default()).unwrap()).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}

fn head_offset(res: &Response<ResponseBody>) -> Option<u64> {
    res.headers().get("upload-offset").map(|v| v.to_str().unwrap().parse().unwrap())
}

async fn patch_with(
    svc: &TusService,
    path: &str,
    offset: u64,
    data: &'static [u8],
    extra: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut b = req("PATCH", path, Some("alice"))
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let res = call(svc, b.body(Full::new(Bytes::from_static(data))).unwrap()).await;
    let status = res.status();
    (status, String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
}

#[tokio::test]
async fn bytes_of_a_deferred_length_count_as_they_arrive() {
    let svc = quota_service(MemoryStore::new(), Some(100), None);
    let (_, deferred) = create(&svc, "alice", &[("upload-defer-length", "1")]).await;
    // A body of unknown size may take what is left; it holds what it stored.
    assert_eq!(patch_with(&svc, &deferred, 0, &[1; 60], &[]).await.0, StatusCode::NO_CONTENT);
    let (status, body) = refusal(&svc, "alice", &[("upload-length", "50")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("bytes quota exceeded: limit 100, 40 left"), "{body}");
    // A body that says it is larger than what is left is refused unread...
    let (status, body) = patch_with(&svc, &deferred, 60, &[2; 50], &[("content-length", "50")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("bytes quota exceeded"), "{body}");
    // ...and one that does not say is cut off where the quota ends.
    let (status, body) = patch_with(&svc, &deferred, 60, &[2; 50], &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("bytes quota exceeded"), "{body}");
    let head = call(&svc, req("HEAD", &deferred, Some("alice")).body(Full::default()).unwrap()).await;
    let offset = head_offset(&head).unwrap();
    assert!(offset <= 100, "stored past the quota: {offset}");
    // Nothing of the refused bodies is held beyond what was stored.
    let left = 100 - offset;
    assert_eq!(
        refusal(&svc, "alice", &[("upload-length", &(left + 1).to_string())]).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Declaring the length and finishing frees it all.
    let rest: &'static [u8] = vec![3u8; usize::try_from(100 - offset).unwrap()].leak();
    let (status, _) = patch_with(&svc, &deferred, offset, rest, &[("upload-length", "100")]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(create(&svc, "alice", &[("upload-length", "100")]).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn an_unfinished_final_counts_as_one_upload_until_assembled() {
    let svc = quota_service(MemoryStore::new(), None, Some(2));
    let (_, partial) = create(&svc, "alice", &[("upload-length", "5"), ("upload-concat", "partial")]).await;
    let concat = format!("final;{partial}");
    let (status, final_path) = create(&svc, "alice", &[("upload-concat", &concat)]).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = refusal(&svc, "alice", &[("upload-length", "5")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "the final did not count");
    assert!(body.contains("uploads quota exceeded: limit 2, 0 left"), "{body}");
    assert_eq!(patch(&svc, "alice", &partial, 0, b"hello").await, StatusCode::NO_CONTENT);
    let head = call(&svc, req("HEAD", &final_path, Some("alice")).body(Full::default()).unwrap()).await;
    assert_eq!(head_offset(&head), Some(5), "final assembled");
    for _ in 0..2 {
        assert_eq!(create(&svc, "alice", &[("upload-length", "5")]).await.0, StatusCode::CREATED);
    }
}

#[tokio::test]
async fn a_final_whose_partial_expired_expires_and_stops_counting() {
    let svc = TusService::builder(MemoryStore::new())
        .authorizer(UserHeader)
        .quota(tus_core::quota::QuotaLimits::new(None, Some(2)))
        .expiration(Duration::from_millis(300))
        .build();
    let (_, partial) = create(&svc, "alice", &[("upload-length", "5"), ("upload-concat", "partial")]).await;
    let (_, final_path) = create(&svc, "alice", &[("upload-concat", &format!("final;{partial}"))]).await;
    assert_eq!(refusal(&svc, "alice", &[("upload-length", "5")]).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The partial goes in one pass, the final (now never to be assembled) in the next at most.
    let removed = svc.reap_expired().await.unwrap() + svc.reap_expired().await.unwrap();
    assert_eq!(removed, 2);
    let head = call(&svc, req("HEAD", &final_path, Some("alice")).body(Full::default()).unwrap()).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    for _ in 0..2 {
        assert_eq!(create(&svc, "alice", &[("upload-length", "5")]).await.0, StatusCode::CREATED);
    }
}

/// What a crash or a Redis restart leaves in a quota book, repaired by reconciling it with the
/// store: an upload completed whose holding was never given back, one terminated likewise, and
/// unfinished uploads the book does not know.
#[tokio::test(start_paused = true)]
async fn reconciling_repairs_what_a_crash_left_in_the_quota_book() {
    use tus_core::store::{AppendOptions, Store as _};
    let store = MemoryStore::new();
    let svc = quota_service(store.clone(), Some(100), Some(3));
    let (_, done) = create(&svc, "alice", &[("upload-length", "5")]).await;
    let (_, gone) = create(&svc, "alice", &[("upload-length", "5")]).await;
    let (_, open) = create(&svc, "alice", &[("upload-length", "60")]).await;
    // Behind the service's back, as a crash between the store and the book would leave it.
    let id = |path: &str| tus_core::UploadId::parse(path.trim_start_matches("/files/")).unwrap();
    let chunk: tus_core::store::ChunkStream =
        Box::pin(futures_util::stream::iter([Ok::<_, tus_core::store::BodyError>(Bytes::from_static(b"hello"))]));
    store.append(&id(&done), 0, chunk, AppendOptions::default()).await.unwrap();
    store.capabilities().terminate.unwrap().terminate(&id(&gone)).await.unwrap();
    assert_eq!(refusal(&svc, "alice", &[("upload-length", "1")]).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let reconciled = svc.reconcile_quotas().await.unwrap();
    assert_eq!((reconciled.held, reconciled.released), (1, 2));
    assert_eq!(create(&svc, "alice", &[("upload-length", "40")]).await.0, StatusCode::CREATED);
    assert_eq!(refusal(&svc, "alice", &[("upload-length", "1")]).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    // A book that lost everything (a Redis without persistence, restarted) learns it again.
    let fresh = quota_service(store, Some(100), Some(3));
    assert_eq!(fresh.reconcile_quotas().await.unwrap().held, 2);
    let (status, body) = refusal(&fresh, "alice", &[("upload-length", "1")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("bytes quota exceeded: limit 100, 0 left"), "{body}");
    let _ = open;
}
