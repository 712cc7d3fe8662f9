//! Extension `expiration` (H). The servers here run with `--expiration 2s`.

use std::thread;
use std::time::{Duration, SystemTime};

use conformance_tests::{OFFSET_OCTET_STREAM, Response, TestServer, get, head, parse_imf_fixdate, patch};

const EXPIRY: Duration = Duration::from_secs(2);
/// Comfortably longer than [`EXPIRY`]: the upload must be gone after this much idle time.
const IDLE: Duration = Duration::from_millis(3500);

fn server() -> TestServer {
    TestServer::spawn(&["--expiration", "2s"])
}

/// The `Upload-Expires` header parsed as IMF-fixdate, asserting it is roughly `EXPIRY` ahead.
#[track_caller]
fn expires(resp: &Response) -> SystemTime {
    let raw = resp.header("Upload-Expires").unwrap_or_else(|| panic!("no Upload-Expires in:\n{resp}"));
    let at = parse_imf_fixdate(raw).unwrap_or_else(|| panic!("Upload-Expires {raw:?} is not an IMF-fixdate"));
    let now = SystemTime::now();
    assert!(at + Duration::from_secs(2) >= now, "Upload-Expires {raw:?} lies in the past");
    assert!(
        at <= now + EXPIRY + Duration::from_secs(5),
        "Upload-Expires {raw:?} is much later than the configured 2 s"
    );
    at
}

#[track_caller]
fn assert_gone(resp: &Response) {
    resp.expect_status_in(&[404, 410]);
    assert!(!resp.has_header("Upload-Offset"), "expired upload still reports an offset:\n{resp}");
}

#[test]
fn h1_expiration_listed() {
    let s = server();
    assert!(s.extensions().iter().any(|e| e == "expiration"), "{:?}", s.extensions());
}

#[test]
fn h1_expiration_not_listed_without_flag() {
    let s = TestServer::spawn(&[]);
    assert!(!s.extensions().iter().any(|e| e == "expiration"));
    let url = s.create(5);
    let resp = patch(&url, 0, b"he");
    resp.expect_status(204);
    assert!(!resp.has_header("Upload-Expires"), "Upload-Expires without --expiration:\n{resp}");
}

#[test]
fn h2_upload_expires_on_every_patch() {
    let s = server();
    let url = s.create(11);
    for (offset, chunk) in [(0u64, &b"hel"[..]), (3, b"lo "), (6, b""), (6, b"wor")] {
        let resp = patch(&url, offset, chunk);
        resp.expect_status(204);
        expires(&resp);
    }
}

#[test]
fn h2_upload_expires_on_error_patch_responses() {
    // "Upload-Expires MUST be included in every PATCH response if the upload is going to
    // expire": also when the PATCH itself is rejected.
    let s = server();
    let url = s.create(5);
    patch(&url, 0, b"he").expect_status(204);
    let bad_sum = format!("sha1 {}", conformance_tests::b64([0u8; 20]));
    for resp in [
        patch(&url, 0, b"x"),
        patch(&url, 2, b"too long"),
        conformance_tests::Request::patch(&url, 2, b"llo").header("Upload-Checksum", bad_sum).send(),
    ] {
        assert!(resp.status >= 400, "{resp}");
        expires(&resp);
    }
}

#[test]
fn h3_upload_expires_on_post() {
    let s = server();
    let resp = s.post().header("Upload-Length", "11").body(b"").send();
    resp.expect_status(201);
    expires(&resp);

    let resp = s.post().header("Upload-Defer-Length", "1").body(b"").send();
    resp.expect_status(201);
    expires(&resp);

    // creation-with-upload that leaves the upload unfinished.
    let resp = s.post().header("Upload-Length", "11").header("Content-Type", OFFSET_OCTET_STREAM).body(b"hello").send();
    resp.expect_status(201);
    expires(&resp);
}

#[test]
fn h4_upload_expires_is_imf_fixdate() {
    let s = server();
    let resp = s.post().header("Upload-Length", "11").body(b"").send();
    let raw = resp.header("Upload-Expires").unwrap_or_default().to_owned();
    let bytes = raw.as_bytes();
    assert_eq!(bytes.len(), 29, "{raw:?}");
    assert!(raw.ends_with(" GMT"), "{raw:?}");
    assert!(parse_imf_fixdate(&raw).is_some(), "{raw:?} is not an IMF-fixdate");
    let url = s.resolve(resp.location());
    let p = patch(&url, 0, b"x");
    assert!(parse_imf_fixdate(p.header("Upload-Expires").unwrap_or_default()).is_some(), "{p}");
}

#[test]
fn h5_expired_upload_is_gone() {
    let s = server();
    let url = s.create(11);
    patch(&url, 0, b"hello").expect_status(204);
    let fresh = s.create(11);
    thread::sleep(IDLE);
    assert_gone(&head(&url));
    assert_gone(&patch(&url, 5, b" world"));
    assert_gone(&head(&fresh));
    assert_gone(&patch(&fresh, 0, b"hello"));
    get(&url).expect_status_in(&[404, 410]);
    s.assert_healthy();
}

#[test]
fn h6_expiry_slides_with_patch() {
    let s = server();
    let url = s.create(8);
    let mut last = expires(&patch(&url, 0, b"a"));
    for i in 1..5u64 {
        thread::sleep(Duration::from_millis(900));
        let resp = patch(&url, i, b"b");
        resp.expect_status(204);
        let at = expires(&resp);
        assert!(at >= last, "Upload-Expires went backwards");
        last = at;
    }
    // Created ~3.6 s ago, but kept alive by the PATCHes.
    assert_eq!(head(&url).expect_status(200).offset(), 5);
    thread::sleep(IDLE);
    assert_gone(&head(&url));
}

#[test]
fn h7_finished_upload_never_expires() {
    let s = server();
    let url = s.create(11);
    let resp = patch(&url, 0, b"hello world");
    resp.expect_status(204);
    if let Some(raw) = resp.header("Upload-Expires") {
        assert!(parse_imf_fixdate(raw).is_some(), "malformed Upload-Expires {raw:?}");
    }
    let empty = s.create(0);
    thread::sleep(IDLE);
    let h = head(&url);
    h.expect_status(200);
    assert_eq!((h.offset(), h.length()), (11, Some(11)));
    assert_eq!(get(&url).expect_status(200).body, b"hello world");
    head(&empty).expect_status(200);
}
