//! Downloads: `GET <upload-url>` (not part of tus 1.0; the server's own behaviour).

use conformance_tests::{Request, Response, TestServer, encode_metadata, get, offset_and_length, patch};

/// A parsed `Content-Disposition`: the disposition type and its parameters.
///
/// Panics if the value is not well-formed (an unterminated quoted string, junk after a
/// parameter value, …), which is how an injection would show.
fn parse_disposition(value: &str) -> (String, Vec<(String, String)>) {
    let (kind, mut rest) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        rest = rest.strip_prefix(';').unwrap_or_else(|| panic!("junk in disposition {value:?}"));
        rest = rest.trim_start();
        let eq = rest.find('=').unwrap_or_else(|| panic!("parameter without = in {value:?}"));
        let name = rest[..eq].trim().to_ascii_lowercase();
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b'"'),
            "bad parameter name {name:?} in {value:?}"
        );
        rest = &rest[eq + 1..];
        let mut val = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        let (_, escaped) = chars.next().unwrap_or_else(|| panic!("dangling escape in {value:?}"));
                        val.push(escaped);
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => val.push(c),
                }
            }
            let end = end.unwrap_or_else(|| panic!("unterminated quoted string in {value:?}"));
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            val = rest[..end].trim().to_owned();
            assert!(!val.contains('"') && !val.contains(' '), "bad token {val:?} in {value:?}");
            rest = &rest[end..];
        }
        params.push((name, val));
    }
    (kind.trim().to_ascii_lowercase(), params)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a `Content-Disposition` announces.
struct Disposition {
    /// `inline` or `attachment`.
    kind: String,
    /// The plain `filename` parameter (unescaped).
    filename: Option<String>,
    /// The `filename*` parameter, percent-decoded.
    filename_ext: Option<String>,
}

/// Parses and checks the shape of `Content-Disposition`: only `filename`/`filename*`
/// parameters, no control characters, and `filename*` in RFC 8187 form.
fn disposition(resp: &Response) -> Disposition {
    let raw = resp.header("Content-Disposition").unwrap_or_else(|| panic!("no Content-Disposition:\n{resp}"));
    let (kind, params) = parse_disposition(raw);
    assert!(kind == "inline" || kind == "attachment", "disposition type {kind:?}");
    let mut out = Disposition { kind, filename: None, filename_ext: None };
    for (key, val) in params {
        assert!(!val.chars().any(char::is_control), "control character in {raw:?}");
        match key.as_str() {
            "filename" => {
                assert!(out.filename.is_none(), "two filename parameters in {raw:?}");
                out.filename = Some(val);
            }
            "filename*" => {
                assert!(out.filename_ext.is_none(), "two filename* parameters in {raw:?}");
                let (charset, encoded) =
                    val.split_once("''").unwrap_or_else(|| panic!("filename* without charset in {raw:?}"));
                assert!(charset.eq_ignore_ascii_case("utf-8"), "charset {charset:?}");
                assert!(
                    encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b)),
                    "filename* value not percent-encoded: {raw:?}"
                );
                out.filename_ext = Some(percent_decode(encoded));
            }
            other => panic!("unexpected parameter {other:?} in {raw:?}"),
        }
    }
    out
}

/// Uploads `data` with `filetype` and `filename` metadata and downloads it (asserting `200`).
#[track_caller]
fn get_typed(s: &TestServer, data: &[u8], filetype: &str, filename: &str) -> Response {
    let meta = encode_metadata(&[("filetype", filetype.as_bytes()), ("filename", filename.as_bytes())]);
    let resp = get(&s.upload_with(data, &[("Upload-Metadata", &meta)]));
    resp.expect_status(200);
    resp
}

/// `GET url` with `Range: range`, asserted to answer `206` with `body` and `Content-Range:
/// content_range`.
#[track_caller]
fn expect_range(url: &str, range: &str, body: &[u8], content_range: &str) -> Response {
    let resp = Request::new("GET", url).header("Range", range).send();
    resp.expect_status(206);
    assert!(resp.body == body, "Range {range}: body {:?}, expected {:?}", resp.text(), String::from_utf8_lossy(body));
    assert_eq!(resp.header("Content-Range"), Some(content_range), "Range {range}:\n{resp}");
    resp
}

#[test]
fn get_finished_upload_200_with_headers() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    let resp = get(&url);
    resp.expect_status(200);
    assert_eq!(resp.body, b"hello world");
    assert_eq!(resp.header("Content-Length"), Some("11"));
    assert!(resp.header("ETag").is_some_and(|e| !e.is_empty()), "no ETag:\n{resp}");
    assert_eq!(resp.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(resp.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(resp.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(disposition(&resp).kind, "attachment");
}

#[test]
fn get_does_not_require_tus_resumable_and_ignores_bad_version() {
    let s = TestServer::start();
    let url = s.upload(b"abc");
    assert_eq!(get(&url).expect_status(200).body, b"abc");
    let resp = Request::new("GET", &url).header("Tus-Resumable", "0.0.1").send();
    assert_eq!(resp.expect_status(200).body, b"abc");
}

#[test]
fn get_etag_is_stable() {
    let s = TestServer::start();
    let a = s.upload(b"hello world");
    let b = s.upload(b"other data!");
    let e1 = get(&a).header("ETag").map(str::to_owned);
    let e2 = get(&a).header("ETag").map(str::to_owned);
    assert!(e1.is_some());
    assert_eq!(e1, e2, "ETag changes between identical GETs");
    assert_ne!(e1.as_deref(), get(&b).header("ETag"), "two different uploads share an ETag");
}

#[test]
fn get_range_206() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    let resp = expect_range(&url, "bytes=0-4", b"hello", "bytes 0-4/11");
    assert_eq!(resp.header("Content-Length"), Some("5"));
    expect_range(&url, "bytes=4-6", b"o w", "bytes 4-6/11");
}

#[test]
fn get_suffix_range() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    expect_range(&url, "bytes=-5", b"world", "bytes 6-10/11");
}

#[test]
fn get_open_range() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    expect_range(&url, "bytes=6-", b"world", "bytes 6-10/11");
    // A last-byte position past the end is clamped.
    expect_range(&url, "bytes=6-100", b"world", "bytes 6-10/11");
}

#[test]
fn get_unsatisfiable_range_416() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    for range in ["bytes=11-", "bytes=20-30"] {
        let resp = Request::new("GET", &url).header("Range", range).send();
        assert_eq!(resp.status, 416, "Range {range}:\n{resp}");
        assert_eq!(resp.header("Content-Range"), Some("bytes */11"));
    }
}

#[test]
fn get_if_none_match_304() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    let etag = get(&url).header("ETag").expect("ETag").to_owned();
    let resp = Request::new("GET", &url).header("If-None-Match", etag.as_str()).send();
    resp.expect_status(304);
    assert!(resp.body.is_empty());
    let resp = Request::new("GET", &url).header("If-None-Match", "\"something-else\"").send();
    resp.expect_status(200);
    assert_eq!(resp.body, b"hello world");
}

#[test]
fn get_content_type_from_filetype() {
    let s = TestServer::start();
    for (filetype, want) in [
        ("image/png", "image/png"),
        ("text/html", "text/html"),
        ("application/pdf", "application/pdf"),
        ("not a mime type", "application/octet-stream"),
        ("text/plain\r\nX-Injected: 1", "application/octet-stream"),
        ("", "application/octet-stream"),
    ] {
        let resp = get_typed(&s, b"data", filetype, "f.bin");
        assert_eq!(resp.header("Content-Type"), Some(want), "filetype {filetype:?}:\n{resp}");
        assert!(!resp.has_header("X-Injected"));
        assert_eq!(resp.header("X-Content-Type-Options"), Some("nosniff"));
    }
}

#[test]
fn get_content_disposition_inline_only_for_harmless_types() {
    let s = TestServer::start();
    for (filetype, want) in [
        ("image/png", "inline"),
        ("image/jpeg", "inline"),
        ("image/gif", "inline"),
        ("image/webp", "inline"),
        ("text/plain", "inline"),
        ("audio/mpeg", "inline"),
        ("video/mp4", "inline"),
        ("text/html", "attachment"),
        ("image/svg+xml", "attachment"),
        ("application/javascript", "attachment"),
        ("application/pdf", "attachment"),
        ("application/octet-stream", "attachment"),
    ] {
        let resp = get_typed(&s, b"data", filetype, "file.dat");
        let d = disposition(&resp);
        assert_eq!(d.kind, want, "disposition for {filetype}:\n{resp}");
        assert_eq!(d.filename.as_deref(), Some("file.dat"), "filename for {filetype}:\n{resp}");
        if let Some(ext) = d.filename_ext {
            assert_eq!(ext, "file.dat");
        }
    }
}

#[test]
fn get_content_disposition_filename_sanitized() {
    let s = TestServer::start();
    for evil in [
        "a\"b.txt",
        "evil\r\nX-Injected: 1.txt",
        "x\"; filename=\"pwn.html",
        "back\\slash\".txt",
        "new\nline.txt",
        "..\\..\\etc/passwd",
    ] {
        let resp = get_typed(&s, b"data", "text/plain", evil);
        assert!(!resp.has_header("X-Injected"), "header injection via {evil:?}:\n{resp}");
        assert_eq!(resp.header_all("Content-Disposition").len(), 1);
        // `disposition` fails on any parameter besides filename/filename*, on a control
        // character in a value and on a broken quoted string: that is where an injection shows.
        let d = disposition(&resp);
        assert!(d.filename.is_some() || d.filename_ext.is_some(), "file name dropped:\n{resp}");
        assert_ne!(d.filename.as_deref(), Some("pwn.html"), "filename injected:\n{resp}");
        assert_ne!(d.filename_ext.as_deref(), Some("pwn.html"), "filename* injected:\n{resp}");
    }
}

#[test]
fn get_unfinished_upload_409() {
    let s = TestServer::start();
    let url = s.create(11);
    patch(&url, 0, b"hello").expect_status(204);
    let resp = get(&url);
    resp.expect_status(409).expect_error_body();
    assert!(!resp.text().contains("hello"));
    let deferred = s.create_deferred();
    get(&deferred).expect_status(409);
}

#[test]
fn get_unknown_404() {
    let s = TestServer::start();
    let resp = get(&s.unknown_url());
    resp.expect_status(404).expect_error_body();
}

#[test]
fn get_zero_length_upload() {
    let s = TestServer::start();
    let resp = get(&s.create(0));
    assert!(resp.expect_status(200).body.is_empty());
    assert_eq!(resp.header("Content-Length"), Some("0"));
}

#[test]
fn get_disabled_405() {
    let s = TestServer::spawn(&["--disable-download"]);
    let url = s.upload(b"hello world");
    let resp = get(&url);
    resp.expect_status(405).expect_tus_resumable();
    assert!(!resp.text().contains("hello world"));
    assert_eq!(offset_and_length(&url), (11, Some(11)));
}

#[test]
fn get_large_upload_streams_completely() {
    let s = TestServer::start();
    let data = conformance_tests::pseudo_random(3 << 20, 77);
    let url = s.upload(&data);
    let resp = get(&url);
    resp.expect_status(200);
    assert_eq!(resp.body.len(), data.len());
    assert!(resp.body == data);
    expect_range(&url, "bytes=1000000-1000009", &data[1_000_000..1_000_010], "bytes 1000000-1000009/3145728");
}
