//! The digest fields (`Repr-Digest`, `Content-Digest`) and the `checksum` metadata form on
//! arbitrary bytes: no panics; every digest read has its algorithm's length, and what the
//! server would send back reads back the same.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tus_core::digest::{parse_digest_field, parse_metadata_digest, repr_digest};

fuzz_target!(|data: &[u8]| {
    // Several field lines, split at newlines.
    let lines: Vec<HeaderValue> = data.split(|b| *b == b'\n').filter_map(|l| HeaderValue::from_bytes(l).ok()).collect();
    if let Ok(digests) = parse_digest_field(lines.iter()) {
        for d in &digests {
            assert_eq!(d.value.len(), d.algorithm.digest_len());
        }
        if let Some(sent) = repr_digest(&digests) {
            assert_eq!(parse_digest_field(std::iter::once(&sent)).unwrap(), digests);
        }
    }
    if let Ok(d) = parse_metadata_digest(data) {
        assert_eq!(d.value.len(), d.algorithm.digest_len());
    }
});
