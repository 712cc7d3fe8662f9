//! Decoding uploaded images under limits, and making thumbnails of them.
//!
//! Everything here is synchronous and CPU-bound: callers run it on a blocking thread. No input,
//! however malformed, makes these functions panic; it becomes a [`MediaError`].

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageError, ImageFormat, ImageReader};

/// JPEG quality of the thumbnails: small files, no visible blocking at thumbnail sizes.
const JPEG_QUALITY: u8 = 85;

/// Which container the bytes are (from magic-byte sniffing done elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// JPEG (JFIF or EXIF).
    Jpeg,
    /// PNG (APNG too: its first frame is the default image).
    Png,
    /// WebP (lossy, lossless or animated).
    WebP,
    /// GIF (87a or 89a, possibly animated).
    Gif,
}

impl ImageKind {
    /// The kind for a MIME type such as `image/jpeg`, case-insensitive and ignoring parameters;
    /// `None` for anything that is not one of the four image kinds.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        [
            ("image/jpeg", Self::Jpeg),
            ("image/jpg", Self::Jpeg),
            ("image/pjpeg", Self::Jpeg),
            ("image/png", Self::Png),
            ("image/webp", Self::WebP),
            ("image/gif", Self::Gif),
        ]
        .into_iter()
        .find(|(name, _)| essence.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
    }

    /// The canonical MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
            Self::Gif => "gif",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::WebP => ImageFormat::WebP,
            Self::Gif => ImageFormat::Gif,
        }
    }
}

/// The format thumbnails are written in (`--thumbnail-format`: parsed from `jpeg` or `webp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailFormat {
    /// Baseline JPEG at quality 85; transparency is composited over white.
    Jpeg,
    /// Lossless WebP (the `image` crate only encodes lossless WebP): keeps transparency, larger
    /// files than lossy WebP would be.
    WebP,
}

impl ThumbnailFormat {
    /// The MIME type of the thumbnails.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::WebP => "image/webp",
        }
    }

    /// The file extension of the thumbnails, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::WebP => "webp",
        }
    }
}

impl FromStr for ThumbnailFormat {
    type Err = String;

    /// Parses `jpeg` or `webp` (case-insensitive), as given to a CLI flag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("jpeg") {
            Ok(Self::Jpeg)
        } else if s.eq_ignore_ascii_case("webp") {
            Ok(Self::WebP)
        } else {
            Err(format!("unknown thumbnail format `{s}` (expected `jpeg` or `webp`)"))
        }
    }
}

impl fmt::Display for ThumbnailFormat {
    /// The name [`FromStr`] accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "jpeg",
            Self::WebP => "webp",
        })
    }
}

/// How big an image may be before it is refused without being decoded.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Most pixels (width × height, as the header claims) an image may have.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate (the decoded buffer included).
    pub max_alloc: u64,
}

impl DecodeLimits {
    fn to_image_limits(self) -> image::Limits {
        // A side longer than `max_pixels` cannot fit whatever the other side is, so this lets
        // the decoders refuse absurd headers themselves; the exact area check is ours.
        let max_side = u32::try_from(self.max_pixels).unwrap_or(u32::MAX);
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(max_side);
        limits.max_image_height = Some(max_side);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }
}

/// One encoded thumbnail.
#[derive(Debug)]
pub struct Thumbnail {
    /// The requested longest side.
    pub size: u32,
    /// Actual width (after orientation), at most `size`.
    pub width: u32,
    /// Actual height (after orientation), at most `size`.
    pub height: u32,
    /// The encoded image, in the requested [`ThumbnailFormat`].
    pub bytes: Vec<u8>,
}

/// Why an image could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Over the pixel or memory limits (checked from the header, before decoding pixels).
    #[error("image too large: {0}")]
    TooLarge(String),
    /// Truncated or invalid data.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// A valid image that this code cannot handle (or cannot encode the result of).
    #[error("unsupported image: {0}")]
    Unsupported(String),
}

impl MediaError {
    /// A short, stable name for the error kind, used as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Corrupt(_) => "corrupt",
            Self::Unsupported(_) => "unsupported",
        }
    }

    /// Classifies an error from reading an image.
    fn from_decoding(err: ImageError) -> Self {
        match err {
            ImageError::Limits(_) => Self::TooLarge(err.to_string()),
            ImageError::Unsupported(_) => Self::Unsupported(err.to_string()),
            // Reading from memory only fails at an unexpected end of data; parameter errors while
            // decoding come from inconsistent headers.
            ImageError::Decoding(_) | ImageError::IoError(_) | ImageError::Parameter(_) | ImageError::Encoding(_) => {
                Self::Corrupt(err.to_string())
            }
        }
    }

    /// Classifies an error from writing a thumbnail: the source image was fine, so it is one
    /// this code cannot turn into a thumbnail (say a side over the encoder's maximum).
    fn from_encoding(err: ImageError) -> Self {
        Self::Unsupported(format!("cannot encode the thumbnail: {err}"))
    }
}

/// Decodes once, applies the EXIF orientation, and makes one thumbnail per requested size
/// (longest side = size, aspect kept, never upscaled: an image smaller than `size` keeps its size).
///
/// A size of 0 is taken as 1. GIF and animated WebP/PNG give their first frame. Each thumbnail is
/// encoded in `format`, without any metadata.
pub fn thumbnails(
    data: &[u8],
    kind: ImageKind,
    sizes: &[u32],
    format: ThumbnailFormat,
    limits: DecodeLimits,
) -> Result<Vec<Thumbnail>, MediaError> {
    if sizes.is_empty() {
        return Ok(Vec::new());
    }
    let (image, orientation) = decode(data, kind, limits)?;
    let source = Pixels::new(image, orientation, format);
    let mut resizer = Resizer::new();
    // Largest first, each smaller one resized from the last one made while that still has at
    // least twice its pixels per side (the filter keeps its footprint), not from the whole
    // image again: a 256 from a 1024 instead of from 12 megapixels. Sizes always come from
    // the original's dimensions, so a thumbnail's size does not depend on the others asked.
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes.get(i).copied().unwrap_or(0)));
    let mut made: Vec<Option<Thumbnail>> = sizes.iter().map(|_| None).collect();
    let mut last: Option<Pixels> = None;
    for i in order {
        let size = sizes.get(i).copied().unwrap_or(1).max(1);
        let (width, height) = fit(source.width, source.height, size);
        let from = match &last {
            Some(smaller) if smaller.width >= width.saturating_mul(2) && smaller.height >= height.saturating_mul(2) => {
                smaller
            }
            _ => &source,
        };
        let (thumbnail, resized) = from.thumbnail(&mut resizer, size, width, height, format)?;
        if let Some(slot) = made.get_mut(i) {
            *slot = Some(thumbnail);
        }
        last = Some(resized);
    }
    Ok(made.into_iter().flatten().collect())
}

/// Whether `data` decodes as a `kind` image under `limits` (the whole image, not only its
/// header: a truncated or corrupt file fails here).
pub fn check_decodes(data: &[u8], kind: ImageKind, limits: DecodeLimits) -> Result<(), MediaError> {
    decode(data, kind, limits).map(drop)
}

/// Decodes `data` under `limits`; returns the image as stored and its EXIF orientation.
fn decode(data: &[u8], kind: ImageKind, limits: DecodeLimits) -> Result<(DynamicImage, Orientation), MediaError> {
    let mut reader = ImageReader::with_format(Cursor::new(data), kind.image_format());
    reader.limits(limits.to_image_limits());
    // This only parses the header: no pixel buffer exists yet.
    let mut decoder = reader.into_decoder().map_err(MediaError::from_decoding)?;

    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(MediaError::TooLarge(format!(
            "{width}×{height} is {pixels} pixels, over the limit of {}",
            limits.max_pixels
        )));
    }
    let buffer = decoder.total_bytes();
    if buffer > limits.max_alloc {
        return Err(MediaError::TooLarge(format!(
            "{width}×{height} needs {buffer} bytes decoded, over the limit of {}",
            limits.max_alloc
        )));
    }

    // Broken EXIF should not cost the thumbnail: it is then shown as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(MediaError::from_decoding)?;
    Ok((image, orientation))
}

/// The decoded image as stored, in 8-bit RGB or RGBA, ready for the resizer, and the EXIF
/// orientation each thumbnail gets applied to its pixels. Orienting after the resize turns a
/// thumbnail rather than the whole image: no second full-size buffer (36 MB for a
/// 12-megapixel photo) and a fraction of the time.
struct Pixels {
    width: u32,
    height: u32,
    pixel_type: PixelType,
    buffer: Vec<u8>,
    orientation: Orientation,
}

impl Pixels {
    /// Converts to what `format` will encode: RGB for JPEG (transparency composited over white,
    /// once, before any resize: with a linear filter this equals compositing after it), RGBA
    /// for WebP when the image has an alpha channel.
    fn new(image: DynamicImage, orientation: Orientation, format: ThumbnailFormat) -> Self {
        let (width, height) = (image.width(), image.height());
        let (pixel_type, buffer) = match (image.color().has_alpha(), format) {
            (false, _) => (PixelType::U8x3, image.into_rgb8().into_raw()),
            (true, ThumbnailFormat::WebP) => (PixelType::U8x4, image.into_rgba8().into_raw()),
            (true, ThumbnailFormat::Jpeg) => (PixelType::U8x3, composite_over_white(&image.into_rgba8().into_raw())),
        };
        Self { width, height, pixel_type, buffer, orientation }
    }

    fn color_type(&self) -> ExtendedColorType {
        if self.pixel_type == PixelType::U8x4 { ExtendedColorType::Rgba8 } else { ExtendedColorType::Rgb8 }
    }

    /// The thumbnail of longest side `size`, resized to `width` × `height` (in stored
    /// orientation: turning the image turns its longest side with it), and its pixels before
    /// orientation, to make smaller ones from.
    fn thumbnail(
        &self,
        resizer: &mut Resizer,
        size: u32,
        width: u32,
        height: u32,
        format: ThumbnailFormat,
    ) -> Result<(Thumbnail, Pixels), MediaError> {
        let resized = if (width, height) == (self.width, self.height) {
            // Never upscaled: small images are only re-encoded.
            self.buffer.clone()
        } else {
            self.resize(resizer, width, height)?.into_vec()
        };
        let unoriented = Pixels { width, height, buffer: resized.clone(), ..*self };
        let (pixels, width, height) = self.orient(resized, width, height)?;

        let mut bytes = Vec::new();
        let color_type = self.color_type();
        match format {
            ThumbnailFormat::Jpeg => {
                JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY).encode(&pixels, width, height, color_type)
            }
            ThumbnailFormat::WebP => WebPEncoder::new_lossless(&mut bytes).encode(&pixels, width, height, color_type),
        }
        .map_err(MediaError::from_encoding)?;

        Ok((Thumbnail { size, width, height, bytes }, unoriented))
    }

    /// Applies the EXIF orientation to a thumbnail's pixels: `(pixels, width, height)` as shown.
    fn orient(&self, pixels: Vec<u8>, width: u32, height: u32) -> Result<(Vec<u8>, u32, u32), MediaError> {
        if self.orientation == Orientation::NoTransforms {
            return Ok((pixels, width, height));
        }
        let wrong_size = || MediaError::Unsupported("thumbnail buffer of the wrong size".into());
        let mut image = if self.pixel_type == PixelType::U8x4 {
            DynamicImage::ImageRgba8(image::RgbaImage::from_raw(width, height, pixels).ok_or_else(wrong_size)?)
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(width, height, pixels).ok_or_else(wrong_size)?)
        };
        image.apply_orientation(self.orientation);
        let (width, height) = (image.width(), image.height());
        Ok((image.into_bytes(), width, height))
    }

    fn resize(&self, resizer: &mut Resizer, width: u32, height: u32) -> Result<Image<'static>, MediaError> {
        let resize_failed = |err: &dyn fmt::Display| MediaError::Unsupported(format!("cannot resize the image: {err}"));
        let source =
            ImageRef::new(self.width, self.height, &self.buffer, self.pixel_type).map_err(|err| resize_failed(&err))?;
        let mut target = Image::new(width, height, self.pixel_type);
        // Lanczos3 keeps downscaled detail sharp; the alpha channel is premultiplied during the
        // resize (the default), so transparent pixels do not bleed their colour.
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        resizer.resize(&source, &mut target, &options).map_err(|err| resize_failed(&err))?;
        Ok(target)
    }
}

/// The size of a `width`×`height` image scaled so that its longest side is `size`, keeping the
/// aspect ratio (rounded, at least 1 pixel) and never scaling up.
fn fit(width: u32, height: u32, size: u32) -> (u32, u32) {
    let size = size.max(1);
    let longest = width.max(height);
    if longest <= size {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled = (u64::from(side) * u64::from(size) + u64::from(longest) / 2) / u64::from(longest);
        // `scaled` is at most `size`, so it always fits.
        u32::try_from(scaled).unwrap_or(size).max(1)
    };
    if width >= height { (size, scale(height)) } else { (scale(width), size) }
}

/// RGBA8 → RGB8 over a white background.
fn composite_over_white(rgba: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for pixel in rgba.chunks_exact(4) {
        if let [r, g, b, a] = *pixel {
            let a = u16::from(a);
            let over_white = |c: u8| {
                let mixed = (u16::from(c) * a + 255 * (255 - a) + 127) / 255;
                u8::try_from(mixed).unwrap_or(u8::MAX)
            };
            rgb.extend([over_white(r), over_white(g), over_white(b)]);
        }
    }
    rgb
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use image::codecs::gif::{GifEncoder, Repeat};
    use image::codecs::png::PngEncoder;
    use image::{Delay, Frame, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
    use img_parts::{Bytes, ImageEXIF};
    use proptest::prelude::*;

    use super::*;

    pub(crate) const LIMITS: DecodeLimits = DecodeLimits { max_pixels: 40_000_000, max_alloc: 512 * 1024 * 1024 };

    /// A 400×300 gradient: every pixel differs from its neighbours, so a wrong rotation or a
    /// re-encode shows.
    pub(crate) fn rgb_pattern(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]))
    }

    /// A half-transparent gradient.
    pub(crate) fn rgba_pattern(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |x, y| {
            Rgba([(x % 256) as u8, (y % 256) as u8, 40, if x < width / 2 { 0 } else { 255 }])
        })
    }

    pub(crate) fn encode_jpeg(image: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90).encode_image(image).expect("encode JPEG");
        out
    }

    pub(crate) fn encode_png(image: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(image.as_bytes(), image.width(), image.height(), image.color().into())
            .expect("encode PNG");
        out
    }

    pub(crate) fn encode_webp(image: &RgbaImage) -> Vec<u8> {
        let mut out = Vec::new();
        WebPEncoder::new_lossless(&mut out)
            .encode(image.as_raw(), image.width(), image.height(), ExtendedColorType::Rgba8)
            .expect("encode WebP");
        out
    }

    /// A looping two-frame GIF.
    pub(crate) fn encode_gif(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = GifEncoder::new_with_speed(&mut out, 30);
            encoder.set_repeat(Repeat::Infinite).expect("repeat");
            let frames = [rgba_pattern(width, height), {
                let mut second = rgba_pattern(width, height);
                image::imageops::flip_horizontal_in_place(&mut second);
                second
            }];
            for frame in frames {
                let frame = Frame::from_parts(frame, 0, 0, Delay::from_numer_denom_ms(100, 1));
                encoder.encode_frame(frame).expect("encode GIF frame");
            }
        }
        out
    }

    /// A big-endian TIFF (EXIF) block: IFD0 with Make, Orientation and pointers to an Exif IFD
    /// holding a camera serial number (0xA431) and a GPS IFD holding a position.
    pub(crate) fn exif_with_gps(orientation: u16) -> Vec<u8> {
        // (tag, type, count, value bytes): 2 = ASCII, 3 = SHORT, 4 = LONG, 5 = RATIONAL.
        type Entry = (u16, u16, u32, Vec<u8>);
        fn ifd_len(entries: &[Entry]) -> u32 {
            let data: usize = entries.iter().filter(|e| e.3.len() > 4).map(|e| e.3.len().next_multiple_of(2)).sum();
            (2 + 12 * entries.len() + 4 + data) as u32
        }
        fn write_ifd(out: &mut Vec<u8>, entries: &[Entry]) {
            let at = out.len() as u32;
            let mut data_at = at + 2 + 12 * entries.len() as u32 + 4;
            let mut data = Vec::new();
            out.extend((entries.len() as u16).to_be_bytes());
            for (tag, kind, count, value) in entries {
                out.extend(tag.to_be_bytes());
                out.extend(kind.to_be_bytes());
                out.extend(count.to_be_bytes());
                if value.len() <= 4 {
                    let mut inline = value.clone();
                    inline.resize(4, 0);
                    out.extend(inline);
                } else {
                    out.extend(data_at.to_be_bytes());
                    let mut value = value.clone();
                    value.resize(value.len().next_multiple_of(2), 0);
                    data_at += value.len() as u32;
                    data.extend(value);
                }
            }
            out.extend(0u32.to_be_bytes());
            out.extend(data);
        }
        let rational = |n: u32, d: u32| [n.to_be_bytes(), d.to_be_bytes()].concat();
        let serial = b"SN-0042-SECRET\0".to_vec();
        let exif_ifd: Vec<Entry> = vec![(0xA431, 2, serial.len() as u32, serial)];
        let gps_ifd: Vec<Entry> = vec![
            (0x0001, 2, 2, b"N\0".to_vec()),
            (0x0002, 5, 3, [rational(48, 1), rational(51, 1), rational(24, 1)].concat()),
        ];
        let make = b"SecretCam\0".to_vec();
        let mut ifd0: Vec<Entry> = vec![
            (0x010F, 2, make.len() as u32, make),
            (0x0112, 3, 1, orientation.to_be_bytes().to_vec()),
            (0x8769, 4, 1, vec![0; 4]),
            (0x8825, 4, 1, vec![0; 4]),
        ];
        let exif_at = 8 + ifd_len(&ifd0);
        let gps_at = exif_at + ifd_len(&exif_ifd);
        ifd0[2].3 = exif_at.to_be_bytes().to_vec();
        ifd0[3].3 = gps_at.to_be_bytes().to_vec();

        let mut out = b"MM\0\x2A\0\0\0\x08".to_vec();
        write_ifd(&mut out, &ifd0);
        write_ifd(&mut out, &exif_ifd);
        write_ifd(&mut out, &gps_ifd);
        out
    }

    /// A 400×300 JPEG whose EXIF says orientation 6 (rotate 90° clockwise to display).
    fn rotated_jpeg() -> Vec<u8> {
        let mut jpeg =
            img_parts::jpeg::Jpeg::from_bytes(encode_jpeg(&rgb_pattern(400, 300)).into()).expect("parse JPEG");
        jpeg.set_exif(Some(Bytes::from(exif_with_gps(6))));
        jpeg.encoder().bytes().to_vec()
    }

    fn decode_as(bytes: &[u8], format: ImageFormat) -> DynamicImage {
        image::load_from_memory_with_format(bytes, format).expect("thumbnail decodes")
    }

    #[test]
    fn test_exif_helper_is_parsable() {
        let exif = exif::Reader::new().read_raw(exif_with_gps(6)).expect("parse EXIF");
        let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).expect("orientation");
        assert_eq!(field.value.get_uint(0), Some(6));
        assert!(exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_some());
        assert!(exif.get_field(exif::Tag::BodySerialNumber, exif::In::PRIMARY).is_some());
    }

    #[test]
    fn jpeg_thumbnails_follow_the_orientation_and_never_upscale() {
        let thumbs = thumbnails(&rotated_jpeg(), ImageKind::Jpeg, &[256, 1024, 64], ThumbnailFormat::Jpeg, LIMITS)
            .expect("thumbnails");
        let dims: Vec<_> = thumbs.iter().map(|t| (t.size, t.width, t.height)).collect();
        // Rotated 90°: 300 wide, 400 high.
        assert_eq!(dims, [(256, 192, 256), (1024, 300, 400), (64, 48, 64)]);
        for thumb in &thumbs {
            assert!(thumb.bytes.starts_with(&[0xFF, 0xD8]));
            let decoded = decode_as(&thumb.bytes, ImageFormat::Jpeg);
            assert_eq!((decoded.width(), decoded.height()), (thumb.width, thumb.height));
            // No metadata copied into the thumbnail: a viewer must not rotate it again.
            let parsed = img_parts::jpeg::Jpeg::from_bytes(thumb.bytes.clone().into()).expect("parse thumbnail");
            assert!(parsed.exif().is_none());
        }
    }

    #[test]
    fn rotation_moves_the_pixels() {
        // Orientation 6 (rotate 90° clockwise): the stored top-left corner ends up top-right.
        let mut source = RgbImage::from_pixel(40, 30, Rgb([0, 0, 0]));
        for y in 0..10 {
            for x in 0..10 {
                source.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(encode_jpeg(&source).into()).expect("parse JPEG");
        jpeg.set_exif(Some(Bytes::from(exif_with_gps(6))));
        let thumbs = thumbnails(&jpeg.encoder().bytes(), ImageKind::Jpeg, &[100], ThumbnailFormat::WebP, LIMITS)
            .expect("thumbnail");
        let image = decode_as(&thumbs[0].bytes, ImageFormat::WebP).into_rgb8();
        assert_eq!(image.dimensions(), (30, 40));
        assert!(image.get_pixel(25, 4).0[0] > 200, "top-right is white");
        assert!(image.get_pixel(4, 4).0[0] < 50, "top-left is black");
    }

    #[test]
    fn webp_thumbnails_keep_alpha_and_jpeg_ones_go_over_white() {
        let png = encode_png(&DynamicImage::ImageRgba8(rgba_pattern(200, 100)));
        let webp = thumbnails(&png, ImageKind::Png, &[100], ThumbnailFormat::WebP, LIMITS).expect("webp thumbnail");
        let decoded = decode_as(&webp[0].bytes, ImageFormat::WebP);
        assert_eq!((decoded.width(), decoded.height()), (100, 50));
        assert!(decoded.color().has_alpha());
        let rgba = decoded.into_rgba8();
        assert_eq!(rgba.get_pixel(5, 25).0[3], 0, "left half stays transparent");
        assert_eq!(rgba.get_pixel(95, 25).0[3], 255);

        let jpeg = thumbnails(&png, ImageKind::Png, &[100], ThumbnailFormat::Jpeg, LIMITS).expect("jpeg thumbnail");
        let rgb = decode_as(&jpeg[0].bytes, ImageFormat::Jpeg).into_rgb8();
        assert_eq!(rgb.dimensions(), (100, 50));
        let left = rgb.get_pixel(5, 25).0;
        assert!(left.iter().all(|&c| c > 240), "transparent → white, got {left:?}");
    }

    #[test]
    fn gif_gives_its_first_frame_and_webp_input_works() {
        let gif = encode_gif(120, 60);
        let thumbs = thumbnails(&gif, ImageKind::Gif, &[60], ThumbnailFormat::WebP, LIMITS).expect("gif thumbnail");
        assert_eq!((thumbs[0].width, thumbs[0].height), (60, 30));
        decode_as(&thumbs[0].bytes, ImageFormat::WebP);

        let webp = encode_webp(&rgba_pattern(30, 90));
        let thumbs =
            thumbnails(&webp, ImageKind::WebP, &[45, 0], ThumbnailFormat::Jpeg, LIMITS).expect("webp thumbnail");
        let dims: Vec<_> = thumbs.iter().map(|t| (t.width, t.height)).collect();
        assert_eq!(dims, [(15, 45), (1, 1)]);
    }

    #[test]
    fn no_sizes_means_no_decoding() {
        // Not even an invalid image is looked at.
        assert!(
            thumbnails(b"junk", ImageKind::Png, &[], ThumbnailFormat::Jpeg, LIMITS).expect("nothing to do").is_empty()
        );
    }

    /// A PNG signature and IHDR claiming `width`×`height` RGBA, then an empty IDAT and IEND.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend(width.to_be_bytes());
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no interlace
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for chunk in [
            img_parts::png::PngChunk::new(*b"IHDR", Bytes::from(ihdr)),
            img_parts::png::PngChunk::new(*b"IDAT", Bytes::from_static(b"\x78\x9c\x03\0\0\0\0\x01")),
            img_parts::png::PngChunk::new(*b"IEND", Bytes::new()),
        ] {
            out.extend_from_slice(&chunk.encoder().bytes());
        }
        out
    }

    #[test]
    fn huge_header_is_refused_before_decoding() {
        let started = Instant::now();
        let err = thumbnails(&png_header(50_000, 50_000), ImageKind::Png, &[256], ThumbnailFormat::Jpeg, LIMITS)
            .expect_err("2.5 gigapixels");
        assert!(matches!(err, MediaError::TooLarge(_)), "{err:?}");
        assert_eq!(err.reason(), "too_large");
        // Allocating and inflating 10 GB would take far longer (or abort).
        assert!(started.elapsed() < Duration::from_secs(5));

        // Under the pixel limit but over the memory one.
        let limits = DecodeLimits { max_pixels: u64::MAX, max_alloc: 1024 * 1024 };
        let err = thumbnails(&png_header(1000, 1000), ImageKind::Png, &[256], ThumbnailFormat::Jpeg, limits)
            .expect_err("4 MB decoded");
        assert!(matches!(err, MediaError::TooLarge(_)), "{err:?}");

        // A side longer than the pixel budget, whatever the other side.
        let limits = DecodeLimits { max_pixels: 1000, max_alloc: u64::MAX };
        let err =
            thumbnails(&encode_jpeg(&rgb_pattern(2000, 1)), ImageKind::Jpeg, &[256], ThumbnailFormat::Jpeg, limits)
                .expect_err("2000 pixels");
        assert!(matches!(err, MediaError::TooLarge(_)), "{err:?}");
    }

    #[test]
    fn truncated_and_random_input_is_an_error() {
        let jpeg = rotated_jpeg();
        // Cut inside the headers (the EXIF block): no image data at all.
        let err =
            thumbnails(&jpeg[..100], ImageKind::Jpeg, &[64], ThumbnailFormat::Jpeg, LIMITS).expect_err("truncated");
        assert!(matches!(err, MediaError::Corrupt(_)), "{err:?}");
        assert_eq!(err.reason(), "corrupt");

        let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for kind in [ImageKind::Png, ImageKind::Jpeg, ImageKind::WebP, ImageKind::Gif] {
            let err = thumbnails(&noise, kind, &[64], ThumbnailFormat::Jpeg, LIMITS).expect_err("noise");
            assert!(matches!(err, MediaError::Corrupt(_) | MediaError::Unsupported(_)), "{kind:?}: {err:?}");
        }
        let err = thumbnails(b"", ImageKind::Png, &[64], ThumbnailFormat::Jpeg, LIMITS).expect_err("empty");
        assert!(matches!(err, MediaError::Corrupt(_)), "{err:?}");
    }

    /// Test images of each kind, small enough to decode quickly in a debug build.
    fn samples() -> Vec<(ImageKind, Vec<u8>)> {
        let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(encode_jpeg(&rgb_pattern(40, 30)).into()).expect("parse JPEG");
        jpeg.set_exif(Some(Bytes::from(exif_with_gps(6))));
        vec![
            (ImageKind::Jpeg, jpeg.encoder().bytes().to_vec()),
            (ImageKind::Png, encode_png(&DynamicImage::ImageRgba8(rgba_pattern(40, 30)))),
            (ImageKind::WebP, encode_webp(&rgba_pattern(40, 30))),
            (ImageKind::Gif, encode_gif(40, 30)),
        ]
    }

    #[test]
    fn truncations_never_panic() {
        for (kind, data) in samples() {
            thumbnails(&data, kind, &[16], ThumbnailFormat::WebP, LIMITS).expect("whole image");
            let step = (data.len() / 97).max(1);
            for len in (0..data.len()).step_by(step) {
                // Errors and partial images are both fine; a panic fails the test.
                let _ = thumbnails(&data[..len], kind, &[16], ThumbnailFormat::Jpeg, LIMITS);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn damaged_images_never_panic(
            which in 0usize..4,
            cut in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        ) {
            let samples = samples();
            let Some((kind, data)) = samples.get(which) else { return Ok(()) };
            let mut data = data.clone();
            for (at, byte) in flips {
                let at = at.index(data.len());
                if let Some(b) = data.get_mut(at) { *b ^= byte; }
            }
            data.truncate(cut.index(data.len() + 1));
            let _ = thumbnails(&data, *kind, &[16, 8], ThumbnailFormat::Jpeg, LIMITS);
        }
    }

    #[test]
    fn fit_keeps_the_aspect_ratio() {
        assert_eq!(fit(400, 300, 256), (256, 192));
        assert_eq!(fit(300, 400, 256), (192, 256));
        assert_eq!(fit(400, 300, 400), (400, 300));
        assert_eq!(fit(400, 300, 4000), (400, 300));
        assert_eq!(fit(10_000, 1, 100), (100, 1));
        assert_eq!(fit(1, 10_000, 100), (1, 100));
        assert_eq!(fit(5, 5, 0), (1, 1));
        assert_eq!(fit(u32::MAX, u32::MAX - 1, 7), (7, 7));
    }

    #[test]
    fn names_round_trip() {
        for kind in [ImageKind::Jpeg, ImageKind::Png, ImageKind::WebP, ImageKind::Gif] {
            assert_eq!(ImageKind::from_mime(kind.mime()), Some(kind));
        }
        assert_eq!(ImageKind::from_mime("Image/JPEG; q=1"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::Jpeg.extension(), "jpg");
        assert_eq!(ImageKind::from_mime("image/avif"), None);
        assert_eq!(ImageKind::from_mime(""), None);

        for format in [ThumbnailFormat::Jpeg, ThumbnailFormat::WebP] {
            assert_eq!(format.to_string().parse::<ThumbnailFormat>(), Ok(format));
        }
        assert_eq!("WEBP".parse(), Ok(ThumbnailFormat::WebP));
        assert_eq!(ThumbnailFormat::WebP.mime(), "image/webp");
        assert_eq!(ThumbnailFormat::Jpeg.extension(), "jpg");
        assert!("png".parse::<ThumbnailFormat>().is_err());
    }

    #[test]
    fn composite_math() {
        assert_eq!(
            composite_over_white(&[10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128]),
            [10, 20, 30, 255, 255, 255, 127, 127, 127]
        );
    }
}
