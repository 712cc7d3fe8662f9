//! The load generator: tokio + hyper HTTP/1.1 clients, one connection each, with exact byte
//! accounting (every acknowledged `Upload-Offset` is checked against the bytes sent).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha1::Digest as _;

use crate::Res;

/// Request body type of every client.
type Body = BoxBody<Bytes, Infallible>;

/// Longest wait for one response (a 1 GiB PATCH to a slow peer included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Frame size of streamed bodies larger than the data buffer.
const FRAME: usize = 1 << 20;

/// Where a tus server listens.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// Socket address.
    pub(crate) addr: SocketAddr,
    /// Upload endpoint path, e.g. `/files/`.
    pub(crate) base_path: String,
    /// Verify each finished upload's offset with a final `HEAD` (off for a server whose HEAD
    /// of a completed upload is known to be wrong on the S3 emulator; PATCH acknowledgements
    /// are still checked).
    pub(crate) head_check: bool,
}

/// The measured value of one run plus secondary figures (latencies, bytes).
#[derive(Debug, Default, Clone)]
pub(crate) struct RunResult {
    /// The primary figure (MiB/s, uploads/s, requests/s).
    pub(crate) value: f64,
    /// Secondary figures by name.
    pub(crate) extra: BTreeMap<String, f64>,
}

/// Incompressible test data shared by every request (bodies are slices of it, never copies).
#[derive(Clone)]
pub(crate) struct Data(Bytes);

impl Data {
    /// `len` pseudo-random bytes (xorshift: cheap and incompressible enough for a server).
    pub(crate) fn new(len: usize) -> Self {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(len);
        Data(Bytes::from(v))
    }

    /// The buffer.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// A body of `len` bytes: one slice when it fits, else the buffer repeated in 1 MiB frames.
    fn body(&self, len: u64) -> Body {
        if len <= self.0.len() as u64 {
            return Full::new(self.0.slice(..len as usize)).boxed();
        }
        let data = self.0.clone();
        let frames = len.div_ceil(FRAME as u64);
        let chunks = data.len() / FRAME;
        let stream = futures_util::stream::iter((0..frames).map(move |i| {
            let n = (len - i * FRAME as u64).min(FRAME as u64) as usize;
            let at = (i as usize % chunks) * FRAME;
            Ok::<_, Infallible>(Frame::data(data.slice(at..at + n)))
        }));
        StreamBody::new(stream).boxed()
    }

    /// `Upload-Checksum` value for a body of `len` bytes (`len` ≤ the buffer).
    pub(crate) fn checksum(&self, algo: &str, len: usize) -> Option<String> {
        let slice = self.0.get(..len)?;
        let digest = match algo {
            "sha1" => sha1::Sha1::digest(slice).to_vec(),
            "sha256" => sha2::Sha256::digest(slice).to_vec(),
            _ => return None,
        };
        Some(format!("{algo} {}", base64::engine::general_purpose::STANDARD.encode(digest)))
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    target: Target,
    host: String,
    send: SendRequest<Body>,
}

impl Client {
    async fn connect(target: &Target) -> Res<Self> {
        let tcp = tokio::net::TcpStream::connect(target.addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { target: target.clone(), host: target.addr.to_string(), send })
    }

    /// Sends one request, drains the response body, returns status and headers.
    /// A connection the server closed is reopened once.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Res<(StatusCode, HeaderMap)> {
        if self.send.ready().await.is_err() {
            *self = Client::connect(&self.target).await?;
            self.send.ready().await?;
        }
        let method_name = method.to_string();
        let mut req = Request::builder().method(method).uri(path).header("host", &self.host);
        req = req.header("tus-resumable", "1.0.0");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(body)?;
        let what = || format!("{method_name} {path}");
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.send.send_request(req))
            .await
            .map_err(|_| format!("{}: no response within {REQUEST_TIMEOUT:?}", what()))?
            .map_err(|e| format!("{}: {}", what(), chain(&e)))?;
        let (parts, body) = resp.into_parts();
        tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
            .await
            .map_err(|_| format!("{}: response body timed out", what()))?
            .map_err(|e| format!("{}: response body: {}", what(), chain(&e)))?;
        Ok((parts.status, parts.headers))
    }

    /// `POST` creating an upload of `length` bytes, with `body` bytes of it (creation-with-upload).
    async fn create(&mut self, length: u64, body: Option<(&Data, u64)>) -> Res<String> {
        let mut headers = vec![("upload-length", length.to_string())];
        let (req_body, sent) = match body {
            Some((data, n)) => {
                headers.push(("content-type", "application/offset+octet-stream".into()));
                headers.push(("content-length", n.to_string()));
                (data.body(n), n)
            }
            None => {
                headers.push(("content-length", "0".into()));
                (Empty::new().boxed(), 0)
            }
        };
        let base = self.target.base_path.clone();
        let (status, h) = self.call(Method::POST, &base, &headers, req_body).await?;
        if status != StatusCode::CREATED {
            return Err(format!("POST: status {status}").into());
        }
        let location = h.get("location").and_then(|v| v.to_str().ok()).ok_or("POST: no Location")?;
        if sent > 0 {
            let acked = offset_of(&h).ok_or("POST with body: no Upload-Offset")?;
            if acked != sent {
                return Err(format!("POST with body: acknowledged {acked} of {sent} bytes").into());
            }
        }
        Ok(path_of(location))
    }

    /// `PATCH` of `len` bytes at `offset`; checks the acknowledged offset.
    async fn patch(&mut self, path: &str, offset: u64, data: &Data, len: u64, checksum: Option<&str>) -> Res<()> {
        let mut headers = vec![
            ("upload-offset", offset.to_string()),
            ("content-type", "application/offset+octet-stream".into()),
            ("content-length", len.to_string()),
        ];
        if let Some(c) = checksum {
            headers.push(("upload-checksum", c.to_owned()));
        }
        let (status, h) = self.call(Method::PATCH, path, &headers, data.body(len)).await?;
        if status != StatusCode::NO_CONTENT {
            return Err(format!("PATCH at {offset}: status {status}").into());
        }
        let acked = offset_of(&h).ok_or("PATCH: no Upload-Offset")?;
        if acked != offset + len {
            return Err(format!("PATCH: acknowledged offset {acked}, sent up to {}", offset + len).into());
        }
        Ok(())
    }

    /// `HEAD` of an upload: its offset.
    async fn head_offset(&mut self, path: &str) -> Res<u64> {
        let (status, h) = self.call(Method::HEAD, path, &[], Empty::new().boxed()).await?;
        if !status.is_success() {
            return Err(format!("HEAD: status {status}").into());
        }
        offset_of(&h).ok_or_else(|| "HEAD: no Upload-Offset".into())
    }
}

/// An error with its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

fn offset_of(h: &HeaderMap) -> Option<u64> {
    h.get("upload-offset")?.to_str().ok()?.parse().ok()
}

/// The path of a `Location` (absolute URL or path).
fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned()),
        None => location.to_owned(),
    }
}

/// Uploads `total` bytes on a fresh connection: a `POST`, then `PATCH`es of `chunk` bytes,
/// each with `checksum` if given; verifies the final offset with `HEAD`.
async fn one_upload(target: &Target, data: &Data, total: u64, chunk: u64, checksum: Option<&str>) -> Res<u64> {
    let mut c = Client::connect(target).await?;
    let path = c.create(total, None).await?;
    let mut offset = 0;
    while offset < total {
        let n = chunk.min(total - offset);
        c.patch(&path, offset, data, n, checksum).await?;
        offset += n;
    }
    let stored = if target.head_check { c.head_offset(&path).await? } else { total };
    if stored != total {
        return Err(format!("HEAD says {stored} bytes stored, {total} were sent").into());
    }
    Ok(offset)
}

/// MiB/s for `sent` bytes in `secs`, with both kept beside it.
fn throughput(sent: u64, secs: f64) -> RunResult {
    let mut r = RunResult { value: mib(sent) / secs, ..Default::default() };
    r.extra.insert("bytes".into(), sent as f64);
    r.extra.insert("seconds".into(), secs);
    r
}

/// Scenario 1 / 4: one upload of `total` bytes in `chunk`-byte PATCHes. MiB/s.
pub(crate) async fn big_upload(
    target: &Target,
    data: &Data,
    total: u64,
    chunk: u64,
    checksum: Option<&str>,
) -> Res<RunResult> {
    let start = Instant::now();
    let sent = one_upload(target, data, total, chunk, checksum).await?;
    Ok(throughput(sent, start.elapsed().as_secs_f64()))
}

/// Scenario 3: `count` concurrent uploads of `size` bytes in `chunk`-byte PATCHes. MiB/s.
pub(crate) async fn concurrent_uploads(
    target: &Target,
    data: &Data,
    count: usize,
    size: u64,
    chunk: u64,
) -> Res<RunResult> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (target, data) = (target.clone(), data.clone());
        tasks.spawn(async move { one_upload(&target, &data, size, chunk, None).await });
    }
    let mut sent = 0;
    while let Some(done) = tasks.join_next().await {
        sent += done.map_err(|e| e.to_string())??;
    }
    let secs = start.elapsed().as_secs_f64();
    if sent != count as u64 * size {
        return Err(format!("{sent} bytes acknowledged, {} sent", count as u64 * size).into());
    }
    Ok(throughput(sent, secs))
}

/// Scenario 2: `count` uploads of `size` bytes each via creation-with-upload, from `clients`
/// connections. Uploads/s, with p50/p99 latency in ms.
pub(crate) async fn small_uploads(
    target: &Target,
    data: &Data,
    count: u64,
    clients: usize,
    size: u64,
) -> Res<RunResult> {
    let next = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Client::connect(target).await?);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in conns {
        let (next, data) = (next.clone(), data.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let t = Instant::now();
                c.create(size, Some((&data, size))).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, crate::Error>(lat)
        });
    }
    let mut lat = Vec::with_capacity(count as usize);
    while let Some(done) = tasks.join_next().await {
        lat.extend(done.map_err(|e| e.to_string())??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let mut r = RunResult { value: lat.len() as f64 / secs, ..Default::default() };
    r.extra.insert("p50_ms".into(), percentile(&lat, 0.50));
    r.extra.insert("p99_ms".into(), percentile(&lat, 0.99));
    r.extra.insert("bytes".into(), (lat.len() as u64 * size) as f64);
    Ok(r)
}

/// Scenario 6: `count` bodiless requests (`HEAD` of one upload, or `OPTIONS`) from `clients`
/// connections, stopping early after `max_time`. Requests/s.
pub(crate) async fn request_rate(
    target: &Target,
    method: Method,
    path: Option<&str>,
    count: u64,
    clients: usize,
    max_time: Duration,
) -> Res<RunResult> {
    let path = match path {
        Some(p) => p.to_owned(),
        None if method == Method::HEAD => new_upload(target, 1000).await?,
        None => target.base_path.clone(),
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Client::connect(target).await?);
    }
    let start = Instant::now();
    let deadline = start + max_time;
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in conns {
        let (next, path, method) = (next.clone(), path.clone(), method.clone());
        tasks.spawn(async move {
            let mut done = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                let (status, _) = c.call(method.clone(), &path, &[], Empty::new().boxed()).await?;
                if !status.is_success() {
                    return Err(format!("{method}: status {status}").into());
                }
                done += 1;
            }
            Ok::<_, crate::Error>(done)
        });
    }
    let mut done = 0;
    while let Some(n) = tasks.join_next().await {
        done += n.map_err(|e| e.to_string())??;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut r = RunResult { value: done as f64 / secs, ..Default::default() };
    r.extra.insert("requests".into(), done as f64);
    Ok(r)
}

/// Creates an empty upload of `length` bytes; its path.
pub(crate) async fn new_upload(target: &Target, length: u64) -> Res<String> {
    Client::connect(target).await?.create(length, None).await
}

/// Uploads streaming in the background at a steady rate each (a phone on a mobile network,
/// not a saturating client), so HEADs can be measured while uploads are live.
pub(crate) struct Streams {
    /// Each upload's path.
    pub(crate) paths: Vec<String>,
    tasks: tokio::task::JoinSet<Res<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Bytes each background upload sends per tick, and the tick.
const STREAM_FRAME: usize = 64 * 1024;
const STREAM_TICK: Duration = Duration::from_millis(64);

impl Streams {
    /// Starts `count` uploads, each one PATCH sending 64 KiB every 64 ms (1 MiB/s) until
    /// [`Streams::stop`].
    pub(crate) async fn start(target: &Target, data: &Data, count: usize) -> Res<Self> {
        // Longer than any run sends at 1 MiB/s.
        const LENGTH: u64 = 1 << 30;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut paths = Vec::with_capacity(count);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..count {
            let mut c = Client::connect(target).await?;
            let path = c.create(LENGTH, None).await?;
            paths.push(path.clone());
            let frame = data.bytes().slice(..STREAM_FRAME);
            let mut stopped = stopped.clone();
            // Spread the ticks so the uploads do not send in lockstep.
            let phase = STREAM_TICK * i as u32 / count as u32;
            tasks.spawn(async move {
                let ticks = futures_util::stream::unfold((), move |()| {
                    let frame = frame.clone();
                    async move {
                        tokio::time::sleep(STREAM_TICK).await;
                        Some((Ok::<_, Infallible>(Frame::data(frame)), ()))
                    }
                });
                tokio::time::sleep(phase).await;
                let headers = [
                    ("upload-offset", "0".to_owned()),
                    ("content-type", "application/offset+octet-stream".into()),
                    ("content-length", LENGTH.to_string()),
                ];
                let patch = c.call(Method::PATCH, &path, &headers, StreamBody::new(ticks).boxed());
                tokio::select! {
                    answer = patch => Err(match answer {
                        Ok((status, _)) => format!("PATCH {path} answered {status} while its body was still flowing"),
                        Err(e) => format!("PATCH {path} ended while its body was still flowing: {e}"),
                    }
                    .into()),
                    _ = stopped.wait_for(|s| *s) => Ok(()),
                }
            });
        }
        Ok(Streams { paths, tasks, stop })
    }

    /// Stops every upload (their connections close mid-body). Fails if the server ended any
    /// of them before (a HEAD must not interrupt a live upload).
    pub(crate) async fn stop(mut self) -> Res<()> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done.map_err(|e| e.to_string().into()).and_then(|r| r)
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Bytes to MiB.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_paths() {
        assert_eq!(path_of("http://127.0.0.1:1/files/abc"), "/files/abc");
        assert_eq!(path_of("/files/abc"), "/files/abc");
    }

    #[tokio::test]
    async fn streamed_body_has_exact_length() {
        let data = Data::new(4 << 20);
        let body = data.body((9 << 20) + 5);
        let got = body.collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
        assert_eq!(got, (9 << 20) + 5);
    }
}
