//! Black-box conformance tests for a tus 1.0 resumable-upload server.
//!
//! The tests in `tests/*.rs` talk to a real `tus-server` process over HTTP/1.1 only; they never
//! look at the storage backend. This library holds what they share:
//!
//! * [`TestServer`]: spawns `tus-server` on a free port with its own temporary upload directory
//!   (or uses the server named by the `TUS_URL` environment variable) and kills it on drop.
//! * [`Request`], [`Response`] and [`Conn`]: a small raw HTTP/1.1 client over
//!   [`std::net::TcpStream`] with byte-exact control over headers, bodies (fixed length or chunked
//!   with trailers) and connections that are cut or stalled mid-body.
//! * tus helpers ([`head`], [`patch`], [`get`], …), `Upload-Metadata` encoding and parsing, an
//!   IMF-fixdate parser and a deterministic pseudo-random data generator.
//!
//! Every socket has a read and write timeout ([`IO_TIMEOUT`]), so no test can hang forever.
//!
//! # Environment
//!
//! * `TUS_SERVER_BIN`: the server binary (default `<workspace>/target/debug/tus-server`, honouring
//!   `CARGO_TARGET_DIR`). Build it with `cargo build -p tus-server` first.
//! * `TUS_SERVER_ARGS`: extra whitespace-separated arguments for every spawned server (for
//!   example the flags of another storage backend).
//! * `TUS_URL`: the creation URL of an already running server, used by tests that need only the
//!   default configuration ([`TestServer::start`]).
//!
//! # Example
//!
//! ```no_run
//! use conformance_tests::{TestServer, head, patch};
//!
//! let server = TestServer::start();
//! let upload = server.create(11);
//! let resp = patch(&upload, 0, b"hello world");
//! resp.expect_status(204);
//! assert_eq!(resp.header("Upload-Offset"), Some("11"));
//! assert_eq!(head(&upload).offset(), 11);
//! ```

use std::collections::BTreeMap;
use std::env;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The protocol version this suite speaks and expects in `Tus-Resumable`.
pub const TUS_RESUMABLE: &str = "1.0.0";

/// The only media type allowed for PATCH bodies (and creation-with-upload bodies).
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// Read/write timeout applied to every socket the client opens.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a spawned server may take to print its URL.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Request::try_send`] waits for `100 Continue` before sending the body anyway.
pub const CONTINUE_WAIT: Duration = Duration::from_secs(3);

/// Upper bound on the size of a response head the client accepts.
const MAX_HEAD_BYTES: usize = 1 << 20;

/// Every extension the server implements in its default configuration (without `expiration`,
/// which is listed only when `--expiration` is set).
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "concatenation",
    "concatenation-unfinished",
    "checksum",
    "checksum-trailer",
];

/// Every extension name defined by tus 1.0.
pub const KNOWN_EXTENSIONS: &[&str] = &[
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "checksum-trailer",
    "termination",
    "concatenation",
    "concatenation-unfinished",
];

/// Checksum algorithms the server must list in `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &[&str] = &["md5", "sha1", "crc32", "sha256", "sha512"];

// ---------------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------------

/// An `http://` (or `https://`) URL split into its authority (`host:port`) and request target
/// (path + query). The raw client itself speaks plain HTTP only; TLS tests use curl.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// `host:port` (or just `host`), as written in the URL.
    pub authority: String,
    /// The path and query, always starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL.
    ///
    /// # Panics
    /// Panics if the URL starts with neither.
    pub fn parse(url: &str) -> Url {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
            .unwrap_or_else(|| panic!("only absolute http(s):// URLs are supported, got {url:?}"));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        Url { scheme: scheme.to_owned(), authority: authority.to_owned(), path: path.to_owned() }
    }

    /// The origin, `<scheme>://<authority>`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The URL again, as a string.
    pub fn as_string(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }
}

/// The last path segment of a URL (the upload ID of an upload URL).
pub fn last_segment(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// The body of a [`Request`].
#[derive(Clone, Debug, Default)]
pub enum Body {
    /// No body and no automatic `Content-Length` header.
    #[default]
    None,
    /// A body framed with `Content-Length` (added automatically unless set explicitly).
    Fixed(Vec<u8>),
    /// A body sent with `Transfer-Encoding: chunked`: every element is one chunk (empty elements
    /// are skipped, since an empty chunk would end the body), followed by the trailer fields.
    Chunked {
        /// The chunks, in order.
        chunks: Vec<Vec<u8>>,
        /// Trailer fields sent after the last chunk.
        trailers: Vec<(String, String)>,
    },
}

/// A raw HTTP/1.1 request, built with a fluent API and sent over a fresh connection.
///
/// `Host` and `Connection: close` are added unless set explicitly; `Content-Length` (for
/// [`Body::Fixed`]) and `Transfer-Encoding: chunked` (for [`Body::Chunked`]) likewise.
#[derive(Clone, Debug)]
pub struct Request {
    /// The request method, sent verbatim.
    pub method: String,
    /// Where to connect and, unless [`Request::target`] overrides it, the request target.
    pub url: Url,
    /// The request target written in the request line.
    pub target: String,
    /// Header fields in order, sent verbatim.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// Read and write timeout of the socket.
    pub timeout: Duration,
}

impl Request {
    /// A request without any header besides the automatic ones.
    pub fn new(method: &str, url: &str) -> Request {
        let url = Url::parse(url);
        Request {
            method: method.to_owned(),
            target: url.path.clone(),
            url,
            headers: Vec::new(),
            body: Body::None,
            timeout: IO_TIMEOUT,
        }
    }

    /// A request carrying `Tus-Resumable: 1.0.0`.
    pub fn tus(method: &str, url: &str) -> Request {
        Request::new(method, url).header("Tus-Resumable", TUS_RESUMABLE)
    }

    /// A tus PATCH request with `Content-Type: application/offset+octet-stream` and the given
    /// `Upload-Offset`, without a body yet: give it one with [`Request::body`] or
    /// [`Request::chunked`], or stream one through [`Request::open`].
    pub fn patch_at(url: &str, offset: u64) -> Request {
        Request::tus("PATCH", url)
            .header("Content-Type", OFFSET_OCTET_STREAM)
            .header("Upload-Offset", offset.to_string())
    }

    /// A tus PATCH request with `Content-Type: application/offset+octet-stream`, the given
    /// `Upload-Offset` and body.
    pub fn patch(url: &str, offset: u64, data: &[u8]) -> Request {
        Request::patch_at(url, offset).body(data)
    }

    /// Appends a header field (several fields with the same name are allowed).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Appends several header fields.
    pub fn headers(mut self, fields: &[(&str, &str)]) -> Request {
        for (name, value) in fields {
            self.headers.push(((*name).to_owned(), (*value).to_owned()));
        }
        self
    }

    /// Removes every header field with this name (case-insensitive).
    pub fn without_header(mut self, name: &str) -> Request {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Replaces every header field with this name by a single one.
    pub fn set_header(self, name: &str, value: impl Into<String>) -> Request {
        self.without_header(name).header(name, value)
    }

    /// Overrides the request target (sent verbatim, without any normalisation).
    pub fn target(mut self, target: &str) -> Request {
        self.target = target.to_owned();
        self
    }

    /// Sets a `Content-Length`-framed body.
    pub fn body(mut self, data: impl AsRef<[u8]>) -> Request {
        self.body = Body::Fixed(data.as_ref().to_vec());
        self
    }

    /// Sets a chunked body with optional trailer fields.
    pub fn chunked(mut self, chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Request {
        self.body = Body::Chunked {
            chunks: chunks.iter().map(|c| c.to_vec()).collect(),
            trailers: trailers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        };
        self
    }

    /// Sets the socket timeout for this request.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Whether a header field with this name was set (case-insensitive).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    fn expects_continue(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("expect") && v.trim().eq_ignore_ascii_case("100-continue"))
    }

    /// The request line and header block, including the final empty line.
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        if !self.has_header("host") {
            out.extend_from_slice(format!("Host: {}\r\n", self.url.authority).as_bytes());
        }
        if !self.has_header("connection") {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match &self.body {
            Body::None => {}
            Body::Fixed(data) => {
                if !self.has_header("content-length") && !self.has_header("transfer-encoding") {
                    out.extend_from_slice(format!("Content-Length: {}\r\n", data.len()).as_bytes());
                }
            }
            Body::Chunked { .. } => {
                if !self.has_header("transfer-encoding") {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The body as it goes on the wire (with chunk framing for chunked bodies).
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Fixed(data) => data.clone(),
            Body::Chunked { chunks, trailers } => {
                let mut out = Vec::new();
                for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out
            }
        }
    }

    /// Sends the request over a new connection and reads the final response.
    ///
    /// Interim `1xx` responses are recorded in [`Response::interim`]. With
    /// `Expect: 100-continue` and a non-empty body, the body is sent only after `100 Continue`
    /// arrived (or after [`CONTINUE_WAIT`] without any answer); a final response that arrives
    /// first is returned without sending the body. If writing the body fails (the server may
    /// answer early and close), the response is still read when possible.
    pub fn try_send(&self) -> io::Result<Response> {
        let mut conn = Conn::connect(&self.url.authority, self.timeout)?;
        conn.head_request = self.method.eq_ignore_ascii_case("HEAD");
        let head = self.head_bytes();
        let body = self.body_bytes();
        if self.expects_continue() && !body.is_empty() {
            conn.write_all(&head)?;
            if conn.wait_readable(CONTINUE_WAIT)? {
                let mut interim = Vec::new();
                loop {
                    let first = conn.read_one()?;
                    if first.status == 100 {
                        interim.push(100);
                        break;
                    } else if (101..200).contains(&first.status) {
                        interim.push(first.status);
                    } else {
                        let mut first = first;
                        first.interim = interim;
                        return Ok(first);
                    }
                }
                let written = conn.write_all(&body);
                let mut resp = match (written, conn.read_response()) {
                    (_, Ok(resp)) => resp,
                    (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(e),
                };
                interim.append(&mut resp.interim);
                resp.interim = interim;
                return Ok(resp);
            }
            let written = conn.write_all(&body);
            return match (written, conn.read_response()) {
                (_, Ok(resp)) => Ok(resp),
                (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e),
            };
        }
        let mut all = head;
        all.extend_from_slice(&body);
        let written = conn.write_all(&all);
        match (written, conn.read_response()) {
            (_, Ok(resp)) => Ok(resp),
            (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// Like [`Request::try_send`], but panics with context on any I/O error.
    ///
    /// # Panics
    /// Panics if the connection fails or the response cannot be read.
    pub fn send(&self) -> Response {
        match self.try_send() {
            Ok(resp) => resp,
            Err(e) => panic!("{} {} failed: {e} (kind {:?})", self.method, self.target, e.kind()),
        }
    }

    /// Opens a connection and sends only the request line and headers; the caller writes the
    /// body (or part of it) with [`Conn::write_all`] and then reads, stalls or drops.
    ///
    /// # Panics
    /// Panics if the connection cannot be established or the head cannot be written.
    pub fn open(&self) -> Conn {
        let mut conn = Conn::connect(&self.url.authority, self.timeout)
            .unwrap_or_else(|e| panic!("connect to {} failed: {e}", self.url.authority));
        conn.head_request = self.method.eq_ignore_ascii_case("HEAD");
        conn.write_all(&self.head_bytes()).unwrap_or_else(|e| panic!("writing the request head failed: {e}"));
        conn
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A parsed HTTP/1.1 response.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// The HTTP version from the status line, e.g. `HTTP/1.1`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in the order received, with surrounding whitespace trimmed from values.
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunk framing removed).
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Status codes of interim `1xx` responses received before this one.
    pub interim: Vec<u16>,
    /// The raw status line and header block as received.
    pub raw_head: Vec<u8>,
}

impl Response {
    /// The first value of the header field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// All values of the header field `name` (case-insensitive), one per field line.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// All comma-separated elements of every field line named `name`, trimmed, empty elements
    /// removed.
    pub fn header_list(&self, name: &str) -> Vec<String> {
        self.header_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Whether a header field `name` is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The header `name` parsed as an unsigned integer.
    ///
    /// # Panics
    /// Panics if the header is present but not a plain non-negative integer.
    pub fn u64_header(&self, name: &str) -> Option<u64> {
        self.header(name).map(|v| {
            assert!(
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
                "{name} is not a non-negative integer: {v:?}\n{}",
                self.dump()
            );
            v.parse().unwrap_or_else(|e| panic!("{name}: {v:?}: {e}"))
        })
    }

    /// The `Upload-Offset` header.
    ///
    /// # Panics
    /// Panics if it is missing or malformed.
    pub fn offset(&self) -> u64 {
        self.u64_header("Upload-Offset").unwrap_or_else(|| panic!("no Upload-Offset in response:\n{}", self.dump()))
    }

    /// The `Upload-Length` header, if present.
    pub fn length(&self) -> Option<u64> {
        self.u64_header("Upload-Length")
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A human-readable rendering of the response (head plus a body prefix) for failure
    /// messages.
    pub fn dump(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.raw_head).into_owned();
        let shown = self.body.len().min(512);
        s.push_str(&String::from_utf8_lossy(&self.body[..shown]));
        if self.body.len() > shown {
            s.push_str(&format!("… ({} body bytes)", self.body.len()));
        }
        s
    }

    /// Asserts the status code, printing the whole response otherwise.
    ///
    /// # Panics
    /// Panics if the status differs.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Response {
        assert_eq!(self.status, status, "unexpected status; response was:\n{}", self.dump());
        self
    }

    /// Asserts that the status is one of `statuses`.
    ///
    /// # Panics
    /// Panics if it is not.
    #[track_caller]
    pub fn expect_status_in(&self, statuses: &[u16]) -> &Response {
        assert!(
            statuses.contains(&self.status),
            "status {} is not one of {statuses:?}; response was:\n{}",
            self.status,
            self.dump()
        );
        self
    }

    /// Asserts the tus core headers every response must carry: `Tus-Resumable: 1.0.0`.
    ///
    /// # Panics
    /// Panics if the header is missing or has another value.
    #[track_caller]
    pub fn expect_tus_resumable(&self) -> &Response {
        assert_eq!(
            self.header("Tus-Resumable"),
            Some(TUS_RESUMABLE),
            "Tus-Resumable missing or wrong; response was:\n{}",
            self.dump()
        );
        self
    }

    /// Asserts that an error response carries a short, non-empty `text/plain` body.
    ///
    /// # Panics
    /// Panics if the body is empty or the `Content-Type` is not `text/plain`.
    #[track_caller]
    pub fn expect_error_body(&self) -> &Response {
        assert!(!self.body.is_empty(), "error response has an empty body:\n{}", self.dump());
        let ct = self.header("Content-Type").unwrap_or_default().to_ascii_lowercase();
        assert!(ct.starts_with("text/plain"), "error body is not text/plain ({ct:?}):\n{}", self.dump());
        self
    }

    /// Asserts that a creation request `what` describes was refused with `status` and created
    /// nothing (no `Location`).
    ///
    /// # Panics
    /// Panics if the status differs or the response carries a `Location`.
    #[track_caller]
    pub fn expect_refused_creation(&self, status: u16, what: &str) -> &Response {
        assert_eq!(self.status, status, "{what}:\n{}", self.dump());
        assert!(!self.has_header("Location"), "{what} created an upload:\n{}", self.dump());
        self
    }

    /// Asserts that a PATCH (or another append) `what` describes was refused with `status` and
    /// `Tus-Resumable`, and that the upload at `url` is still at offset `at`.
    ///
    /// # Panics
    /// Panics if the status, `Tus-Resumable` or the offset differ.
    #[track_caller]
    pub fn expect_refused_patch(&self, status: u16, url: &str, at: u64, what: &str) -> &Response {
        assert_eq!(self.status, status, "{what}:\n{}", self.dump());
        self.expect_tus_resumable();
        assert_eq!(offset(url), at, "{what} moved the offset of {url}");
        self
    }

    /// The `Location` header.
    ///
    /// # Panics
    /// Panics if it is missing.
    pub fn location(&self) -> &str {
        self.header("Location").unwrap_or_else(|| panic!("no Location in response:\n{}", self.dump()))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dump())
    }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// What became of an open connection once the client stopped sending.
#[derive(Debug)]
pub enum Outcome {
    /// A complete final response arrived.
    Response(Response),
    /// The server closed or reset the connection without a complete response.
    Closed(io::Error),
    /// Nothing happened within the read timeout.
    TimedOut,
}

impl Outcome {
    /// The response, if any.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Outcome::Response(r) => Some(r),
            _ => None,
        }
    }

    /// Asserts that the server refused or cut the request `what` describes: an error response
    /// (status 400 or above) or a closed connection, never a success and never silence until the
    /// read timeout. Returns the error response, if there was one, for further checks.
    ///
    /// # Panics
    /// Panics on a success response or a timeout.
    #[track_caller]
    pub fn expect_refused(self, what: &str) -> Option<Response> {
        match self {
            Outcome::Response(resp) => {
                assert!(resp.status >= 400, "{what} was answered with success:\n{resp}");
                Some(resp)
            }
            Outcome::Closed(_) => None,
            Outcome::TimedOut => panic!("{what}: the server neither answered nor closed the connection"),
        }
    }
}

/// An open HTTP/1.1 connection with byte-level control over what is written and when.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// Whether the request on this connection was a HEAD (its response has no body).
    pub head_request: bool,
}

impl Conn {
    /// Connects to `authority` (`host:port`) with the given read/write timeout.
    pub fn connect(authority: &str, timeout: Duration) -> io::Result<Conn> {
        let addr =
            authority.to_socket_addrs()?.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
        Ok(Conn { stream, reader, head_request: false })
    }

    /// Sends a whole request on this (possibly reused) connection and reads its final response.
    /// Set `Connection: keep-alive` on `req` to keep the connection usable afterwards.
    pub fn send(&mut self, req: &Request) -> io::Result<Response> {
        self.head_request = req.method.eq_ignore_ascii_case("HEAD");
        let mut all = req.head_bytes();
        all.extend_from_slice(&req.body_bytes());
        let written = self.write_all(&all);
        match (written, self.read_response()) {
            (_, Ok(resp)) => Ok(resp),
            (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// Writes raw bytes and flushes.
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)?;
        self.stream.flush()
    }

    /// Changes the read timeout.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Half-closes the connection: the server sees the end of the byte stream.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// Waits up to `timeout` until a response byte (or the end of the stream) is available.
    pub fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        let previous = self.stream.read_timeout()?;
        self.stream.set_read_timeout(Some(timeout))?;
        let result = match self.reader.fill_buf() {
            Ok(_) => Ok(true),
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) => Err(e),
        };
        self.stream.set_read_timeout(previous)?;
        result
    }

    /// Reads one response message, including an interim `1xx` one.
    pub fn read_one(&mut self) -> io::Result<Response> {
        read_message(&mut self.reader, self.head_request)
    }

    /// Reads the final response, recording (and skipping) interim `1xx` responses.
    pub fn read_response(&mut self) -> io::Result<Response> {
        let mut interim = Vec::new();
        loop {
            let mut resp = self.read_one()?;
            if (100..200).contains(&resp.status) && resp.status != 101 {
                interim.push(resp.status);
                continue;
            }
            resp.interim = interim;
            return Ok(resp);
        }
    }

    /// Reads the final response and classifies the result (response, closed, timed out).
    pub fn finish(&mut self) -> Outcome {
        match self.read_response() {
            Ok(resp) => Outcome::Response(resp),
            Err(e) if is_timeout(&e) => Outcome::TimedOut,
            Err(e) => Outcome::Closed(e),
        }
    }

    /// Reads raw bytes until the server closes the connection (or the read timeout hits).
    pub fn read_to_end(&mut self) -> RawReply {
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return RawReply { data, closed: true },
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {
                    return RawReply { data, closed: false };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return RawReply { data, closed: true },
            }
        }
    }
}

/// Whether an I/O error is a socket timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Bytes received by [`raw_exchange`] or [`Conn::read_to_end`].
#[derive(Clone, Debug)]
pub struct RawReply {
    /// Everything received.
    pub data: Vec<u8>,
    /// `true` if the server closed (or reset) the connection, `false` on a read timeout.
    pub closed: bool,
}

impl RawReply {
    /// The status code of the first status line, if the reply starts with one.
    pub fn status(&self) -> Option<u16> {
        let line_end = self.data.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&self.data[..line_end]);
        let mut parts = line.split_whitespace();
        let version = parts.next()?;
        if !version.starts_with("HTTP/") {
            return None;
        }
        parts.next()?.parse().ok()
    }

    /// The bytes after the first empty line (`\r\n\r\n`), i.e. after the first response head.
    pub fn after_head(&self) -> Option<&[u8]> {
        let pos = self.data.windows(4).position(|w| w == b"\r\n\r\n")?;
        Some(&self.data[pos + 4..])
    }

    /// The received bytes as lossy text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Writes `bytes` verbatim to a new connection and reads until the server closes it (or
/// [`IO_TIMEOUT`] passes without data). Write errors are ignored: whatever was received is
/// returned.
///
/// # Panics
/// Panics if the connection cannot be established.
pub fn raw_exchange(authority: &str, bytes: &[u8]) -> RawReply {
    let mut conn =
        Conn::connect(authority, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect to {authority} failed: {e}"));
    let _ = conn.write_all(bytes);
    conn.read_to_end()
}

fn read_line(reader: &mut BufReader<TcpStream>, budget: &mut usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = reader.by_ref().take(*budget as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    if n > *budget {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "response head too large"));
    }
    *budget -= n;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-line"));
    }
    Ok(line)
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_fields(
    reader: &mut BufReader<TcpStream>,
    budget: &mut usize,
    raw: &mut Vec<u8>,
) -> io::Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    loop {
        let line = read_line(reader, budget)?;
        raw.extend_from_slice(&line);
        let line = trim_crlf(&line);
        if line.is_empty() {
            return Ok(fields);
        }
        let text = String::from_utf8_lossy(line);
        let (name, value) = text.split_once(':').ok_or_else(|| invalid(format!("malformed header line {text:?}")))?;
        fields.push((name.to_owned(), value.trim().to_owned()));
    }
}

fn read_message(reader: &mut BufReader<TcpStream>, head_request: bool) -> io::Result<Response> {
    let mut budget = MAX_HEAD_BYTES;
    let mut raw = Vec::new();
    let status_line = read_line(reader, &mut budget)?;
    raw.extend_from_slice(&status_line);
    let text = String::from_utf8_lossy(trim_crlf(&status_line)).into_owned();
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_owned();
    if !version.starts_with("HTTP/") {
        return Err(invalid(format!("malformed status line {text:?}")));
    }
    let status: u16 =
        parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| invalid(format!("malformed status line {text:?}")))?;
    let reason = parts.next().unwrap_or_default().to_owned();
    let headers = read_fields(reader, &mut budget, &mut raw)?;
    let mut resp = Response { version, status, reason, headers, raw_head: raw, ..Response::default() };
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(resp);
    }
    let chunked = resp.header_list("Transfer-Encoding").last().is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            let mut line_budget = 4096;
            let line = read_line(reader, &mut line_budget)?;
            let line = String::from_utf8_lossy(trim_crlf(&line)).into_owned();
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| invalid(format!("malformed chunk size {line:?}")))?;
            if size == 0 {
                let mut trailer_raw = Vec::new();
                let mut trailer_budget = MAX_HEAD_BYTES;
                resp.trailers = read_fields(reader, &mut trailer_budget, &mut trailer_raw)?;
                return Ok(resp);
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            reader.read_exact(&mut resp.body[start..])?;
            let mut crlf_budget = 2;
            let crlf = read_line(reader, &mut crlf_budget)?;
            if trim_crlf(&crlf) != b"" {
                return Err(invalid("chunk not followed by CRLF".to_owned()));
            }
        }
    }
    if let Some(len) = resp.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| invalid(format!("malformed Content-Length {len:?}")))?;
        resp.body.resize(len, 0);
        reader.read_exact(&mut resp.body)?;
        return Ok(resp);
    }
    reader.read_to_end(&mut resp.body)?;
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------

/// The path of the `tus-server` binary: `TUS_SERVER_BIN`, else
/// `<target-dir>/debug/tus-server` where the target dir is `CARGO_TARGET_DIR` (relative paths
/// are resolved against the workspace) or `<workspace>/target`.
pub fn server_binary() -> PathBuf {
    if let Some(bin) = env::var_os("TUS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    let target = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace.join(dir) }
        }
        None => workspace.join("target"),
    };
    target.join("debug").join("tus-server")
}

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A private temporary directory, removed on drop.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> ScratchDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = env::temp_dir().join(format!("tus-conformance-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        ScratchDir(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Log = Arc<Mutex<Vec<String>>>;

fn push_log(log: &Log, line: String) {
    if let Ok(mut lines) = log.lock() {
        if lines.len() >= 5000 {
            lines.drain(..1000);
        }
        lines.push(line);
    }
}

/// Copies every line the server prints on `stream` into `log` (tagged `[name]`) on a thread of
/// its own, and hands each line to `lines` too when given (where the start-up looks for the URL).
fn capture_lines(
    stream: impl Read + Send + 'static,
    log: &Log,
    name: &'static str,
    lines: Option<mpsc::Sender<String>>,
) {
    let log = Arc::clone(log);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            push_log(&log, format!("[{name}] {line}"));
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    });
}

/// Extracts the first `http://…` token from a line of server output.
pub fn extract_url(line: &str) -> Option<String> {
    let start = line.find("http://").or_else(|| line.find("https://"))?;
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '\'' | '>'))
        .collect();
    Some(url)
}

/// A tus server under test: a spawned `tus-server` process (killed on drop) or an external one
/// given by `TUS_URL`.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    url: String,
    origin: String,
    authority: String,
    base_path: String,
    log: Log,
    _dir: Option<ScratchDir>,
}

impl TestServer {
    /// A server with the default configuration: the one at `TUS_URL` if that variable is set,
    /// else a freshly spawned one.
    pub fn start() -> TestServer {
        match env::var("TUS_URL") {
            Ok(url) if !url.trim().is_empty() => TestServer::external(url.trim()),
            _ => TestServer::spawn(&[]),
        }
    }

    fn external(url: &str) -> TestServer {
        let parsed = Url::parse(url);
        TestServer {
            child: None,
            url: url.to_owned(),
            origin: parsed.origin(),
            authority: parsed.authority.clone(),
            base_path: parsed.path,
            log: Log::default(),
            _dir: None,
        }
    }

    /// Spawns `tus-server --host 127.0.0.1 --port 0 --upload-dir <tmp> <extra...>
    /// <TUS_SERVER_ARGS...>` and waits until it prints its creation URL.
    ///
    /// # Panics
    /// Panics if the binary is missing, the server exits early or prints no URL in time.
    pub fn spawn(extra: &[&str]) -> TestServer {
        let dir = ScratchDir::new();
        let path = dir.0.clone();
        TestServer::spawn_at(&path, Some(dir), extra)
    }

    /// Like [`TestServer::spawn`], but storing uploads in `dir` (which outlives the server),
    /// so a second server can be started over the same uploads.
    pub fn spawn_in(dir: &std::path::Path, extra: &[&str]) -> TestServer {
        TestServer::spawn_at(dir, None, extra)
    }

    /// The server process's ID, if this test spawned it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits (at most `within`) for the server to exit; returns its exit code.
    ///
    /// # Panics
    /// Panics if the server was not spawned by the test or does not exit in time.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("only a spawned server can be terminated");
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGTERM");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tus-server did not exit within {within:?} of SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn_at(upload_dir: &std::path::Path, dir: Option<ScratchDir>, extra: &[&str]) -> TestServer {
        let bin = server_binary();
        assert!(
            bin.is_file(),
            "tus-server binary not found at {}; run `cargo build -p tus-server` first (or set \
             TUS_SERVER_BIN)",
            bin.display()
        );
        let mut cmd = Command::new(&bin);
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--upload-dir"])
            .arg(upload_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Ok(more) = env::var("TUS_SERVER_ARGS") {
            cmd.args(more.split_whitespace());
            // On a shared bucket, every server keeps to a key prefix named after its upload
            // directory: a second server over the same directory (a restart) sees the first
            // one's uploads, and no test's server inspects or reaps another test's uploads.
            let prefixed =
                extra.iter().chain(&more.split_whitespace().collect::<Vec<_>>()).any(|a| *a == "--s3-object-prefix");
            if more.contains("--s3-bucket") && !prefixed {
                let name = upload_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let name: String =
                    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.').collect();
                cmd.args(["--s3-object-prefix", &format!("t-{name}/")]);
            }
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));
        let log = Log::default();
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(stdout) = child.stdout.take() {
            capture_lines(stdout, &log, "stdout", Some(tx));
        }
        if let Some(stderr) = child.stderr.take() {
            capture_lines(stderr, &log, "stderr", None);
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = extract_url(&line) {
                        break url;
                    }
                }
                Err(err) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let _ = child.wait();
                    let lines = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                    panic!(
                        "tus-server ({} {extra:?}) printed no URL ({err:?}; exit status \
                         {status:?}); output:\n{lines}",
                        bin.display()
                    );
                }
            }
        };
        let parsed = Url::parse(&url);
        let server = TestServer {
            child: Some(child),
            origin: parsed.origin(),
            authority: parsed.authority.clone(),
            base_path: parsed.path,
            url,
            log,
            _dir: dir,
        };
        server.wait_until_accepting();
        server
    }

    fn wait_until_accepting(&self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if TcpStream::connect(&self.authority).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "server at {} does not accept", self.authority);
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether this server was spawned by the test (as opposed to `TUS_URL`).
    pub fn is_spawned(&self) -> bool {
        self.child.is_some()
    }

    /// The creation URL, e.g. `http://127.0.0.1:40123/files/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The origin, e.g. `http://127.0.0.1:40123`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path of the creation URL, e.g. `/files/`.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// An absolute URL for a path on this server (`path` must start with `/`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Everything the server printed so far (spawned servers only).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Resolves a `Location` value against the creation URL.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            self.at(location)
        } else {
            format!("{}{location}", self.url)
        }
    }

    /// A tus POST to the creation URL (no body yet).
    pub fn post(&self) -> Request {
        Request::tus("POST", &self.url)
    }

    /// Creates an upload with the extra headers and returns its absolute URL.
    ///
    /// # Panics
    /// Panics unless the server answers `201` with a `Location`.
    #[track_caller]
    pub fn create_with(&self, headers: &[(&str, &str)]) -> String {
        let resp = self.post().headers(headers).body(b"").send();
        resp.expect_status(201);
        self.resolve(resp.location())
    }

    /// Creates an upload of `length` bytes and returns its absolute URL.
    #[track_caller]
    pub fn create(&self, length: u64) -> String {
        self.create_with(&[("Upload-Length", &length.to_string())])
    }

    /// Creates an upload with `Upload-Defer-Length: 1`.
    #[track_caller]
    pub fn create_deferred(&self) -> String {
        self.create_with(&[("Upload-Defer-Length", "1")])
    }

    /// Creates an upload of `data.len()` bytes and completes it with one PATCH.
    #[track_caller]
    pub fn upload(&self, data: &[u8]) -> String {
        self.upload_with(data, &[])
    }

    /// Like [`TestServer::upload`], with extra creation headers (e.g. metadata).
    #[track_caller]
    pub fn upload_with(&self, data: &[u8], headers: &[(&str, &str)]) -> String {
        let len = data.len().to_string();
        let mut all = vec![("Upload-Length", len.as_str())];
        all.extend_from_slice(headers);
        let url = self.create_with(&all);
        if !data.is_empty() {
            let resp = patch(&url, 0, data);
            resp.expect_status(204);
            assert_eq!(resp.offset(), data.len() as u64);
        }
        url
    }

    /// Creates a partial upload (`Upload-Concat: partial`) of `length` bytes.
    #[track_caller]
    pub fn create_partial(&self, length: u64) -> String {
        self.create_with(&[("Upload-Concat", "partial"), ("Upload-Length", &length.to_string())])
    }

    /// Creates a completed partial upload holding `data`.
    #[track_caller]
    pub fn upload_partial(&self, data: &[u8]) -> String {
        let url = self.create_partial(data.len() as u64);
        if !data.is_empty() {
            patch(&url, 0, data).expect_status(204);
        }
        url
    }

    /// The URL of an upload that does not exist (a well-formed ID of 32 zeros).
    pub fn unknown_url(&self) -> String {
        format!("{}{}", self.url, "0".repeat(32))
    }

    /// `OPTIONS` on the creation URL (without `Tus-Resumable`).
    pub fn options(&self) -> Response {
        Request::new("OPTIONS", &self.url).send()
    }

    /// The elements of `Tus-Extension` from an OPTIONS response.
    pub fn extensions(&self) -> Vec<String> {
        self.options().header_list("Tus-Extension")
    }

    /// Asserts that `OPTIONS` lists `extension` in `Tus-Extension`.
    ///
    /// # Panics
    /// Panics if it does not.
    #[track_caller]
    pub fn expect_extension(&self, extension: &str) {
        let listed = self.extensions();
        assert!(listed.iter().any(|e| e == extension), "{extension} is not in Tus-Extension {listed:?}");
    }

    /// Sends `head` (a request line and header fields, each ending in CRLF) and then `body` on a
    /// raw connection, adding `Host` and `Connection: close` to the head, and reads all the server
    /// answers until it closes.
    pub fn raw_close(&self, head: &str, body: &[u8]) -> RawReply {
        let mut bytes = format!("{head}Host: {}\r\nConnection: close\r\n\r\n", self.authority).into_bytes();
        bytes.extend_from_slice(body);
        raw_exchange(&self.authority, &bytes)
    }

    /// Asserts that the server still answers `OPTIONS` with `200`.
    ///
    /// # Panics
    /// Panics if it does not.
    #[track_caller]
    pub fn assert_healthy(&self) {
        let resp = Request::new("OPTIONS", &self.url)
            .try_send()
            .unwrap_or_else(|e| panic!("server no longer answers OPTIONS: {e}"));
        resp.expect_status(200);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() && !self.log().is_empty() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("---- tus-server output (last {} lines) ----", tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// Declares a test, `#[test] fn $name`, asserting that a default server ([`TestServer::start`])
/// lists `$extension` in `Tus-Extension`: the "is listed" item of each extension's section.
///
/// ```text
/// conformance_tests::extension_listed!(k1_checksum_listed, "checksum");
/// ```
#[macro_export]
macro_rules! extension_listed {
    ($name:ident, $extension:literal) => {
        #[test]
        fn $name() {
            $crate::TestServer::start().expect_extension($extension);
        }
    };
}

// ---------------------------------------------------------------------------------------------
// tus helpers
// ---------------------------------------------------------------------------------------------

/// `HEAD <url>` with `Tus-Resumable`.
pub fn head(url: &str) -> Response {
    Request::tus("HEAD", url).send()
}

/// The `Upload-Offset` reported by `HEAD <url>`.
///
/// # Panics
/// Panics if the HEAD does not succeed with an `Upload-Offset`.
#[track_caller]
pub fn offset(url: &str) -> u64 {
    let resp = head(url);
    resp.expect_status(200);
    resp.offset()
}

/// `Upload-Offset` and `Upload-Length` (if known) as `HEAD <url>` reports them.
///
/// # Panics
/// Panics unless the HEAD succeeds (`200`) with a valid `Upload-Offset` (and a well-formed
/// `Upload-Length`, if any).
#[track_caller]
pub fn offset_and_length(url: &str) -> (u64, Option<u64>) {
    let resp = head(url);
    resp.expect_status(200);
    (resp.offset(), resp.length())
}

/// Asserts that `url` is a complete upload holding exactly `data`: HEAD reports both
/// `Upload-Offset` and `Upload-Length` as `data.len()`, and GET answers `200` with `data`.
///
/// # Panics
/// Panics if either differs.
#[track_caller]
pub fn expect_complete(url: &str, data: &[u8]) {
    let len = data.len() as u64;
    assert_eq!(offset_and_length(url), (len, Some(len)), "offset and length of {url}");
    let body = get(url).expect_status(200).body.clone();
    assert!(body == data, "GET {url} returned {}, expected {}", preview(&body), preview(data));
}

/// Bytes as (lossy) text for a failure message, cut after 200 bytes.
fn preview(data: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&data[..data.len().min(200)]).into_owned();
    if data.len() > 200 { format!("{shown:?}… ({} bytes)", data.len()) } else { format!("{shown:?}") }
}

/// The request line and tus header fields (each ending in CRLF) of a PATCH to `url` at offset
/// `at`, as raw text for [`TestServer::raw_close`]: the framing header (`Content-Length`, …) is
/// the caller's.
pub fn raw_patch_head(url: &str, at: u64) -> String {
    let path = Url::parse(url).path;
    format!(
        "PATCH {path} HTTP/1.1\r\nTus-Resumable: {TUS_RESUMABLE}\r\nContent-Type: {OFFSET_OCTET_STREAM}\r\n\
         Upload-Offset: {at}\r\n"
    )
}

/// `PATCH <url>` with the given offset and body.
pub fn patch(url: &str, offset: u64, data: &[u8]) -> Response {
    Request::patch(url, offset, data).send()
}

/// How long [`patch_in_flight`] waits after writing, so that the server has read the bytes.
pub const IN_FLIGHT_PAUSE: Duration = Duration::from_millis(300);

/// How long [`expect_offset_settles`] polls for an offset to reach its value.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens a PATCH at `offset` that announces `Content-Length: declared` and sends no byte of the
/// body yet: the test writes, stalls, half-closes or drops the body through the returned
/// [`Conn`].
///
/// # Panics
/// Panics if the connection cannot be established.
pub fn open_patch(url: &str, offset: u64, declared: usize) -> Conn {
    Request::patch_at(url, offset).header("Content-Length", declared.to_string()).open()
}

/// A PATCH in flight: [`open_patch`] at offset 0 announcing `declared` bytes, of which it writes
/// `sent`, then waits [`IN_FLIGHT_PAUSE`] so that the server has read them. The test then
/// interrupts it (drops it, deletes the upload, races a second request, …).
///
/// # Panics
/// Panics if the connection cannot be established or the bytes cannot be written.
pub fn patch_in_flight(url: &str, declared: usize, sent: &[u8]) -> Conn {
    let mut conn = open_patch(url, 0, declared);
    conn.write_all(sent).unwrap_or_else(|e| panic!("writing the first {} body bytes failed: {e}", sent.len()));
    thread::sleep(IN_FLIGHT_PAUSE);
    conn
}

/// Polls `HEAD <url>` for up to [`SETTLE_TIMEOUT`] until it reports `Upload-Offset: want` (the
/// server may still be storing what it received when the request ended).
///
/// # Panics
/// Panics with `what` and the last offset seen if the offset does not get there in time.
#[track_caller]
pub fn expect_offset_settles(url: &str, want: u64, what: &str) {
    let mut seen = None;
    let reached = poll(SETTLE_TIMEOUT, || {
        let now = offset(url);
        seen = Some(now);
        (now == want).then_some(now)
    });
    assert_eq!(reached, Some(want), "{what}: offset {seen:?} after {SETTLE_TIMEOUT:?}, expected {want}");
}

/// The offset of `url` once it has settled after an interrupted request: polls HEAD (for up to
/// 3 s) until it reports a non-zero offset twice in a row, and returns it (or the last offset
/// seen, 0 if none, when it never settles).
///
/// # Panics
/// Panics if a HEAD does not succeed with an `Upload-Offset`.
#[track_caller]
pub fn settled_offset(url: &str) -> u64 {
    let mut last = None;
    poll(Duration::from_secs(3), || {
        let now = offset(url);
        let stable = last == Some(now) && now > 0;
        last = Some(now);
        stable.then_some(now)
    })
    .unwrap_or_else(|| last.unwrap_or(0))
}

/// `GET <url>` (no tus headers: downloads do not need them).
pub fn get(url: &str) -> Response {
    Request::new("GET", url).send()
}

/// `DELETE <url>` with `Tus-Resumable`.
pub fn delete(url: &str) -> Response {
    Request::tus("DELETE", url).send()
}

/// `OPTIONS <url>` without `Tus-Resumable`.
pub fn options(url: &str) -> Response {
    Request::new("OPTIONS", url).send()
}

/// Polls `check` every 50 ms until it returns `Some`, or returns `None` after `timeout`.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), different for every seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Standard base64 (with padding), as used by `Upload-Metadata` and `Upload-Checksum`.
pub fn b64(data: impl AsRef<[u8]>) -> String {
    BASE64.encode(data)
}

/// Builds an `Upload-Metadata` value: `key base64(value)` pairs, key-only for empty values.
pub fn encode_metadata(pairs: &[(&str, &[u8])]) -> String {
    pairs
        .iter()
        .map(|(k, v)| if v.is_empty() { (*k).to_owned() } else { format!("{k} {}", b64(v)) })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses an `Upload-Metadata` value into keys and decoded values (key-only entries map to an
/// empty value). Whitespace around pairs is tolerated.
///
/// # Errors
/// Returns a description if the value is malformed (empty key, extra parts, invalid base64,
/// duplicate key).
pub fn parse_metadata(value: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for pair in value.split(',') {
        let mut parts = pair.trim().split(' ');
        let key = parts.next().unwrap_or_default();
        if key.is_empty() {
            return Err(format!("empty key in {value:?}"));
        }
        let decoded = match parts.next() {
            None | Some("") => Vec::new(),
            Some(v) => BASE64.decode(v).map_err(|e| format!("bad base64 {v:?}: {e}"))?,
        };
        if parts.next().is_some() {
            return Err(format!("too many parts in {pair:?}"));
        }
        if out.insert(key.to_owned(), decoded).is_some() {
            return Err(format!("duplicate key {key:?}"));
        }
    }
    Ok(out)
}

/// The metadata map of a response's `Upload-Metadata` header (empty if absent).
///
/// # Panics
/// Panics if the header is malformed.
pub fn response_metadata(resp: &Response) -> BTreeMap<String, Vec<u8>> {
    match resp.header("Upload-Metadata") {
        None => BTreeMap::new(),
        Some(v) => parse_metadata(v).unwrap_or_else(|e| panic!("server sent malformed Upload-Metadata: {e}")),
    }
}

/// A metadata map from literal pairs, for comparisons.
pub fn metadata_map(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())).collect()
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), strictly: exact layout,
/// valid ranges and a weekday consistent with the date.
pub fn parse_imf_fixdate(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 29 || &s[3..5] != ", " || &s[28..] != "T" || &s[25..29] != " GMT" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) { t.parse().ok() } else { None }
    };
    let weekday = &s[0..3];
    let day = num(5..7)?;
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? as i64 + 1;
    let year = num(12..16)?;
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if WEEKDAYS[days.rem_euclid(7) as usize] != weekday {
        return None;
    }
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// An HS256 JWT over `claims` (a JSON object, e.g. `{"sub":"alice","exp":...}`) signed with
/// `secret`, as `tus-server --auth-jwt-key-file` checks them.
pub fn hs256_token(secret: &str, claims: &str) -> String {
    use hmac::Mac as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let input = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(claims.as_bytes()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// The `sig` of a signed download URL of upload `id` expiring at `expires` (Unix seconds), as
/// `tus-server --signing-key key` checks it.
pub fn sign(key: &str, id: &str, expires: u64) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("GET\n{id}\n{expires}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Unix seconds an hour from now: a token's `exp`.
pub fn in_an_hour() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 3600
}

/// Writes an executable `/bin/sh` script `dir/name` with `body` (an exec hook for `--hooks-dir`).
///
/// # Panics
/// Panics if the file cannot be written.
pub fn write_script(dir: &std::path::Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot make {name} executable: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imf_fixdate_parses() {
        let t = parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        assert!(parse_imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT").is_none());
        assert!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(parse_imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT").is_none());
    }

    #[test]
    fn metadata_roundtrip() {
        let v = encode_metadata(&[("a", b"x y"), ("flag", b"")]);
        assert_eq!(v, "a eCB5,flag");
        let m = parse_metadata(&v).unwrap();
        assert_eq!(m, metadata_map(&[("a", b"x y"), ("flag", b"")]));
        assert!(parse_metadata("a YQ==,a Yg==").is_err());
        assert!(parse_metadata("a ***").is_err());
        assert!(parse_metadata("a YQ== b").is_err());
    }

    #[test]
    fn chunked_body_framing() {
        let req = Request::new("PATCH", "http://127.0.0.1:1/files/x")
            .chunked(&[b"hello", b"", b" world"], &[("Upload-Checksum", "sha1 abc")]);
        assert_eq!(req.body_bytes(), b"5\r\nhello\r\n6\r\n world\r\n0\r\nUpload-Checksum: sha1 abc\r\n\r\n".to_vec());
        let head = String::from_utf8(req.head_bytes()).unwrap();
        assert!(head.starts_with("PATCH /files/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
        assert!(head.contains("Transfer-Encoding: chunked\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn url_helpers() {
        let u = Url::parse("http://127.0.0.1:8080/files/abc");
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path, "/files/abc");
        assert_eq!(last_segment("http://h/files/abc"), "abc");
        assert_eq!(
            extract_url("tus-server listening on http://127.0.0.1:4/files/ now").as_deref(),
            Some("http://127.0.0.1:4/files/")
        );
    }
}
