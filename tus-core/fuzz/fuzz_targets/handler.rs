//! The whole handler fed arbitrary requests (method, path, headers, body and trailers decoded
//! from the fuzz input) against a fresh `MemoryStore`, on a current-thread tokio runtime.
//!
//! Checked: no panic, no hang (every request answers within 5 s), no 5xx from the in-memory
//! store, and afterwards the seeded uploads are consistent: `HEAD` never reports an offset past
//! the length, and a complete upload downloads exactly its length.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use libfuzzer_sys::fuzz_target;
use tus_core::{MemoryStore, ResponseBody, TusService};

type FuzzBody = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

/// Reads the fuzz input front to back; past the end every read is zero/empty.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const METHODS: [&str; 9] = ["OPTIONS", "HEAD", "PATCH", "POST", "DELETE", "GET", "PUT", "PATCH", "HEAD"];

const NAMES: [&str; 20] = [
    "tus-resumable",
    "upload-offset",
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-concat",
    "upload-checksum",
    "content-type",
    "x-http-method-override",
    "upload-complete",
    "upload-draft-interop-version",
    "upload-incomplete",
    "trailer",
    "range",
    "origin",
    "access-control-request-method",
    "if-none-match",
    "forwarded",
    "x-forwarded-host",
    "upload-offset",
];

struct Ids {
    upload: String,
    partial: String,
    last: String,
}

fn good_values(ids: &Ids) -> [String; 20] {
    [
        "1.0.0".into(),
        "application/offset+octet-stream".into(),
        "0".into(),
        "5".into(),
        "16".into(),
        "1".into(),
        "partial".into(),
        format!("final;/files/{} /files/{}", ids.partial, ids.partial),
        format!("final;http://h/files/{}", ids.upload),
        "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=".into(),
        "md5 XUFAKrxLKna5cZ2REBfFkg==".into(),
        "?1".into(),
        "?0".into(),
        "6".into(),
        "3".into(),
        "bytes=0-3".into(),
        "upload-checksum".into(),
        "filename aGVsbG8=,flag".into(),
        "PATCH".into(),
        "18446744073709551615".into(),
    ]
}

fn request(input: &mut Input<'_>, ids: &Ids) -> Option<Request<FuzzBody>> {
    let m = input.byte();
    let method = if m >= 240 {
        Method::from_bytes(input.bytes(usize::from(m % 8) + 1)).ok()?
    } else {
        Method::from_bytes(METHODS[usize::from(m) % METHODS.len()].as_bytes()).ok()?
    };
    let path = match input.byte() % 8 {
        0 => "/files/".to_owned(),
        1 => format!("/files/{}", ids.upload),
        2 => format!("/files/{}", ids.partial),
        3 => format!("/files/{}", ids.last),
        4 => format!("/files/{}?expires=99999999999&sig=00", ids.upload),
        5 => {
            let n = usize::from(input.byte() % 32);
            format!("/files/{}", String::from_utf8_lossy(input.bytes(n)))
        }
        6 => "/".to_owned(),
        _ => format!("/files/{}/x", ids.upload),
    };
    let mut builder = Request::builder().method(method).uri(format!("http://h{path}"));
    let flags = input.byte();
    if flags & 1 == 0 {
        builder = builder.header("tus-resumable", "1.0.0");
    }
    let good = good_values(ids);
    for _ in 0..input.byte() % 10 {
        let name = HeaderName::from_static(NAMES[usize::from(input.byte()) % NAMES.len()]);
        let v = input.byte();
        let value = if v < 160 {
            HeaderValue::from_str(&good[usize::from(v) % good.len()]).ok()?
        } else {
            let n = usize::from(v % 48);
            match HeaderValue::from_bytes(input.bytes(n)) {
                Ok(value) => value,
                Err(_) => continue,
            }
        };
        builder = builder.header(name, value);
    }
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = Vec::new();
    match input.byte() % 4 {
        0 => {}
        1 => {
            let n = usize::from(input.byte());
            frames.push(Ok(Frame::data(Bytes::copy_from_slice(input.bytes(n)))));
        }
        2 => {
            for _ in 0..input.byte() % 4 {
                let n = usize::from(input.byte() % 32);
                frames.push(Ok(Frame::data(Bytes::copy_from_slice(input.bytes(n)))));
            }
            let mut trailers = http::HeaderMap::new();
            let n = usize::from(input.byte() % 48);
            if let Ok(value) = HeaderValue::from_bytes(input.bytes(n)) {
                trailers.insert("upload-checksum", value);
            }
            frames.push(Ok(Frame::trailers(trailers)));
        }
        _ => {
            let n = usize::from(input.byte() % 64);
            frames.push(Ok(Frame::data(Bytes::copy_from_slice(input.bytes(n)))));
            frames.push(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut")));
        }
    }
    builder.body(StreamBody::new(futures_util::stream::iter(frames))).ok()
}

async fn call<B>(svc: &TusService, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    let what = format!("{} {}", req.method(), req.uri());
    tokio::time::timeout(Duration::from_secs(5), svc.handle(req))
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within 5 s"))
}

async fn body(res: Response<ResponseBody>) -> Bytes {
    tokio::time::timeout(Duration::from_secs(5), res.into_body().collect())
        .await
        .expect("response body within 5 s")
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

async fn seed(svc: &TusService, headers: &[(&str, &str)], data: &[u8]) -> String {
    let mut req = Request::post("http://h/files/").header("tus-resumable", "1.0.0");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = call(svc, req.body(Empty::<Bytes>::new()).expect("request")).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().expect("location").to_owned();
    let id = location.rsplit('/').next().expect("id").to_owned();
    if !data.is_empty() {
        let req = Request::patch(location)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(http_body_util::Full::new(Bytes::copy_from_slice(data)))
            .expect("request");
        assert_eq!(call(svc, req).await.status(), StatusCode::NO_CONTENT);
    }
    id
}

async fn check_consistent(svc: &TusService, id: &str) {
    let url = format!("http://h/files/{id}");
    let req = Request::head(&url).header("tus-resumable", "1.0.0").body(Empty::<Bytes>::new()).expect("request");
    let res = call(svc, req).await;
    if res.status() != StatusCode::OK {
        assert!(matches!(res.status().as_u16(), 404 | 410), "HEAD {id}: {}", res.status());
        return;
    }
    let num = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let offset = num("upload-offset").expect("HEAD carries Upload-Offset");
    if let Some(length) = num("upload-length") {
        assert!(offset <= length, "offset {offset} past length {length}");
        if offset == length {
            let req = Request::get(&url).body(Empty::<Bytes>::new()).expect("request");
            let res = call(svc, req).await;
            if res.status() == StatusCode::OK {
                assert_eq!(body(res).await.len() as u64, length, "GET of a complete upload");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    runtime().block_on(async {
        let svc = TusService::builder(MemoryStore::new())
            .max_size(1 << 20)
            .lock_timeout(Duration::from_millis(200))
            .body_read_timeout(Duration::from_millis(200))
            .build();
        let upload = seed(&svc, &[("upload-length", "16")], b"hello").await;
        let partial = seed(&svc, &[("upload-length", "3"), ("upload-concat", "partial")], b"abc").await;
        let mut ids = Ids { upload, partial, last: String::new() };
        ids.last = ids.upload.clone();
        for _ in 0..8 {
            if input.is_empty() {
                break;
            }
            let Some(req) = request(&mut input, &ids) else { continue };
            let what = format!("{} {} {:?}", req.method(), req.uri(), req.headers());
            let res = call(&svc, req).await;
            assert!(!res.status().is_server_error(), "{what} answered {}", res.status());
            if let Some(id) =
                res.headers().get("location").and_then(|l| l.to_str().ok()).and_then(|l| l.rsplit('/').next())
            {
                ids.last = id.to_owned();
            }
            let _ = body(res).await;
        }
        for id in [&ids.upload, &ids.partial, &ids.last] {
            check_consistent(&svc, id).await;
        }
    });
});
