//! Extensions `creation` (E), `creation-defer-length` (F) and `creation-with-upload` (G).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use conformance_tests::{
    OFFSET_OCTET_STREAM, Outcome, Request, TestServer, b64, encode_metadata, expect_complete, extension_listed, get,
    head, metadata_map, offset, offset_and_length, patch, response_metadata,
};
use sha1::{Digest, Sha1};

fn sha1_header(data: &[u8]) -> String {
    format!("sha1 {}", b64(Sha1::digest(data)))
}

fn is_lower_hex_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Asserts that, on a fresh server, a creation with each of these `Upload-Metadata` values is
/// refused with 400 and creates nothing.
#[track_caller]
fn expect_metadata_refused(values: &[&str]) {
    let s = TestServer::start();
    for bad in values {
        let resp = s.post().header("Upload-Length", "1").header("Upload-Metadata", *bad).body(b"").send();
        resp.expect_refused_creation(400, &format!("Upload-Metadata {bad:?}"));
    }
}

/// A creation-with-upload POST declaring `Upload-Length: length` (add the body).
fn post_with_upload(s: &TestServer, length: &str) -> Request {
    s.post().header("Upload-Length", length).header("Content-Type", OFFSET_OCTET_STREAM)
}

/// Creates an upload of `length` bytes with `body` in the POST; asserts `201` with an
/// `Upload-Offset` of all the body and returns the upload's URL.
#[track_caller]
fn create_with_upload(s: &TestServer, length: u64, body: &[u8]) -> String {
    let resp = post_with_upload(s, &length.to_string()).body(body).send();
    assert_eq!(resp.expect_status(201).offset(), body.len() as u64);
    s.resolve(resp.location())
}

/// The `Upload-Metadata` example of the tus 1.0 specification.
const SPEC_METADATA: &str = "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential";

// ---------------------------------------------------------------------------------------------
// E. creation
// ---------------------------------------------------------------------------------------------

extension_listed!(e1_creation_listed, "creation");

#[test]
fn e2_post_returns_201() {
    let s = TestServer::start();
    let resp = s.post().header("Upload-Length", "100").body(b"").send();
    resp.expect_status(201).expect_tus_resumable();
    // Without any Content-Length header at all, too.
    let resp = s.post().header("Upload-Length", "100").send();
    resp.expect_status(201);
}

#[test]
fn e3_location_is_absolute_url_with_hex_id() {
    let s = TestServer::start();
    let resp = s.post().header("Upload-Length", "100").body(b"").send();
    resp.expect_status(201);
    let loc = resp.location();
    let id = loc
        .strip_prefix(s.url())
        .unwrap_or_else(|| panic!("Location {loc:?} is not an absolute URL under {}", s.url()));
    assert!(is_lower_hex_id(id), "upload ID {id:?} is not 32 lower-case hex characters");
    head(loc).expect_status(200);
}

#[test]
fn e3_location_ids_are_unique() {
    let s = TestServer::start();
    let ids: BTreeSet<String> = (0..20).map(|_| s.create(1)).collect();
    assert_eq!(ids.len(), 20, "duplicate upload URLs: {ids:?}");
}

#[test]
fn e4_new_upload_has_offset_zero() {
    let s = TestServer::start();
    let url = s.create(100);
    assert_eq!(offset_and_length(&url), (0, Some(100)));
}

#[test]
fn e5_missing_length_400_no_location() {
    let s = TestServer::start();
    for headers in [vec![], vec![("Upload-Metadata", "filename YS50eHQ=")], vec![("Upload-Concat", "partial")]] {
        let resp = s.post().headers(&headers).body(b"").send();
        resp.expect_refused_creation(400, &format!("POST with {headers:?}")).expect_tus_resumable();
    }
}

#[test]
fn e6_defer_length_not_one_400() {
    let s = TestServer::start();
    for bad in ["2", "0", "true", "-1", "yes", "01x"] {
        let resp = s.post().header("Upload-Defer-Length", bad).body(b"").send();
        resp.expect_refused_creation(400, &format!("Upload-Defer-Length {bad:?}"));
    }
}

#[test]
fn e7_zero_length_upload_complete_at_once() {
    let s = TestServer::start();
    let url = s.create(0);
    assert_eq!(offset_and_length(&url), (0, Some(0)));
    let body = get(&url);
    body.expect_status(200);
    assert!(body.body.is_empty());
    assert_eq!(body.header("Content-Length"), Some("0"));
    patch(&url, 0, b"").expect_status(204);
    patch(&url, 0, b"x").expect_status(413);
    assert_eq!(offset(&url), 0);
}

#[test]
fn e8_length_over_max_size_413() {
    let s = TestServer::spawn(&["--max-size", "1000"]);
    for too_big in ["1001", "18446744073709551615"] {
        let resp = s.post().header("Upload-Length", too_big).body(b"").send();
        resp.expect_refused_creation(413, &format!("Upload-Length {too_big}"))
            .expect_tus_resumable()
            .expect_error_body();
    }
    let url = s.create(1000);
    assert_eq!(head(&url).length(), Some(1000));
}

#[test]
fn e9_metadata_accepted_201() {
    let s = TestServer::start();
    let resp = s.post().header("Upload-Length", "1").header("Upload-Metadata", SPEC_METADATA).body(b"").send();
    resp.expect_status(201);
}

#[test]
fn e10_head_echoes_metadata() {
    let s = TestServer::start();
    let url = s.create_with(&[("Upload-Length", "1"), ("Upload-Metadata", SPEC_METADATA)]);
    let resp = head(&url);
    assert_eq!(
        response_metadata(&resp),
        metadata_map(&[("filename", b"world_domination_plan.pdf"), ("is_confidential", b"")]),
        "{resp}"
    );
    // Still echoed after data arrived.
    patch(&url, 0, b"x").expect_status(204);
    assert_eq!(response_metadata(&head(&url)).len(), 2);
}

#[test]
fn e10_no_metadata_header_without_metadata() {
    let s = TestServer::start();
    let url = s.create(1);
    let resp = head(&url);
    assert!(
        resp.header("Upload-Metadata").is_none_or(|v| v.trim().is_empty()),
        "metadata invented for an upload without metadata:\n{resp}"
    );
}

#[test]
fn e11_metadata_format_key_only_with_and_without_space() {
    let s = TestServer::start();
    let url = s.create_with(&[("Upload-Length", "1"), ("Upload-Metadata", "k1 dmFsdWU=,k2 ,k3")]);
    assert_eq!(response_metadata(&head(&url)), metadata_map(&[("k1", b"value"), ("k2", b""), ("k3", b"")]));
    // Binary values and non-trivial keys round-trip.
    let value: Vec<u8> = (0u8..=255).collect();
    let header = encode_metadata(&[("bin.data_1-x", &value), ("utf8", "ünïcødé".as_bytes())]);
    let url = s.create_with(&[("Upload-Length", "1"), ("Upload-Metadata", &header)]);
    assert_eq!(
        response_metadata(&head(&url)),
        metadata_map(&[("bin.data_1-x", &value), ("utf8", "ünïcødé".as_bytes())])
    );
}

#[test]
fn e11_malformed_metadata_400() {
    // (A leading space, " YQ==", can't express an empty key: HTTP strips it from the value.)
    expect_metadata_refused(&["a  YQ==", "a YQ== Yg==", "a YQ==,,b Yg==", ",a YQ=="]);
}

#[test]
fn e12_duplicate_metadata_keys_400() {
    expect_metadata_refused(&["a YQ==,a Yg==", "a YQ==,b,a"]);
}

#[test]
fn e13_key_only_entry_echoed() {
    let s = TestServer::start();
    let url = s.create_with(&[("Upload-Length", "1"), ("Upload-Metadata", "is_confidential")]);
    assert_eq!(response_metadata(&head(&url)), metadata_map(&[("is_confidential", b"")]));
}

#[test]
fn e14_invalid_base64_metadata_400() {
    expect_metadata_refused(&["filename ***", "a !!!!", "a YQ==,b Y*==", "a Y Q=="]);
}

#[test]
fn e15_metadata_crlf_value_no_header_injection() {
    let s = TestServer::start();
    let evil = b"a\r\nX-Injected: 1\r\n\r\nbody";
    let header = encode_metadata(&[("x", evil), ("filename", b"evil\r\nX-Injected: 2.txt")]);
    let url = s.create_with(&[("Upload-Length", "1"), ("Upload-Metadata", &header)]);
    let resp = head(&url);
    resp.expect_status(200);
    assert!(!resp.has_header("X-Injected"), "header injected via metadata:\n{resp}");
    assert_eq!(
        response_metadata(&resp),
        metadata_map(&[("x", evil), ("filename", b"evil\r\nX-Injected: 2.txt")]),
        "the CR/LF value must be stored as sent"
    );
    patch(&url, 0, b"z").expect_status(204);
    let dl = get(&url);
    dl.expect_status(200);
    assert!(!dl.has_header("X-Injected"), "header injected into the download:\n{dl}");
    assert_eq!(dl.body, b"z");
}

#[test]
fn e16_length_and_defer_both_400() {
    let s = TestServer::start();
    let resp = s.post().header("Upload-Length", "5").header("Upload-Defer-Length", "1").body(b"").send();
    resp.expect_refused_creation(400, "Upload-Length with Upload-Defer-Length");
}

// ---------------------------------------------------------------------------------------------
// F. creation-defer-length
// ---------------------------------------------------------------------------------------------

extension_listed!(f1_defer_length_listed, "creation-defer-length");

#[test]
fn f2_post_defer_length_201() {
    let s = TestServer::start();
    let resp = s.post().header("Upload-Defer-Length", "1").body(b"").send();
    resp.expect_status(201);
    head(&s.resolve(resp.location())).expect_status(200);
}

#[test]
fn f3_head_defer_length_1() {
    let s = TestServer::start();
    let url = s.create_deferred();
    let resp = head(&url);
    assert_eq!(resp.header("Upload-Defer-Length"), Some("1"), "{resp}");
    assert_eq!(resp.offset(), 0);
    patch(&url, 0, b"hello").expect_status(204);
    let resp = head(&url);
    assert_eq!(resp.header("Upload-Defer-Length"), Some("1"), "{resp}");
    assert_eq!(resp.offset(), 5);
}

#[test]
fn f4_deferred_head_has_no_upload_length() {
    let s = TestServer::start();
    let deferred = s.create_deferred();
    assert!(!head(&deferred).has_header("Upload-Length"));
    let normal = s.create(3);
    assert!(!head(&normal).has_header("Upload-Defer-Length"));
}

#[test]
fn f5_patch_declares_length() {
    let s = TestServer::start();
    let url = s.create_deferred();
    let resp = Request::patch(&url, 0, b"hello").header("Upload-Length", "11").send();
    assert_eq!(resp.expect_status(204).offset(), 5);
    let h = head(&url);
    assert_eq!(h.length(), Some(11));
    assert!(!h.has_header("Upload-Defer-Length"), "{h}");
    patch(&url, 5, b" world").expect_status(204);
    expect_complete(&url, b"hello world");
}

#[test]
fn f5_data_without_length_then_length_later() {
    let s = TestServer::start();
    let url = s.create_deferred();
    patch(&url, 0, b"hello").expect_status(204);
    patch(&url, 5, b" wor").expect_status(204);
    let resp = Request::patch(&url, 9, b"ld").header("Upload-Length", "11").send();
    assert_eq!(resp.expect_status(204).offset(), 11);
    expect_complete(&url, b"hello world");
}

#[test]
fn f6_different_length_rejected_400() {
    let s = TestServer::start();
    let url = s.create_deferred();
    Request::patch(&url, 0, b"hello").header("Upload-Length", "11").send().expect_status(204);
    let resp = Request::patch(&url, 5, b" world").header("Upload-Length", "12").send();
    resp.expect_status(400);
    assert_eq!(offset_and_length(&url), (5, Some(11)));
    // An identical repeat is accepted.
    let resp = Request::patch(&url, 5, b" world").header("Upload-Length", "11").send();
    assert_eq!(resp.expect_status(204).offset(), 11);
}

#[test]
fn f6_length_change_on_normal_upload_rejected_400() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = Request::patch(&url, 0, b"hello").header("Upload-Length", "12").send();
    resp.expect_status(400);
    assert_eq!(offset_and_length(&url), (0, Some(11)));
    let resp = Request::patch(&url, 0, b"hello").header("Upload-Length", "11").send();
    resp.expect_status(204);
}

#[test]
fn f6_invalid_declared_length_400() {
    let s = TestServer::start();
    let url = s.create_deferred();
    for bad in ["abc", "-1", "1.5", ""] {
        let resp = Request::patch(&url, 0, b"hi").header("Upload-Length", bad).send();
        assert_eq!(resp.status, 400, "Upload-Length {bad:?}:\n{resp}");
    }
    let h = head(&url);
    assert_eq!(h.offset(), 0);
    assert_eq!(h.header("Upload-Defer-Length"), Some("1"));
}

#[test]
fn f7_length_below_offset_400() {
    let s = TestServer::start();
    let url = s.create_deferred();
    patch(&url, 0, b"hello").expect_status(204);
    let resp = Request::patch(&url, 5, b"").header("Upload-Length", "3").send();
    resp.expect_status(400);
    let h = head(&url);
    assert_eq!(h.offset(), 5);
    assert_eq!(h.header("Upload-Defer-Length"), Some("1"));
    assert!(!h.has_header("Upload-Length"));
    // Declaring a length smaller than offset + body is rejected too.
    let resp = Request::patch(&url, 5, b" world").header("Upload-Length", "8").send();
    resp.expect_status_in(&[400, 413]);
    assert_eq!(offset(&url), 5);
}

#[test]
fn f8_deferred_length_over_max_413() {
    let s = TestServer::spawn(&["--max-size", "100"]);
    let url = s.create_deferred();
    let resp = Request::patch(&url, 0, b"").header("Upload-Length", "101").send();
    resp.expect_status(413);
    let h = head(&url);
    assert_eq!(h.header("Upload-Defer-Length"), Some("1"));
    let resp = Request::patch(&url, 0, b"").header("Upload-Length", "100").send();
    resp.expect_status(204);
    assert_eq!(head(&url).length(), Some(100));
}

#[test]
fn f8_deferred_data_past_max_size_413() {
    let s = TestServer::spawn(&["--max-size", "100"]);
    let url = s.create_deferred();
    let resp = patch(&url, 0, &[b'a'; 101]);
    resp.expect_status(413);
    let o = offset(&url);
    assert!(o <= 100, "offset {o} exceeds --max-size 100");

    let url = s.create_deferred();
    patch(&url, 0, &[b'a'; 60]).expect_status(204);
    let resp = Request::patch_at(&url, 60).chunked(&[&[b'b'; 30], &[b'c'; 30]], &[]).send();
    resp.expect_status(413);
    let o = offset(&url);
    assert!((60..=100).contains(&o), "offset {o} after a chunked overflow of --max-size 100");
}

#[test]
fn f10_empty_patch_declaring_length_completes() {
    let s = TestServer::start();
    let url = s.create_deferred();
    patch(&url, 0, b"hello").expect_status(204);
    assert_eq!(get(&url).status, 409, "a deferred upload is not finished");
    let resp = Request::patch(&url, 5, b"").header("Upload-Length", "5").send();
    assert_eq!(resp.expect_status(204).offset(), 5);
    expect_complete(&url, b"hello");
    assert!(!head(&url).has_header("Upload-Defer-Length"));
}

#[test]
fn f10_deferred_zero_length_completes() {
    let s = TestServer::start();
    let url = s.create_deferred();
    Request::patch(&url, 0, b"").header("Upload-Length", "0").send().expect_status(204);
    expect_complete(&url, b"");
}

// ---------------------------------------------------------------------------------------------
// G. creation-with-upload
// ---------------------------------------------------------------------------------------------

extension_listed!(g1_creation_with_upload_listed, "creation-with-upload");

#[test]
fn g2_creation_with_upload_implies_creation() {
    let s = TestServer::start();
    let exts = s.extensions();
    if exts.iter().any(|e| e == "creation-with-upload") {
        assert!(exts.iter().any(|e| e == "creation"), "{exts:?}");
    }
    assert!(exts.iter().any(|e| e == "creation-with-upload"));
}

#[test]
fn g3_post_with_body_201_with_offset() {
    let s = TestServer::start();
    let url = create_with_upload(&s, 100, b"hello");
    assert_eq!(offset_and_length(&url), (5, Some(100)));
    patch(&url, 5, &[b'!'; 95]).expect_status(204);
    assert_eq!(&get(&url).body[..6], b"hello!");
}

#[test]
fn g3_post_with_chunked_body() {
    let s = TestServer::start();
    let resp = post_with_upload(&s, "11").chunked(&[b"hello", b" world"], &[]).send();
    assert_eq!(resp.expect_status(201).offset(), 11);
    assert_eq!(get(&s.resolve(resp.location())).body, b"hello world");
}

#[test]
fn g3_deferred_post_with_body() {
    let s = TestServer::start();
    let resp =
        s.post().header("Upload-Defer-Length", "1").header("Content-Type", OFFSET_OCTET_STREAM).body(b"hello").send();
    assert_eq!(resp.expect_status(201).offset(), 5);
    let h = head(&s.resolve(resp.location()));
    assert_eq!(h.header("Upload-Defer-Length"), Some("1"));
    assert_eq!(h.offset(), 5);
}

#[test]
fn g4_interrupted_creation_body_is_cut_and_kept() {
    let s = TestServer::spawn(&["--body-read-timeout", "1s"]);
    let mut conn = post_with_upload(&s, "100").header("Content-Length", "100").open();
    conn.write_all(b"abc").unwrap();
    let started = Instant::now();
    conn.set_read_timeout(Duration::from_secs(8)).unwrap();
    match conn.finish() {
        Outcome::TimedOut => panic!("a creation body stalled for 8 s was not cut"),
        Outcome::Closed(_) => {}
        Outcome::Response(resp) => {
            if let Some(loc) = resp.header("Location") {
                let url = s.resolve(loc);
                let kept = offset(&url);
                assert_eq!(kept, 3, "received creation bytes not kept:\n{resp}");
            } else {
                assert!(resp.status >= 400, "success without Location:\n{resp}");
            }
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    s.assert_healthy();
}

#[test]
fn g5_body_longer_than_length_413() {
    let s = TestServer::start();
    let resp = post_with_upload(&s, "3").body(b"hello").send();
    resp.expect_status(413).expect_tus_resumable();
    if let Some(loc) = resp.header("Location") {
        let o = offset(&s.resolve(loc));
        assert!(o <= 3, "offset {o} beyond Upload-Length 3");
    }
}

#[test]
fn g6_whole_file_body_completes() {
    let s = TestServer::start();
    let url = create_with_upload(&s, 11, b"hello world");
    expect_complete(&url, b"hello world");
}

#[test]
fn g7_expect_100_continue() {
    let s = TestServer::start();
    let resp = post_with_upload(&s, "11").header("Expect", "100-continue").body(b"hello world").send();
    assert_eq!(resp.interim, vec![100], "no 100 Continue before the body:\n{resp}");
    assert_eq!(resp.expect_status(201).offset(), 11);
    assert_eq!(get(&s.resolve(resp.location())).body, b"hello world");
}

#[test]
fn g7_expect_100_continue_on_patch() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = Request::patch(&url, 0, b"hello world").header("Expect", "100-continue").send();
    assert_eq!(resp.interim, vec![100], "no 100 Continue before the PATCH body:\n{resp}");
    assert_eq!(resp.expect_status(204).offset(), 11);
}

#[test]
fn g7_expect_100_continue_early_error() {
    let s = TestServer::spawn(&["--max-size", "10"]);
    let resp = post_with_upload(&s, "11").header("Expect", "100-continue").body(b"hello world").send();
    resp.expect_refused_creation(413, "a body announced with Expect: 100-continue over --max-size");
}

#[test]
fn g8_body_with_other_content_type_415() {
    let s = TestServer::start();
    for ct in ["text/plain", "application/octet-stream"] {
        let resp = s.post().header("Upload-Length", "5").header("Content-Type", ct).body(b"hello").send();
        resp.expect_refused_creation(415, &format!("POST body with Content-Type {ct}"));
    }
}

#[test]
fn g8_empty_body_with_any_content_type_201() {
    let s = TestServer::start();
    for ct in ["text/plain", "application/x-www-form-urlencoded", OFFSET_OCTET_STREAM] {
        let resp = s.post().header("Upload-Length", "5").header("Content-Type", ct).body(b"").send();
        assert_eq!(resp.status, 201, "empty POST with Content-Type {ct}:\n{resp}");
        if let Some(o) = resp.u64_header("Upload-Offset") {
            assert_eq!(o, 0);
        }
        assert_eq!(offset(&s.resolve(resp.location())), 0);
    }
}

#[test]
fn g9_checksum_on_post_body() {
    let s = TestServer::start();
    let post = |sum: &str| post_with_upload(&s, "11").header("Upload-Checksum", sum).body(b"hello world").send();
    let resp = post(&sha1_header(b"hello world"));
    assert_eq!(resp.expect_status(201).offset(), 11);

    let resp = post(&sha1_header(b"hello there"));
    resp.expect_status(460).expect_tus_resumable();
    if let Some(loc) = resp.header("Location") {
        assert_eq!(offset(&s.resolve(loc)), 0, "mismatching creation body was kept");
    }

    let resp = post("nosuchalgo AAAA");
    resp.expect_status(400);
    if let Some(loc) = resp.header("Location") {
        assert_eq!(offset(&s.resolve(loc)), 0);
    }
}
