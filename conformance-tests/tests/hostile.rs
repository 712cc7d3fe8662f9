//! Hostile input, table-driven: every row is one hostile request against a server started with
//! tight limits (`--max-size 1 MiB`, `--body-read-timeout 2s`, `--header-read-timeout 2s`). For
//! each row the answer must be the documented 4xx (or a closed connection where HTTP gives the
//! server no other choice), and afterwards the server must still answer `OPTIONS` with `200`
//! and two bystander uploads created before any attack must be untouched: a complete one (same
//! offset, same bytes via `GET`) and an unfinished one (same offset; completed and compared
//! byte for byte at the end).
//!
//! `robustness.rs` keeps the older hostile tests (plain `..` traversal in IDs, garbage request
//! lines, smuggled bodies); this table covers the rest of the hostile-input list of issue 8.

use std::thread;
use std::time::{Duration, Instant};

use conformance_tests::{
    Conn, OFFSET_OCTET_STREAM, Request, TestServer, Url, b64, get, head, last_segment, patch, pseudo_random,
};

const CT: (&str, &str) = ("Content-Type", OFFSET_OCTET_STREAM);
const MAX_SIZE: u64 = 1024 * 1024;
const SERVER_FLAGS: &[&str] =
    &["--max-size", "1048576", "--body-read-timeout", "2s", "--header-read-timeout", "2s", "--lock-timeout", "2s"];

/// What is sent.
enum Attack {
    /// A request through the raw client (headers and body byte-exact).
    Http(Request),
    /// Bytes written verbatim on a fresh connection; the reply is read until the server closes.
    Raw(Vec<u8>),
    /// Slowloris: these bytes trickled one per `every`, never finishing the head.
    Trickle { bytes: Vec<u8>, every: Duration },
    /// A chunked PATCH that sends one chunk and then nothing, never the last chunk.
    EndlessChunked(Request),
}

/// What must come back.
enum Expect {
    /// A response with one of these statuses (every one a 4xx).
    Status(&'static [u16]),
    /// One of these statuses, or the server closing the connection without an answer.
    StatusOrClosed(&'static [u16]),
    /// A stalled body: the documented `500` with `Connection: close`, or a closed connection,
    /// within a bound of the read timeout.
    StalledBodyCut,
    /// Exactly one response with one of these statuses, then the connection closed: what
    /// RFC 9112 §6.1 demands for a request framed with both Content-Length and
    /// Transfer-Encoding (a server may reject it or decode it as chunked, but must close).
    OneAnswerThenClosed(&'static [u16]),
}

struct Case {
    name: String,
    attack: Attack,
    expect: Expect,
}

fn case(name: impl Into<String>, attack: Attack, expect: Expect) -> Case {
    Case { name: name.into(), attack, expect }
}

/// The server and what the attacks aim at.
struct Ctx {
    s: TestServer,
    /// Complete bystander: URL and bytes.
    done: (String, Vec<u8>),
    /// Unfinished bystander: URL, its full data, and how much of it was sent.
    open: (String, Vec<u8>, usize),
    /// A complete partial upload and a final built from it.
    partial: String,
    final_url: String,
}

impl Ctx {
    fn new() -> Ctx {
        let s = TestServer::spawn(SERVER_FLAGS);
        let done_data = pseudo_random(4000, 801);
        let done = s.upload(&done_data);
        let open_data = pseudo_random(5000, 802);
        let open = s.create(open_data.len() as u64);
        patch(&open, 0, &open_data[..1234]).expect_status(204);
        let partial = s.upload_partial(b"partial bytes");
        let resp = s.post().header("Upload-Concat", format!("final;{partial}")).body(b"").send();
        resp.expect_status(201);
        let final_url = s.resolve(resp.location());
        Ctx { done: (done, done_data), open: (open, open_data, 1234), partial, final_url, s }
    }

    fn path_of(&self, url: &str) -> String {
        Url::parse(url).path
    }

    /// Healthy server, bystanders untouched.
    #[track_caller]
    fn check_after(&self, what: &str) {
        let resp = Request::new("OPTIONS", self.s.url())
            .try_send()
            .unwrap_or_else(|e| panic!("after {what}: the server no longer answers OPTIONS: {e}"));
        assert_eq!(resp.status, 200, "after {what}: OPTIONS\n{resp}");
        let (url, data) = &self.done;
        let h = head(url);
        assert_eq!(h.status, 200, "after {what}: HEAD of the complete bystander\n{h}");
        assert_eq!(h.offset(), data.len() as u64, "after {what}: complete bystander's offset changed");
        let g = get(url);
        assert_eq!(g.status, 200, "after {what}: GET of the complete bystander\n{g}");
        assert!(g.body == *data, "after {what}: the complete bystander's bytes changed");
        let (url, _, sent) = &self.open;
        let h = head(url);
        assert_eq!(h.status, 200, "after {what}: HEAD of the unfinished bystander\n{h}");
        assert_eq!(h.offset(), *sent as u64, "after {what}: unfinished bystander's offset changed");
    }

    /// Completes the unfinished bystander and compares every byte.
    fn finish_open_bystander(&self) {
        let (url, data, sent) = &self.open;
        patch(url, *sent as u64, &data[*sent..]).expect_status(204);
        let g = get(url);
        g.expect_status(200);
        assert!(g.body == *data, "the unfinished bystander's bytes changed");
    }
}

fn raw_request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn with_raw_header(mut head: Vec<u8>, raw: &[u8]) -> Vec<u8> {
    // Insert a raw header line (arbitrary bytes) before the final empty line.
    let end = head.len() - 2;
    let tail = head.split_off(end);
    head.extend_from_slice(raw);
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(&tail);
    head
}

const S400: &[u16] = &[400];
const S400_404: &[u16] = &[400, 404];
const S400_404_414: &[u16] = &[400, 404, 414, 431];
const S400_431: &[u16] = &[400, 431];
const S409: &[u16] = &[409];
const S413: &[u16] = &[413];

/// The hostile table. Every case is built against `ctx` (its bystanders are never targeted
/// with anything that could legitimately change them).
fn cases(ctx: &Ctx) -> Vec<Case> {
    use Attack::{EndlessChunked, Http, Raw, Trickle};
    use Expect::{StalledBodyCut, Status, StatusOrClosed};
    let s = &ctx.s;
    let url = s.url();
    let base = s.base_path().to_owned();
    let done_id = last_segment(&ctx.done.0).to_owned();
    let open_id = last_segment(&ctx.open.0).to_owned();
    let done_path = ctx.path_of(&ctx.done.0);
    let open_path = ctx.path_of(&ctx.open.0);
    let partial_path = ctx.path_of(&ctx.partial);
    let partial_id = last_segment(&ctx.partial).to_owned();
    let final_path = ctx.path_of(&ctx.final_url);
    let victim = |len: u64| s.create(len);
    let tus_at = |method: &str, target: &str| Request::tus(method, url).target(target);
    let mut t = Vec::new();

    // ---- upload IDs: encoded and disguised traversal, NUL bytes, oversized -------------------
    for (name, target) in [
        ("double-encoded traversal", format!("{base}%252e%252e%252f%252e%252e%252fetc%252fpasswd")),
        ("overlong UTF-8 dots", format!("{base}%c0%ae%c0%ae%c0%afetc%c0%afpasswd")),
        ("backslash traversal", format!("{base}..%5c..%5c{done_id}")),
        ("semicolon path parameter", format!("{base}..;/{done_id}")),
        ("encoded NUL after a real ID", format!("{base}{done_id}%00")),
        ("encoded NUL then .info", format!("{base}{done_id}%00.info")),
        ("encoded slash into the ID", format!("{base}{done_id}%2f..%2f{open_id}")),
        ("ID with trailing encoded space", format!("{base}{done_id}%20")),
        ("tilde home directory", format!("{base}~root")),
        ("10 KB ID", format!("{base}{}", "a".repeat(10_000))),
        ("marker file of a real upload", format!("{base}{open_id}.unverified")),
    ] {
        t.push(case(format!("HEAD {name}"), Http(tus_at("HEAD", &target)), Status(S400_404_414)));
        t.push(case(
            format!("DELETE {name}"),
            Http(tus_at("DELETE", &target)),
            if name == "10 KB ID" { Status(S400_404_414) } else { Status(S400_404) },
        ));
    }
    t.push(case(
        "PATCH through encoded traversal onto the unfinished bystander",
        Http(
            tus_at("PATCH", &format!("{base}x%2f..%2f{open_id}"))
                .headers(&[CT, ("Upload-Offset", "1234")])
                .body(b"evil"),
        ),
        Status(S400_404),
    ));
    t.push(case(
        "GET with a raw NUL byte in the path",
        Raw(raw_request("GET", &format!("{base}{done_id}\0"), &[], b"")),
        StatusOrClosed(S400_404),
    ));
    t.push(case(
        "POST with a raw NUL byte in Upload-Length",
        Raw(with_raw_header(
            raw_request("POST", &base, &[("Tus-Resumable", "1.0.0"), ("Content-Length", "0")], b""),
            b"Upload-Length: 5\0",
        )),
        StatusOrClosed(S400),
    ));
    t.push(case(
        "POST with a raw NUL byte in Upload-Metadata",
        Raw(with_raw_header(
            raw_request(
                "POST",
                &base,
                &[("Tus-Resumable", "1.0.0"), ("Upload-Length", "5"), ("Content-Length", "0")],
                b"",
            ),
            b"Upload-Metadata: filename a\0b",
        )),
        StatusOrClosed(S400),
    ));

    // ---- numbers: negative, overflowing, malformed, beyond limits ----------------------------
    for (name, value) in [
        ("negative", "-1"),
        ("u64 overflow", "18446744073709551616"),
        ("30 digits", "999999999999999999999999999999"),
        ("plus sign", "+5"),
        ("hex", "0x10"),
        ("exponent", "1e3"),
        ("inner space", "5 5"),
        ("list", "5, 6"),
        ("empty", ""),
        ("fraction", "5.0"),
        ("unicode digits", "\u{0665}"),
    ] {
        t.push(case(
            format!("Upload-Length {name} ({value:?})"),
            Http(s.post().header("Upload-Length", value).body(b"")),
            Status(S400),
        ));
    }
    t.push(case(
        "two Upload-Length headers",
        Http(s.post().header("Upload-Length", "5").header("Upload-Length", "6").body(b"")),
        Status(S400),
    ));
    t.push(case(
        "Upload-Length max-size + 1",
        Http(s.post().header("Upload-Length", (MAX_SIZE + 1).to_string()).body(b"")),
        Status(S413),
    ));
    t.push(case(
        "Upload-Length u64::MAX",
        Http(s.post().header("Upload-Length", u64::MAX.to_string()).body(b"")),
        Status(S413),
    ));
    t.push(case("Upload-Defer-Length 2", Http(s.post().header("Upload-Defer-Length", "2").body(b"")), Status(S400)));
    t.push(case(
        "Upload-Defer-Length with Upload-Length",
        Http(s.post().header("Upload-Defer-Length", "1").header("Upload-Length", "5").body(b"")),
        Status(S400),
    ));
    for (name, value, expect) in [
        ("negative", "-1".to_owned(), S400),
        ("u64 overflow", "18446744073709551616".to_owned(), S400),
        ("u64::MAX", u64::MAX.to_string(), S409),
        ("past the length", "100".to_owned(), S409),
        ("hex", "0x0".to_owned(), S400),
    ] {
        let v = victim(10);
        t.push(case(
            format!("PATCH Upload-Offset {name}"),
            Http(Request::tus("PATCH", &v).headers(&[CT, ("Upload-Offset", &value)]).body(b"x")),
            Status(expect),
        ));
    }
    let v = victim(10);
    t.push(case("PATCH body past Upload-Length", Http(Request::patch(&v, 0, &[b'x'; 11])), Status(S413)));
    t.push(case(
        "PATCH a complete bystander past its end",
        Http(Request::patch(&ctx.done.0, ctx.done.1.len() as u64, b"x")),
        Status(S413),
    ));
    t.push(case(
        "PATCH the unfinished bystander at a stale offset",
        Http(Request::patch(&ctx.open.0, 0, b"overwrite")),
        Status(S409),
    ));
    t.push(case(
        "creation-with-upload body past max-size",
        Http(s.post().header("Upload-Defer-Length", "1").headers(&[CT]).body(vec![b'x'; MAX_SIZE as usize + 1])),
        StatusOrClosed(S413),
    ));
    let v = victim(10);
    t.push(case(
        "PATCH Content-Length overflowing u64",
        Raw(raw_request(
            "PATCH",
            &ctx.path_of(&v),
            &[("Tus-Resumable", "1.0.0"), CT, ("Upload-Offset", "0"), ("Content-Length", "18446744073709551616")],
            b"x",
        )),
        StatusOrClosed(S400_431),
    ));
    t.push(case(
        "PATCH Content-Length negative",
        Raw(raw_request(
            "PATCH",
            &open_path,
            &[("Tus-Resumable", "1.0.0"), CT, ("Upload-Offset", "1234"), ("Content-Length", "-1")],
            b"x",
        )),
        StatusOrClosed(S400),
    ));

    // ---- Upload-Metadata: malformed and oversized --------------------------------------------
    for (name, value) in [
        ("bad base64", "filename !!!!".to_owned()),
        ("duplicate keys", "a YQ==,a Yg==".to_owned()),
        ("empty key", ",b Yg==".to_owned()),
        ("three parts", "a YQ== b".to_owned()),
        ("non-ASCII key", "cl\u{e9} YQ==".to_owned()),
        ("4097 keys, one repeated", (0..4097).map(|i| format!("k{i}")).collect::<Vec<_>>().join(",") + ",k0"),
        (
            "80 KB, over the 64 KiB metadata cap",
            format!("big {},big2 {}", b64(vec![7u8; 30_000]), b64(vec![8u8; 30_000])),
        ),
    ] {
        let expect = if name.starts_with("80 KB") { StatusOrClosed(&[400, 413, 431]) } else { Status(S400) };
        t.push(case(
            format!("Upload-Metadata {name}"),
            Http(s.post().header("Upload-Length", "5").header("Upload-Metadata", value).body(b"")),
            expect,
        ));
    }

    // ---- header floods: thousands of headers, 1 MB values ------------------------------------
    let mut many = s.post().header("Upload-Length", "5");
    for _ in 0..3000 {
        many = many.header("Tus-Resumable", "1.0.0");
    }
    t.push(case("3000 repeated Tus-Resumable headers", Http(many.body(b"")), StatusOrClosed(S400_431)));
    let mut many = Request::patch(&ctx.open.0, 1234, b"evil");
    for i in 0..2000 {
        many = many.header(&format!("Upload-Offset-{i}"), "0");
    }
    t.push(case("PATCH with 2000 extra headers", Http(many), StatusOrClosed(S400_431)));
    for name in ["X-Junk", "Upload-Offset", "Upload-Concat", "Upload-Checksum", "Cookie"] {
        let value = "1".repeat(1 << 20);
        t.push(case(
            format!("1 MB {name} header on PATCH"),
            Http(Request::patch(&ctx.open.0, 1234, b"evil").header(name, value)),
            StatusOrClosed(S400_431),
        ));
    }
    t.push(case(
        "1 MB header name",
        Http(s.post().header("Upload-Length", "5").header(&"X".repeat(1 << 20), "v").body(b"")),
        StatusOrClosed(S400_431),
    ));

    // ---- Upload-Concat: other hosts, non-partials, other uploads' finals ---------------------
    let authority = s.authority().to_owned();
    let port: u16 = authority.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(1);
    for (name, value) in [
        ("other host", format!("final;http://evil.example{partial_path}")),
        ("same host, other port", format!("final;http://127.0.0.1:{}{partial_path}", port.wrapping_add(1).max(1))),
        ("other scheme", format!("final;ftp://{authority}{partial_path}")),
        ("a non-partial upload", format!("final;{done_path}")),
        ("another upload's final", format!("final;{final_path}")),
        ("a final and a partial", format!("final;{partial_path} {final_path}")),
        ("an unknown upload", format!("final;{base}{}", "0".repeat(32))),
        ("a traversal URL", format!("final;{base}..%2f{partial_id}")),
        ("no URLs", "final;".to_owned()),
        ("bad role", "partial;evil".to_owned()),
        ("1000 unknown URLs", format!("final;{}", vec![format!("{base}{}", "1".repeat(32)); 1000].join(" "))),
        ("an unfinished upload", format!("final;{open_path}")),
    ] {
        t.push(case(
            format!("Upload-Concat {name}"),
            Http(s.post().header("Upload-Concat", value).body(b"")),
            Status(S400),
        ));
    }
    t.push(case(
        "final with Upload-Length",
        Http(s.post().header("Upload-Concat", format!("final;{partial_path}")).header("Upload-Length", "13").body(b"")),
        Status(S400),
    ));
    t.push(case("PATCH a final upload", Http(Request::patch(&ctx.final_url, 13, b"x")), Status(&[403])));

    // ---- checksums --------------------------------------------------------------------------
    for (name, value, expect) in [
        ("bad base64", "sha1 !!!!notbase64!!!!".to_owned(), S400),
        // Well-formed, but no body can match a digest of the wrong size.
        ("short digest", format!("sha1 {}", b64([1u8; 3])), &[460][..]),
        ("no digest", "sha1".to_owned(), S400),
        ("unknown algorithm", format!("sha999 {}", b64([1u8; 20])), S400),
        ("1 KB digest", format!("sha256 {}", b64([1u8; 1024])), &[460][..]),
        ("mismatch", format!("sha1 {}", b64([0u8; 20])), &[460][..]),
    ] {
        let v = victim(4);
        t.push(case(
            format!("Upload-Checksum {name}"),
            Http(Request::patch(&v, 0, b"data").header("Upload-Checksum", value)),
            Status(expect),
        ));
    }
    let v = victim(4);
    t.push(case(
        "checksum trailer with bad base64",
        Http(
            Request::tus("PATCH", &v)
                .headers(&[CT, ("Upload-Offset", "0"), ("Trailer", "Upload-Checksum")])
                .chunked(&[b"data"], &[("Upload-Checksum", "sha1 ***")]),
        ),
        Status(S400),
    ));

    // ---- protocol and framing ---------------------------------------------------------------
    t.push(case("DELETE a bystander without Tus-Resumable", Http(Request::new("DELETE", &ctx.done.0)), Status(&[412])));
    t.push(case(
        "DELETE via X-HTTP-Method-Override on GET",
        Http(Request::new("GET", &ctx.open.0).header("X-HTTP-Method-Override", "DELETE")),
        Status(S409),
    ));
    // Content-Length and Transfer-Encoding together (RFC 9112 §6.1: reject, or decode the
    // chunked body and close the connection), followed by a smuggled DELETE of the complete
    // bystander that must never run.
    let v = victim(4);
    let mut smuggle = format!(
        "PATCH {} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: {OFFSET_OCTET_STREAM}\r\nUpload-Offset: 0\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n4\r\nevil\r\n0\r\n\r\n",
        ctx.path_of(&v)
    )
    .into_bytes();
    smuggle.extend_from_slice(
        format!("DELETE {done_path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\r\n").as_bytes(),
    );
    t.push(case(
        "Content-Length with Transfer-Encoding, smuggling a DELETE",
        Raw(smuggle),
        Expect::OneAnswerThenClosed(&[204, 400]),
    ));
    for (name, body) in
        [("chunk size overflowing", &b"fffffffffffffffffffff\r\nx\r\n"[..]), ("chunk size not hex", b"zz\r\nx\r\n")]
    {
        t.push(case(
            name,
            Raw(raw_request(
                "PATCH",
                &ctx.path_of(&victim(10)),
                &[("Tus-Resumable", "1.0.0"), CT, ("Upload-Offset", "0"), ("Transfer-Encoding", "chunked")],
                body,
            )),
            StatusOrClosed(S400),
        ));
    }
    t.push(case(
        "obs-fold header continuation",
        Raw(raw_request(
            "POST",
            &base,
            &[("Tus-Resumable", "1.0.0"), ("Upload-Length", "5\r\n 6"), ("Content-Length", "0")],
            b"",
        )),
        StatusOrClosed(S400),
    ));
    t.push(case(
        "space in a header name",
        Raw(raw_request(
            "POST",
            &base,
            &[("Tus-Resumable", "1.0.0"), ("Upload Length", "5"), ("Content-Length", "0")],
            b"",
        )),
        StatusOrClosed(S400),
    ));
    t.push(case(
        "Range past the end of the complete bystander",
        Http(Request::new("GET", &ctx.done.0).header("Range", "bytes=99999999-99999999999")),
        Status(&[416]),
    ));
    t.push(case(
        "unsupported Tus-Resumable",
        Http(Request::new("DELETE", &ctx.done.0).header("Tus-Resumable", "0.2.2")),
        Status(&[412]),
    ));
    t.push(case(
        "PATCH with a text/plain body",
        Http(
            Request::tus("PATCH", &ctx.open.0)
                .headers(&[("Content-Type", "text/plain"), ("Upload-Offset", "1234")])
                .body(b"evil"),
        ),
        Status(&[415]),
    ));

    // ---- framing at the edge (issue 12) ------------------------------------------------------
    t.push(case(
        "HTTP/1.1 request without Host",
        Raw(format!("HEAD {open_path} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n").into_bytes()),
        StatusOrClosed(S400),
    ));
    t.push(case(
        "two Host lines",
        Raw(raw_request("HEAD", &open_path, &[("Host", "evil.example"), ("Tus-Resumable", "1.0.0")], b"")),
        StatusOrClosed(S400),
    ));
    t.push(case(
        "PATCH with chunked twice",
        Raw(raw_request(
            "PATCH",
            &open_path,
            &[
                ("Tus-Resumable", "1.0.0"),
                CT,
                ("Upload-Offset", "1234"),
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "chunked"),
            ],
            b"4\r\nevil\r\n0\r\n\r\n",
        )),
        StatusOrClosed(S400),
    ));
    for (name, field) in [("Upload-Offset", ("Upload-Offset", "1234")), ("Upload-Complete", ("Upload-Complete", "?0"))]
    {
        let mut req = Request::new("PATCH", &ctx.open.0)
            .headers(&[("Upload-Draft-Interop-Version", "6"), ("Content-Type", "application/partial-upload")]);
        for (n, v) in [("Upload-Offset", "1234"), ("Upload-Complete", "?0")] {
            req = req.header(n, v);
        }
        t.push(case(
            format!("IETF append with {name} on two lines"),
            Http(req.header(field.0, field.1).body(b"evil")),
            Status(S400),
        ));
    }

    // ---- slow attacks (bounded by --body-read-timeout 2s / --header-read-timeout 2s) ---------
    t.push(case(
        "chunked PATCH that never ends",
        EndlessChunked(Request::tus("PATCH", &victim(1000)).headers(&[
            CT,
            ("Upload-Offset", "0"),
            ("Transfer-Encoding", "chunked"),
        ])),
        StalledBodyCut,
    ));
    t.push(case(
        "fixed-length PATCH that stops sending",
        EndlessChunked(Request::tus("PATCH", &victim(1000)).headers(&[
            CT,
            ("Upload-Offset", "0"),
            ("Content-Length", "1000"),
        ])),
        StalledBodyCut,
    ));
    t.push(case(
        "slowloris: request head trickled one byte per 400 ms",
        Trickle {
            bytes: raw_request("HEAD", &open_path, &[("Tus-Resumable", "1.0.0"), ("X-Pad", &"p".repeat(64))], b""),
            every: Duration::from_millis(400),
        },
        StatusOrClosed(&[408]),
    ));
    t.push(case(
        "slowloris: endless header lines",
        Trickle {
            bytes: {
                let mut head = format!("PATCH {open_path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
                for i in 0..200 {
                    head.extend_from_slice(format!("X-Slow-{i}: y\r\n").as_bytes());
                }
                head
            },
            every: Duration::from_millis(100),
        },
        StatusOrClosed(&[408]),
    ));
    t
}

fn run(ctx: &Ctx, c: Case) {
    let name = c.name;
    match (c.attack, c.expect) {
        (Attack::Http(req), expect) => {
            let result = req.timeout(Duration::from_secs(15)).try_send();
            match (result, expect) {
                (Ok(resp), Expect::Status(allowed) | Expect::StatusOrClosed(allowed)) => {
                    assert!(allowed.contains(&resp.status), "{name}: expected one of {allowed:?}\n{resp}");
                    assert!(resp.status / 100 == 4, "{name}: not a 4xx");
                }
                (Err(e), Expect::StatusOrClosed(_)) => {
                    assert!(!conformance_tests::is_timeout(&e), "{name}: neither answered nor closed ({e})");
                }
                (Err(e), Expect::Status(allowed)) => panic!("{name}: expected {allowed:?}, the request failed: {e}"),
                (_, Expect::StalledBodyCut | Expect::OneAnswerThenClosed(_)) => unreachable!("{name}: not for Http"),
            }
        }
        (Attack::Raw(bytes), Expect::OneAnswerThenClosed(allowed)) => {
            let reply = conformance_tests::raw_exchange(ctx.s.authority(), &bytes);
            let status = reply.status().unwrap_or_else(|| panic!("{name}: no answer: {:?}", reply.text()));
            assert!(allowed.contains(&status), "{name}: expected one of {allowed:?}: {}", reply.text());
            assert!(reply.closed, "{name}: the connection stayed open");
            let answers = reply.text().matches("HTTP/1.1 ").count();
            assert_eq!(answers, 1, "{name}: the smuggled request was answered: {}", reply.text());
        }
        (Attack::Raw(bytes), expect) => {
            let allowed: &[u16] = match expect {
                Expect::Status(a) | Expect::StatusOrClosed(a) => a,
                Expect::StalledBodyCut | Expect::OneAnswerThenClosed(_) => unreachable!(),
            };
            let reply = conformance_tests::raw_exchange(ctx.s.authority(), &bytes);
            match reply.status() {
                Some(status) => {
                    assert!(allowed.contains(&status), "{name}: expected one of {allowed:?}: {}", reply.text())
                }
                None => {
                    assert!(matches!(expect, Expect::StatusOrClosed(_)), "{name}: no status line: {:?}", reply.text());
                    assert!(reply.closed, "{name}: the server neither answered nor closed");
                }
            }
        }
        (Attack::Trickle { bytes, every }, expect) => {
            let Expect::StatusOrClosed(allowed) = expect else { unreachable!() };
            let mut conn = Conn::connect(ctx.s.authority(), Duration::from_secs(10)).expect("connect");
            let started = Instant::now();
            let mut cut = false;
            for b in &bytes {
                if conn.write_all(&[*b]).is_err() {
                    cut = true;
                    break;
                }
                thread::sleep(every);
                if started.elapsed() > Duration::from_secs(12) {
                    break;
                }
            }
            let reply = conn.read_to_end();
            let took = started.elapsed();
            assert!(cut || reply.closed, "{name}: the server kept a trickling client for {took:?}");
            assert!(took < Duration::from_secs(14), "{name}: took {took:?}");
            if let Some(status) = reply.status() {
                assert!(allowed.contains(&status), "{name}: {}", reply.text());
            }
        }
        (Attack::EndlessChunked(req), Expect::StalledBodyCut) => {
            let chunked = req.has_header("transfer-encoding");
            let mut conn = req.timeout(Duration::from_secs(10)).open();
            let started = Instant::now();
            if chunked {
                conn.write_all(b"5\r\nhello\r\n").expect("first chunk");
            } else {
                conn.write_all(b"hello").expect("first bytes");
            }
            if let Some(resp) = conn.finish().expect_refused(&format!("{name}: a stalled body")) {
                assert!(resp.status == 500 || resp.status / 100 == 4, "{name}: {resp}");
                assert_eq!(resp.header("Connection"), Some("close"), "{name}: {resp}");
            }
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(9), "{name}: cut after {took:?}");
        }
        (Attack::EndlessChunked(_), _) => unreachable!(),
    }
    ctx.check_after(&name);
}

/// Every row of the table, one after another, against one server.
#[test]
fn hostile_table() {
    let ctx = Ctx::new();
    let table = cases(&ctx);
    let total = table.len();
    assert!(total >= 50, "the hostile table has only {total} rows");
    let started = Instant::now();
    let mut failed = Vec::new();
    for c in table {
        let name = c.name.clone();
        // Run every row even after a failure, so one run reports every broken row.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&ctx, c))).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "{} of {total} hostile rows failed: {failed:#?}", failed.len());
    ctx.finish_open_bystander();
    eprintln!("hostile inputs tried: {total} in {:?}", started.elapsed());
}

/// A hostile filename in metadata is stored as data, never used as a path: the upload is
/// created and served, and the ID in its URL is the server's own.
#[test]
fn hostile_metadata_filename_is_only_data() {
    let ctx = Ctx::new();
    for name in ["../../../../etc/passwd", "..\\..\\boot.ini", "a\0b", "/dev/zero", "con:", "%2e%2e%2f"] {
        let meta = format!("filename {}", b64(name));
        let resp = ctx.s.post().header("Upload-Length", "3").header("Upload-Metadata", meta).body(b"").send();
        resp.expect_status(201);
        let url = ctx.s.resolve(resp.location());
        let id = last_segment(&url);
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "ID {id:?} for filename {name:?}");
        patch(&url, 0, b"abc").expect_status(204);
        assert_eq!(get(&url).body, b"abc");
        ctx.check_after(&format!("filename {name:?}"));
    }
}
