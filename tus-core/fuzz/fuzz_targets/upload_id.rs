//! Upload IDs on arbitrary text: no panics, and an accepted ID can never spell a path
//! separator, a dot segment, a NUL or anything outside `[A-Za-z0-9_-]{1,128}`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tus_core::UploadId;
use tus_core::id::MAX_ID_LEN;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = UploadId::parse(&text) {
        let s = id.as_str();
        assert_eq!(s, text);
        assert!(!s.is_empty() && s.len() <= MAX_ID_LEN);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{s:?}");
        assert!(!s.contains('/') && !s.contains('\\') && !s.contains('.') && !s.contains('\0'));
        assert_eq!(UploadId::parse(&id.to_string()).as_ref(), Ok(&id));
    }
});
