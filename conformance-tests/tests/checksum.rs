//! Extensions `checksum` and `checksum-trailer` (K).

use std::thread;
use std::time::Duration;

use conformance_tests::{
    CHECKSUM_ALGORITHMS, IN_FLIGHT_PAUSE, Request, Response, TestServer, b64, expect_complete, extension_listed, get,
    head, offset, patch, pseudo_random,
};
use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::{Sha256, Sha512};

/// CRC-32/IEEE (the zlib/PNG polynomial), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The raw digest of `data` under a tus algorithm name.
fn digest(algo: &str, data: &[u8]) -> Vec<u8> {
    match algo {
        "md5" => Md5::digest(data).to_vec(),
        "sha1" => Sha1::digest(data).to_vec(),
        "sha256" => Sha256::digest(data).to_vec(),
        "sha512" => Sha512::digest(data).to_vec(),
        "crc32" => crc32(data).to_be_bytes().to_vec(),
        other => panic!("no digest for {other}"),
    }
}

fn checksum(algo: &str, data: &[u8]) -> String {
    format!("{algo} {}", b64(digest(algo, data)))
}

fn patch_sum(url: &str, offset: u64, data: &[u8], sum: &str) -> Response {
    Request::patch(url, offset, data).header("Upload-Checksum", sum).send()
}

fn patch_trailer(url: &str, offset: u64, chunks: &[&[u8]], sum: &str) -> Response {
    Request::patch_at(url, offset)
        .header("Trailer", "Upload-Checksum")
        .chunked(chunks, &[("Upload-Checksum", sum)])
        .send()
}

#[test]
fn k0_reference_digests() {
    // Guards the helpers themselves against known vectors.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(checksum("sha1", b"hello world"), "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
    assert_eq!(checksum("md5", b"hello world"), "md5 XrY7u+Ae7tCTyyK7j1rNww==");
    assert_eq!(checksum("crc32", b"hello world"), "crc32 DUoRhQ==");
}

extension_listed!(k1_checksum_listed, "checksum");

#[test]
fn k2_algorithm_header_comma_list() {
    let s = TestServer::start();
    let resp = s.options();
    let raw = resp.header("Tus-Checksum-Algorithm").unwrap_or_else(|| panic!("no Tus-Checksum-Algorithm:\n{resp}"));
    let algos: Vec<&str> = raw.split(',').map(str::trim).collect();
    assert!(algos.iter().all(|a| !a.is_empty()), "empty element in {raw:?}");
    for want in CHECKSUM_ALGORITHMS {
        assert!(algos.contains(want), "{want} missing in {raw:?}");
    }
}

#[test]
fn k3_sha1_supported_and_works() {
    let s = TestServer::start();
    assert!(s.options().header_list("Tus-Checksum-Algorithm").iter().any(|a| a == "sha1"));
    let url = s.create(11);
    let resp = patch_sum(&url, 0, b"hello world", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
    assert_eq!(resp.expect_status(204).offset(), 11);
}

#[test]
fn k4_algorithm_names_lowercase_ascii() {
    let s = TestServer::start();
    for algo in s.options().header_list("Tus-Checksum-Algorithm") {
        assert!(
            algo.bytes().all(|b| (0x21..=0x7e).contains(&b) && !b.is_ascii_uppercase() && b != b','),
            "algorithm name {algo:?} is not lower-case printable ASCII"
        );
    }
}

#[test]
fn k5_matching_checksum_204() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch_sum(&url, 0, b"hello", &checksum("sha1", b"hello"));
    assert_eq!(resp.expect_status(204).offset(), 5);
    let resp = patch_sum(&url, 5, b" world", &checksum("sha1", b" world"));
    assert_eq!(resp.expect_status(204).offset(), 11);
    expect_complete(&url, b"hello world");
}

#[test]
fn k6_mismatch_460_nothing_kept() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch_sum(&url, 0, b"hello world", "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=");
    resp.expect_refused_patch(460, &url, 0, "a PATCH with a mismatching checksum").expect_error_body();

    // Mid-upload: the offset stays where it was and the bytes are not applied.
    patch(&url, 0, b"hello").expect_status(204);
    let resp = patch_sum(&url, 5, b" world", &checksum("sha1", b" w0rld"));
    resp.expect_status(460);
    assert_eq!(offset(&url), 5);
    patch(&url, 5, b" there").expect_status(204);
    expect_complete(&url, b"hello there");
}

#[test]
fn k6_large_mismatching_chunk_nothing_kept() {
    let s = TestServer::start();
    let data = pseudo_random(2 << 20, 6);
    let url = s.create(data.len() as u64);
    let mut wrong = data.clone();
    wrong[1_000_000] ^= 1;
    let resp = patch_sum(&url, 0, &data, &checksum("sha256", &wrong));
    resp.expect_status(460);
    assert_eq!(offset(&url), 0);
    patch_sum(&url, 0, &data, &checksum("sha256", &data)).expect_status(204);
    assert!(get(&url).body == data);
}

#[test]
fn k7_unknown_algorithm_400() {
    let s = TestServer::start();
    let url = s.create(11);
    for sum in ["nosuchalgo AAAA", "sha3 AAAA", "crc64 AAAAAAAAAAA="] {
        let resp = patch_sum(&url, 0, b"hello world", sum);
        resp.expect_refused_patch(400, &url, 0, &format!("Upload-Checksum {sum:?}"));
    }
}

#[test]
fn k8_interrupted_checksummed_patch_keeps_nothing() {
    let s = TestServer::start();
    let data = pseudo_random(1 << 20, 8);
    let url = s.create(data.len() as u64);
    let mut conn = Request::patch_at(&url, 0)
        .header("Upload-Checksum", checksum("sha1", &data))
        .header("Content-Length", data.len().to_string())
        .open();
    conn.write_all(&data[..data.len() / 4]).unwrap();
    thread::sleep(IN_FLIGHT_PAUSE);
    drop(conn);
    for _ in 0..15 {
        assert_eq!(offset(&url), 0, "bytes of an unverifiable (interrupted) PATCH were kept");
        thread::sleep(Duration::from_millis(100));
    }
    patch_sum(&url, 0, &data, &checksum("sha1", &data)).expect_status(204);
}

#[test]
fn k9_malformed_checksum_400() {
    let s = TestServer::start();
    let url = s.create(11);
    for sum in ["sha1", "sha1 ", "sha1 !!!notbase64!!!", "sha1Kq5sNclPz7QV2+lfQIuc6R7oRu0=", " "] {
        let resp = patch_sum(&url, 0, b"hello world", sum);
        resp.expect_refused_patch(400, &url, 0, &format!("Upload-Checksum {sum:?}"));
    }
}

#[test]
fn k10_all_listed_algorithms_work() {
    let s = TestServer::start();
    for algo in CHECKSUM_ALGORITHMS {
        let url = s.create(11);
        let mut wrong = digest(algo, b"hello world");
        wrong[0] ^= 0x80;
        let resp = patch_sum(&url, 0, b"hello world", &format!("{algo} {}", b64(&wrong)));
        assert_eq!(resp.status, 460, "{algo} mismatch:\n{resp}");
        assert_eq!(offset(&url), 0);
        let resp = patch_sum(&url, 0, b"hello world", &checksum(algo, b"hello world"));
        assert_eq!(resp.status, 204, "{algo} match:\n{resp}");
        assert_eq!(resp.offset(), 11);
    }
}

#[test]
fn k10_md5_reference_value() {
    let s = TestServer::start();
    let resp = patch_sum(&s.create(11), 0, b"hello world", "md5 XrY7u+Ae7tCTyyK7j1rNww==");
    assert_eq!(resp.expect_status(204).offset(), 11);
}

#[test]
fn k10_crc32_is_big_endian_ieee() {
    let s = TestServer::start();
    let url = s.create(11);
    // Little-endian encoding of the right CRC must not be accepted.
    let le = b64(crc32(b"hello world").to_le_bytes());
    patch_sum(&url, 0, b"hello world", &format!("crc32 {le}")).expect_status(460);
    patch_sum(&url, 0, b"hello world", "crc32 DUoRhQ==").expect_status(204);
}

#[test]
fn k10_checksum_with_chunked_body_header() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = Request::patch_at(&url, 0)
        .header("Upload-Checksum", checksum("sha256", b"hello world"))
        .chunked(&[b"hello", b" world"], &[])
        .send();
    assert_eq!(resp.expect_status(204).offset(), 11);
}

extension_listed!(k11_checksum_trailer_listed, "checksum-trailer");

#[test]
fn k11_trailer_checksum_match_204() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch_trailer(&url, 0, &[b"hello world"], "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
    assert_eq!(resp.expect_status(204).offset(), 11);
    expect_complete(&url, b"hello world");
}

#[test]
fn k11_trailer_checksum_mismatch_460() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch_trailer(&url, 0, &[b"hello world"], "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=");
    resp.expect_refused_patch(460, &url, 0, "a mismatching trailer checksum");
}

#[test]
fn k11_trailer_checksum_multiple_chunks() {
    let s = TestServer::start();
    let data = pseudo_random(300_000, 11);
    let url = s.create(data.len() as u64);
    let chunks: Vec<&[u8]> = data.chunks(40_000).collect();
    let resp = patch_trailer(&url, 0, &chunks[..4], &checksum("sha256", &data[..160_000]));
    assert_eq!(resp.expect_status(204).offset(), 160_000);
    let resp = patch_trailer(&url, 160_000, &chunks[4..], &checksum("sha512", &data[..1]));
    resp.expect_status(460);
    assert_eq!(offset(&url), 160_000);
    let resp = patch_trailer(&url, 160_000, &chunks[4..], &checksum("md5", &data[160_000..]));
    resp.expect_status(204);
    assert!(get(&url).body == data);
}

#[test]
fn k11_trailer_unknown_algorithm_400() {
    let s = TestServer::start();
    let url = s.create(11);
    let resp = patch_trailer(&url, 0, &[b"hello world"], "nosuchalgo AAAA");
    resp.expect_status(400);
    assert_eq!(offset(&url), 0);
    let h = head(&url);
    assert_eq!(h.length(), Some(11));
}
