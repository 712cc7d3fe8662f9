//! Metadata removal without re-encoding: a privacy-safe copy of an uploaded image.
//!
//! The copy keeps every byte that makes up the pixels (entropy-coded JPEG scans, PNG IDAT, WebP
//! bitstreams, GIF image data) and the colour profile, and drops the rest that can identify a
//! person, place or device: EXIF (GPS, camera serial numbers, maker notes), XMP, IPTC,
//! comments, text chunks, embedded thumbnails and data trailing the image. Only an EXIF
//! orientation other than "top-left" survives, in a minimal EXIF block of its own.
//!
//! JPEG and GIF are filtered by walking their marker/block structure here; PNG and WebP chunks
//! are edited with `img-parts`. Everything is bounds-checked: malformed input is a
//! [`MediaError::Corrupt`], never a panic.

use img_parts::png::{Png, PngChunk};
use img_parts::riff::{RiffChunk, RiffContent};
use img_parts::webp::WebP;
use img_parts::{Bytes, ImageEXIF};

use super::image_ops::{ImageKind, MediaError};

/// A copy of `data` without EXIF/XMP/IPTC/comments/text chunks, pixels untouched (no re-encode),
/// colour profile (ICC) kept. If the EXIF orientation was not 1 (top-left), the copy keeps a
/// minimal EXIF block holding only the Orientation tag, so viewers still rotate it — nothing else
/// (no GPS, no camera serial, no maker notes).
pub fn strip_metadata(data: &[u8], kind: ImageKind) -> Result<Vec<u8>, MediaError> {
    match kind {
        ImageKind::Jpeg => strip_jpeg(data),
        ImageKind::Png => strip_png(data),
        ImageKind::WebP => strip_webp(data),
        ImageKind::Gif => strip_gif(data),
    }
}

// ---------------------------------------------------------------------------------------------
// EXIF orientation

/// The orientation to keep from a TIFF-structured EXIF block: `Some(2..=8)`, or `None` when it
/// is 1 (nothing to keep), missing, invalid or unreadable.
fn orientation_to_keep(tiff: &[u8]) -> Option<u16> {
    let mut reader = exif::Reader::new();
    // A broken GPS or maker-note IFD must not hide a valid orientation in IFD0.
    reader.continue_on_error(true);
    let parsed = match reader.read_raw(tiff.to_vec()) {
        Ok(parsed) => parsed,
        Err(exif::Error::PartialResult(partial)) => partial.into_inner().0,
        Err(_) => return None,
    };
    let value = parsed.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?.value.get_uint(0)?;
    u16::try_from(value).ok().filter(|value| (2..=8).contains(value))
}

/// A 26-byte big-endian TIFF block whose only entry is IFD0's Orientation (0x0112, SHORT, 1).
fn minimal_exif(orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::with_capacity(26);
    tiff.extend_from_slice(b"MM\0\x2A"); // big-endian TIFF
    tiff.extend_from_slice(&8u32.to_be_bytes()); // IFD0 right after the header
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count 1
    tiff.extend_from_slice(&orientation.to_be_bytes()); // value, left-justified in 4 bytes
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    tiff
}

/// `Exif\0\0`: what precedes the TIFF block in a JPEG APP1 segment (and sometimes elsewhere).
const EXIF_PREFIX: &[u8] = b"Exif\0\0";

fn corrupt(what: &str) -> MediaError {
    MediaError::Corrupt(what.to_owned())
}

// ---------------------------------------------------------------------------------------------
// JPEG

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;
const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;
const APP15: u8 = 0xEF;
const COM: u8 = 0xFE;
const DQT: u8 = 0xDB;
const EXP: u8 = 0xDF;

/// Length of the JFIF APP0 contents without its optional embedded thumbnail.
const JFIF_LEN: usize = 14;

/// Walks the JPEG marker structure, copying what the decoder needs (tables, frame and scan
/// headers, entropy-coded data, restart markers) and dropping metadata segments.
///
/// The walk continues past the first scan (unlike `img-parts`, which keeps everything after it
/// verbatim): progressive files may carry APPn/COM segments between scans, and the data after
/// EOI (MPF secondary images with their own EXIF, vendor trailers) is dropped too.
fn strip_jpeg(data: &[u8]) -> Result<Vec<u8>, MediaError> {
    if data.get(..2) != Some(&[0xFF, SOI]) {
        return Err(corrupt("JPEG without a start-of-image marker"));
    }
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&[0xFF, SOI]);
    // Where the minimal EXIF goes: first, or right after the JFIF segment (which must be first).
    let mut exif_at = out.len();
    let mut orientation = None;
    let mut seen_exif = false;

    let mut pos = 2;
    loop {
        if data.get(pos) != Some(&0xFF) {
            return Err(MediaError::Corrupt(format!("JPEG: no marker at offset {pos}")));
        }
        // Any number of 0xFF fill bytes may precede a marker code.
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *data.get(pos).ok_or_else(|| corrupt("JPEG ends without an end-of-image marker"))?;
        pos += 1;
        match marker {
            EOI => {
                out.extend_from_slice(&[0xFF, EOI]);
                break;
            }
            // Stand-alone markers, without a length.
            TEM | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, marker]);
                continue;
            }
            0x00 | SOI => {
                return Err(MediaError::Corrupt(format!("JPEG: invalid marker 0x{marker:02X} at offset {pos}")));
            }
            _ => {}
        }

        let length = data
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or_else(|| corrupt("JPEG: truncated segment length"))?;
        let contents = length
            .checked_sub(2)
            .and_then(|len| data.get(pos + 2..pos + 2 + len))
            .ok_or_else(|| corrupt("JPEG: truncated segment"))?;
        let segment_end = pos + length;

        match marker {
            APP0 if contents.starts_with(b"JFIF\0") && contents.len() >= JFIF_LEN => {
                // Keep the version and pixel density; drop any embedded thumbnail (it shows the
                // image as it was before an edit).
                let mut jfif = contents.get(..JFIF_LEN).unwrap_or_default().to_vec();
                if let Some(thumbnail_size) = jfif.get_mut(12..14) {
                    thumbnail_size.fill(0);
                }
                let at_start = out.len() == 2;
                write_segment(&mut out, APP0, &jfif);
                if at_start {
                    exif_at = out.len();
                }
            }
            APP1 => {
                // Only the first EXIF segment counts (as for decoders); XMP is dropped as well.
                if !seen_exif && let Some(tiff) = contents.strip_prefix(EXIF_PREFIX) {
                    seen_exif = true;
                    orientation = orientation_to_keep(tiff);
                }
            }
            APP2 if contents.starts_with(b"ICC_PROFILE\0") => write_segment(&mut out, APP2, contents),
            // Adobe: tells decoders how to convert the colour components (CMYK, YCCK).
            APP14 if contents.starts_with(b"Adobe") => write_segment(&mut out, APP14, contents),
            // The other APPn (JFXX thumbnails, MPF, IPTC in Photoshop's APP13, vendor data) and
            // comments.
            APP0..=APP15 | COM => {}
            // What decoding needs: frame headers (SOFn), Huffman and arithmetic tables,
            // quantization tables, scan headers, restart interval, DNL, DHP, EXP.
            0xC0..=0xCF | DQT..=EXP | SOS => {
                out.extend_from_slice(data.get(pos - 2..segment_end).unwrap_or_default());
            }
            // Reserved and JPEG-extension segments (JPGn) carry nothing a decoder uses: anything
            // could hide there.
            _ => {}
        }
        pos = segment_end;

        if marker == SOS {
            pos = copy_entropy_coded(data, pos, &mut out)?;
        }
    }

    if let Some(orientation) = orientation {
        let mut segment = Vec::with_capacity(4 + EXIF_PREFIX.len() + 26);
        write_segment(&mut segment, APP1, &[EXIF_PREFIX, &minimal_exif(orientation)].concat());
        out.splice(exif_at..exif_at, segment);
    }
    Ok(out)
}

/// Writes a marker segment; `contents` always fits since it comes from a segment or is small.
fn write_segment(out: &mut Vec<u8>, marker: u8, contents: &[u8]) {
    let length = u16::try_from(contents.len() + 2).unwrap_or(u16::MAX);
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(contents);
}

/// Copies the entropy-coded data that follows a scan header, up to the next marker (other than
/// a stuffed 0xFF00 or a restart marker, which belong to the data), and returns its offset.
fn copy_entropy_coded(data: &[u8], start: usize, out: &mut Vec<u8>) -> Result<usize, MediaError> {
    let mut pos = start;
    loop {
        let ff = data
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
            .map(|i| pos + i)
            .ok_or_else(|| corrupt("JPEG: truncated scan data"))?;
        match data.get(ff + 1) {
            None => return Err(corrupt("JPEG: truncated scan data")),
            Some(0x00 | 0xD0..=0xD7) => pos = ff + 2,
            // A fill byte: the marker starts at the next 0xFF.
            Some(0xFF) => pos = ff + 1,
            Some(_) => {
                out.extend_from_slice(data.get(start..ff).unwrap_or_default());
                return Ok(ff);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PNG

/// Ancillary chunks kept: they change how the pixels look or animate (colour space, gamma,
/// transparency, physical size, APNG frames), not who, where or when. Everything else
/// ancillary goes: tEXt, zTXt, iTXt (XMP), eXIf, tIME, and private chunks (C2PA `caBX`, Apple's
/// `iDOT`, which points at byte offsets this edit would invalidate, ...).
const PNG_KEPT_ANCILLARY: [[u8; 4]; 17] = [
    *b"tRNS", *b"cHRM", *b"gAMA", *b"iCCP", *b"sBIT", *b"sRGB", *b"cICP", *b"mDCV", *b"cLLI", *b"bKGD", *b"hIST",
    *b"pHYs", *b"sPLT", *b"oFFs", *b"acTL", *b"fcTL", *b"fdAT",
];

/// Most chunks a PNG or WebP may have here: the chunk editor keeps an entry of about 40 bytes
/// per chunk, so a file made of empty 12-byte chunks would otherwise cost several times its
/// size in memory. Real files have a few thousand at most (APNG frames, many small IDATs).
const MAX_CHUNKS: usize = 100_000;

/// Counts chunks by their length fields, the first at `pos` (PNG: big-endian, each chunk 12
/// bytes plus its data; RIFF: little-endian, 8 bytes plus its data and a pad byte if odd);
/// stops counting past [`MAX_CHUNKS`].
fn count_chunks(data: &[u8], mut pos: usize, png: bool) -> usize {
    let mut count = 0;
    while count <= MAX_CHUNKS {
        let Some(len) = data.get(pos..pos + 4).and_then(|b| b.try_into().ok()) else { break };
        let len = if png { u32::from_be_bytes(len) } else { u32::from_le_bytes(len) } as usize;
        let trailer = if png { 4 } else { len % 2 };
        pos = pos.saturating_add(8).saturating_add(len).saturating_add(trailer);
        count += 1;
    }
    count
}

fn strip_png(data: &[u8]) -> Result<Vec<u8>, MediaError> {
    // After the 8-byte signature: length (4), type (4), data, CRC (4).
    if count_chunks(data, 8, true) > MAX_CHUNKS {
        return Err(MediaError::Unsupported(format!("PNG with more than {MAX_CHUNKS} chunks")));
    }
    let mut png =
        Png::from_bytes(Bytes::copy_from_slice(data)).map_err(|err| MediaError::Corrupt(format!("PNG: {err}")))?;
    if png.chunks().last().map(PngChunk::kind) != Some(*b"IEND") {
        return Err(corrupt("PNG ends without an IEND chunk"));
    }

    let orientation = png.chunk_by_type(*b"eXIf").and_then(|chunk| {
        let exif = chunk.contents();
        orientation_to_keep(exif.strip_prefix(EXIF_PREFIX).unwrap_or(exif))
    });
    // Critical chunks (upper-case first letter: IHDR, PLTE, IDAT, IEND, or unknown ones a
    // decoder must refuse) are all kept.
    png.chunks_mut().retain(|chunk| {
        let kind = chunk.kind();
        kind[0].is_ascii_uppercase() || PNG_KEPT_ANCILLARY.contains(&kind)
    });
    if let Some(orientation) = orientation {
        // eXIf must come before the image data; right after IHDR is always valid.
        let exif = PngChunk::new(*b"eXIf", Bytes::from(minimal_exif(orientation)));
        let at = png.chunks().len().min(1);
        png.chunks_mut().insert(at, exif);
    }
    Ok(png.encoder().bytes().to_vec())
}

// ---------------------------------------------------------------------------------------------
// WebP

/// RIFF chunks kept in a WebP: the bitstreams, alpha, animation, the extended header and the
/// ICC profile. EXIF, `XMP ` and unknown chunks go.
const WEBP_KEPT: [[u8; 4]; 7] = [*b"VP8X", *b"VP8 ", *b"VP8L", *b"ALPH", *b"ANIM", *b"ANMF", *b"ICCP"];

/// VP8X feature flags that announce metadata chunks.
const VP8X_EXIF: u8 = 0b0000_1000;
const VP8X_XMP: u8 = 0b0000_0100;

fn strip_webp(data: &[u8]) -> Result<Vec<u8>, MediaError> {
    // After `RIFF` <size> `WEBP`: id (4), little-endian size (4), data, a pad byte if odd. The
    // length field sits 4 bytes into each header, so count from the first one's size field.
    if count_chunks(data, 16, false) > MAX_CHUNKS {
        return Err(MediaError::Unsupported(format!("WebP with more than {MAX_CHUNKS} chunks")));
    }
    let mut webp =
        WebP::from_bytes(Bytes::copy_from_slice(data)).map_err(|err| MediaError::Corrupt(format!("WebP: {err}")))?;

    // `exif()` accepts the EXIF chunk with or without the `Exif\0\0` prefix.
    let orientation = webp.exif().and_then(|tiff| orientation_to_keep(&tiff));
    webp.chunks_mut().retain(|chunk| WEBP_KEPT.contains(&chunk.id()));
    if let Some(orientation) = orientation {
        // Adds the EXIF chunk and keeps VP8X consistent (creating it for a simple-format
        // file, updating its ICC and EXIF flags otherwise).
        webp.set_exif(Some(Bytes::from(minimal_exif(orientation))));
    }

    // img-parts only maintains the ICC and EXIF flags: clear the XMP one (and the EXIF one if
    // no EXIF chunk is left) so the header announces only chunks that exist.
    let has_exif = webp.has_chunk(img_parts::webp::CHUNK_EXIF);
    if let Some(vp8x) = webp.chunks_mut().iter_mut().find(|chunk| chunk.id() == img_parts::webp::CHUNK_VP8X)
        && let RiffContent::Data(contents) = vp8x.content()
        && let Some(&flags) = contents.first()
    {
        let mut flags = flags & !(VP8X_EXIF | VP8X_XMP);
        if has_exif {
            flags |= VP8X_EXIF;
        }
        let mut contents = contents.to_vec();
        if let Some(first) = contents.first_mut() {
            *first = flags;
        }
        *vp8x = RiffChunk::new(img_parts::webp::CHUNK_VP8X, RiffContent::Data(contents.into()));
    }
    Ok(webp.encoder().bytes().to_vec())
}

// ---------------------------------------------------------------------------------------------
// GIF

/// Application extensions kept: animation looping (Netscape, AnimExts) and the ICC profile.
/// Others (XMP's `XMP DataXMP`, editor-specific data) go.
const GIF_KEPT_APPLICATIONS: [&[u8; 11]; 3] = [b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"];

/// Filters the GIF block structure: header, logical screen descriptor and global colour table,
/// image descriptors with their data, and graphic control extensions are copied byte for byte;
/// comment (0xFE), plain text (0x01), unknown and most application (0xFF) extensions are
/// dropped, as is anything after the trailer. A file that ends cleanly between blocks without
/// a trailer (written by some old encoders) gets one.
fn strip_gif(data: &[u8]) -> Result<Vec<u8>, MediaError> {
    let truncated = || corrupt("GIF: truncated");
    let header = data.get(..13).ok_or_else(truncated)?;
    if !(header.starts_with(b"GIF87a") || header.starts_with(b"GIF89a")) {
        return Err(corrupt("not a GIF"));
    }
    let screen_flags = data.get(10).copied().unwrap_or_default();
    let mut pos = 13 + colour_table_len(screen_flags);
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(data.get(..pos).ok_or_else(truncated)?);

    loop {
        let Some(&introducer) = data.get(pos) else {
            out.push(0x3B);
            return Ok(out);
        };
        match introducer {
            0x3B => {
                out.push(0x3B);
                return Ok(out);
            }
            0x21 => {
                let label = *data.get(pos + 1).ok_or_else(truncated)?;
                let end = skip_sub_blocks(data, pos + 2)?;
                let keep = match label {
                    0xF9 => true, // graphic control: frame delay, disposal, transparency
                    0xFF => {
                        data.get(pos + 2) == Some(&11)
                            && data
                                .get(pos + 3..pos + 14)
                                .is_some_and(|id| GIF_KEPT_APPLICATIONS.iter().any(|k| k[..] == *id))
                    }
                    _ => false,
                };
                if keep {
                    out.extend_from_slice(data.get(pos..end).ok_or_else(truncated)?);
                }
                pos = end;
            }
            0x2C => {
                let image_flags = *data.get(pos + 9).ok_or_else(truncated)?;
                // Descriptor (10 bytes), local colour table, LZW minimum code size, data.
                let code_size_at = pos + 10 + colour_table_len(image_flags);
                data.get(code_size_at).ok_or_else(truncated)?;
                let end = skip_sub_blocks(data, code_size_at + 1)?;
                out.extend_from_slice(data.get(pos..end).ok_or_else(truncated)?);
                pos = end;
            }
            other => {
                return Err(MediaError::Corrupt(format!("GIF: unknown block 0x{other:02X} at offset {pos}")));
            }
        }
    }
}

/// Bytes of the colour table announced by a screen or image descriptor's packed flags.
fn colour_table_len(flags: u8) -> usize {
    if flags & 0x80 == 0 { 0 } else { 3 << ((flags & 0x07) + 1) }
}

/// The offset just past the sub-block chain starting at `pos` (size byte, data, ..., 0).
fn skip_sub_blocks(data: &[u8], mut pos: usize) -> Result<usize, MediaError> {
    loop {
        let size = usize::from(*data.get(pos).ok_or_else(|| corrupt("GIF: truncated"))?);
        pos += 1;
        if size == 0 {
            return Ok(pos);
        }
        pos += size;
        if pos > data.len() {
            return Err(corrupt("GIF: truncated"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::LazyLock;

    use image::codecs::gif::GifDecoder;
    use image::{AnimationDecoder, DynamicImage, ImageFormat};
    use img_parts::ImageICC;
    use img_parts::jpeg::{Jpeg, JpegSegment, markers};
    use proptest::prelude::*;

    use super::*;
    use crate::media::image_ops::tests::{
        encode_gif, encode_jpeg, encode_png, encode_webp, exif_with_gps, rgb_pattern, rgba_pattern,
    };

    /// Any bytes do as a profile for these tests: only their survival is checked.
    const ICC: &[u8] = b"fake ICC profile bytes, kept verbatim";
    const XMP: &[u8] = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>GPS 48.85 2.35</x:xmpmeta>";

    fn pixels(data: &[u8], format: ImageFormat) -> DynamicImage {
        image::load_from_memory_with_format(data, format).expect("decodes")
    }

    fn assert_same_pixels(a: &[u8], b: &[u8], format: ImageFormat) {
        let (a, b) = (pixels(a, format), pixels(b, format));
        assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        assert_eq!(a.as_bytes(), b.as_bytes(), "pixels differ");
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// The EXIF of a stripped file as kamadak-exif reads it from the container, if any.
    fn read_exif(data: &[u8]) -> Option<exif::Exif> {
        match exif::Reader::new().read_from_container(&mut Cursor::new(data)) {
            Ok(exif) => Some(exif),
            Err(exif::Error::NotFound(_)) => None,
            Err(err) => panic!("unreadable EXIF: {err}"),
        }
    }

    /// Asserts the EXIF holds only Orientation = `orientation`.
    fn assert_only_orientation(exif: &exif::Exif, orientation: u32) {
        let tags: Vec<_> = exif.fields().map(|f| f.tag).collect();
        assert_eq!(tags, [exif::Tag::Orientation]);
        let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).expect("orientation");
        assert_eq!(field.value.get_uint(0), Some(orientation));
        assert!(exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_none());
        assert!(exif.get_field(exif::Tag::BodySerialNumber, exif::In::PRIMARY).is_none());
    }

    /// A 400×300 JPEG with EXIF (GPS, serial, `orientation`), XMP, ICC, IPTC, a comment, a
    /// JFXX thumbnail segment, a comment after the scan and data after EOI.
    fn jpeg_with_metadata(orientation: u16) -> Vec<u8> {
        let mut jpeg = Jpeg::from_bytes(encode_jpeg(&rgb_pattern(400, 300)).into()).expect("parse JPEG");
        jpeg.set_exif(Some(exif_with_gps(orientation).into()));
        jpeg.set_icc_profile(Some(Bytes::from_static(ICC)));
        let extra = [
            (markers::COM, b"shot at home by Alice".to_vec()),
            (markers::APP1, [&b"http://ns.adobe.com/xap/1.0/\0"[..], XMP].concat()),
            (markers::APP13, b"Photoshop 3.0\08BIM\x04\x04IPTC by-line Alice".to_vec()),
            (markers::APP0, b"JFXX\0\x10thumbnail".to_vec()),
            // JPG0 (reserved for extensions): nothing a decoder reads.
            (0xF0, b"hidden by Alice".to_vec()),
        ];
        for (marker, contents) in extra {
            jpeg.segments_mut().insert(2, JpegSegment::new_with_contents(marker, contents.into()));
        }
        let mut bytes = jpeg.encoder().bytes().to_vec();
        // A comment between the scan and EOI, then a trailer after EOI (where MPF secondary
        // images and vendor data live).
        let eoi = bytes.split_off(bytes.len() - 2);
        assert_eq!(eoi, [0xFF, 0xD9]);
        bytes.extend_from_slice(b"\xFF\xFE\x00\x0Dlate secret");
        bytes.extend_from_slice(b"\xFF\xD9TRAILER with GPS 48.85");
        bytes
    }

    #[test]
    fn jpeg_keeps_orientation_icc_and_pixels_only() {
        let original = jpeg_with_metadata(6);
        // The fixture does carry what must go.
        let before = read_exif(&original).expect("EXIF");
        assert!(before.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_some());
        assert!(before.get_field(exif::Tag::BodySerialNumber, exif::In::PRIMARY).is_some());

        let stripped = strip_metadata(&original, ImageKind::Jpeg).expect("strip");
        assert_only_orientation(&read_exif(&stripped).expect("orientation kept"), 6);
        assert_same_pixels(&original, &stripped, ImageFormat::Jpeg);

        let parsed = Jpeg::from_bytes(stripped.clone().into()).expect("parse stripped");
        assert_eq!(parsed.icc_profile(), Some(Bytes::from_static(ICC)));
        assert_eq!(parsed.exif().map(|e| e.len()), Some(26));
        let markers: Vec<u8> = parsed.segments().iter().map(JpegSegment::marker).collect();
        assert!(!markers.contains(&markers::COM), "{markers:02X?}");
        assert!(!markers.contains(&markers::APP13), "{markers:02X?}");
        assert_eq!(markers.iter().filter(|&&m| m == markers::APP1).count(), 1);
        // JFIF first, then the EXIF.
        assert_eq!(markers.get(..2), Some(&[markers::APP0, markers::APP1][..]));
        for secret in [&b"Alice"[..], b"SecretCam", b"SN-0042", b"GPS", b"late secret", b"JFXX"] {
            assert!(!contains(&stripped, secret), "{}", String::from_utf8_lossy(secret));
        }
        assert!(stripped.ends_with(&[0xFF, 0xD9]));
        // And the thumbnails of the copy are still rotated.
        let thumbs = crate::media::image_ops::thumbnails(
            &stripped,
            ImageKind::Jpeg,
            &[256],
            crate::media::image_ops::ThumbnailFormat::Jpeg,
            crate::media::image_ops::tests::LIMITS,
        )
        .expect("thumbnail");
        assert_eq!((thumbs[0].width, thumbs[0].height), (192, 256));
    }

    #[test]
    fn jpeg_with_orientation_1_loses_all_exif() {
        let original = jpeg_with_metadata(1);
        let stripped = strip_metadata(&original, ImageKind::Jpeg).expect("strip");
        assert!(read_exif(&stripped).is_none());
        assert!(!contains(&stripped, b"Exif\0\0"));
        assert_same_pixels(&original, &stripped, ImageFormat::Jpeg);
        // A file without metadata comes back as it was (less nothing).
        let plain = encode_jpeg(&rgb_pattern(40, 30));
        assert_eq!(strip_metadata(&plain, ImageKind::Jpeg).expect("strip"), plain);
    }

    #[test]
    fn jpeg_walk_copies_entropy_data_restarts_and_fill_bytes() {
        let sos = [0xFF, 0xDA, 0x00, 0x03, 0x01];
        let scan = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56];
        let mut data = vec![0xFF, 0xD8];
        data.extend(sos);
        data.extend(scan);
        data.extend([0xFF, 0xFE, 0x00, 0x04, b'h', b'i']); // comment between scans
        data.extend(sos);
        data.extend(scan);
        data.extend([0xFF, 0xFF, 0xD9]); // fill byte, EOI
        data.extend(b"trailing");

        let mut expected = vec![0xFF, 0xD8];
        expected.extend(sos);
        expected.extend(scan);
        expected.extend(sos);
        expected.extend(scan);
        expected.extend([0xFF, 0xFF, 0xD9]);
        assert_eq!(strip_metadata(&data, ImageKind::Jpeg).expect("strip"), expected);

        // The same without EOI is cut short.
        let cut = data.len() - b"trailing".len() - 3;
        let err = strip_metadata(&data[..cut], ImageKind::Jpeg).expect_err("no EOI");
        assert!(matches!(err, MediaError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn jpeg_jfif_thumbnail_is_dropped() {
        let mut jfif = b"JFIF\0\x01\x02\0\0\x01\0\x01".to_vec();
        jfif.extend([2, 1]); // a 2×1 RGB thumbnail
        jfif.extend([9; 6]);
        let mut data = vec![0xFF, 0xD8];
        write_segment(&mut data, APP0, &jfif);
        data.extend([0xFF, 0xD9]);
        let stripped = strip_metadata(&data, ImageKind::Jpeg).expect("strip");
        let mut expected = vec![0xFF, 0xD8];
        write_segment(&mut expected, APP0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0");
        expected.extend([0xFF, 0xD9]);
        assert_eq!(stripped, expected);
    }

    #[test]
    fn truncated_jpeg_is_corrupt() {
        let original = jpeg_with_metadata(6);
        for len in [0, 1, 2, 3, 5, 100, original.len() / 2, original.len() - 30] {
            let err = strip_metadata(&original[..len], ImageKind::Jpeg).expect_err("truncated");
            assert!(matches!(err, MediaError::Corrupt(_)), "{len}: {err:?}");
        }
    }

    fn png_with_metadata(orientation: u16) -> Vec<u8> {
        let image = DynamicImage::ImageRgba8(rgba_pattern(64, 48));
        let mut png = Png::from_bytes(encode_png(&image).into()).expect("parse PNG");
        png.set_icc_profile(Some(Bytes::from_static(ICC)));
        let extra = [
            (*b"tEXt", b"Author\0Alice".to_vec()),
            (*b"zTXt", b"Comment\0\0\x78\x9c\x03\0\0\0\0\x01".to_vec()),
            (*b"iTXt", [&b"XML:com.adobe.xmp\0\0\0\0\0"[..], XMP].concat()),
            (*b"eXIf", exif_with_gps(orientation)),
            (*b"tIME", vec![7, 0xE9, 1, 2, 3, 4, 5]),
            (*b"prIv", b"private tracking id".to_vec()),
            (*b"pHYs", vec![0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1]),
        ];
        for (kind, contents) in extra {
            png.chunks_mut().insert(1, PngChunk::new(kind, contents.into()));
        }
        let mut bytes = png.encoder().bytes().to_vec();
        bytes.extend_from_slice(b"after IEND: Alice");
        bytes
    }

    fn png_chunk_kinds(data: &[u8]) -> Vec<[u8; 4]> {
        let png = Png::from_bytes(Bytes::copy_from_slice(data)).expect("parse PNG");
        png.chunks().iter().map(PngChunk::kind).collect()
    }

    #[test]
    fn png_drops_text_time_exif_and_private_chunks() {
        let original = png_with_metadata(6);
        assert!(png_chunk_kinds(&original).contains(b"iTXt"));
        let stripped = strip_metadata(&original, ImageKind::Png).expect("strip");

        let kinds = png_chunk_kinds(&stripped);
        for gone in [b"tEXt", b"zTXt", b"iTXt", b"tIME", b"prIv"] {
            assert!(!kinds.contains(gone), "{}", String::from_utf8_lossy(gone));
        }
        assert_eq!(kinds.first(), Some(b"IHDR"));
        assert_eq!(kinds.get(1), Some(b"eXIf"));
        assert!(kinds.contains(b"pHYs"));
        assert_only_orientation(&read_exif(&stripped).expect("orientation kept"), 6);
        let png = Png::from_bytes(Bytes::copy_from_slice(&stripped)).expect("parse");
        assert_eq!(png.icc_profile(), Some(Bytes::from_static(ICC)));
        assert!(!contains(&stripped, b"Alice") && !contains(&stripped, b"tracking"));
        assert_same_pixels(&original, &stripped, ImageFormat::Png);

        let stripped = strip_metadata(&png_with_metadata(1), ImageKind::Png).expect("strip");
        assert!(!png_chunk_kinds(&stripped).contains(b"eXIf"));
        assert!(read_exif(&stripped).is_none());
    }

    #[test]
    fn files_of_countless_tiny_chunks_are_refused_before_they_are_parsed() {
        let png = encode_png(&DynamicImage::ImageRgb8(rgb_pattern(4, 4)));
        let (head, rest) = png.split_at(33); // signature + IHDR
        let mut bomb = head.to_vec();
        let chunk = [&0u32.to_be_bytes()[..], b"prIv", &crc32fast::hash(b"prIv").to_be_bytes()].concat();
        for _ in 0..=MAX_CHUNKS {
            bomb.extend_from_slice(&chunk);
        }
        bomb.extend_from_slice(rest);
        assert!(matches!(strip_metadata(&bomb, ImageKind::Png), Err(MediaError::Unsupported(_))));
        // A few thousand are fine.
        let mut many = head.to_vec();
        for _ in 0..5000 {
            many.extend_from_slice(&chunk);
        }
        many.extend_from_slice(rest);
        assert!(strip_metadata(&many, ImageKind::Png).is_ok());

        let webp = encode_webp(&rgba_pattern(4, 4));
        let mut bomb = webp.clone();
        for _ in 0..=MAX_CHUNKS {
            bomb.extend_from_slice(b"JUNK\0\0\0\0");
        }
        assert!(matches!(strip_metadata(&bomb, ImageKind::WebP), Err(MediaError::Unsupported(_))));
    }

    #[test]
    fn broken_png_is_corrupt() {
        let original = png_with_metadata(6);
        let mut bad_crc = original.clone();
        if let Some(b) = bad_crc.get_mut(20) {
            *b ^= 0xFF; // inside IHDR
        }
        for data in [&original[..original.len() / 2], &bad_crc[..], b"\x89PNG\r\n\x1a\n", b""] {
            let err = strip_metadata(data, ImageKind::Png).expect_err("broken");
            assert!(matches!(err, MediaError::Corrupt(_)), "{err:?}");
        }
    }

    /// An RGBA lossless WebP with ICC, EXIF (with the `Exif\0\0` prefix some writers add) and
    /// XMP chunks, and a VP8X header announcing them.
    fn webp_with_metadata(orientation: u16) -> Vec<u8> {
        let mut webp = WebP::from_bytes(encode_webp(&rgba_pattern(64, 48)).into()).expect("parse WebP");
        webp.chunks_mut().push(RiffChunk::new(*b"XMP ", RiffContent::Data(Bytes::from_static(XMP))));
        webp.set_icc_profile(Some(Bytes::from_static(ICC)));
        webp.set_exif(Some([EXIF_PREFIX, &exif_with_gps(orientation)].concat().into()));
        webp.encoder().bytes().to_vec()
    }

    fn vp8x_flags(data: &[u8]) -> u8 {
        let webp = WebP::from_bytes(Bytes::copy_from_slice(data)).expect("parse WebP");
        let vp8x = webp.chunk_by_id(*b"VP8X").expect("VP8X");
        vp8x.content().data().and_then(|d| d.first().copied()).expect("flags")
    }

    fn webp_chunk_ids(data: &[u8]) -> Vec<[u8; 4]> {
        let webp = WebP::from_bytes(Bytes::copy_from_slice(data)).expect("parse WebP");
        webp.chunks().iter().map(RiffChunk::id).collect()
    }

    #[test]
    fn webp_drops_exif_and_xmp_and_fixes_the_flags() {
        let original = webp_with_metadata(6);
        assert_eq!(vp8x_flags(&original) & (VP8X_EXIF | VP8X_XMP), VP8X_EXIF | VP8X_XMP);
        let stripped = strip_metadata(&original, ImageKind::WebP).expect("strip");

        let ids = webp_chunk_ids(&stripped);
        assert!(!ids.contains(b"XMP "), "{ids:?}");
        assert_eq!(ids.iter().filter(|&id| id == b"EXIF").count(), 1);
        // ICC (0x20) and alpha (0x10) stay, EXIF now announces the minimal block, XMP is gone.
        assert_eq!(vp8x_flags(&stripped), 0x20 | 0x10 | VP8X_EXIF);
        assert_only_orientation(&read_exif(&stripped).expect("orientation kept"), 6);
        let webp = WebP::from_bytes(Bytes::copy_from_slice(&stripped)).expect("parse");
        assert_eq!(webp.icc_profile(), Some(Bytes::from_static(ICC)));
        assert!(!contains(&stripped, b"GPS") && !contains(&stripped, b"SecretCam"));
        assert_same_pixels(&original, &stripped, ImageFormat::WebP);

        let stripped = strip_metadata(&webp_with_metadata(1), ImageKind::WebP).expect("strip");
        let ids = webp_chunk_ids(&stripped);
        assert!(!ids.contains(b"EXIF") && !ids.contains(b"XMP "), "{ids:?}");
        assert_eq!(vp8x_flags(&stripped), 0x20 | 0x10);
        assert!(read_exif(&stripped).is_none());
        assert_same_pixels(&original, &stripped, ImageFormat::WebP);
    }

    #[test]
    fn simple_webp_gets_a_vp8x_header_for_its_orientation() {
        let plain = encode_webp(&rgba_pattern(20, 10));
        assert!(!webp_chunk_ids(&plain).contains(b"VP8X"));
        let mut webp = WebP::from_bytes(plain.clone().into()).expect("parse");
        // An EXIF chunk without VP8X is malformed, but must still be handled.
        webp.chunks_mut().push(RiffChunk::new(*b"EXIF", RiffContent::Data(exif_with_gps(8).into())));
        let data = webp.encoder().bytes().to_vec();
        let stripped = strip_metadata(&data, ImageKind::WebP).expect("strip");
        assert_eq!(webp_chunk_ids(&stripped).first(), Some(b"VP8X"));
        assert_eq!(vp8x_flags(&stripped) & VP8X_EXIF, VP8X_EXIF);
        assert_only_orientation(&read_exif(&stripped).expect("orientation"), 8);
        assert_same_pixels(&plain, &stripped, ImageFormat::WebP);
    }

    /// A looping GIF with a comment and an XMP application extension before the first image,
    /// and a plain text extension between the frames.
    fn gif_with_metadata() -> Vec<u8> {
        let mut gif = encode_gif(40, 30);
        let flags = gif.get(10).copied().unwrap_or_default();
        let first_block = 13 + colour_table_len(flags);
        let mut extra = Vec::new();
        extra.extend(b"\x21\xFE\x0Bhello Alice\x00");
        extra.extend(b"\x21\xFF\x0BXMP DataXMP");
        extra.push(XMP.len() as u8);
        extra.extend(XMP);
        extra.push(0);
        gif.splice(first_block..first_block, extra);
        let trailer = gif.len() - 1;
        assert_eq!(gif.get(trailer), Some(&0x3B));
        gif.splice(trailer..trailer, b"\x21\x01\x0C\0\0\0\0\x10\0\x10\0\x08\x08\x01\x00\x05Alice\x00".iter().copied());
        gif.extend(b"after the trailer");
        gif
    }

    fn gif_frames(data: &[u8]) -> Vec<(Vec<u8>, (u32, u32))> {
        GifDecoder::new(Cursor::new(data))
            .expect("GIF header")
            .into_frames()
            .collect_frames()
            .expect("GIF frames")
            .into_iter()
            .map(|frame| (frame.buffer().as_raw().clone(), frame.delay().numer_denom_ms()))
            .collect()
    }

    #[test]
    fn gif_drops_comments_text_and_xmp_keeps_frames_and_looping() {
        let original = gif_with_metadata();
        let stripped = strip_metadata(&original, ImageKind::Gif).expect("strip");
        for secret in [&b"Alice"[..], b"XMP DataXMP", b"GPS", b"after the trailer"] {
            assert!(!contains(&stripped, secret), "{}", String::from_utf8_lossy(secret));
        }
        assert!(contains(&stripped, b"NETSCAPE2.0"));
        assert!(stripped.ends_with(&[0x3B]));
        let frames = gif_frames(&stripped);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames, gif_frames(&original));
        // Without metadata, only the trailer's aftermath changes: none here.
        let plain = encode_gif(20, 10);
        assert_eq!(strip_metadata(&plain, ImageKind::Gif).expect("strip"), plain);
        // A missing trailer after a complete block is supplied.
        let without_trailer = plain.get(..plain.len() - 1).unwrap_or_default();
        assert_eq!(strip_metadata(without_trailer, ImageKind::Gif).expect("strip"), plain);
    }

    #[test]
    fn broken_gif_is_corrupt() {
        let original = gif_with_metadata();
        for data in [&original[..original.len() / 2], &original[..12], b"GIF89a", b"PNG"] {
            let err = strip_metadata(data, ImageKind::Gif).expect_err("broken");
            assert!(matches!(err, MediaError::Corrupt(_)), "{err:?}");
        }
        let mut bad_block = encode_gif(20, 10);
        let flags = bad_block.get(10).copied().unwrap_or_default();
        bad_block.insert(13 + colour_table_len(flags), 0x42);
        let err = strip_metadata(&bad_block, ImageKind::Gif).expect_err("unknown block");
        assert!(matches!(err, MediaError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn minimal_exif_is_26_bytes_of_orientation() {
        let tiff = minimal_exif(6);
        assert_eq!(tiff.len(), 26);
        assert_eq!(orientation_to_keep(&tiff), Some(6));
        assert_eq!(orientation_to_keep(&minimal_exif(1)), None);
        assert_eq!(orientation_to_keep(&minimal_exif(9)), None);
        assert_eq!(orientation_to_keep(b"MM\0\x2A"), None);
    }

    /// One file of each kind, made once for the loops below.
    static SAMPLES: LazyLock<[(ImageKind, Vec<u8>); 4]> = LazyLock::new(|| {
        [
            (ImageKind::Jpeg, jpeg_with_metadata(6)),
            (ImageKind::Png, png_with_metadata(6)),
            (ImageKind::WebP, webp_with_metadata(6)),
            (ImageKind::Gif, gif_with_metadata()),
        ]
    });

    #[test]
    fn every_truncation_is_handled() {
        for (kind, data) in SAMPLES.iter() {
            // Every cut through the headers, then a few hundred through the rest.
            let step = (data.len() / 300).max(1);
            for len in (0..data.len()).filter(|&len| len < 1024 || len % step == 0) {
                // Ok (a cut in data that is dropped anyway) or Corrupt; never a panic.
                if let Err(err) = strip_metadata(&data[..len], *kind) {
                    assert!(matches!(err, MediaError::Corrupt(_)), "{kind:?} {len}: {err:?}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn damaged_files_never_panic(
            which in 0usize..4,
            cut in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        ) {
            let Some((kind, data)) = SAMPLES.get(which) else { return Ok(()) };
            let mut data = data.clone();
            for (at, byte) in flips {
                let at = at.index(data.len());
                if let Some(b) = data.get_mut(at) { *b ^= byte; }
            }
            data.truncate(cut.index(data.len() + 1));
            let _ = strip_metadata(&data, *kind);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512), which in 0usize..4) {
            let kind = [ImageKind::Jpeg, ImageKind::Png, ImageKind::WebP, ImageKind::Gif][which];
            let mut with_magic = match kind {
                ImageKind::Jpeg => vec![0xFF, 0xD8],
                ImageKind::Png => b"\x89PNG\r\n\x1a\n".to_vec(),
                ImageKind::WebP => b"RIFF\0\x02\0\0WEBP".to_vec(),
                ImageKind::Gif => b"GIF89a".to_vec(),
            };
            with_magic.extend(&data);
            let _ = strip_metadata(&with_magic, kind);
            let _ = strip_metadata(&data, kind);
        }
    }
}
