//! `Upload-Concat` on arbitrary bytes: no panics; a parsed final lists at least one URL, none
//! empty or containing whitespace, and the encoded form parses to the same value.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tus_core::headers::{TusHeader, UploadConcat};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let Ok(parsed) = UploadConcat::decode(&value) else { return };
    if let UploadConcat::Final(urls) = &parsed {
        assert!(!urls.is_empty());
        for url in urls {
            assert!(!url.is_empty() && !url.bytes().any(|b| b.is_ascii_whitespace()), "url {url:?}");
        }
    }
    assert_eq!(UploadConcat::decode(&parsed.encode()), Ok(parsed));
});
