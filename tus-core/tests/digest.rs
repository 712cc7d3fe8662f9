//! Whole-file digests through the handler, in process: a creation declares the file's digest
//! (`Repr-Digest`, or `checksum` metadata), the server proves it once the upload is complete
//! (before answering for small uploads, in the background for large ones), rejects a file that
//! does not match, and tells the digest on the completing response, `HEAD` and `GET`; the IETF
//! draft's `Content-Digest` is checked per request; `post-finish` carries every finished
//! upload's sha-256.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use sha2::Digest as _;
use tus_core::hooks::{HookError, HookEvent, HookResponse, Hooks};
use tus_core::{MemoryStore, ResponseBody, TusService};

const DATA: &[u8] = b"hello world, twice: hello world";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(data).to_vec()
}

fn hex(bytes: Vec<u8>) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn repr(data: &[u8]) -> String {
    format!("sha-256=:{}:", b64(&sha256(data)))
}

/// Every hook event's payload, as JSON.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<serde_json::Value>>>);

#[async_trait]
impl Hooks for Recorder {
    async fn call(&self, event: &HookEvent) -> Result<HookResponse, HookError> {
        self.0.lock().unwrap().push(serde_json::to_value(event).unwrap());
        Ok(HookResponse::default())
    }
}

impl Recorder {
    fn uploads(&self, hook: &str) -> Vec<serde_json::Value> {
        let events = self.0.lock().unwrap();
        events.iter().filter(|e| e["Type"] == hook).map(|e| e["Event"]["Upload"].clone()).collect()
    }

    async fn wait_for(&self, hook: &str) -> serde_json::Value {
        for _ in 0..200 {
            if let Some(upload) = self.uploads(hook).pop() {
                return upload;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {hook} event");
    }
}

fn service(sync_max: u64) -> (TusService, Recorder) {
    let hooks = Recorder::default();
    let svc = TusService::builder(MemoryStore::new()).hooks(hooks.clone()).sync_verify_max(sync_max).build();
    (svc, hooks)
}

async fn send(svc: &TusService, req: Request<Full<Bytes>>) -> Response<ResponseBody> {
    svc.handle(req).await
}

async fn text(res: Response<ResponseBody>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn post(extra: &[(&str, &str)]) -> http::request::Builder {
    let mut b = Request::post("http://h/files/").header("tus-resumable", "1.0.0");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b
}

async fn create(svc: &TusService, extra: &[(&str, &str)]) -> String {
    let res = send(svc, post(extra).body(Full::default()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", text(res).await);
    res.headers()["location"].to_str().unwrap().to_owned()
}

fn patch(url: &str, offset: u64) -> http::request::Builder {
    Request::patch(url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
}

async fn append(svc: &TusService, url: &str, offset: u64, data: &'static [u8]) -> Response<ResponseBody> {
    send(svc, patch(url, offset).body(Full::new(Bytes::from_static(data))).unwrap()).await
}

async fn head(svc: &TusService, url: &str) -> Response<ResponseBody> {
    send(svc, Request::head(url).header("tus-resumable", "1.0.0").body(Full::default()).unwrap()).await
}

/// The upload's state once processing has recorded a verdict.
async fn settled(svc: &TusService, url: &str) -> Response<ResponseBody> {
    for _ in 0..200 {
        let res = head(svc, url).await;
        if res.headers().get("upload-state").is_some_and(|s| s != "processing") {
            return res;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no verdict for {url}");
}

#[tokio::test]
async fn a_declared_digest_that_matches_is_told_on_completion_head_and_get() {
    let (svc, hooks) = service(1 << 20);
    let url = create(&svc, &[("upload-length", "31"), ("repr-digest", &repr(DATA))]).await;
    // Resumed in between: the digest covers the whole file, not a request.
    assert_eq!(append(&svc, &url, 0, &DATA[..10]).await.status(), StatusCode::NO_CONTENT);
    let done = append(&svc, &url, 10, &DATA[10..]).await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_eq!(done.headers()["repr-digest"], repr(DATA).as_str(), "completing response");
    let res = settled(&svc, &url).await;
    assert_eq!(res.headers()["upload-state"], "clean");
    assert_eq!(res.headers()["repr-digest"], repr(DATA).as_str());
    let get = send(&svc, Request::get(&url).body(Full::default()).unwrap()).await;
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.headers()["repr-digest"], repr(DATA).as_str());
    assert_eq!(get.into_body().collect().await.unwrap().to_bytes(), DATA);
    let finished = hooks.wait_for("post-finish").await;
    assert_eq!(finished["SHA256"], hex(sha256(DATA)));
    assert_eq!(finished["DigestVerified"], true);
    assert_eq!(finished["State"], "clean");
}

#[tokio::test]
async fn a_declared_digest_that_does_not_match_rejects_the_upload() {
    let (svc, hooks) = service(1 << 20);
    let wrong = repr(b"something else");
    let url = create(&svc, &[("upload-length", "31"), ("repr-digest", &wrong)]).await;
    let done = append(&svc, &url, 0, DATA).await;
    assert_eq!(done.status().as_u16(), 460);
    assert_eq!(done.headers()["repr-digest"], repr(DATA).as_str(), "the stored file's digest is told");
    let body = text(done).await;
    assert!(body.contains("does not match its declared sha256 digest"), "{body}");
    let res = head(&svc, &url).await;
    assert_eq!(res.headers()["upload-state"], "rejected");
    let get = send(&svc, Request::get(&url).body(Full::default()).unwrap()).await;
    assert_eq!(get.status(), StatusCode::FORBIDDEN, "a rejected upload is never served");
    let finished = hooks.wait_for("post-finish").await;
    assert_eq!((finished["DigestVerified"].clone(), finished["State"].clone()), (false.into(), "rejected".into()));
    let pre = hooks.uploads("pre-finish").pop().unwrap();
    assert_eq!(pre["DigestVerified"], false, "pre-finish says so too");
}

#[tokio::test]
async fn the_metadata_form_declares_a_digest_too() {
    let (svc, _) = service(1 << 20);
    let md5 = md5_of(DATA);
    for (declared, status) in [(md5.clone(), 204), (md5_of(b"other"), 460)] {
        let meta = format!("checksum {}", b64(format!("md5 {}", b64(&declared)).as_bytes()));
        let url = create(&svc, &[("upload-length", "31"), ("upload-metadata", &meta)]).await;
        assert_eq!(append(&svc, &url, 0, DATA).await.status().as_u16(), status);
    }
}

fn md5_of(data: &[u8]) -> Vec<u8> {
    use md5::Digest as _;
    md5::Md5::digest(data).to_vec()
}

#[tokio::test]
async fn large_uploads_are_proven_in_the_background() {
    let (svc, _) = service(8);
    for (declared, state) in [(repr(DATA), "clean"), (repr(b"x"), "rejected")] {
        let url = create(&svc, &[("upload-length", "31"), ("repr-digest", &declared)]).await;
        let done = append(&svc, &url, 0, DATA).await;
        assert_eq!(done.status(), StatusCode::NO_CONTENT, "past the synchronous limit: answered at once");
        let res = settled(&svc, &url).await;
        assert_eq!(res.headers()["upload-state"], state);
        assert_eq!(res.headers()["repr-digest"], repr(DATA).as_str());
    }
}

#[tokio::test]
async fn malformed_digest_fields_are_400_and_unknown_algorithms_are_ignored() {
    let (svc, _) = service(1 << 20);
    let huge = format!("sha-256=:{}:", "A".repeat(10_000));
    let short = format!("sha-256=:{}:", b64(b"short"));
    let bad_meta = format!("checksum {}", b64(b"sha256 not-base64!"));
    for bad in [
        ("repr-digest", "sha-256"),
        ("repr-digest", "sha-256=:abc"),
        ("repr-digest", short.as_str()),
        ("repr-digest", huge.as_str()),
        ("upload-metadata", bad_meta.as_str()),
    ] {
        let res = send(&svc, post(&[("upload-length", "31"), bad]).body(Full::default()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(res.headers().get("location").is_none(), "{bad:?}: created anyway");
    }
    // Two different values for one algorithm: no file matches both.
    let both = format!("sha256 {}", b64(&sha256(b"other")));
    let meta = format!("checksum {}", b64(both.as_bytes()));
    let res = send(
        &svc,
        post(&[("upload-length", "31"), ("repr-digest", &repr(DATA)), ("upload-metadata", &meta)])
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A partial is never proven on its own (its final is): declaring there is refused.
    let res = send(
        &svc,
        post(&[("upload-length", "31"), ("upload-concat", "partial"), ("repr-digest", &repr(DATA))])
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(text(res).await.contains("on the final upload"));
    // Only unknown algorithms: nothing to prove, nothing refused.
    let url = create(&svc, &[("upload-length", "31"), ("repr-digest", "unixsum=:AAAA:, id-sha-256=:AA==:")]).await;
    assert_eq!(append(&svc, &url, 0, DATA).await.status(), StatusCode::NO_CONTENT);
    assert!(head(&svc, &url).await.headers().get("upload-state").is_none(), "processed for nothing");
}

#[tokio::test]
async fn want_repr_digest_gets_the_digest_on_completion_and_post_finish_always_has_it() {
    let (svc, hooks) = service(1 << 20);
    let url = create(&svc, &[("upload-length", "31")]).await;
    let req = patch(&url, 0).header("want-repr-digest", "sha-256=10").body(Full::new(Bytes::from_static(DATA)));
    let done = send(&svc, req.unwrap()).await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_eq!(done.headers()["repr-digest"], repr(DATA).as_str());
    // Declared or not, post-finish has the sha-256 (to deduplicate by).
    let url = create(&svc, &[("upload-length", "5")]).await;
    assert!(append(&svc, &url, 0, b"hello").await.headers().get("repr-digest").is_none(), "not asked for");
    let id = url.rsplit('/').next().unwrap();
    for _ in 0..200 {
        if hooks.uploads("post-finish").iter().any(|u| u["ID"] == id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let finished = hooks.uploads("post-finish").into_iter().find(|u| u["ID"] == id).unwrap();
    assert_eq!(finished["SHA256"], hex(sha256(b"hello")));
    assert!(finished.get("DigestVerified").is_none());
}

#[tokio::test]
async fn a_final_upload_proves_the_digest_of_its_assembled_file() {
    let (svc, _) = service(1 << 20);
    let mut partials = Vec::new();
    for part in [&DATA[..12], &DATA[12..]] {
        let url = create(&svc, &[("upload-length", &part.len().to_string()), ("upload-concat", "partial")]).await;
        assert_eq!(append(&svc, &url, 0, part).await.status(), StatusCode::NO_CONTENT);
        partials.push(url.trim_start_matches("http://h").to_owned());
    }
    let concat = format!("final;{} {}", partials[0], partials[1]);
    for (declared, state) in [(repr(DATA), "clean"), (repr(b"no"), "rejected")] {
        let url = create(&svc, &[("upload-concat", &concat), ("repr-digest", &declared)]).await;
        let res = settled(&svc, &url).await;
        assert_eq!(res.headers()["upload-state"], state);
        assert_eq!(res.headers()["repr-digest"], repr(DATA).as_str());
    }
}

#[tokio::test]
async fn ietf_creation_declares_and_content_digest_checks_each_request() {
    let (svc, _) = service(1 << 20);
    let ietf = |method: &str, url: &str| {
        Request::builder().method(method).uri(url).header("upload-draft-interop-version", "6")
    };
    // Content-Digest that does not match: none of the request's bytes are kept.
    let res = send(
        &svc,
        ietf("POST", "http://h/files/")
            .header("upload-complete", "?0")
            .header("repr-digest", repr(DATA))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let url = res.headers()["location"].to_str().unwrap().to_owned();
    let wrong = format!("sha-512=:{}:", b64(&[0; 64]));
    let req = ietf("PATCH", &url)
        .header("upload-offset", "0")
        .header("upload-complete", "?0")
        .header("content-type", "application/partial-upload")
        .header("content-digest", wrong);
    let res = send(&svc, req.body(Full::new(Bytes::from_static(&DATA[..10]))).unwrap()).await;
    assert_eq!(res.status().as_u16(), 460);
    let offset = |res: &Response<ResponseBody>| res.headers()["upload-offset"].to_str().unwrap().to_owned();
    let probe = send(&svc, ietf("HEAD", &url).body(Full::default()).unwrap()).await;
    assert_eq!(offset(&probe), "0");
    let right = format!("sha-256=:{}:", b64(&sha256(DATA)));
    let req = ietf("PATCH", &url)
        .header("upload-offset", "0")
        .header("upload-complete", "?1")
        .header("content-type", "application/partial-upload")
        .header("content-digest", right);
    let res = send(&svc, req.body(Full::new(Bytes::from_static(DATA))).unwrap()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["repr-digest"], repr(DATA).as_str());
    // A creation with the whole file and a wrong declaration: a problem, and rejected.
    let res = send(
        &svc,
        ietf("POST", "http://h/files/")
            .header("upload-complete", "?1")
            .header("repr-digest", repr(b"not this"))
            .body(Full::new(Bytes::from_static(DATA)))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 460);
    let url = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(text(res).await.contains("declared sha256 digest"));
    assert_eq!(head(&svc, &url).await.headers()["upload-state"], "rejected");
}
