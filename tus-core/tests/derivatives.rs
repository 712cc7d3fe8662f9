//! Derivatives (files derived from a finished upload: `thumbnails/<size>`, `stripped`) through
//! the handler, in process: a test inspector stores them while the upload is processed, and
//! they are served at `/files/<id>/<name>` exactly when and to whom the original is (processing,
//! rejection, ownership, signed URLs, termination), with the original's safety headers, only to
//! `GET`, in either dialect; malformed names are plain 404s; `HEAD`/`GET` list them in
//! `Upload-Derivatives` once servable, and the `post-finish` payload lists them with their URLs.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tokio::sync::Notify;
use tower::ServiceExt as _;
use tus_core::derivative::{Derivative, DerivativeName};
use tus_core::hooks::{HookError, HookEvent, HookResponse, HookType, Hooks};
use tus_core::inspect::InspectError;
use tus_core::{
    Inspect, MemoryStore, ResponseBody, Store, TusService, TusServiceBuilder, UploadId, UploadInfo, UrlSigner, Verdict,
};

mod user_header;
use user_header::UserHeader;

/// What every upload here holds.
const ORIGINAL: &[u8] = b"original bytes, never touched";
/// What the test inspector stores as `thumbnails/256` (`image/jpeg`) and `stripped` (`image/png`).
const THUMB: &[u8] = b"thumb";
const STRIPPED: &[u8] = b"stripped png";
/// An upload ID nobody created.
const UNKNOWN: &str = "0123456789abcdef0123456789abcdef";
const KEY: &str = "derivatives-test-signing-key-0123456789";

// ---------------------------------------------------------------------------------------------
// The test inspector

/// Stores a `thumbnails/256` and a `stripped` derivative of every upload it inspects, then
/// (with a gate) waits until the test opens it, and answers `verdict`.
#[derive(Debug, Clone)]
struct Deriver {
    verdict: Verdict,
    gate: Option<Arc<Notify>>,
}

impl Deriver {
    fn clean() -> Self {
        Deriver { verdict: Verdict::Clean, gate: None }
    }
}

#[async_trait]
impl Inspect for Deriver {
    async fn inspect(&self, store: &dyn Store, info: &UploadInfo) -> Result<Verdict, InspectError> {
        let derived = store.capabilities().derivatives.expect("the memory store keeps derivatives");
        let made =
            [(DerivativeName::Thumbnail(256), "image/jpeg", THUMB), (DerivativeName::Stripped, "image/png", STRIPPED)];
        for (name, content_type, bytes) in made {
            let derivative = Derivative { name, content_type: content_type.into(), size: bytes.len() as u64 };
            derived
                .put_derivative(&info.id, derivative, Bytes::from_static(bytes))
                .await
                .map_err(|e| InspectError(Box::new(e)))?;
        }
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        Ok(self.verdict.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

fn builder(store: &MemoryStore, deriver: Deriver) -> TusServiceBuilder {
    TusService::builder(store.clone()).inspector(deriver).lock_timeout(Duration::from_secs(5))
}

fn service(deriver: Deriver) -> (TusService, MemoryStore) {
    let store = MemoryStore::new();
    (builder(&store, deriver).build(), store)
}

/// A request to `path` (`/files/...`, query included) with `headers`, `user` as its principal
/// (for [`UserHeader`]), and an empty body.
fn request(method: &str, path: &str, user: Option<&str>, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(format!("http://h{path}"));
    if let Some(user) = user {
        b = b.header("authorization", format!("User {user}"));
    }
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(Full::default()).unwrap()
}

async fn call(svc: &TusService, req: Request<Full<Bytes>>) -> Response<ResponseBody> {
    let res: Result<_, Infallible> = svc.clone().oneshot(req).await;
    res.unwrap()
}

/// `GET path` as `user`, with no other header.
async fn get(svc: &TusService, path: &str, user: Option<&str>) -> Response<ResponseBody> {
    call(svc, request("GET", path, user, &[])).await
}

/// A tus `HEAD` of the upload at `path`.
async fn head(svc: &TusService, path: &str, user: Option<&str>) -> Response<ResponseBody> {
    call(svc, request("HEAD", path, user, &[("tus-resumable", "1.0.0")])).await
}

async fn body(res: Response<ResponseBody>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// Creates an upload of [`ORIGINAL`] as `user` and sends all of it; returns its path
/// (`/files/<id>`) and ID.
async fn upload(svc: &TusService, user: Option<&str>) -> (String, UploadId) {
    let tus = ("tus-resumable", "1.0.0");
    let length = ORIGINAL.len().to_string();
    let res = call(svc, request("POST", "/files/", user, &[tus, ("upload-length", &length)])).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let path = header(res.headers(), "location").unwrap().trim_start_matches("http://h").to_owned();
    let mut patch = request(
        "PATCH",
        &path,
        user,
        &[tus, ("upload-offset", "0"), ("content-type", "application/offset+octet-stream")],
    );
    *patch.body_mut() = Full::new(Bytes::from_static(ORIGINAL));
    assert_eq!(call(svc, patch).await.status(), StatusCode::NO_CONTENT);
    let id = UploadId::parse(path.rsplit('/').next().unwrap()).unwrap();
    (path, id)
}

/// Waits (at most a few seconds) until `HEAD` shows the upload at `path` in `state`.
async fn wait_for_state(svc: &TusService, path: &str, user: Option<&str>, state: &str) {
    for _ in 0..200 {
        let res = head(svc, path, user).await;
        if header(res.headers(), "upload-state") == Some(state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never became {state}");
}

/// Uploads [`ORIGINAL`] and waits for the (ungated) inspector to find it clean.
async fn clean_upload(svc: &TusService, user: Option<&str>) -> (String, UploadId) {
    let (path, id) = upload(svc, user).await;
    wait_for_state(svc, &path, user, "clean").await;
    (path, id)
}

/// Each derivative the test inspector makes: its path under the upload, bytes, content type.
const MADE: [(&str, &[u8], &str); 2] = [("thumbnails/256", THUMB, "image/jpeg"), ("stripped", STRIPPED, "image/png")];

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn derivatives_are_served_once_processing_found_the_upload_clean() {
    let gate = Arc::new(Notify::new());
    let (svc, store) = service(Deriver { verdict: Verdict::Clean, gate: Some(gate.clone()) });
    let (path, id) = upload(&svc, None).await;

    // The inspector has stored both derivatives but has not given its verdict yet.
    for _ in 0..200 {
        if store.info(&id).await.unwrap().derivatives.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.info(&id).await.unwrap().derivatives.len(), 2, "the inspector stored nothing");
    let res = head(&svc, &path, None).await;
    assert_eq!(header(res.headers(), "upload-state"), Some("processing"));
    assert_eq!(header(res.headers(), "upload-derivatives"), None, "listed while processing");
    for (name, _, _) in MADE {
        let res = get(&svc, &format!("{path}/{name}"), None).await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "{name} while processing");
    }
    assert_eq!(get(&svc, &path, None).await.status(), StatusCode::CONFLICT, "original while processing");

    gate.notify_one();
    wait_for_state(&svc, &path, None, "clean").await;
    let res = head(&svc, &path, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(res.headers(), "upload-derivatives"), Some("thumbnails/256, stripped"));

    let mut etags = Vec::new();
    for (name, bytes, content_type) in MADE {
        let url = format!("{path}/{name}");
        let res = get(&svc, &url, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        let h = res.headers().clone();
        assert_eq!(header(&h, "content-type"), Some(content_type), "{name}");
        assert_eq!(header(&h, "content-length"), Some(bytes.len().to_string().as_str()), "{name}");
        assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"), "{name}");
        assert!(header(&h, "content-security-policy").unwrap().contains("sandbox"), "{name}");
        assert_eq!(body(res).await, bytes, "{name}");
        let etag = header(&h, "etag").expect("an ETag").to_owned();
        let res = call(&svc, request("GET", &url, None, &[("if-none-match", &etag)])).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{name} If-None-Match");
        assert!(body(res).await.is_empty());
        // Another tag is no match.
        let res = call(&svc, request("GET", &url, None, &[("if-none-match", "\"other\"")])).await;
        assert_eq!(res.status(), StatusCode::OK, "{name} with another tag");
        etags.push(etag);
    }

    // The original is untouched, and lists its derivatives too.
    let res = get(&svc, &path, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(res.headers(), "upload-derivatives"), Some("thumbnails/256, stripped"));
    etags.push(header(res.headers(), "etag").unwrap().to_owned());
    assert_eq!(body(res).await, ORIGINAL);
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 3, "ETags must tell the files apart: {etags:?}");
}

#[tokio::test]
async fn missing_and_malformed_derivative_names_are_404() {
    let (svc, _) = service(Deriver::clean());
    let (path, _) = clean_upload(&svc, None).await;
    for rest in [
        "/thumbnails/1024",
        "/thumbnails/0",
        "/thumbnails/0256",
        "/thumbnails/abc",
        "/thumbnails/99999",
        "/thumbnails/",
        "/thumbnails",
        "/thumbnails/256/",
        "/thumbnails/256/x",
        "/../x",
        "/%2e%2e/x",
        "/stripped/x",
        "/Stripped",
        "/original",
        "/",
    ] {
        let res = get(&svc, &format!("{path}{rest}"), None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}{rest}");
    }
    for (name, _, _) in MADE {
        let res = get(&svc, &format!("/files/{UNKNOWN}/{name}"), None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{name} of an unknown upload");
    }
    // Still all there.
    assert_eq!(get(&svc, &format!("{path}/stripped"), None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn only_get_and_head_are_allowed_on_a_derivative_and_delete_there_terminates_nothing() {
    let (svc, _) = service(Deriver::clean());
    let (path, _) = clean_upload(&svc, None).await;
    let url = format!("{path}/thumbnails/256");
    let tus = [
        ("tus-resumable", "1.0.0"),
        ("upload-offset", "0"),
        ("upload-length", "5"),
        ("content-type", "application/offset+octet-stream"),
    ];
    for method in ["PATCH", "DELETE", "POST", "PUT"] {
        let res = call(&svc, request(method, &url, None, &tus)).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    // HEAD: GET's headers, no body (a tus HEAD's headers too: they are harmless here).
    let res = call(&svc, request("HEAD", &url, None, &tus)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(res.headers(), "content-length"), Some(THUMB.len().to_string().as_str()));
    assert_eq!(header(res.headers(), "content-type"), Some("image/jpeg"));
    assert!(header(res.headers(), "etag").is_some());
    assert!(body(res).await.is_empty(), "a HEAD with a body");
    let res = head(&svc, &path, None).await;
    assert_eq!((res.status(), header(res.headers(), "upload-offset")), (StatusCode::OK, Some("29")));
    let res = get(&svc, &url, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, THUMB);
    assert_eq!(body(get(&svc, &path, None).await).await, ORIGINAL);
}

#[tokio::test]
async fn cors_preflights_derivatives_and_exposes_their_list() {
    let store = MemoryStore::new();
    let svc = builder(&store, Deriver::clean()).cors(Some(tus_core::CorsConfig::default())).build();
    let (path, _) = clean_upload(&svc, None).await;
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    for target in [path.clone(), format!("{path}/thumbnails/256")] {
        let res = call(&svc, request("OPTIONS", &target, None, &preflight)).await;
        assert!(res.status().is_success(), "preflight of {target}: {}", res.status());
        assert_eq!(header(res.headers(), "access-control-allow-origin"), Some("*"), "{target}");
    }
    // Scripts of other origins may read the list.
    let res = call(&svc, request("HEAD", &path, None, &[("tus-resumable", "1.0.0"), preflight[0]])).await;
    assert_eq!(header(res.headers(), "upload-derivatives"), Some("thumbnails/256, stripped"));
    let exposed = header(res.headers(), "access-control-expose-headers").unwrap().to_ascii_lowercase();
    assert!(exposed.split(", ").any(|h| h == "upload-derivatives"), "{exposed}");
}

#[tokio::test]
async fn ietf_draft_requests_get_the_same_derivatives() {
    let (svc, _) = service(Deriver::clean());
    let (path, _) = clean_upload(&svc, None).await;
    let draft = ("upload-draft-interop-version", "6");
    for (name, bytes, content_type) in MADE {
        let res = call(&svc, request("GET", &format!("{path}/{name}"), None, &[draft])).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(header(res.headers(), "content-type"), Some(content_type));
        assert_eq!(header(res.headers(), "x-content-type-options"), Some("nosniff"));
        assert_eq!(body(res).await, bytes);
    }
    let res = call(&svc, request("DELETE", &format!("{path}/stripped"), None, &[draft])).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The draft's HEAD of the upload lists them as tus HEAD does.
    let res = call(&svc, request("HEAD", &path, None, &[draft])).await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(header(res.headers(), "upload-derivatives"), Some("thumbnails/256, stripped"));
}

#[tokio::test]
async fn another_owner_gets_404_for_a_derivative_as_for_the_original() {
    let store = MemoryStore::new();
    let svc = builder(&store, Deriver::clean()).authorizer(UserHeader).build();
    let (path, _) = clean_upload(&svc, Some("alice")).await;
    let url = format!("{path}/thumbnails/256");
    assert_eq!(get(&svc, &path, Some("bob")).await.status(), StatusCode::NOT_FOUND, "Bob, original");
    assert_eq!(get(&svc, &url, Some("bob")).await.status(), StatusCode::NOT_FOUND, "Bob, derivative");
    assert_eq!(get(&svc, &url, None).await.status(), StatusCode::UNAUTHORIZED, "nobody, derivative");
    let res = get(&svc, &url, Some("alice")).await;
    assert_eq!(res.status(), StatusCode::OK, "Alice, derivative");
    assert_eq!(body(res).await, THUMB);
    // Bob's DELETE of the derivative is refused before anything looks at the upload.
    assert_eq!(call(&svc, request("DELETE", &url, Some("bob"), &[])).await.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn an_upload_signature_covers_its_derivatives_and_a_derivative_signature_only_itself() {
    let store = MemoryStore::new();
    let signer = || UrlSigner::new(KEY.as_bytes().to_vec()).unwrap();
    let ttl = Duration::from_secs(60);
    for with_authorizer in [false, true] {
        let svc = builder(&store, Deriver::clean()).url_signer(signer());
        let svc = if with_authorizer { svc.authorizer(UserHeader).build() } else { svc.build() };
        let user = with_authorizer.then_some("alice");
        let (path, id) = clean_upload(&svc, user).await;
        let (_, other) = clean_upload(&svc, user).await;
        let query = |id| svc.signed_download_path(id, ttl).unwrap().split_once('?').unwrap().1.to_owned();
        let (mine, theirs) = (query(&id), query(&other));
        let tampered = mine.replace("sig=", "sig=AA");
        let what = if with_authorizer { "with an authorizer" } else { "without one" };

        // No signature, or a wrong one: refused like the original (401 without a principal
        // when there is an authorizer, 403 otherwise).
        let unsigned = if with_authorizer { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
        for (case, suffix, status) in [
            ("no signature", String::new(), unsigned),
            ("another upload's signature", format!("?{theirs}"), unsigned),
            ("a tampered signature", format!("?{tampered}"), unsigned),
        ] {
            let original = get(&svc, &format!("{path}{suffix}"), None).await.status();
            let derived = get(&svc, &format!("{path}/thumbnails/256{suffix}"), None).await.status();
            assert_eq!(original, status, "{case}, original, {what}");
            assert_eq!(derived, original, "{case}, derivative, {what}");
        }
        // Even the owner needs the signature when signing is on.
        if with_authorizer {
            let res = get(&svc, &format!("{path}/thumbnails/256"), Some("alice")).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "the owner without a signature");
        }
        // The upload's own signature serves each derivative, to anyone holding it.
        for (name, bytes, _) in MADE {
            let res = get(&svc, &format!("{path}/{name}?{mine}"), None).await;
            assert_eq!(res.status(), StatusCode::OK, "{name}, signed, {what}");
            assert_eq!(body(res).await, bytes);
        }
        // A derivative's own signature (what post-finish hands out) serves that derivative
        // only: a shared stripped copy must not open the original and its metadata.
        let stripped = signer().sign_derivative(&id, DerivativeName::Stripped, ttl).query;
        assert_eq!(get(&svc, &format!("{path}/stripped?{stripped}"), None).await.status(), StatusCode::OK);
        let original = get(&svc, &format!("{path}?{stripped}"), None).await.status();
        assert_eq!(original, unsigned, "a derivative's signature opened the original, {what}");
        let thumb = get(&svc, &format!("{path}/thumbnails/256?{stripped}"), None).await.status();
        assert_eq!(thumb, unsigned, "a derivative's signature opened another derivative, {what}");
    }
}

#[tokio::test]
async fn terminating_an_upload_removes_its_derivatives() {
    let (svc, store) = service(Deriver::clean());
    let (path, id) = clean_upload(&svc, None).await;
    let res = call(&svc, request("DELETE", &path, None, &[("tus-resumable", "1.0.0")])).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for (name, _, _) in MADE {
        let status = get(&svc, &format!("{path}/{name}"), None).await.status();
        assert!(matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE), "{name} after termination: {status}");
    }
    let derived = store.capabilities().derivatives.unwrap();
    assert!(derived.read_derivative(&id, DerivativeName::Stripped).await.is_err(), "bytes outlived the upload");
}

#[tokio::test]
async fn a_rejected_or_quarantined_upload_serves_and_lists_no_derivatives() {
    for (verdict, state) in
        [(Verdict::Rejected("not an image".into()), "rejected"), (Verdict::Infected("EICAR".into()), "quarantined")]
    {
        let (svc, store) = service(Deriver { verdict, gate: None });
        let (path, id) = upload(&svc, None).await;
        wait_for_state(&svc, &path, None, state).await;
        // The store has them...
        let mut stored: Vec<_> = store.info(&id).await.unwrap().derivatives.iter().map(|d| d.name).collect();
        stored.sort();
        assert_eq!(stored, [DerivativeName::Thumbnail(256), DerivativeName::Stripped], "{state}");
        // ...but nobody hears of them, or gets them.
        let res = head(&svc, &path, None).await;
        assert_eq!(header(res.headers(), "upload-derivatives"), None, "{state} HEAD");
        let original = get(&svc, &path, None).await;
        assert_eq!(original.status(), StatusCode::FORBIDDEN, "{state} original");
        assert_eq!(header(original.headers(), "upload-derivatives"), None, "{state} GET");
        for (name, _, _) in MADE {
            let res = get(&svc, &format!("{path}/{name}"), None).await;
            assert_eq!(res.status(), original.status(), "{state} {name}");
            assert_eq!(header(res.headers(), "upload-derivatives"), None);
            assert!(!body(res).await.starts_with(THUMB));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hook payloads

/// Keeps every `post-finish` event (a notification, so it arrives after the response).
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<HookEvent>>>);

#[async_trait]
impl Hooks for Recorder {
    fn enabled(&self, hook: HookType) -> bool {
        hook == HookType::PostFinish
    }

    fn wants_http_request(&self) -> bool {
        true
    }

    async fn call(&self, event: &HookEvent) -> Result<HookResponse, HookError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(HookResponse::default())
    }
}

impl Recorder {
    /// The `post-finish` event of `id`, once it arrived.
    async fn post_finish(&self, id: &UploadId) -> HookEvent {
        for _ in 0..200 {
            let found = self.0.lock().unwrap().iter().find(|e| e.event.upload.id == id.as_str()).cloned();
            if let Some(event) = found {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no post-finish for {id}");
    }
}

#[tokio::test]
async fn post_finish_lists_the_derivatives_with_their_urls() {
    for signed in [false, true] {
        let hooks = Recorder::default();
        let store = MemoryStore::new();
        let svc = builder(&store, Deriver::clean()).hooks(hooks.clone());
        let svc =
            if signed { svc.url_signer(UrlSigner::new(KEY.as_bytes().to_vec()).unwrap()).build() } else { svc.build() };
        let (path, id) = upload(&svc, None).await;
        let event = hooks.post_finish(&id).await;
        let upload = &event.event.upload;
        assert_eq!(upload.state.as_deref(), Some("clean"), "signed: {signed}");

        let listed: Vec<_> =
            upload.derivatives.iter().map(|d| (d.name.as_str(), d.content_type.as_str(), d.size)).collect();
        assert_eq!(
            listed,
            [("thumbnails/256", "image/jpeg", THUMB.len() as u64), ("stripped", "image/png", STRIPPED.len() as u64)],
            "signed: {signed}"
        );
        for (derivative, (name, bytes, _)) in upload.derivatives.iter().zip(MADE) {
            let (url, query) = derivative.url.split_once('?').unwrap_or((&derivative.url, ""));
            assert!(url.ends_with(&format!("/files/{id}/{name}")), "{}", derivative.url);
            assert_eq!(query.contains("sig="), signed, "{}", derivative.url);
            // The URL works as given.
            let local = derivative.url.trim_start_matches("http://h");
            let res = get(&svc, local, None).await;
            assert_eq!(res.status(), StatusCode::OK, "{}", derivative.url);
            assert_eq!(body(res).await, bytes);
        }
        // As it is in the payload of a serialized event.
        let json = serde_json::to_value(&event).unwrap();
        let first = &json["Event"]["Upload"]["Derivatives"][0];
        assert_eq!(first["Name"], "thumbnails/256", "{json}");
        assert_eq!(first["ContentType"], "image/jpeg");
        assert_eq!(first["Size"], THUMB.len());
        assert!(first["URL"].as_str().unwrap().contains(&format!("{path}/thumbnails/256")));
    }
}

/// An inspector whose every attempt fails (a scanner that is down), counting attempts.
#[derive(Debug, Default)]
struct Failing(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl Inspect for Failing {
    async fn inspect(&self, _: &dyn Store, _: &UploadInfo) -> Result<Verdict, InspectError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(InspectError("scanner down".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn processing_stops_retrying_once_the_upload_is_terminated() {
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store = MemoryStore::new();
    let svc = TusService::builder(store.clone()).inspector(Failing(attempts.clone())).build();
    let (path, _) = upload(&svc, None).await;
    let count = || attempts.load(std::sync::atomic::Ordering::SeqCst);
    // Retried with backoff while the upload exists (1 s, 2 s, 4 s apart: the clock is paused
    // and jumps ahead whenever every task waits).
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(count() >= 3, "retried {} times", count());
    let res = call(&svc, request("DELETE", &path, None, &[("tus-resumable", "1.0.0")])).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The next failure finds it gone and ends the task: no attempt after that one.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let settled = count();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(count(), settled, "still retrying a terminated upload");
}
