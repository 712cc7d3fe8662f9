//! Files derived from a finished upload (thumbnails, a copy without metadata), stored beside
//! the original and never over it.
//!
//! A derivative has a name from a closed set ([`DerivativeName`]): `thumbnails/<size>` or
//! `stripped`. The name is the path under the upload's URL (`/files/<id>/thumbnails/256`) and,
//! through [`DerivativeName::file_name`], the one file or object name a store uses, so nothing a
//! client sends ever names a path in storage. Stores record what exists in the upload's info
//! ([`UploadInfo::derivatives`](crate::store::UploadInfo::derivatives)), which is what `HEAD`,
//! `GET` and hook payloads read.
//!
//! ```
//! use tus_core::derivative::DerivativeName;
//!
//! let name = DerivativeName::parse("thumbnails/256").unwrap();
//! assert_eq!(name, DerivativeName::Thumbnail(256));
//! assert_eq!(name.file_name(), "thumbnail-256");
//! assert_eq!(DerivativeName::parse("../../etc/passwd"), None);
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest thumbnail size (longest side, pixels) a name may carry.
pub const MAX_THUMBNAIL_SIZE: u32 = 16_384;

/// Which derived file: the only names a derivative can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DerivativeName {
    /// A resized copy whose longest side is at most this many pixels.
    Thumbnail(u32),
    /// The original without its metadata (EXIF, XMP, IPTC, comments).
    Stripped,
}

impl DerivativeName {
    /// Parses the path under an upload's URL (`thumbnails/<size>` or `stripped`); `None` for
    /// anything else (sizes are 1..=[`MAX_THUMBNAIL_SIZE`], in plain decimal).
    pub fn parse(path: &str) -> Option<Self> {
        if path == "stripped" {
            return Some(DerivativeName::Stripped);
        }
        let size = path.strip_prefix("thumbnails/")?;
        // Plain digits only: no sign, no leading zero, so each size has one spelling.
        if size.is_empty() || size.len() > 5 || size.starts_with('0') || !size.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let size: u32 = size.parse().ok()?;
        (size <= MAX_THUMBNAIL_SIZE).then_some(DerivativeName::Thumbnail(size))
    }

    /// The file (fs) or object-name suffix (S3) a store keeps it under: `thumbnail-<size>` or
    /// `stripped`. Only ASCII letters, digits and `-`.
    pub fn file_name(&self) -> String {
        match self {
            DerivativeName::Thumbnail(size) => format!("thumbnail-{size}"),
            DerivativeName::Stripped => "stripped".to_owned(),
        }
    }
}

impl fmt::Display for DerivativeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DerivativeName::Thumbnail(size) => write!(f, "thumbnails/{size}"),
            DerivativeName::Stripped => f.write_str("stripped"),
        }
    }
}

/// A name that is not a derivative's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a derivative name: {0:?}")]
pub struct BadDerivativeName(String);

impl TryFrom<String> for DerivativeName {
    type Error = BadDerivativeName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DerivativeName::parse(&s).ok_or(BadDerivativeName(s))
    }
}

impl From<DerivativeName> for String {
    fn from(name: DerivativeName) -> String {
        name.to_string()
    }
}

/// One stored derivative of an upload, as its info lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivative {
    /// Which one.
    pub name: DerivativeName,
    /// Its MIME type (`image/jpeg`, ...), served as `Content-Type`.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for name in [DerivativeName::Stripped, DerivativeName::Thumbnail(1), DerivativeName::Thumbnail(16_384)] {
            assert_eq!(DerivativeName::parse(&name.to_string()), Some(name));
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(serde_json::from_str::<DerivativeName>(&json).unwrap(), name);
        }
        for bad in [
            "",
            "thumbnails/",
            "thumbnails/0",
            "thumbnails/0256",
            "thumbnails/+256",
            "thumbnails/-1",
            "thumbnails/16385",
            "thumbnails/99999999999",
            "thumbnails/256/",
            "thumbnails/256/../x",
            "thumbnails/25a",
            "Stripped",
            "stripped/",
            "../stripped",
            "original",
        ] {
            assert_eq!(DerivativeName::parse(bad), None, "{bad:?}");
        }
        assert!(serde_json::from_str::<DerivativeName>("\"../x\"").is_err());
    }

    #[test]
    fn file_names_are_plain() {
        for name in [DerivativeName::Stripped, DerivativeName::Thumbnail(1024)] {
            assert!(name.file_name().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
    }
}
