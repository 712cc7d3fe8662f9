//! Extension `termination` (T).

use std::time::Duration;

use conformance_tests::{
    Request, Response, TestServer, delete, expect_complete, extension_listed, get, head, patch, patch_in_flight,
};

#[track_caller]
fn assert_gone(resp: &Response) {
    resp.expect_status_in(&[404, 410]).expect_tus_resumable();
    assert!(!resp.has_header("Upload-Offset"), "terminated upload reports an offset:\n{resp}");
}

extension_listed!(t1_termination_listed, "termination");

#[test]
fn t1_termination_disabled_not_listed_and_405() {
    let s = TestServer::spawn(&["--disable-termination"]);
    let exts = s.extensions();
    assert!(!exts.iter().any(|e| e == "termination"), "{exts:?}");
    assert!(exts.iter().any(|e| e == "creation"), "{exts:?}");
    let url = s.upload(b"hello");
    let resp = delete(&url);
    resp.expect_status(405).expect_tus_resumable();
    let resp = Request::tus("POST", &url).header("X-HTTP-Method-Override", "DELETE").send();
    resp.expect_status(405);
    expect_complete(&url, b"hello");
}

#[test]
fn t2_delete_unfinished_204() {
    let s = TestServer::start();
    let url = s.create(11);
    patch(&url, 0, b"hello").expect_status(204);
    assert!(delete(&url).expect_status(204).expect_tus_resumable().body.is_empty());
    assert_gone(&head(&url));
}

#[test]
fn t2_delete_fresh_and_deferred_204() {
    let s = TestServer::start();
    for url in [s.create(11), s.create_deferred(), s.create(0)] {
        delete(&url).expect_status(204);
        assert_gone(&head(&url));
    }
}

#[test]
fn t3_delete_finished_204() {
    let s = TestServer::start();
    let url = s.upload(b"hello");
    delete(&url).expect_status(204);
    assert_gone(&head(&url));
}

#[test]
fn t4_after_delete_head_patch_delete_gone() {
    let s = TestServer::start();
    let url = s.create(11);
    patch(&url, 0, b"hello").expect_status(204);
    delete(&url).expect_status(204);
    assert_gone(&head(&url));
    assert_gone(&patch(&url, 5, b" world"));
    assert_gone(&patch(&url, 0, b"hello"));
    assert_gone(&delete(&url));
}

#[test]
fn t4_delete_interrupts_in_flight_patch() {
    let s = TestServer::start();
    let url = s.create(100_000);
    let mut conn = patch_in_flight(&url, 100_000, &[b'a'; 20_000]);
    delete(&url).expect_status(204);
    // Whatever the stale PATCH still sends must not bring the upload back.
    let _ = conn.write_all(&[b'b'; 20_000]);
    conn.set_read_timeout(Duration::from_secs(5)).unwrap();
    conn.finish().expect_refused("the PATCH of a deleted upload");
    assert_gone(&head(&url));
    get(&url).expect_status_in(&[404, 410]);
}

#[test]
fn t4_delete_unknown_404() {
    let s = TestServer::start();
    delete(&s.unknown_url()).expect_status(404).expect_tus_resumable();
}

#[test]
fn t5_deleted_upload_content_no_longer_served() {
    let s = TestServer::start();
    let url = s.upload(b"secret data");
    assert_eq!(get(&url).body, b"secret data");
    delete(&url).expect_status(204);
    let resp = get(&url);
    resp.expect_status_in(&[404, 410]);
    assert!(!resp.text().contains("secret data"), "deleted content still served:\n{resp}");
    // Other uploads are unaffected.
    let other = s.upload(b"other");
    delete(&url).expect_status_in(&[404, 410]);
    assert_eq!(get(&other).body, b"other");
}
