//! Requests the in-process handler tests share (`handler.rs`, `store_faults.rs`), so that each
//! test file keeps only what is particular to it.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use tus_core::TusService;

/// Creates an upload of `length` bytes and returns its URL.
pub(crate) async fn create(svc: &TusService, length: u64) -> String {
    let req = Request::post("http://h/files/")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = svc.handle(req).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// A HEAD request for the upload at `url`.
pub(crate) fn head(url: &str) -> Request<Empty<Bytes>> {
    Request::head(url).header("tus-resumable", "1.0.0").body(Empty::new()).unwrap()
}

/// A PATCH request sending `body` at `offset`.
pub(crate) fn patch<B>(url: &str, offset: u64, body: B) -> Request<B> {
    Request::patch(url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(body)
        .unwrap()
}
