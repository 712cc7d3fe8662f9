//! The media step's parsers on arbitrary bytes: the metadata stripper (its own JPEG marker and
//! GIF block walks, PNG and WebP chunk editing) and decoding under limits. The first byte picks
//! the container. Neither may panic, hang or allocate past the limits; a stripped copy is never
//! much larger than its input and strips again cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tus_server::media::{DecodeLimits, ImageKind, ThumbnailFormat, strip_metadata, thumbnails};

/// Room a stripped copy may take beyond its input: a minimal EXIF block and its framing, a
/// WebP extended header, a GIF trailer.
const GROWTH: usize = 96;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else { return };
    let kind = [ImageKind::Jpeg, ImageKind::Png, ImageKind::WebP, ImageKind::Gif][usize::from(selector % 4)];
    if let Ok(stripped) = strip_metadata(data, kind) {
        assert!(stripped.len() <= data.len() + GROWTH, "{} -> {} bytes", data.len(), stripped.len());
        assert!(strip_metadata(&stripped, kind).is_ok(), "a stripped copy does not strip again");
    }
    let limits = DecodeLimits { max_pixels: 1 << 20, max_alloc: 16 << 20 };
    let format = if selector & 4 == 0 { ThumbnailFormat::Jpeg } else { ThumbnailFormat::WebP };
    let _ = thumbnails(data, kind, &[32], format, limits);
});
