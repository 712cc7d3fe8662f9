//! What hook payloads tell about the request, through the handler, in process: with an
//! authorizer the credentials (`Authorization`, `Cookie`) stay out of them (the owner is in
//! `Upload.Owner`), without one every header is forwarded as tusd does, and a receiver that
//! does not want the request gets none.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::ServiceExt as _;
use tus_core::hooks::{HookError, HookEvent, HookResponse, HookType, Hooks};
use tus_core::{MemoryStore, TusService};

mod user_header;
use user_header::UserHeader;

/// Keeps every event of the blocking hooks (awaited by the request, so recorded by the time
/// its response is back); `wants` is its [`Hooks::wants_http_request`].
#[derive(Debug, Clone)]
struct Recorder {
    events: Arc<Mutex<Vec<HookEvent>>>,
    wants: bool,
}

impl Recorder {
    fn new(wants: bool) -> Self {
        Recorder { events: Arc::default(), wants }
    }

    fn events(&self) -> Vec<HookEvent> {
        self.events.lock().unwrap().clone()
    }
}

#[async_trait]
impl Hooks for Recorder {
    fn enabled(&self, hook: HookType) -> bool {
        hook.is_blocking()
    }

    fn wants_http_request(&self) -> bool {
        self.wants
    }

    async fn call(&self, event: &HookEvent) -> Result<HookResponse, HookError> {
        self.events.lock().unwrap().push(event.clone());
        Ok(HookResponse::default())
    }
}

/// Creates, completes and terminates one 3-byte upload, each request with credentials in
/// `Authorization` and `Cookie` (twice: HTTP/2 sends one `Cookie` per cookie) and one custom
/// header; every step must succeed.
async fn upload_and_terminate(svc: &TusService) {
    let send = |method: &str, uri: &str, body: &'static [u8]| {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://h{uri}"))
            .header("tus-resumable", "1.0.0")
            .header("authorization", "User alice")
            .header("cookie", "session=s3cret")
            .header("cookie", "theme=dark")
            .header("x-request-id", "r-1");
        let req = match method {
            "POST" => req.header("upload-length", "3"),
            "PATCH" => req.header("upload-offset", "0").header("content-type", "application/offset+octet-stream"),
            _ => req,
        };
        let svc = svc.clone();
        let req = req.body(Full::new(Bytes::from_static(body))).unwrap();
        async move {
            let res: Result<_, Infallible> = svc.oneshot(req).await;
            res.unwrap()
        }
    };
    let created = send("POST", "/files/", b"").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let path = created.headers()["location"].to_str().unwrap().trim_start_matches("http://h").to_owned();
    assert_eq!(send("PATCH", &path, b"abc").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(send("DELETE", &path, b"").await.status(), StatusCode::NO_CONTENT);
}

fn blocking_hooks(events: &[HookEvent]) -> Vec<HookType> {
    events.iter().map(|e| e.hook).collect()
}

#[tokio::test]
async fn with_an_authorizer_hooks_get_the_owner_but_not_the_credentials() {
    let hooks = Recorder::new(true);
    let svc = TusService::builder(MemoryStore::new()).authorizer(UserHeader).hooks(hooks.clone()).build();
    upload_and_terminate(&svc).await;

    let events = hooks.events();
    assert_eq!(blocking_hooks(&events), [HookType::PreCreate, HookType::PreFinish, HookType::PreTerminate]);
    for event in &events {
        let request = &event.event.http_request;
        let names: Vec<&str> = request.header.keys().map(String::as_str).collect();
        assert!(!names.contains(&"Authorization") && !names.contains(&"Cookie"), "{}: {names:?}", event.hook);
        // The rest of the request is still there.
        assert_eq!(request.header["X-Request-Id"], ["r-1"], "{}", event.hook);
        assert_eq!(request.header["Tus-Resumable"], ["1.0.0"], "{}", event.hook);
        assert!(!request.method.is_empty() && request.uri.starts_with("http://h/files/"), "{request:?}");
        assert_eq!(event.event.upload.owner.as_deref(), Some("alice"), "{}", event.hook);
    }
}

#[tokio::test]
async fn without_an_authorizer_every_header_is_forwarded_for_hooks_to_authenticate() {
    let hooks = Recorder::new(true);
    let svc = TusService::builder(MemoryStore::new()).hooks(hooks.clone()).build();
    upload_and_terminate(&svc).await;

    let events = hooks.events();
    assert_eq!(events.len(), 3);
    for event in &events {
        let header = &event.event.http_request.header;
        assert_eq!(header["Authorization"], ["User alice"], "{}", event.hook);
        assert_eq!(header["Cookie"], ["session=s3cret", "theme=dark"], "{}", event.hook);
        assert_eq!(event.event.upload.owner, None);
    }
}

#[tokio::test]
async fn a_receiver_that_does_not_want_the_request_gets_none() {
    let hooks = Recorder::new(false);
    let svc = TusService::builder(MemoryStore::new()).hooks(hooks.clone()).build();
    upload_and_terminate(&svc).await;

    let events = hooks.events();
    assert_eq!(blocking_hooks(&events), [HookType::PreCreate, HookType::PreFinish, HookType::PreTerminate]);
    for event in &events {
        assert_eq!(event.event.http_request, Default::default(), "{}", event.hook);
        // The upload is described as ever.
        assert_eq!(event.event.upload.size, 3);
    }
}
