//! Core protocol: common headers (A), `HEAD` (B), `PATCH` (C) and `OPTIONS` (D).

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use conformance_tests::{
    CHECKSUM_ALGORITHMS, DEFAULT_EXTENSIONS, KNOWN_EXTENSIONS, OFFSET_OCTET_STREAM, Request, Response, TUS_RESUMABLE,
    TestServer, Url, b64, expect_complete, expect_offset_settles, get, head, offset, offset_and_length, open_patch,
    options, patch, patch_in_flight, pseudo_random, raw_patch_head, settled_offset,
};

fn patch_ct(url: &str, content_type: Option<&str>, offset: &str, data: &[u8]) -> Response {
    let mut req = Request::tus("PATCH", url).header("Upload-Offset", offset).body(data);
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    req.send()
}

/// One request of every method that needs `Tus-Resumable` (POST, HEAD, PATCH, DELETE), without
/// it: on the server `s` and its 5-byte upload `url`.
fn unversioned_requests(s: &TestServer, url: &str) -> [Request; 4] {
    [
        Request::new("POST", s.url()).header("Upload-Length", "5").body(b""),
        Request::new("HEAD", url),
        Request::patch(url, 0, b"hello").without_header("Tus-Resumable"),
        Request::new("DELETE", url),
    ]
}

// ---------------------------------------------------------------------------------------------
// A. Common headers
// ---------------------------------------------------------------------------------------------

#[test]
fn a1_tus_resumable_on_success_responses() {
    let s = TestServer::start();
    let post = s.post().header("Upload-Length", "11").body(b"").send();
    post.expect_status(201).expect_tus_resumable();
    let url = s.resolve(post.location());
    head(&url).expect_status(200).expect_tus_resumable();
    patch(&url, 0, b"hello").expect_status(204).expect_tus_resumable();
    patch(&url, 5, b" world").expect_status(204).expect_tus_resumable();
    get(&url).expect_status(200).expect_tus_resumable();
    options(&url).expect_status(200).expect_tus_resumable();
    s.options().expect_status(200).expect_tus_resumable();
    Request::tus("DELETE", &url).send().expect_status(204).expect_tus_resumable();
}

#[test]
fn a1_tus_resumable_on_error_responses() {
    let s = TestServer::start();
    let url = s.create(5);
    let unknown = s.unknown_url();
    let bad_sha1 = format!("sha1 {}", b64([0u8; 20]));
    let cases: Vec<(u16, Response)> = vec![
        (404, head(&unknown)),
        (404, patch(&unknown, 0, b"x")),
        (409, patch(&url, 3, b"x")),
        (412, Request::new("HEAD", &url).header("Tus-Resumable", "0.0.1").send()),
        (412, Request::new("POST", s.url()).header("Upload-Length", "1").body(b"").send()),
        (415, patch_ct(&url, Some("text/plain"), "0", b"x")),
        (400, patch_ct(&url, Some(OFFSET_OCTET_STREAM), "abc", b"x")),
        (400, s.post().body(b"").send()),
        (413, patch(&url, 0, b"too long")),
        (460, Request::patch(&url, 0, b"hello").header("Upload-Checksum", bad_sha1).send()),
        (409, get(&url)),
        (405, Request::tus("PUT", &url).body(b"x").send()),
    ];
    for (status, resp) in cases {
        resp.expect_status(status).expect_tus_resumable();
    }
}

#[test]
fn a2_unsupported_version_gets_412() {
    let s = TestServer::start();
    let url = s.create(5);
    for version in ["0.0.1", "0.2.2", "2.0.0", "1.0", "1.0.0.0", "banana"] {
        for req in unversioned_requests(&s, &url) {
            let req = req.header("Tus-Resumable", version);
            let resp = req.send();
            assert_eq!(resp.status, 412, "{} with Tus-Resumable {version}:\n{resp}", req.method);
        }
    }
}

#[test]
fn a3_412_includes_tus_version() {
    let s = TestServer::start();
    let url = s.create(5);
    for req in unversioned_requests(&s, &url) {
        let resp = req.header("Tus-Resumable", "0.0.1").send();
        resp.expect_status(412).expect_tus_resumable();
        assert!(
            resp.header_list("Tus-Version").iter().any(|v| v == TUS_RESUMABLE),
            "412 without Tus-Version 1.0.0:\n{resp}"
        );
    }
}

#[test]
fn a4_412_has_no_side_effects() {
    let s = TestServer::start();
    // POST: nothing is created.
    let resp =
        Request::new("POST", s.url()).header("Tus-Resumable", "0.0.1").header("Upload-Length", "5").body(b"").send();
    resp.expect_status(412);
    assert!(!resp.has_header("Location"), "412 POST returned a Location:\n{resp}");

    // POST with a body: nothing is created either.
    let resp = Request::new("POST", s.url())
        .header("Tus-Resumable", "0.0.1")
        .header("Upload-Length", "5")
        .header("Content-Type", OFFSET_OCTET_STREAM)
        .body(b"hello")
        .send();
    resp.expect_status(412);
    assert!(!resp.has_header("Location"));

    // PATCH: the offset does not move.
    let url = s.create(5);
    let resp = Request::patch(&url, 0, b"hello").set_header("Tus-Resumable", "0.0.1").send();
    resp.expect_status(412);
    assert_eq!(offset(&url), 0);

    // DELETE: the upload survives.
    let resp = Request::new("DELETE", &url).header("Tus-Resumable", "0.0.1").send();
    resp.expect_status(412);
    head(&url).expect_status(200);
    assert_eq!(offset(&url), 0);
    patch(&url, 0, b"hello").expect_status(204);
}

#[test]
fn a5_missing_tus_resumable_gets_412() {
    let s = TestServer::start();
    let url = s.create(5);
    let resp = Request::new("POST", s.url()).header("Upload-Length", "5").body(b"").send();
    resp.expect_status(412).expect_tus_resumable();
    assert!(!resp.has_header("Location"));
    assert!(resp.header_list("Tus-Version").iter().any(|v| v == TUS_RESUMABLE));

    let resp = Request::new("HEAD", &url).send();
    resp.expect_status(412).expect_tus_resumable();
    assert!(resp.has_header("Tus-Version"));

    let resp = Request::patch(&url, 0, b"hello").without_header("Tus-Resumable").send();
    resp.expect_status(412).expect_tus_resumable();
    assert!(resp.has_header("Tus-Version"));
    assert_eq!(offset(&url), 0, "a PATCH without Tus-Resumable changed the upload");

    let resp = Request::new("DELETE", &url).send();
    resp.expect_status(412).expect_tus_resumable();
    assert!(resp.has_header("Tus-Version"));
    head(&url).expect_status(200);
}

#[test]
fn a6_tus_version_is_comma_list_containing_1_0_0() {
    let s = TestServer::start();
    let url = s.create(1);
    for resp in [s.options(), Request::new("HEAD", &url).header("Tus-Resumable", "9").send()] {
        let raw = resp.header("Tus-Version").unwrap_or_else(|| panic!("no Tus-Version:\n{resp}"));
        let versions: Vec<&str> = raw.split(',').map(str::trim).collect();
        for v in &versions {
            let parts: Vec<&str> = v.split('.').collect();
            assert!(
                parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
                "malformed version {v:?} in Tus-Version {raw:?}"
            );
        }
        assert_eq!(versions, vec![TUS_RESUMABLE], "Tus-Version must be exactly 1.0.0");
    }
}

#[test]
fn a7_tus_extension_lists_known_extensions() {
    let s = TestServer::start();
    let resp = s.options();
    let raw = resp.header("Tus-Extension").unwrap_or_else(|| panic!("no Tus-Extension:\n{resp}"));
    assert!(!raw.trim().is_empty(), "empty Tus-Extension header");
    let exts: Vec<&str> = raw.split(',').map(str::trim).collect();
    for e in &exts {
        assert!(KNOWN_EXTENSIONS.contains(e), "unknown extension {e:?} in {raw:?}");
    }
    let unique: BTreeSet<&str> = exts.iter().copied().collect();
    assert_eq!(unique.len(), exts.len(), "duplicate extension in {raw:?}");
}

#[test]
fn a7_default_extension_set_is_exact() {
    let s = TestServer::spawn(&[]);
    let got: BTreeSet<String> = s.extensions().into_iter().collect();
    let want: BTreeSet<String> = DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect();
    assert_eq!(got, want, "Tus-Extension of a default server");
}

#[test]
fn a8_tus_max_size_is_non_negative_integer_when_configured() {
    let s = TestServer::spawn(&["--max-size", "1048576"]);
    let resp = s.options();
    resp.expect_status(200);
    assert_eq!(resp.u64_header("Tus-Max-Size"), Some(1_048_576), "{resp}");
    let url = s.create(10);
    assert_eq!(options(&url).u64_header("Tus-Max-Size"), Some(1_048_576));
}

#[test]
fn a8_no_tus_max_size_without_limit() {
    let s = TestServer::spawn(&[]);
    let resp = s.options();
    resp.expect_status(200);
    assert!(!resp.has_header("Tus-Max-Size"), "Tus-Max-Size without --max-size:\n{resp}");
}

#[test]
fn a9_invalid_upload_offset_rejected_400() {
    let s = TestServer::start();
    let url = s.create(5);
    patch(&url, 0, b"he").expect_status(204);
    for bad in
        ["-1", "abc", "1e3", " ", "", "0x2", "2.0", "2 2", "18446744073709551616", "99999999999999999999999999999"]
    {
        let resp = patch_ct(&url, Some(OFFSET_OCTET_STREAM), bad, b"llo");
        resp.expect_refused_patch(400, &url, 2, &format!("Upload-Offset {bad:?}"));
    }
}

#[test]
fn a9_invalid_upload_length_rejected_400() {
    let s = TestServer::start();
    for bad in ["-5", "abc", "1.5", "1e3", "", "0x10", "18446744073709551616", "99999999999999999999999999999"] {
        let resp = s.post().header("Upload-Length", bad).body(b"").send();
        assert_eq!(resp.status, 400, "Upload-Length {bad:?}:\n{resp}");
        assert!(!resp.has_header("Location"), "Upload-Length {bad:?} created an upload");
    }
}

#[test]
fn a10_method_override_patch() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = Request::tus("POST", &url)
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Content-Type", OFFSET_OCTET_STREAM)
        .header("Upload-Offset", "0")
        .body(b"hello")
        .send();
    assert_eq!(resp.expect_status(204).offset(), 5);
    assert!(!resp.has_header("Location"), "override was treated as a creation:\n{resp}");
    assert_eq!(offset(&url), 5);
}

#[test]
fn a10_method_override_head() {
    let s = TestServer::start();
    let url = s.create(11);
    patch(&url, 0, b"hello").expect_status(204);
    let resp = Request::tus("POST", &url).header("X-HTTP-Method-Override", "HEAD").send();
    assert_eq!(resp.expect_status(200).offset(), 5);
    assert_eq!(resp.length(), Some(11));
    assert!(resp.body.is_empty(), "HEAD via override returned a body:\n{resp}");
}

#[test]
fn a10_method_override_ignored_on_get() {
    let s = TestServer::start();
    let url = s.upload(b"hello");
    let resp = Request::new("GET", &url)
        .header("Tus-Resumable", TUS_RESUMABLE)
        .header("X-HTTP-Method-Override", "DELETE")
        .send();
    resp.expect_status(200);
    assert_eq!(resp.body, b"hello");
    assert_eq!(offset(&url), 5, "a GET with X-HTTP-Method-Override deleted the upload");
}

#[test]
fn a11_method_override_delete() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = Request::tus("POST", &url).header("X-HTTP-Method-Override", "DELETE").send();
    resp.expect_status(204);
    assert!(!resp.has_header("Location"));
    head(&url).expect_status_in(&[404, 410]);
}

// ---------------------------------------------------------------------------------------------
// B. HEAD
// ---------------------------------------------------------------------------------------------

#[test]
fn b1_head_offset_zero_on_fresh_upload() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = head(&url);
    resp.expect_status(200);
    assert_eq!(resp.header("Upload-Offset"), Some("0"));
}

#[test]
fn b2_head_offset_on_completed_upload() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    assert_eq!(offset_and_length(&url), (11, Some(11)));
}

#[test]
fn b3_head_upload_length_when_known() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = head(&url);
    assert_eq!(resp.header("Upload-Length"), Some("11"));
    assert!(!resp.has_header("Upload-Defer-Length"));
    patch(&url, 0, b"hello").expect_status(204);
    assert_eq!(head(&url).length(), Some(11));
}

#[test]
fn b4_head_cache_control_no_store() {
    let s = TestServer::start();
    let url = s.create(11);
    for resp in [head(&url), {
        patch(&url, 0, b"hello world").expect_status(204);
        head(&url)
    }] {
        let cc = resp.header_list("Cache-Control");
        assert!(cc.iter().any(|d| d.eq_ignore_ascii_case("no-store")), "Cache-Control lacks no-store:\n{resp}");
    }
}

#[test]
fn b5_head_success_is_200() {
    let s = TestServer::start();
    let url = s.create(3);
    head(&url).expect_status(200);
    patch(&url, 0, b"abc").expect_status(204);
    head(&url).expect_status(200);
}

#[test]
fn b6_head_unknown_upload_404_without_offset() {
    let s = TestServer::start();
    for url in [s.unknown_url(), format!("{}nosuchupload", s.url())] {
        let resp = head(&url);
        resp.expect_status(404).expect_tus_resumable();
        assert!(!resp.has_header("Upload-Offset"), "404 carries Upload-Offset:\n{resp}");
        assert!(resp.body.is_empty());
    }
}

#[test]
fn b7_head_response_has_no_body() {
    let s = TestServer::start();
    let url = s.upload(b"hello world");
    let path = Url::parse(&url).path;
    let raw = s.raw_close(&format!("HEAD {path} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n"), b"");
    assert!(raw.closed, "server kept the connection open despite Connection: close");
    assert_eq!(raw.status(), Some(200), "{}", raw.text());
    assert_eq!(raw.after_head(), Some(&b""[..]), "bytes after the HEAD response head: {}", raw.text());

    // Also for an unknown upload (404).
    let unknown = Url::parse(&s.unknown_url()).path;
    let raw = s.raw_close(&format!("HEAD {unknown} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\n"), b"");
    assert_eq!(raw.status(), Some(404), "{}", raw.text());
    assert_eq!(raw.after_head(), Some(&b""[..]), "bytes after the HEAD 404 head: {}", raw.text());
}

#[test]
fn b8_head_offset_accepted_by_next_patch() {
    let s = TestServer::start();
    let data = pseudo_random(3000, 8);
    let url = s.create(3000);
    let mut expected = 0;
    for chunk in data.chunks(700) {
        let o = offset(&url);
        assert_eq!(o, expected);
        patch(&url, o, chunk).expect_status(204);
        expected += chunk.len() as u64;
    }
    expect_complete(&url, &data);
}

// ---------------------------------------------------------------------------------------------
// C. PATCH
// ---------------------------------------------------------------------------------------------

#[test]
fn c1_patch_applies_bytes_at_offset() {
    let s = TestServer::start();
    let url = s.create(11);
    patch(&url, 0, b"hello world").expect_status(204);
    expect_complete(&url, b"hello world");
}

#[test]
fn c2_patch_success_is_exactly_204_without_body() {
    let s = TestServer::start();
    let url = s.create(11);
    let raw = s.raw_close(&format!("{}Content-Length: 5\r\n", raw_patch_head(&url, 0)), b"hello");
    assert_eq!(raw.status(), Some(204), "{}", raw.text());
    assert_eq!(raw.after_head(), Some(&b""[..]), "204 followed by bytes: {}", raw.text());
}

#[test]
fn c3_patch_response_has_new_offset() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch(&url, 0, b"hello world");
    resp.expect_status(204);
    assert_eq!(resp.header("Upload-Offset"), Some("11"));
}

#[test]
fn c4_offset_advances_by_bytes_received() {
    let s = TestServer::start();
    let url = s.create(11);
    assert_eq!(patch(&url, 0, b"hello").expect_status(204).offset(), 5);
    assert_eq!(offset(&url), 5);
    assert_eq!(patch(&url, 5, b" world").expect_status(204).offset(), 11);
    expect_complete(&url, b"hello world");
}

#[test]
fn c5_wrong_content_type_415() {
    let s = TestServer::start();
    let url = s.create(11);
    for ct in [
        "application/octet-stream",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/offset+octet-streamx",
    ] {
        let resp = patch_ct(&url, Some(ct), "0", b"hello");
        resp.expect_refused_patch(415, &url, 0, &format!("Content-Type {ct:?}"));
    }
}

#[test]
fn c6_missing_content_type_415() {
    let s = TestServer::start();
    let url = s.create(11);
    patch_ct(&url, None, "0", b"hello").expect_refused_patch(415, &url, 0, "a PATCH without Content-Type");
    // Also with an empty body.
    patch_ct(&url, None, "0", b"").expect_status(415);
}

#[test]
fn c7_offset_ahead_409_with_real_offset() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch(&url, 5, b"hello");
    resp.expect_refused_patch(409, &url, 0, "a PATCH ahead of the offset");
    assert_eq!(resp.header("Upload-Offset"), Some("0"), "409 must carry the real offset");
    assert_eq!(get(&url).status, 409, "upload must still be unfinished");
}

#[test]
fn c8_offset_behind_409() {
    let s = TestServer::start();
    let url = s.create(11);
    patch(&url, 0, b"hello").expect_status(204);
    let resp = patch(&url, 0, b"hello");
    resp.expect_status(409);
    assert_eq!(resp.header("Upload-Offset"), Some("5"));
    assert_eq!(offset(&url), 5);
    let resp = patch(&url, 4, b"o world");
    resp.expect_status(409);
    assert_eq!(offset(&url), 5);
    patch(&url, 5, b" world").expect_status(204);
    expect_complete(&url, b"hello world");
}

#[test]
fn c9_patch_unknown_upload_404() {
    let s = TestServer::start();
    let resp = patch(&s.unknown_url(), 0, b"x");
    resp.expect_status(404).expect_tus_resumable();
    assert!(!resp.has_header("Upload-Offset"));
}

#[test]
fn c10_missing_upload_offset_400() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = Request::patch(&url, 0, b"hello").without_header("Upload-Offset").send();
    resp.expect_refused_patch(400, &url, 0, "a PATCH without Upload-Offset");
}

#[test]
fn c11_many_one_byte_patches() {
    let s = TestServer::start();
    let data = b"hello world";
    let url = s.create(data.len() as u64);
    for (i, byte) in data.iter().enumerate() {
        let resp = patch(&url, i as u64, &[*byte]);
        assert_eq!(resp.expect_status(204).offset(), i as u64 + 1);
    }
    expect_complete(&url, data);
}

#[test]
fn c12_interrupted_patch_keeps_received_bytes() {
    let s = TestServer::start();
    let total = 4 << 20;
    let sent = 1 << 20;
    let data = pseudo_random(total, 12);
    let url = s.create(total as u64);
    drop(patch_in_flight(&url, total, &data[..sent]));

    let kept = settled_offset(&url);
    assert!(kept > 0, "no byte of the interrupted PATCH was kept");
    assert!(kept <= sent as u64, "offset {kept} exceeds the {sent} bytes sent");

    let resp = patch(&url, kept, &data[kept as usize..]);
    assert_eq!(resp.expect_status(204).offset(), total as u64);
    let body = get(&url).expect_status(200).body.clone();
    assert!(body == data, "content differs after resuming at {kept}");
}

#[test]
fn c13_stalled_body_is_cut_after_timeout() {
    let s = TestServer::spawn(&["--body-read-timeout", "1s"]);
    let url = s.create(100);
    let mut conn = open_patch(&url, 0, 100);
    conn.write_all(b"abc").unwrap();
    let started = Instant::now();
    conn.set_read_timeout(Duration::from_secs(8)).unwrap();
    conn.finish().expect_refused("a PATCH body stalled for 8 s");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the stalled body was cut after only {:?}",
        started.elapsed()
    );
    expect_offset_settles(&url, 3, "the 3 received bytes were not kept");
    let rest = vec![b'x'; 97];
    patch(&url, 3, &rest).expect_status(204);
    let mut want = b"abc".to_vec();
    want.extend_from_slice(&rest);
    assert_eq!(get(&url).body, want);
}

#[test]
fn c12_clean_disconnect_keeps_every_byte() {
    let s = TestServer::start();
    let data = pseudo_random(100_000, 121);
    let url = s.create(200_000);
    drop(patch_in_flight(&url, 200_000, &data));
    // Every byte was written before the FIN, so every byte reached the server.
    expect_offset_settles(&url, 100_000, "not every one of 100000 bytes was kept after a clean close");
    assert_eq!(&get_after_completion(&url, 100_000, 200_000)[..100_000], &data[..]);
}

/// Fills the rest of an upload with zeros and downloads it.
fn get_after_completion(url: &str, at: u64, total: u64) -> Vec<u8> {
    patch(url, at, &vec![0u8; (total - at) as usize]).expect_status(204);
    get(url).expect_status(200).body.clone()
}

#[test]
fn c12_half_closed_body_answered_with_error_and_kept() {
    let s = TestServer::start();
    let url = s.create(100);
    let mut conn = open_patch(&url, 0, 100);
    conn.write_all(b"abc").unwrap();
    thread::sleep(Duration::from_millis(100));
    conn.shutdown_write().unwrap();
    if let Some(resp) = conn.finish().expect_refused("a half-closed (truncated) PATCH body") {
        resp.expect_tus_resumable();
    }
    expect_offset_settles(&url, 3, "the 3 bytes before the half-close were not kept");
}

#[test]
fn c13_stalled_chunked_body_is_cut_after_timeout() {
    let s = TestServer::spawn(&["--body-read-timeout", "1s"]);
    let url = s.create(100);
    let mut conn = Request::patch_at(&url, 0).header("Transfer-Encoding", "chunked").open();
    conn.write_all(b"5\r\nhello\r\n").unwrap();
    conn.set_read_timeout(Duration::from_secs(8)).unwrap();
    conn.finish().expect_refused("a chunked PATCH body stalled for 8 s");
    expect_offset_settles(&url, 5, "the received chunk was not kept");
}

#[test]
fn c13_slow_but_steady_body_not_cut() {
    // The timeout is for a body that stalls, not for a slow one: 6 bytes over ~2.4 s, never
    // idle for more than 0.4 s, with --body-read-timeout 1s.
    let s = TestServer::spawn(&["--body-read-timeout", "1s"]);
    let url = s.create(6);
    let mut conn = open_patch(&url, 0, 6);
    for byte in b"steady" {
        thread::sleep(Duration::from_millis(400));
        conn.write_all(&[*byte]).unwrap();
    }
    let resp = conn.read_response().expect("response to a slow but steady PATCH");
    assert_eq!(resp.expect_status(204).offset(), 6);
    expect_complete(&url, b"steady");
}

#[test]
fn c14_chunked_patch_accepted() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = Request::patch_at(&url, 0).chunked(&[b"hel", b"lo", b" ", b"world"], &[]).send();
    assert_eq!(resp.expect_status(204).offset(), 11);
    expect_complete(&url, b"hello world");
}

#[test]
fn c15_patch_past_length_413_with_content_length() {
    let s = TestServer::start();
    let url = s.create(5);
    let resp = patch(&url, 0, b"hello world");
    resp.expect_refused_patch(413, &url, 0, "an oversized declared body (rejected before reading)");

    patch(&url, 0, b"hel").expect_status(204);
    patch(&url, 3, b"lo!").expect_status(413);
    assert_eq!(offset(&url), 3);
    patch(&url, 3, b"lo").expect_status(204);
    expect_complete(&url, b"hello");
}

#[test]
fn c15_patch_past_length_413_chunked() {
    let s = TestServer::start();
    let url = s.create(5);
    let resp = Request::patch_at(&url, 0).chunked(&[b"hel", b"lo wo", b"rld"], &[]).send();
    resp.expect_status(413).expect_tus_resumable();
    let o = offset(&url);
    assert!(o <= 5, "offset {o} exceeds Upload-Length 5");
    let h = head(&url);
    assert_eq!(h.length(), Some(5));
    if o == 5 {
        assert_eq!(get(&url).body, b"hello");
    } else {
        patch(&url, o, &b"hello"[o as usize..]).expect_status(204);
        assert_eq!(get(&url).body, b"hello");
    }
}

#[test]
fn c15_patch_on_completed_upload_non_empty_413() {
    let s = TestServer::start();
    let url = s.upload(b"hello");
    patch(&url, 5, b"!").expect_refused_patch(413, &url, 5, "a non-empty PATCH on a completed upload");
    expect_complete(&url, b"hello");
}

#[test]
fn c16_empty_patch_204_offset_unchanged() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch(&url, 0, b"");
    assert_eq!(resp.expect_status(204).offset(), 0);
    patch(&url, 0, b"hello").expect_status(204);
    let resp = patch(&url, 5, b"");
    assert_eq!(resp.expect_status(204).offset(), 5);
    assert_eq!(offset(&url), 5);
}

#[test]
fn c16_empty_patch_on_completed_upload_204() {
    let s = TestServer::start();
    let url = s.upload(b"hello");
    let resp = patch(&url, 5, b"");
    assert_eq!(resp.expect_status(204).offset(), 5);
    expect_complete(&url, b"hello");
}

// ---------------------------------------------------------------------------------------------
// D. OPTIONS
// ---------------------------------------------------------------------------------------------

#[test]
fn d1_options_200_with_tus_version() {
    let s = TestServer::start();
    let url = s.create(3);
    for resp in [s.options(), options(&url)] {
        resp.expect_status(200);
        assert!(resp.header_list("Tus-Version").iter().any(|v| v == TUS_RESUMABLE), "{resp}");
        assert!(resp.body.is_empty());
    }
}

#[test]
fn d2_options_lists_extensions_on_creation_and_upload_url() {
    let s = TestServer::start();
    let url = s.create(3);
    let on_creation: BTreeSet<String> = s.extensions().into_iter().collect();
    let on_upload: BTreeSet<String> = options(&url).header_list("Tus-Extension").into_iter().collect();
    assert!(on_creation.contains("creation"), "{on_creation:?}");
    assert_eq!(on_creation, on_upload, "OPTIONS differs between creation and upload URL");
}

#[test]
fn d2_options_max_size_only_when_configured() {
    let limited = TestServer::spawn(&["--max-size", "12345"]);
    let resp = limited.options();
    assert_eq!(resp.header("Tus-Max-Size"), Some("12345"));
    assert!(resp.header_list("Tus-Extension").iter().any(|e| e == "creation"));
}

#[test]
fn d3_options_ignores_tus_resumable() {
    let s = TestServer::start();
    for version in [None, Some("9.9.9"), Some("0.0.1"), Some("1.0.0"), Some("")] {
        let mut req = Request::new("OPTIONS", s.url());
        if let Some(v) = version {
            req = req.header("Tus-Resumable", v);
        }
        let resp = req.send();
        assert_eq!(resp.status, 200, "OPTIONS with Tus-Resumable {version:?}:\n{resp}");
        assert!(resp.has_header("Tus-Version"));
    }
}

#[test]
fn d4_options_tus_checksum_algorithm() {
    let s = TestServer::start();
    let resp = s.options();
    let algos = resp.header_list("Tus-Checksum-Algorithm");
    for want in CHECKSUM_ALGORITHMS {
        assert!(algos.iter().any(|a| a == want), "{want} missing from {algos:?}");
    }
}

#[test]
fn d5_options_includes_tus_resumable() {
    let s = TestServer::start();
    s.options().expect_tus_resumable();
    Request::new("OPTIONS", s.url()).header("Tus-Resumable", "0.0.1").send().expect_tus_resumable();
}
