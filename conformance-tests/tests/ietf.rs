//! The IETF "Resumable Uploads for HTTP" draft, interop versions 3 to 8, on the same endpoint
//! as tus 1.0 (../shared/spec/ietf-checklist.md, R-numbers in test names).
#![allow(clippy::unwrap_used)] // test fixtures: a failed setup step should just fail the test

use conformance_tests::{Request, Response, TestServer, get, pseudo_random};

const VERSIONS: [u32; 6] = [3, 4, 5, 6, 7, 8];

fn req(method: &str, url: &str, v: u32) -> Request {
    Request::new(method, url).header("Upload-Draft-Interop-Version", v.to_string())
}

/// The completion field of version `v`, as a request header.
fn complete(r: Request, v: u32, done: bool) -> Request {
    if v == 3 {
        r.header("Upload-Incomplete", if done { "?0" } else { "?1" })
    } else {
        r.header("Upload-Complete", if done { "?1" } else { "?0" })
    }
}

/// Whether a response says the upload is complete, in version `v`'s terms.
fn says_complete(res: &Response, v: u32) -> bool {
    let (name, yes) = if v == 3 { ("Upload-Incomplete", "?0") } else { ("Upload-Complete", "?1") };
    match res.header(name) {
        Some(value) => value == yes,
        None => panic!("no {name} in {}", res.dump()),
    }
}

fn append(url: &str, v: u32, offset: u64, data: &[u8], done: bool) -> Response {
    let content_type = if v >= 6 { "application/partial-upload" } else { "application/offset+octet-stream" };
    complete(req("PATCH", url, v), v, done)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", content_type)
        .body(data)
        .send()
}

fn create_empty(s: &TestServer, v: u32, length: Option<u64>) -> String {
    let mut r = complete(req("POST", s.url(), v), v, false).body(b"");
    if let Some(len) = length {
        r = r.header("Upload-Length", len.to_string());
    }
    let res = r.send();
    res.expect_status(201);
    s.resolve(res.location())
}

fn head(url: &str, v: u32) -> Response {
    req("HEAD", url, v).send()
}

#[test]
fn r22_r30_r32_r35_careful_creation_then_appends_in_every_version() {
    let s = TestServer::start();
    let data = pseudo_random(3000, 7);
    for v in VERSIONS {
        let url = create_empty(&s, v, Some(3000));
        let h = head(&url, v);
        h.expect_status(204);
        assert_eq!(h.header("Upload-Offset"), Some("0"), "v{v}");
        assert_eq!(h.header("Upload-Length"), Some("3000"), "v{v}");
        assert!(!says_complete(&h, v), "v{v}");
        assert!(h.header("Upload-Limit").is_some_and(|l| l.contains("min-size=0")), "v{v}");
        assert_eq!(h.header("Cache-Control"), Some("no-store"), "v{v}");
        assert_eq!(h.header("Upload-Draft-Interop-Version"), Some(v.to_string().as_str()), "v{v}");

        let first = append(&url, v, 0, &data[..1000], false);
        first.expect_status(204);
        assert!(!says_complete(&first, v), "v{v}");
        assert_eq!(first.header("Upload-Offset"), Some("1000"), "v{v}");
        let last = append(&url, v, 1000, &data[1000..], true);
        last.expect_status(204);
        assert!(says_complete(&last, v), "v{v}");
        assert!(says_complete(&head(&url, v), v), "v{v}");
        assert_eq!(get(&url).body, data, "v{v}");
    }
}

#[test]
fn r17_r24_whole_upload_in_the_creation_request() {
    let s = TestServer::start();
    for v in VERSIONS {
        let body = format!("complete in one request, v{v}");
        let res = complete(req("POST", s.url(), v), v, true)
            .header("Content-Type", "text/plain")
            .header("Content-Disposition", "inline; filename=\"note.txt\"")
            .body(body.as_bytes())
            .send();
        res.expect_status(201);
        assert!(says_complete(&res, v), "v{v}");
        let url = s.resolve(res.location());
        let got = get(&url);
        assert_eq!(got.body, body.as_bytes(), "v{v}");
        // The representation's metadata is kept: the download says what was uploaded.
        assert_eq!(got.header("Content-Type"), Some("text/plain"), "v{v}");
        assert!(got.header("Content-Disposition").unwrap().contains("note.txt"), "v{v}");
    }
}

#[test]
fn r8_r30c_unknown_length_is_fixed_by_the_completing_append() {
    let s = TestServer::start();
    for v in VERSIONS {
        let url = create_empty(&s, v, None);
        assert!(head(&url, v).header("Upload-Length").is_none(), "v{v}");
        append(&url, v, 0, b"abc", false).expect_status(204);
        let done = append(&url, v, 3, b"def", true);
        done.expect_status(204);
        assert_eq!(done.header("Upload-Length"), Some("6"), "v{v}");
        assert_eq!(get(&url).body, b"abcdef", "v{v}");
    }
}

#[test]
fn r33_offset_mismatch_is_409_with_the_real_offset_and_problem_details() {
    let s = TestServer::start();
    for v in VERSIONS {
        let url = create_empty(&s, v, Some(10));
        append(&url, v, 0, b"12345", false).expect_status(204);
        let res = append(&url, v, 2, b"xyz", false);
        res.expect_status(409);
        assert_eq!(res.header("Upload-Offset"), Some("5"), "v{v}");
        if v >= 6 {
            assert_eq!(res.header("Content-Type"), Some("application/problem+json"), "v{v}");
            let problem: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
            assert_eq!(
                problem["type"], "https://iana.org/assignments/http-problem-types#mismatching-upload-offset",
                "v{v}"
            );
            assert_eq!(problem["expected-offset"], 5, "v{v}");
            assert_eq!(problem["provided-offset"], 2, "v{v}");
        }
        assert_eq!(head(&url, v).header("Upload-Offset"), Some("5"), "v{v}: nothing changed");
    }
}

#[test]
fn draft_errors_come_from_the_error_table_and_are_counted() {
    let s = TestServer::start();
    let errors = |code: &str| {
        let text = get(&format!("{}/metrics", s.origin())).text();
        let line = format!("tus_errors_total{{code=\"{code}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)?.parse::<f64>().ok()).unwrap_or(0.0)
    };
    let url = create_empty(&s, 6, Some(3));
    append(&url, 6, 0, b"abc", true).expect_status(204);
    let before = (errors("ERR_UPLOAD_COMPLETED"), errors("ERR_MISMATCHED_OFFSET"));
    let res = append(&url, 6, 3, b"d", true);
    res.expect_status(400);
    let problem: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(problem["type"], "https://iana.org/assignments/http-problem-types#completed-upload");
    assert_eq!(problem["status"], 400);
    append(&create_empty(&s, 6, Some(3)), 6, 1, b"x", false).expect_status(409);
    assert_eq!(errors("ERR_UPLOAD_COMPLETED"), before.0 + 1.0);
    assert_eq!(errors("ERR_MISMATCHED_OFFSET"), before.1 + 1.0);
}

#[test]
fn r7_inconsistent_lengths_are_refused() {
    let s = TestServer::start();
    for v in VERSIONS {
        let res = complete(req("POST", s.url(), v), v, true).header("Upload-Length", "10").body(b"hello").send();
        res.expect_status(400);
        let url = create_empty(&s, v, Some(10));
        let res = append(&url, v, 0, b"short", true);
        res.expect_status(400);
        if v >= 6 {
            let problem: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
            assert_eq!(
                problem["type"], "https://iana.org/assignments/http-problem-types#inconsistent-upload-length",
                "v{v}"
            );
        }
        assert_eq!(head(&url, v).header("Upload-Offset"), Some("0"), "v{v}");
    }
}

#[test]
fn r31_from_interop_6_appends_need_partial_upload_content_type() {
    let s = TestServer::start();
    for v in [6, 7, 8] {
        let url = create_empty(&s, v, Some(3));
        let res = complete(req("PATCH", &url, v), v, true)
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .body(b"abc")
            .send();
        res.expect_status(415);
        assert_eq!(head(&url, v).header("Upload-Offset"), Some("0"));
    }
    // Before 6 any type is an append.
    let url = create_empty(&s, 5, Some(3));
    complete(req("PATCH", &url, 5), 5, true)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/octet-stream")
        .body(b"abc")
        .send()
        .expect_status(204);
}

#[test]
fn r37_completed_uploads_take_no_more_data() {
    let s = TestServer::start();
    for v in VERSIONS {
        let url = create_empty(&s, v, Some(2));
        append(&url, v, 0, b"ok", true).expect_status(204);
        append(&url, v, 2, b"more", true).expect_status(400);
        // Retrying the final (empty) append is harmless.
        append(&url, v, 2, b"", true).expect_status(204);
        assert_eq!(get(&url).body, b"ok", "v{v}");
    }
}

#[test]
fn r39_r1_r2_appends_without_valid_offset_or_completion_are_refused() {
    let s = TestServer::start();
    let url = create_empty(&s, 8, Some(5));
    let base = || req("PATCH", &url, 8).header("Content-Type", "application/partial-upload").body(b"hello");
    base().header("Upload-Complete", "?1").send().expect_status(400);
    base().header("Upload-Offset", "0").send().expect_status(400);
    base().header("Upload-Offset", "\"0\"").header("Upload-Complete", "?1").send().expect_status(400);
    base().header("Upload-Offset", "0").header("Upload-Complete", "true").send().expect_status(400);
    assert_eq!(head(&url, 8).header("Upload-Offset"), Some("0"));
}

#[test]
fn r12_r14_options_announces_partial_upload_and_limits() {
    let s = TestServer::spawn(&["--max-size", "1000000", "--expiration", "1h"]);
    for v in VERSIONS {
        let res = req("OPTIONS", s.url(), v).send();
        res.expect_status(200);
        assert!(res.header("Accept-Patch").unwrap().contains("application/partial-upload"), "v{v}");
        let limit = res.header("Upload-Limit").unwrap();
        assert!(limit.contains("min-size=0") && limit.contains("max-size=1000000"), "v{v}: {limit}");
        let age_key = if v >= 7 { "max-age=3600" } else { "expires=3600" };
        assert!(limit.contains(age_key), "v{v}: {limit}");
    }
    // Creation beyond max-size is refused with the limits.
    let res = complete(req("POST", s.url(), 8), 8, false).header("Upload-Length", "1000001").body(b"").send();
    res.expect_status(413);
    assert!(res.header("Upload-Limit").unwrap().contains("max-size=1000000"));
}

#[test]
fn r38_interrupted_append_keeps_received_bytes_and_is_not_complete() {
    let s = TestServer::start();
    let url = create_empty(&s, 8, Some(100_000));
    let mut conn = complete(req("PATCH", &url, 8), 8, true)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/partial-upload")
        .header("Content-Length", "100000")
        .body(b"")
        .open();
    conn.write_all(&[1u8; 30_000]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(conn);
    let stored = conformance_tests::poll(std::time::Duration::from_secs(3), || {
        let h = head(&url, 8);
        let offset: u64 = h.header("Upload-Offset")?.parse().ok()?;
        (offset > 0).then_some(h)
    })
    .expect("bytes of the interrupted append were kept");
    assert!(!says_complete(&stored, 8));
    assert_eq!(stored.header("Upload-Offset"), Some("30000"));
}

#[test]
fn r42_cancellation_then_gone() {
    let s = TestServer::start();
    for v in VERSIONS {
        let url = create_empty(&s, v, Some(5));
        req("DELETE", &url, v).send().expect_status(204);
        head(&url, v).expect_status_in(&[404, 410]);
    }
}

#[test]
fn unknown_interop_versions_are_plain_tus_requests() {
    let s = TestServer::start();
    for v in [2, 9] {
        let res = complete(req("POST", s.url(), v), v, false).body(b"").send();
        res.expect_status(412);
    }
}
