//! The IETF "Resumable Uploads for HTTP" draft, interop versions 3 to 9, on the same endpoint
//! as tus 1.0 (../shared/spec/ietf-checklist.md, R-numbers in test names). Tests named `v9_…`
//! pin what interop 9 (draft -12) changed.
#![allow(clippy::unwrap_used)] // test fixtures: a failed setup step should just fail the test

use conformance_tests::{Request, Response, TestServer, get, pseudo_random};

const VERSIONS: [u32; 7] = [3, 4, 5, 6, 7, 8, 9];

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
    for v in [6, 7, 8, 9] {
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
        if v <= 8 {
            assert!(res.header("Accept-Patch").unwrap().contains("application/partial-upload"), "v{v}");
        }
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
    for v in [2, 10] {
        let res = complete(req("POST", s.url(), v), v, false).body(b"").send();
        res.expect_status(412);
    }
}

// ---------------------------------------------------------------------------------------------
// Interop 9 (draft -12): what changed since -11
// ---------------------------------------------------------------------------------------------

const MISMATCHING_OFFSET: &str = "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";
const INCONSISTENT_LENGTH: &str = "https://iana.org/assignments/http-problem-types#inconsistent-upload-length";

fn problem(res: &Response) -> serde_json::Value {
    assert_eq!(res.header("Content-Type"), Some("application/problem+json"), "{}", res.dump());
    serde_json::from_slice(&res.body).unwrap()
}

#[test]
fn v9_r12_r14_options_needs_no_accept_patch_and_always_carries_upload_limit() {
    let s = TestServer::start();
    let res = req("OPTIONS", s.url(), 9).send();
    res.expect_status(200);
    assert_eq!(res.header("Upload-Draft-Interop-Version"), Some("9"));
    // -12 dropped the requirement: `Accept-Patch` on the creation URL would claim PATCH works
    // there (RFC 5789 §3.1), and it does not.
    assert!(!res.has_header("Accept-Patch"), "{}", res.dump());
    assert!(res.header("Upload-Limit").is_some_and(|l| l.contains("min-size=0")), "{}", res.dump());
    // Interop 8 (-10, -11) still requires it.
    assert!(req("OPTIONS", s.url(), 8).send().header("Accept-Patch").is_some_and(|v| v.contains("partial-upload")));
}

#[test]
fn v9_r30h_get_retrieves_the_offset_of_an_unfinished_upload() {
    let s = TestServer::start();
    let url = create_empty(&s, 9, Some(6));
    append(&url, 9, 0, b"abc", false).expect_status(204);
    let got = req("GET", &url, 9).send();
    got.expect_status(204);
    assert!(got.body.is_empty());
    assert_eq!(got.header("Upload-Offset"), Some("3"));
    assert_eq!(got.header("Upload-Length"), Some("6"));
    assert!(!says_complete(&got, 9));
    assert_eq!(got.header("Upload-Draft-Interop-Version"), Some("9"));
    // The same answer as HEAD.
    let h = head(&url, 9);
    for name in ["Upload-Offset", "Upload-Length", "Upload-Complete", "Upload-Limit", "Cache-Control"] {
        assert_eq!(got.header(name), h.header(name), "{name}");
    }
    // Before 9 a GET is a download, and an unfinished upload has none.
    req("GET", &url, 8).send().expect_status(409);

    // The client resumes where GET said, and a finished upload's GET brings its bytes along.
    append(&url, 9, 3, b"def", true).expect_status(204);
    let got = req("GET", &url, 9).send();
    got.expect_status(200);
    assert_eq!(got.body, b"abcdef");
    assert_eq!(got.header("Upload-Offset"), Some("6"));
    assert_eq!(got.header("Upload-Length"), Some("6"));
    assert!(says_complete(&got, 9));
    assert!(got.header("Upload-Limit").is_some_and(|l| l.contains("min-size=0")));
}

#[test]
fn v9_r30h_get_retrieves_the_offset_where_downloads_are_off() {
    let s = TestServer::spawn(&["--disable-download"]);
    let url = create_empty(&s, 9, Some(2));
    append(&url, 9, 0, b"ok", true).expect_status(204);
    let got = req("GET", &url, 9).send();
    got.expect_status(204);
    assert_eq!(got.header("Upload-Offset"), Some("2"));
    assert!(says_complete(&got, 9));
    assert_eq!(got.header("Cache-Control"), Some("no-store"));
    // Before 9 GET is only a download, which is off.
    req("GET", &url, 8).send().expect_status(405);
}

#[test]
fn v9_protocol_answers_to_creations_and_appends_say_upload_complete_false() {
    let s = TestServer::start();
    let url = create_empty(&s, 9, Some(5));
    let patch = || complete(req("PATCH", &url, 9), 9, false);
    // `Upload-Complete: ?0` marks an answer of the upload protocol, not of the target resource.
    let res = patch().header("Upload-Offset", "0").header("Content-Type", "application/octet-stream").body(b"x").send();
    res.expect_status(415);
    assert!(!says_complete(&res, 9));
    let res = patch().header("Content-Type", "application/partial-upload").body(b"x").send();
    res.expect_status(400);
    assert!(!says_complete(&res, 9));
    let res = append(&url, 9, 3, b"x", false);
    res.expect_status(409);
    assert!(!says_complete(&res, 9));
    let res = complete(req("POST", s.url(), 9), 9, true).header("Upload-Length", "10").body(b"hello").send();
    res.expect_status(400);
    assert_eq!(problem(&res)["type"], INCONSISTENT_LENGTH);
    assert!(!says_complete(&res, 9));
    assert_eq!(head(&url, 9).header("Upload-Offset"), Some("0"));
}

#[test]
fn v9_r37_appends_to_a_completed_upload_are_offset_or_length_errors() {
    let s = TestServer::start();
    let url = create_empty(&s, 9, Some(2));
    append(&url, 9, 0, b"ok", true).expect_status(204);
    // -12 has no completed-upload problem type: more content is an inconsistent length ...
    let res = append(&url, 9, 2, b"more", true);
    res.expect_status(400);
    assert_eq!(problem(&res)["type"], INCONSISTENT_LENGTH);
    assert!(!says_complete(&res, 9));
    // ... and so is announcing more to come, the length being reached.
    let res = append(&url, 9, 2, b"", false);
    res.expect_status(400);
    assert_eq!(problem(&res)["type"], INCONSISTENT_LENGTH);
    // A wrong offset is a mismatch telling where the upload ends.
    let res = append(&url, 9, 0, b"ok", true);
    res.expect_status(409);
    assert_eq!(problem(&res)["type"], MISMATCHING_OFFSET);
    assert_eq!(res.header("Upload-Offset"), Some("2"));
    assert!(!says_complete(&res, 9));
    // The valid retry of the final append gets the final response again.
    let res = append(&url, 9, 2, b"", true);
    res.expect_status(204);
    assert!(says_complete(&res, 9));
    assert_eq!(get(&url).body, b"ok");

    // Interop 8 keeps the completed-upload problem type.
    let url = create_empty(&s, 8, Some(2));
    append(&url, 8, 0, b"ok", true).expect_status(204);
    let res = append(&url, 8, 2, b"more", true);
    res.expect_status(400);
    assert_eq!(problem(&res)["type"], "https://iana.org/assignments/http-problem-types#completed-upload");
}

#[test]
fn v9_r40_r41_refusals_for_a_limit_carry_upload_limit() {
    let s = TestServer::spawn(&["--max-size", "10", "--expiration", "1h"]);
    let limited = |res: &Response| {
        res.expect_status(413);
        let limit = res.header("Upload-Limit").unwrap_or_else(|| panic!("no Upload-Limit in {}", res.dump()));
        assert!(limit.contains("max-size=10") && limit.contains("max-age="), "{limit}");
        assert!(!says_complete(res, 9));
    };
    // A creation declaring too much.
    limited(&complete(req("POST", s.url(), 9), 9, false).header("Upload-Length", "11").body(b"").send());
    // A creation of unknown length whose body runs past the maximum.
    limited(&complete(req("POST", s.url(), 9), 9, false).body([7u8; 11]).send());
    // Appends of an upload of unknown length: too much content, or too long a length declared.
    let url = create_empty(&s, 9, None);
    limited(&append(&url, 9, 0, &[7u8; 11], false));
    limited(
        &complete(req("PATCH", &url, 9), 9, false)
            .header("Upload-Offset", "0")
            .header("Upload-Length", "11")
            .header("Content-Type", "application/partial-upload")
            .body(b"")
            .send(),
    );
    assert_eq!(head(&url, 9).header("Upload-Offset"), Some("0"));
}

#[test]
fn v9_r22_r40_creation_with_no_content_is_always_allowed() {
    let s = TestServer::spawn(&["--max-size", "10"]);
    // No `min-append-size` is announced, so nothing a creation carries can fall short of one.
    let limit = req("OPTIONS", s.url(), 9).send().header("Upload-Limit").unwrap().to_owned();
    assert!(!limit.contains("min-append-size") && limit.contains("max-size=10"), "{limit}");
    for length in [None, Some(10)] {
        let url = create_empty(&s, 9, length);
        let h = head(&url, 9);
        assert_eq!(h.header("Upload-Offset"), Some("0"), "{length:?}");
        assert!(!says_complete(&h, 9));
    }
}
