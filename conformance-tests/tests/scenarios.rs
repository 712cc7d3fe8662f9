//! End-to-end scenarios combining several requests the way real clients do.

use std::thread;
use std::time::Duration;

use conformance_tests::{
    OFFSET_OCTET_STREAM, Request, TestServer, b64, delete, encode_metadata, expect_complete, get, head, offset,
    offset_and_length, patch, patch_in_flight, pseudo_random, response_metadata, settled_offset,
};
use sha2::{Digest, Sha256};

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Chunk sizes that vary between 16 KiB and ~200 KiB, deterministically.
fn chunk_sizes(total: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = total;
    let mut i = 0usize;
    while left > 0 {
        let size = (16 * 1024 + (i * 37_337) % (184 * 1024)).min(left);
        sizes.push(size);
        left -= size;
        i += 1;
    }
    sizes
}

#[test]
fn scenario_chunked_upload_of_several_mib_verified_by_sha256() {
    let s = TestServer::start();
    let total = 3 * 1024 * 1024 + 12_345;
    let data = pseudo_random(total, 1);
    let meta = encode_metadata(&[("filename", b"big.bin"), ("filetype", b"application/octet-stream")]);
    let url = s.create_with(&[("Upload-Length", &total.to_string()), ("Upload-Metadata", &meta)]);
    let sizes = chunk_sizes(total);
    assert!(sizes.len() >= 20, "only {} chunks", sizes.len());
    let mut at = 0usize;
    for (i, size) in sizes.iter().enumerate() {
        let resp = patch(&url, at as u64, &data[at..at + size]);
        resp.expect_status(204);
        at += size;
        assert_eq!(resp.offset(), at as u64);
        if i % 7 == 3 {
            assert_eq!(offset_and_length(&url), (at as u64, Some(total as u64)));
            assert_eq!(get(&url).status, 409, "download before completion");
        }
    }
    let h = head(&url);
    assert_eq!((h.offset(), h.length()), (total as u64, Some(total as u64)));
    assert_eq!(response_metadata(&h).get("filename").map(Vec::as_slice), Some(&b"big.bin"[..]));
    let dl = get(&url);
    dl.expect_status(200);
    assert_eq!(dl.header("Content-Length"), Some(total.to_string().as_str()));
    assert_eq!(sha256(&dl.body), sha256(&data), "downloaded content differs");
}

#[test]
fn scenario_resume_after_interrupted_patch() {
    let s = TestServer::start();
    let total = 2 * 1024 * 1024;
    let data = pseudo_random(total, 2);
    let url = s.create(total as u64);
    let sent = 700 * 1024;
    // Dropping the connection closes the socket mid-body.
    drop(patch_in_flight(&url, total, &data[..sent]));
    let resumed_at = settled_offset(&url);
    assert!(
        resumed_at > 0 && resumed_at < total as u64,
        "offset after the interruption is {resumed_at} (sent {sent} of {total})"
    );
    assert!(resumed_at <= sent as u64);
    let mut at = resumed_at as usize;
    for chunk in data[at..].chunks(512 * 1024) {
        let resp = patch(&url, at as u64, chunk);
        resp.expect_status(204);
        at += chunk.len();
    }
    assert_eq!(offset(&url), total as u64);
    let dl = get(&url);
    dl.expect_status(200);
    assert_eq!(sha256(&dl.body), sha256(&data), "resumed upload differs from the original");
}

#[test]
fn scenario_zero_byte_upload() {
    let s = TestServer::start();
    let meta = encode_metadata(&[("filename", b"empty.txt"), ("filetype", b"text/plain")]);
    let resp = s.post().header("Upload-Length", "0").header("Upload-Metadata", meta).body(b"").send();
    resp.expect_status(201);
    let url = s.resolve(resp.location());
    let h = head(&url);
    assert_eq!((h.offset(), h.length()), (0, Some(0)));
    assert_eq!(response_metadata(&h).len(), 2);
    patch(&url, 0, b"").expect_status(204);
    let dl = get(&url);
    dl.expect_status(200);
    assert!(dl.body.is_empty());
    assert_eq!(dl.header("Content-Type"), Some("text/plain"));
    delete(&url).expect_status(204);
    head(&url).expect_status_in(&[404, 410]);
}

#[test]
fn scenario_concatenation_of_unfinished_partials() {
    let s = TestServer::start();
    let parts = [pseudo_random(300_000, 31), pseudo_random(1, 32), pseudo_random(200_000, 33)];
    let urls: Vec<String> = parts.iter().map(|p| s.create_partial(p.len() as u64)).collect();
    let concat = format!("final;{}", urls.join(" "));
    let meta = encode_metadata(&[("filename", b"joined.bin")]);
    let resp = s.post().header("Upload-Concat", concat).header("Upload-Metadata", meta).body(b"").send();
    resp.expect_status(201);
    let fin = s.resolve(resp.location());
    let total: usize = parts.iter().map(Vec::len).sum();

    // Upload the partials interleaved, in chunks, checking the final along the way.
    let mut at = [0usize; 3];
    let mut round = 0;
    while at.iter().zip(&parts).any(|(a, p)| *a < p.len()) {
        for i in [2, 0, 1] {
            let left = parts[i].len() - at[i];
            if left == 0 {
                continue;
            }
            let n = left.min(64 * 1024 + round * 1000);
            let resp = patch(&urls[i], at[i] as u64, &parts[i][at[i]..at[i] + n]);
            resp.expect_status(204);
            at[i] += n;
        }
        round += 1;
        let done = at.iter().zip(&parts).all(|(a, p)| *a == p.len());
        let h = head(&fin);
        h.expect_status(200);
        assert_eq!(h.length(), Some(total as u64));
        if !done {
            assert!(!h.has_header("Upload-Offset"), "offset shown before the partials finished");
            assert_eq!(get(&fin).status, 409);
        }
    }
    let h = head(&fin);
    assert_eq!((h.offset(), h.length()), (total as u64, Some(total as u64)));
    assert_eq!(response_metadata(&h).len(), 1);
    let want: Vec<u8> = parts.concat();
    let dl = get(&fin);
    dl.expect_status(200);
    assert_eq!(sha256(&dl.body), sha256(&want));
}

#[test]
fn scenario_expiry() {
    let s = TestServer::spawn(&["--expiration", "2s"]);
    let finished = s.upload(b"keep me");
    let abandoned = s.create(100);
    patch(&abandoned, 0, b"partial").expect_status(204);
    let alive = s.create(10);
    for i in 0..4u64 {
        thread::sleep(Duration::from_millis(800));
        patch(&alive, i, b"x").expect_status(204);
    }
    // ~3.2 s since `abandoned` was last touched, 0 s for `alive`.
    thread::sleep(Duration::from_millis(500));
    head(&abandoned).expect_status_in(&[404, 410]);
    patch(&abandoned, 7, b"more").expect_status_in(&[404, 410]);
    assert_eq!(offset(&alive), 4);
    let resp = patch(&alive, 4, b"yyyyyy");
    resp.expect_status(204);
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&alive).body, b"xxxxyyyyyy", "a finished upload expired");
    assert_eq!(get(&finished).body, b"keep me");
}

#[test]
fn scenario_deferred_length_stream_with_checksums() {
    let s = TestServer::start();
    let data = pseudo_random(777_777, 4);
    let url = s.create_deferred();
    let mut at = 0usize;
    let chunks: Vec<&[u8]> = data.chunks(100_000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let sum = format!("sha256 {}", b64(sha256(chunk)));
        let mut req = Request::patch(&url, at as u64, chunk).header("Upload-Checksum", sum);
        if i == chunks.len() - 1 {
            req = req.header("Upload-Length", data.len().to_string());
        }
        let resp = req.send();
        resp.expect_status(204);
        at += chunk.len();
        assert_eq!(resp.offset(), at as u64);
        if i < chunks.len() - 1 {
            assert_eq!(head(&url).header("Upload-Defer-Length"), Some("1"));
        }
    }
    expect_complete(&url, &data);
}

#[test]
fn scenario_creation_with_upload_then_patches() {
    let s = TestServer::start();
    let data = pseudo_random(500_000, 5);
    let resp = s
        .post()
        .header("Upload-Length", data.len().to_string())
        .header("Content-Type", OFFSET_OCTET_STREAM)
        .header("Expect", "100-continue")
        .body(&data[..123_456])
        .send();
    assert_eq!(resp.expect_status(201).offset(), 123_456);
    let url = s.resolve(resp.location());
    let resp = patch(&url, 123_456, &data[123_456..]);
    resp.expect_status(204);
    assert_eq!(sha256(&get(&url).body), sha256(&data));
    delete(&url).expect_status(204);
    get(&url).expect_status_in(&[404, 410]);
}
