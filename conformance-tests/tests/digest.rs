//! Whole-file digests through the binary (on whatever store `TUS_SERVER_ARGS` names): a
//! creation declares the file's digest, the server proves it once the upload is complete
//! (before the completing response for small uploads, in the background past
//! `--digest-sync-max`), a restart between the last byte and the verdict still ends in one,
//! and the digest is told on the completing response, `HEAD` and `GET`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use conformance_tests::{Request, TestServer, b64, get, head, patch, poll, pseudo_random};
use sha2::Digest as _;

fn repr(data: &[u8]) -> String {
    format!("sha-256=:{}:", b64(sha2::Sha256::digest(data)))
}

/// The upload's state once it is no longer `processing`.
fn verdict(url: &str) -> conformance_tests::Response {
    let settled = poll(Duration::from_secs(20), || {
        let res = head(url);
        res.header("Upload-State").is_some_and(|s| s != "processing").then_some(res)
    });
    settled.unwrap_or_else(|| panic!("no verdict for {url}"))
}

#[test]
fn small_uploads_are_proven_before_the_completing_response() {
    let server = TestServer::spawn(&[]);
    let data = pseudo_random(300_000, 16);
    let length = data.len().to_string();
    // Right, across two requests.
    let url = server.create_with(&[("Upload-Length", &length), ("Repr-Digest", &repr(&data))]);
    patch(&url, 0, &data[..100_000]).expect_status(204);
    let done = patch(&url, 100_000, &data[100_000..]);
    done.expect_status(204);
    assert_eq!(done.header("Repr-Digest"), Some(repr(&data).as_str()), "{done}");
    let res = verdict(&url);
    assert_eq!(res.header("Upload-State"), Some("clean"));
    assert_eq!(res.header("Repr-Digest"), Some(repr(&data).as_str()));
    let got = get(&url);
    got.expect_status(200);
    assert_eq!(got.header("Repr-Digest"), Some(repr(&data).as_str()));
    assert_eq!(got.body, data);
    // Wrong: the completing request hears it, and the file is never served.
    let url = server.create_with(&[("Upload-Length", &length), ("Repr-Digest", &repr(b"another file"))]);
    let done = patch(&url, 0, &data);
    assert_eq!(done.status, 460, "{done}");
    assert!(done.text().contains("ERR_DIGEST_MISMATCH"), "{done}");
    assert_eq!(done.header("Repr-Digest"), Some(repr(&data).as_str()));
    assert_eq!(head(&url).header("Upload-State"), Some("rejected"));
    assert_eq!(get(&url).status, 403);
    // The metadata form, for clients that can only send metadata.
    let meta = format!("checksum {}", b64(format!("sha256 {}", b64(sha2::Sha256::digest(&data)))));
    let url = server.create_with(&[("Upload-Length", &length), ("Upload-Metadata", &meta)]);
    patch(&url, 0, &data).expect_status(204);
    assert_eq!(verdict(&url).header("Upload-State"), Some("clean"));
}

#[test]
fn malformed_declarations_are_refused_and_nothing_is_created() {
    let server = TestServer::spawn(&[]);
    let huge = format!("sha-256=:{}:", "A".repeat(6000));
    for bad in ["sha-256=:YQ==:", "sha-256", "sha-512=\"text\"", huge.as_str()] {
        let res = server.post().header("Upload-Length", "5").header("Repr-Digest", bad).body(b"").send();
        assert_eq!(res.status, 400, "{bad:?}: {res}");
        assert!(res.header("Location").is_none());
    }
}

#[test]
fn large_uploads_are_proven_in_the_background_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--digest-sync-max", "0"];
    let mut server = TestServer::spawn_in(dir.path(), &args);
    let data = pseudo_random(6 << 20, 17);
    let length = data.len().to_string();
    let good = server.create_with(&[("Upload-Length", &length), ("Repr-Digest", &repr(&data))]);
    let bad = server.create_with(&[("Upload-Length", &length), ("Repr-Digest", &repr(b"not it"))]);
    for url in [&good, &bad] {
        let done = patch(url, 0, &data);
        assert_eq!(done.status, 204, "past the limit the completing request is answered at once: {done}");
    }
    // Killed between the last byte and (perhaps) the verdict: the next start finishes it.
    server.kill();
    let server = TestServer::spawn_in(dir.path(), &args);
    // (Same uploads, new port.)
    let moved = |url: &str| server.at(&format!("/{}", url.splitn(4, '/').nth(3).unwrap()));
    let (good, bad) = (moved(&good), moved(&bad));
    let res = verdict(&good);
    assert_eq!(res.header("Upload-State"), Some("clean"));
    assert_eq!(res.header("Repr-Digest"), Some(repr(&data).as_str()));
    assert_eq!(verdict(&bad).header("Upload-State"), Some("rejected"));
}

#[test]
fn want_repr_digest_and_content_digest() {
    let server = TestServer::spawn(&[]);
    let data = pseudo_random(50_000, 18);
    let url = server.create(data.len() as u64);
    let done = Request::patch(&url, 0, &data).header("Want-Repr-Digest", "sha-256=5").send();
    done.expect_status(204);
    assert_eq!(done.header("Repr-Digest"), Some(repr(&data).as_str()));
    // A Content-Digest that does not match the request keeps none of it.
    let url = server.create(data.len() as u64);
    let wrong = format!("sha-256=:{}:", b64(sha2::Sha256::digest(b"x")));
    let res = Request::patch(&url, 0, &data).header("Content-Digest", wrong).send();
    assert_eq!(res.status, 460, "{res}");
    assert_eq!(head(&url).header("Upload-Offset"), Some("0"));
    let right = format!("sha-256=:{}:", b64(sha2::Sha256::digest(&data)));
    Request::patch(&url, 0, &data).header("Content-Digest", right).send().expect_status(204);
}
