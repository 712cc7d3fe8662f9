//! `Upload-Checksum` on arbitrary bytes: no panics; a parsed digest has its algorithm's length,
//! round-trips, and hashing arbitrary data with that algorithm gives a digest of that length.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tus_core::headers::{TusHeader, UploadChecksum};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let Ok(value) = HeaderValue::from_bytes(header) else { return };
    let Ok(parsed) = UploadChecksum::decode(&value) else { return };
    assert_eq!(parsed.digest.len(), parsed.algorithm.digest_len());
    assert_eq!(UploadChecksum::decode(&parsed.encode()).as_ref(), Ok(&parsed));
    let mut hasher = parsed.algorithm.hasher();
    hasher.update(body);
    assert_eq!(hasher.finalize().len(), parsed.algorithm.digest_len());
});
