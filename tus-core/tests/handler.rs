//! In-process handler tests (`oneshot`, no sockets) for what black-box tests cannot pin down
//! precisely: lock release between requests, shutdown, and bytes kept from cut-off bodies.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use tokio::sync::mpsc;
use tower::ServiceExt as _;
use tus_core::{MemoryStore, ResponseBody, TusService};

mod common;
use common::{create, head, patch};

type ChannelBody = StreamBody<tokio_stream_shim::Receiver>;

/// A request body fed chunk by chunk from the test.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::Frame;

    pub(crate) struct Receiver(pub(crate) tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

    impl futures_core::Stream for Receiver {
        type Item = Result<Frame<Bytes>, std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

/// Feeds a [`ChannelBody`].
type BodySender = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

fn channel_body() -> (BodySender, ChannelBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, StreamBody::new(tokio_stream_shim::Receiver(rx)))
}

fn service() -> TusService {
    TusService::builder(MemoryStore::new()).lock_timeout(Duration::from_secs(5)).build()
}

async fn call<B>(svc: &TusService, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    let res: Result<_, Infallible> = svc.clone().oneshot(req).await;
    res.unwrap()
}

async fn offset(svc: &TusService, url: &str) -> u64 {
    let res = call(svc, head(url)).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

/// Runs `req` on a task of its own, as a connection would, so that the test can feed its body
/// and send other requests meanwhile.
fn spawn_call<B>(svc: &TusService, req: Request<B>) -> tokio::task::JoinHandle<Response<ResponseBody>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    let svc = svc.clone();
    tokio::spawn(async move { call(&svc, req).await })
}

/// A new 100-byte upload with a PATCH still running on it after storing `first`: the upload's
/// URL, the sender of the rest of the body, and the PATCH's task.
async fn patch_in_progress(
    svc: &TusService,
    first: &'static [u8],
) -> (String, BodySender, tokio::task::JoinHandle<Response<ResponseBody>>) {
    let url = create(svc, 100).await;
    let (tx, body) = channel_body();
    let running = spawn_call(svc, patch(&url, 0, body));
    tx.send(Ok(Frame::data(Bytes::from_static(first)))).await.unwrap();
    // Time for the handler to store the chunk.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (url, tx, running)
}

#[tokio::test]
async fn head_interrupts_a_stale_patch_which_keeps_its_bytes() {
    let svc = service();
    let (url, tx, stale) = patch_in_progress(&svc, b"0123456789").await;
    // The client "resumes" from another connection while the stale PATCH still runs, sending
    // nothing for longer than a live upload would (a HEAD leaves a PATCH whose bytes flow).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resumed_at = tokio::time::timeout(Duration::from_secs(3), offset(&svc, &url)).await.unwrap();
    assert_eq!(resumed_at, 10);
    let res = stale.await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&text).contains("ERR_UPLOAD_INTERRUPTED"));
    drop(tx);
    // The resumed client continues where HEAD said.
    let res = call(&svc, patch(&url, 10, Full::new(Bytes::from(vec![b'x'; 90])))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["upload-offset"], "100");
}

#[tokio::test]
async fn heads_during_a_patch_whose_bytes_flow_leave_it_alone() {
    let svc = service();
    let (url, tx, live) = patch_in_progress(&svc, b"0123456789").await;
    // A status poll (another tab, a dashboard) while the upload makes progress: every HEAD
    // answers at once with the offset so far, and the PATCH goes on.
    let mut seen = Vec::new();
    for chunk in 0..5u8 {
        let at = tokio::time::timeout(Duration::from_secs(1), offset(&svc, &url)).await.unwrap();
        seen.push(at);
        tx.send(Ok(Frame::data(Bytes::from(vec![chunk; 18])))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(tx);
    let res = live.await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "a HEAD interrupted a live upload");
    assert_eq!(res.headers()["upload-offset"], "100");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen[0] >= 10, "offsets seen: {seen:?}");
}

#[tokio::test]
async fn shutdown_stops_bodies_and_keeps_what_arrived() {
    let svc = service();
    let (url, _tx, running) = patch_in_progress(&svc, b"abcde").await;
    svc.shutdown();
    let res = tokio::time::timeout(Duration::from_secs(3), running).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(offset(&svc, &url).await, 5);
}

#[tokio::test]
async fn checksummed_patch_cut_off_keeps_nothing() {
    let svc = service();
    let url = create(&svc, 100).await;
    let (tx, body) = channel_body();
    let mut req = patch(&url, 0, body);
    req.headers_mut().insert("upload-checksum", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=".parse().unwrap());
    let running = spawn_call(&svc, req);
    tx.send(Ok(Frame::data(Bytes::from_static(b"hello")))).await.unwrap();
    tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))).await.unwrap();
    let res = running.await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(offset(&svc, &url).await, 0);
}

#[tokio::test]
async fn stalled_body_times_out_and_keeps_bytes() {
    let svc = TusService::builder(MemoryStore::new()).body_read_timeout(Duration::from_millis(200)).build();
    let url = create(&svc, 100).await;
    let (tx, body) = channel_body();
    tx.send(Ok(Frame::data(Bytes::from_static(b"abc")))).await.unwrap();
    let res = tokio::time::timeout(Duration::from_secs(3), call(&svc, patch(&url, 0, body))).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["connection"], "close");
    drop(tx);
    assert_eq!(offset(&svc, &url).await, 3);
}

#[tokio::test]
async fn trailer_checksum_is_verified() {
    let svc = service();
    for (digest, status, kept) in [
        ("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", StatusCode::NO_CONTENT, 11),
        ("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=", StatusCode::from_u16(460).unwrap(), 0),
    ] {
        let url = create(&svc, 11).await;
        let (tx, body) = channel_body();
        let mut req = patch(&url, 0, body);
        req.headers_mut().insert("trailer", "Upload-Checksum".parse().unwrap());
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello world")))).await.unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("upload-checksum", digest.parse().unwrap());
        tx.send(Ok(Frame::trailers(trailers))).await.unwrap();
        drop(tx);
        let res = call(&svc, req).await;
        assert_eq!(res.status(), status);
        assert_eq!(offset(&svc, &url).await, kept);
    }
}

#[tokio::test]
async fn concatenation_of_unfinished_partials_settles_when_they_finish() {
    let svc = service();
    let mut partials = Vec::new();
    for len in [5u64, 6] {
        let req = Request::post("http://h/files/")
            .header("tus-resumable", "1.0.0")
            .header("upload-length", len.to_string())
            .header("upload-concat", "partial")
            .body(Empty::<Bytes>::new())
            .unwrap();
        partials.push(call(&svc, req).await.headers()["location"].to_str().unwrap().to_owned());
    }
    let req = Request::post("http://h/files/")
        .header("tus-resumable", "1.0.0")
        .header("upload-concat", format!("final;{} {}", partials[0], partials[1]))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = call(&svc, req).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let final_url = res.headers()["location"].to_str().unwrap().to_owned();
    let res = call(&svc, head(&final_url)).await;
    assert_eq!(res.headers()["upload-length"], "11");
    assert!(res.headers().get("upload-offset").is_none());

    for (url, data) in partials.iter().zip([&b"hello"[..], b" world"]) {
        let res = call(&svc, patch(url, 0, Full::new(Bytes::from_static(data)))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    let get = Request::get(&final_url).body(Empty::<Bytes>::new()).unwrap();
    let res = call(&svc, get).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello world");
}
