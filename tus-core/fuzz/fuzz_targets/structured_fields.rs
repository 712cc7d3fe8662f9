//! The IETF draft's Structured Field helpers on arbitrary bytes: no panics; a Boolean is only
//! ever `?0`/`?1` (with optional parameters), an Integer has at most 15 digits.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tus_core::headers::{parse_sf_bool, parse_sf_uint};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let text = value.to_str().ok().map(|s| s.trim_matches(' '));
    let bare = text.map(|s| s.split(';').next().unwrap_or(s));
    if let Some(b) = parse_sf_bool(&value) {
        assert_eq!(bare, Some(if b { "?1" } else { "?0" }));
    }
    if let Some(n) = parse_sf_uint(&value) {
        assert!(n < 1_000_000_000_000_000, "more than 15 digits: {n}");
        assert_eq!(bare.and_then(|s| s.parse::<u64>().ok()), Some(n));
        assert_eq!(parse_sf_uint(&HeaderValue::from(n)), Some(n));
    }
});
