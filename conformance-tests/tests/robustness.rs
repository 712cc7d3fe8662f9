//! Cross-cutting robustness (Z) and hostile input.

use std::thread;
use std::time::{Duration, Instant};

use conformance_tests::{
    Conn, IO_TIMEOUT, OFFSET_OCTET_STREAM, Outcome, Request, Response, TestServer, Url, b64, get, head, last_segment,
    offset, open_patch, options, patch, patch_in_flight, pseudo_random, raw_exchange, raw_patch_head,
};

const CT: (&str, &str) = ("Content-Type", OFFSET_OCTET_STREAM);

/// Asserts that the outcome of an abandoned request is a 4xx response or a closed connection.
#[track_caller]
fn assert_interrupted(outcome: Outcome) {
    if let Some(resp) = outcome.expect_refused("the interrupted PATCH") {
        assert!(resp.status < 500, "interrupted PATCH answered:\n{resp}");
    }
}

/// A CORS preflight for `method` (and, if given, `headers`) from `origin` to the creation URL.
fn preflight(s: &TestServer, origin: &str, method: &str, headers: Option<&str>) -> Response {
    let mut req =
        Request::new("OPTIONS", s.url()).header("Origin", origin).header("Access-Control-Request-Method", method);
    if let Some(headers) = headers {
        req = req.header("Access-Control-Request-Headers", headers);
    }
    req.send()
}

/// Asserts a result is a 4xx response or a failed/closed connection.
#[track_caller]
fn assert_4xx_or_closed(result: std::io::Result<Response>, what: &str) {
    if let Ok(resp) = result {
        assert!((400..500).contains(&resp.status), "{what}: unexpected answer\n{resp}");
    }
}

// ---------------------------------------------------------------------------------------------
// Z1/Z2: concurrency and monotonic offsets
// ---------------------------------------------------------------------------------------------

#[test]
fn z1_second_patch_interrupts_first() {
    let s = TestServer::start();
    let total = 512 * 1024;
    let data = pseudo_random(total, 21);
    let garbage = pseudo_random(total, 99);
    let url = s.create(total as u64);
    let mut first = patch_in_flight(&url, total, &data[..100_000]);

    let started = Instant::now();
    let second = patch(&url, 0, &data);
    assert!(started.elapsed() < Duration::from_secs(8), "second PATCH waited {:?}", started.elapsed());
    match second.status {
        204 => assert_eq!(second.offset(), total as u64),
        409 => {
            let saved = second.offset();
            assert!(saved > 0 && saved <= 100_000, "saved offset {saved}");
            let third = patch(&url, saved, &data[saved as usize..]);
            third.expect_status(204);
        }
        _ => panic!("second PATCH:\n{second}"),
    }
    assert_eq!(offset(&url), total as u64);

    // The first request was interrupted: whatever it still sends must not land anywhere.
    let _ = first.write_all(&garbage[100_000..200_000]);
    first.set_read_timeout(Duration::from_secs(5)).unwrap();
    assert_interrupted(first.finish());
    assert_eq!(offset(&url), total as u64);
    assert!(get(&url).body == data, "upload corrupted by the concurrent PATCHes");
}

#[test]
fn z1_head_interrupts_stale_patch() {
    let s = TestServer::start();
    let total = 200_000;
    let data = pseudo_random(total, 22);
    let url = s.create(total as u64);
    let mut stale = patch_in_flight(&url, total, &data[..30_000]);
    // Stalled: nothing more for longer than a live upload pauses (a HEAD leaves a PATCH whose
    // bytes still flow alone).
    thread::sleep(Duration::from_millis(1200));

    let started = Instant::now();
    let h = head(&url);
    assert!(started.elapsed() < Duration::from_secs(8), "HEAD waited {:?}", started.elapsed());
    h.expect_status(200);
    let saved = h.offset();
    assert!(saved > 0 && saved <= 30_000, "HEAD reported {saved} for 30000 bytes in flight");

    let resp = patch(&url, saved, &data[saved as usize..]);
    resp.expect_status(204);
    let _ = stale.write_all(&pseudo_random(50_000, 5));
    stale.set_read_timeout(Duration::from_secs(5)).unwrap();
    assert_interrupted(stale.finish());
    assert_eq!(offset(&url), total as u64);
    assert!(get(&url).body == data);
}

#[test]
fn z1_parallel_uploads_are_independent() {
    let s = TestServer::start();
    thread::scope(|scope| {
        for seed in 0..8u64 {
            let s = &s;
            scope.spawn(move || {
                let data = pseudo_random(200_000 + seed as usize * 1000, seed);
                let url = s.create(data.len() as u64);
                let mut at = 0;
                for chunk in data.chunks(70_000) {
                    let resp = patch(&url, at, chunk);
                    resp.expect_status(204);
                    at += chunk.len() as u64;
                    assert_eq!(resp.offset(), at);
                }
                assert!(get(&url).body == data, "upload {seed} corrupted");
            });
        }
    });
}

#[test]
fn z2_offset_never_decreases() {
    let s = TestServer::start();
    let total = 1 << 20;
    let data = pseudo_random(total, 23);
    let url = s.create(total as u64);
    let mut last = 0u64;
    for round in 0..6 {
        let start = offset(&url);
        assert!(start >= last, "offset went back from {last} to {start} (round {round})");
        last = start;
        let remaining = total - start as usize;
        let mut conn = open_patch(&url, start, remaining);
        let piece = remaining.min(64 * 1024);
        conn.write_all(&data[start as usize..start as usize + piece]).unwrap();
        thread::sleep(Duration::from_millis(150));
        for _ in 0..3 {
            let now = offset(&url);
            assert!(now >= last, "offset went back from {last} to {now}");
            assert!(now <= start + piece as u64, "offset {now} beyond the bytes sent");
            last = now;
        }
        drop(conn);
    }
    thread::sleep(Duration::from_millis(300));
    let now = offset(&url);
    assert!(now >= last);
    patch(&url, now, &data[now as usize..]).expect_status(204);
    assert!(get(&url).body == data);
}

// ---------------------------------------------------------------------------------------------
// Z3/Z4: Location and CORS
// ---------------------------------------------------------------------------------------------

#[test]
fn z3_location_absolute_and_reachable() {
    let s = TestServer::start();
    let resp = s.post().header("Upload-Length", "1").body(b"").send();
    let loc = resp.location().to_owned();
    let parsed = Url::parse(&loc);
    assert_eq!(parsed.authority, s.authority(), "Location points to another host: {loc}");
    assert!(parsed.path.starts_with(s.base_path()), "{loc} not under {}", s.base_path());
    head(&loc).expect_status(200);
    patch(&loc, 0, b"x").expect_status(204);
}

#[test]
fn z3_custom_base_path() {
    let s = TestServer::spawn(&["--base-path", "/api/uploads/"]);
    assert!(s.url().ends_with("/api/uploads/"), "creation URL {}", s.url());
    let resp = s.post().header("Upload-Length", "5").body(b"").send();
    resp.expect_status(201);
    let loc = resp.location();
    assert!(loc.starts_with(&s.at("/api/uploads/")), "Location {loc}");
    patch(loc, 0, b"hello").expect_status(204);
    assert_eq!(get(loc).body, b"hello");
    let old = s.at(&format!("/files/{}", last_segment(loc)));
    head(&old).expect_status(404);
    let resp = Request::tus("POST", &s.at("/files/")).header("Upload-Length", "5").body(b"").send();
    resp.expect_status(404);
    assert!(!resp.has_header("Location"));
}

#[test]
fn z4_cors_preflight_answered() {
    let s = TestServer::start();
    let resp = preflight(&s, "http://example.com", "PATCH", Some("tus-resumable,upload-offset,content-type"));
    resp.expect_status_in(&[200, 204]);
    assert!(resp.has_header("Tus-Version"));
    let resp = s.post().header("Origin", "http://example.com").header("Upload-Length", "1").body(b"").send();
    resp.expect_status(201);
}

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_ids_are_rejected() {
    let s = TestServer::start();
    let real = s.upload(b"hello");
    let id = last_segment(&real).to_owned();
    let base = s.base_path().to_owned();
    let targets = [
        format!("{base}.."),
        format!("{base}../"),
        format!("{base}../x"),
        format!("{base}%2e%2e"),
        format!("{base}%2E%2E%2Fetc%2Fpasswd"),
        format!("{base}..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("{base}..%5c..%5cwindows"),
        format!("{base}a%2Fb"),
        format!("{base}a%00b"),
        format!("{base}%00"),
        format!("{base}abc.def"),
        format!("{base}ab%20cd"),
        format!("{base}ab$cd"),
        format!("{base}{id}.info"),
        format!("{base}{id}%2F..%2F{id}"),
        format!("{base}{id}/extra"),
        format!("{base}.{id}"),
        format!("{base}{}", "a".repeat(129)),
        format!("{base}%C3%A9t%C3%A9"),
        format!("{base}{}", id.to_ascii_uppercase()),
    ];
    for target in &targets {
        for method in ["HEAD", "GET", "PATCH", "DELETE"] {
            let mut req = Request::tus(method, s.url()).target(target);
            if method == "PATCH" {
                req = req.headers(&[CT, ("Upload-Offset", "0")]).body(b"x");
            }
            let resp = req.send();
            assert!(resp.status == 404 || resp.status == 400, "{method} {target}: expected 404/400\n{resp}");
            assert!(!resp.has_header("Upload-Offset"), "{method} {target}:\n{resp}");
            assert!(!resp.text().contains("root:"), "{method} {target} leaked a file");
        }
    }
    // The real upload is untouched.
    assert_eq!(get(&real).body, b"hello");
}

#[test]
fn hostile_raw_nul_and_control_bytes_in_path() {
    let s = TestServer::start();
    for path in [&b"/files/a\0b"[..], b"/files/\x01\x02", b"/files/a\xffb"] {
        let mut req = b"HEAD ".to_vec();
        req.extend_from_slice(path);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n");
        let raw = raw_exchange(s.authority(), &req);
        if let Some(status) = raw.status() {
            assert!(status == 400 || status == 404, "raw path {path:?}: {}", raw.text());
        } else {
            assert!(raw.closed, "no answer and no close for raw path {path:?}");
        }
    }
    s.assert_healthy();
}

#[test]
fn hostile_paths_outside_base_path_404() {
    let s = TestServer::start();
    for path in ["/", "/other", "/other/abc", "/filesx/abc", "/static/x.js", "/files-x/"] {
        let resp = Request::tus("HEAD", &s.at(path)).send();
        assert_eq!(resp.status, 404, "HEAD {path}:\n{resp}");
        resp.expect_tus_resumable();
        let resp = Request::tus("POST", &s.at(path)).header("Upload-Length", "5").body(b"").send();
        assert_eq!(resp.status, 404, "POST {path}:\n{resp}");
        assert!(!resp.has_header("Location"));
        let resp = get(&s.at(path));
        assert_eq!(resp.status, 404, "GET {path}:\n{resp}");
        resp.expect_tus_resumable().expect_error_body();
    }
}

#[test]
fn hostile_unknown_method_on_upload_405() {
    let s = TestServer::start();
    let url = s.upload(b"hello");
    for method in ["PUT", "PROPFIND", "TRACE", "FOO", "CONNECTX"] {
        let resp = Request::tus(method, &url).body(b"").send();
        assert_eq!(resp.status, 405, "{method}:\n{resp}");
        resp.expect_tus_resumable().expect_error_body();
    }
    // Method override to an unknown method.
    let resp = Request::tus("POST", &url).header("X-HTTP-Method-Override", "PUT").body(b"").send();
    resp.expect_status(405);
    assert_eq!(get(&url).body, b"hello");
}

#[test]
fn hostile_error_responses_have_text_body() {
    let s = TestServer::start();
    let url = s.create(5);
    let bad_sha = format!("sha1 {}", b64([1u8; 20]));
    let errors = [
        s.post().body(b"").send(),
        Request::new("POST", s.url()).header("Upload-Length", "1").body(b"").send(),
        patch(&s.unknown_url(), 0, b"x"),
        patch(&url, 2, b"x"),
        patch(&url, 0, b"too long"),
        Request::tus("PATCH", &url)
            .headers(&[("Content-Type", "text/plain"), ("Upload-Offset", "0")])
            .body(b"x")
            .send(),
        Request::tus("PATCH", &url).headers(&[CT]).body(b"x").send(),
        Request::patch(&url, 0, b"hello").header("Upload-Checksum", bad_sha).send(),
        get(&url),
        Request::tus("PUT", &url).body(b"").send(),
    ];
    for resp in &errors {
        assert!(resp.status >= 400, "expected an error:\n{resp}");
        resp.expect_error_body();
        assert!(resp.body.len() < 4096, "error body is not short:\n{resp}");
    }
    assert_eq!(offset(&url), 0);
}

#[test]
fn hostile_huge_metadata_header() {
    let s = TestServer::start();
    let meta = format!("big {}", b64(vec![b'x'; 768 * 1024]));
    assert!(meta.len() > 1_000_000);
    let result = s.post().header("Upload-Length", "1").header("Upload-Metadata", meta).body(b"").try_send();
    assert_4xx_or_closed(result, "1 MB Upload-Metadata");
    s.assert_healthy();
}

#[test]
fn hostile_thousands_of_headers() {
    let s = TestServer::start();
    let mut req = s.post().header("Upload-Length", "1");
    for i in 0..5000 {
        req = req.header(&format!("X-Filler-{i}"), "v");
    }
    assert_4xx_or_closed(req.body(b"").try_send(), "5000 headers");
    s.assert_healthy();
}

#[test]
fn hostile_huge_request_target() {
    let s = TestServer::start();
    let target = format!("{}{}", s.base_path(), "a".repeat(200_000));
    assert_4xx_or_closed(Request::tus("HEAD", s.url()).target(&target).try_send(), "200 KB URL");
    s.assert_healthy();
}

#[test]
fn hostile_garbage_request() {
    let s = TestServer::start();
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello",
        b"PATCH /files/x HTTP/9.9\r\n\r\n",
        b"GET\x00/ HTTP/1.1\r\n\r\n",
    ] {
        let raw = raw_exchange(s.authority(), garbage);
        if let Some(status) = raw.status() {
            assert!((400..=505).contains(&status), "garbage answered with {status}");
        }
        assert!(raw.closed, "connection left open after garbage {garbage:?}");
    }
    s.assert_healthy();
}

#[test]
fn hostile_control_bytes_in_header_values() {
    let s = TestServer::start();
    let raw = raw_exchange(
        s.authority(),
        b"POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 5\x01\r\n\
          Content-Length: 0\r\nConnection: close\r\n\r\n",
    );
    if let Some(status) = raw.status() {
        assert_eq!(status / 100, 4, "control byte in Upload-Length: {}", raw.text());
    }
    s.assert_healthy();
}

#[test]
fn hostile_conflicting_content_length() {
    let s = TestServer::start();
    let url = s.create(5);
    let head = format!("{}Content-Length: 3\r\nContent-Length: 5\r\n", raw_patch_head(&url, 0));
    let raw = s.raw_close(&head, b"hello");
    if let Some(status) = raw.status() {
        assert_eq!(status, 400, "conflicting Content-Length: {}", raw.text());
    }
    assert_eq!(offset(&url), 0);
}

#[test]
fn hostile_stalled_connections_do_not_block_others() {
    let s = TestServer::start();
    let mut stalled: Vec<Conn> = Vec::new();
    for i in 0..40 {
        let mut conn = Conn::connect(s.authority(), IO_TIMEOUT).unwrap();
        let partial: &[u8] = if i % 2 == 0 { b"POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Res" } else { b"" };
        conn.write_all(partial).unwrap();
        stalled.push(conn);
    }
    let started = Instant::now();
    let url = s.upload(b"still works");
    assert_eq!(get(&url).body, b"still works");
    options(s.url()).expect_status(200);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    drop(stalled);
    s.assert_healthy();
}

#[test]
fn keep_alive_requests_on_one_connection() {
    let s = TestServer::start();
    let url = s.create(11);
    let mut conn = Conn::connect(s.authority(), IO_TIMEOUT).unwrap();
    let ka = |req: Request| req.header("Connection", "keep-alive");
    let r = conn.send(&ka(Request::tus("HEAD", &url))).unwrap();
    assert_eq!(r.expect_status(200).offset(), 0);
    let r = conn.send(&ka(Request::patch(&url, 0, b"hello"))).unwrap();
    assert_eq!(r.expect_status(204).offset(), 5);
    let r = conn.send(&ka(Request::patch_at(&url, 5).chunked(&[b" wor", b"ld"], &[]))).unwrap();
    assert_eq!(r.expect_status(204).offset(), 11);
    let r = conn.send(&ka(Request::new("GET", &url))).unwrap();
    assert_eq!(r.expect_status(200).body, b"hello world");
    let r = conn.send(&ka(Request::new("OPTIONS", s.url()))).unwrap();
    r.expect_status(200);
}

#[test]
fn hostile_rejected_body_not_parsed_as_next_request() {
    let s = TestServer::start();
    let url = s.create(5);
    // Each request is rejected (possibly before its body is read); its body looks like a
    // request of its own and must never be executed as one.
    let smuggled = format!("DELETE {} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\r\n", Url::parse(&url).path);
    let rejected = [
        Request::patch(&url, 0, smuggled.as_bytes()),
        Request::patch(&url, 3, smuggled.as_bytes()),
        Request::tus("PATCH", &url)
            .headers(&[("Content-Type", "text/plain"), ("Upload-Offset", "0")])
            .body(smuggled.as_bytes()),
        Request::tus("PATCH", &url)
            .headers(&[CT, ("Upload-Offset", "0"), ("Upload-Checksum", "nosuch AAAA")])
            .body(smuggled.as_bytes()),
    ];
    for req in rejected {
        let mut conn = Conn::connect(s.authority(), IO_TIMEOUT).unwrap();
        let first = conn.send(&req.header("Connection", "keep-alive")).unwrap();
        assert!(first.status >= 400, "{first}");
        // If the server closed the connection instead of draining the body, that is fine.
        if let Ok(next) = conn.send(&Request::tus("HEAD", &url)) {
            assert_eq!(next.expect_status(200).offset(), 0);
        }
        head(&url).expect_status(200);
    }
    assert_eq!(offset(&url), 0);
}

#[test]
fn hostile_oversized_declared_body_rejected_early() {
    let s = TestServer::start();
    let url = s.create(10);
    let mut conn = open_patch(&url, 0, 1_000_000_000);
    let _ = conn.write_all(&[b'a'; 1000]);
    if let Some(resp) = conn.finish().expect_refused("an oversized Content-Length (not rejected early)") {
        assert_eq!(resp.status, 413, "{resp}");
    }
    assert_eq!(offset(&url), 0);
}

// ---------------------------------------------------------------------------------------------
// CORS (browser clients)
// ---------------------------------------------------------------------------------------------

#[test]
fn cors_default_grants_any_origin_without_credentials() {
    let s = TestServer::start();
    let pre = preflight(&s, "https://app.example", "POST", Some("tus-resumable,upload-length,upload-metadata"));
    pre.expect_status(200);
    assert_eq!(pre.header("Access-Control-Allow-Origin"), Some("*"));
    let allowed = pre.header("Access-Control-Allow-Headers").unwrap_or("").to_ascii_lowercase();
    for h in ["tus-resumable", "upload-length", "upload-metadata", "upload-offset", "upload-checksum"] {
        assert!(allowed.contains(h), "{h} not allowed: {allowed}");
    }
    assert!(pre.header("Access-Control-Allow-Methods").unwrap_or("").contains("PATCH"));
    assert!(pre.header("Access-Control-Max-Age").is_some());
    assert!(pre.header("Access-Control-Allow-Credentials").is_none());

    let post = s.post().header("Upload-Length", "1").header("Origin", "https://app.example").send();
    post.expect_status(201);
    let exposed = post.header("Access-Control-Expose-Headers").unwrap_or("").to_ascii_lowercase();
    for h in ["location", "upload-offset", "upload-length", "tus-resumable", "upload-expires"] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
    assert!(post.header_all("Vary").iter().any(|v| v.contains("Origin")));
}

#[test]
fn cors_allow_list_grants_only_listed_origins() {
    let s = TestServer::spawn(&["--cors-allow-origin", "https://good.example", "--cors-allow-credentials"]);
    let good = s.post().header("Upload-Length", "1").header("Origin", "https://good.example").send();
    good.expect_status(201);
    assert_eq!(good.header("Access-Control-Allow-Origin"), Some("https://good.example"));
    assert_eq!(good.header("Access-Control-Allow-Credentials"), Some("true"));
    let evil = preflight(&s, "https://evil.example", "POST", None);
    assert!(evil.header("Access-Control-Allow-Origin").is_none());
    assert!(evil.header("Access-Control-Allow-Methods").is_none());
}
