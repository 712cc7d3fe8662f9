//! Every tus header parser on arbitrary bytes: no panics, and whatever parses re-encodes to
//! something that parses to the same value.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tus_core::headers::{Metadata, TusHeader, UploadChecksum, UploadConcat, UploadExpires, UploadLength, UploadOffset};

fn round_trip<H: TusHeader + PartialEq + std::fmt::Debug>(value: &HeaderValue) {
    if let Ok(parsed) = H::decode(value) {
        assert_eq!(H::decode(&parsed.encode()).as_ref(), Ok(&parsed));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    round_trip::<UploadOffset>(&value);
    round_trip::<UploadLength>(&value);
    round_trip::<Metadata>(&value);
    round_trip::<UploadConcat>(&value);
    round_trip::<UploadChecksum>(&value);
    round_trip::<UploadExpires>(&value);
    let _ = tus_core::UploadId::parse(&String::from_utf8_lossy(data));
});
