//! `Upload-Metadata` on arbitrary text: no panics; what parses re-encodes canonically to the
//! same pairs, keys stay unique, and the canonical form is itself a valid header value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tus_core::headers::Metadata;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(parsed) = Metadata::parse(text) else { return };
    let canonical = parsed.encode();
    let again = Metadata::parse(&canonical).expect("the canonical form parses");
    assert_eq!(again, parsed);
    assert_eq!(again.encode(), canonical, "encoding is canonical");
    let keys: Vec<&str> = parsed.iter().map(|(k, _)| k).collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(!k.is_empty() && !k.contains([',', ' ']), "key {k:?}");
        assert!(!keys[..i].contains(k), "duplicate key {k:?}");
        assert_eq!(parsed.get(k), parsed.iter().find(|(key, _)| key == k).map(|(_, v)| v));
    }
    assert!(http::HeaderValue::from_str(&canonical).is_ok(), "canonical form {canonical:?} is not a header value");
});
