//! Whole-file digests (RFC 9530): what a client declares at creation, what the server computes
//! of the stored file, and the fields that carry them.
//!
//! A creation may declare the file's digest in `Repr-Digest` (a structured-fields dictionary,
//! `sha-256=:<base64>:` and/or `sha-512=:<base64>:`; other algorithms are ignored, as RFC 9530
//! says) or, for clients that can only send metadata, in the `Upload-Metadata` key `checksum`
//! with the value `<alg> <base64>` (`sha256`, `sha512`, `sha1` or `md5`). Once the upload is
//! complete, the server hashes the stored bytes and compares; see
//! [`crate::TusService`]'s completion for when that happens and what a mismatch does.
//!
//! ```
//! use http::HeaderValue;
//! use tus_core::digest::{parse_digest_field, repr_digest};
//!
//! let declared = [HeaderValue::from_static("sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:, unixsum=:AA==:")];
//! let digests = parse_digest_field(declared.iter()).unwrap();
//! assert_eq!(digests.len(), 1, "unknown algorithms are ignored");
//! assert_eq!(repr_digest(&digests).unwrap(), declared[0].to_str().unwrap().split(',').next().unwrap());
//! ```

use base64::Engine as _;
use http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::checksum::{ChecksumAlgorithm, ChecksumHasher};

/// The longest digest field accepted, across all its lines: a few digests fit with room to
/// spare; anything longer is refused unparsed.
pub const MAX_FIELD_LEN: usize = 4096;

/// The metadata key that declares the file's digest as `<alg> <base64>`.
pub const METADATA_KEY: &str = "checksum";

/// One digest of a whole file: its algorithm and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// The digest bytes, base64 in JSON.
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
}

impl Digest {
    /// The algorithm's key in RFC 9530 fields, if the registry has it as active.
    pub fn field_key(&self) -> Option<&'static str> {
        field_key(self.algorithm)
    }

    /// The value in base64, as the metadata form and hook payloads show it.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.value)
    }

    /// The value in lower-case hex.
    pub fn hex(&self) -> String {
        self.value.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn field_key(algorithm: ChecksumAlgorithm) -> Option<&'static str> {
    match algorithm {
        ChecksumAlgorithm::Sha256 => Some("sha-256"),
        ChecksumAlgorithm::Sha512 => Some("sha-512"),
        _ => None,
    }
}

/// A digest field or the metadata form is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not a structured-fields dictionary, or longer than [`MAX_FIELD_LEN`].
    #[error("not a valid digest dictionary")]
    Syntax,
    /// A known algorithm's value is not a byte sequence of that algorithm's length.
    #[error("a {0} digest must be a byte sequence of {1} bytes")]
    Value(&'static str, usize),
    /// A partial upload (concatenation) declared one: only the final's file is proven.
    #[error("declare the file's digest on the final upload, not on a partial one")]
    OnPartial,
    /// `Repr-Digest` and the metadata declare different values for one algorithm.
    #[error("two different digests declared for one algorithm")]
    Conflict,
    /// The metadata form is not `<alg> <base64>` with a supported algorithm.
    #[error("checksum metadata must be `<sha256|sha512|sha1|md5> <base64 digest>`")]
    Metadata,
}

/// The digests of known algorithms in a `Repr-Digest` or `Content-Digest` field (all its
/// lines, combined as RFC 9651 combines them). Unknown algorithms are ignored; a malformed
/// field, or a known algorithm with a value that cannot be its digest, is an error.
pub fn parse_digest_field<'a>(lines: impl Iterator<Item = &'a HeaderValue>) -> Result<Vec<Digest>, DigestError> {
    let mut combined = Vec::new();
    for line in lines {
        if !combined.is_empty() {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(line.as_bytes());
        if combined.len() > MAX_FIELD_LEN {
            return Err(DigestError::Syntax);
        }
    }
    let dictionary: sfv::Dictionary = sfv::Parser::new(&combined).parse().map_err(|_| DigestError::Syntax)?;
    let mut digests = Vec::new();
    for algorithm in [ChecksumAlgorithm::Sha256, ChecksumAlgorithm::Sha512] {
        let Some(key) = field_key(algorithm) else { continue };
        let Some(entry) = dictionary.get(key) else { continue };
        let value = match entry {
            sfv::ListEntry::Item(sfv::Item { bare_item: sfv::BareItem::ByteSequence(bytes), .. }) => bytes,
            _ => return Err(DigestError::Value(key, algorithm.digest_len())),
        };
        if value.len() != algorithm.digest_len() {
            return Err(DigestError::Value(key, algorithm.digest_len()));
        }
        digests.push(Digest { algorithm, value: value.clone() });
    }
    Ok(digests)
}

/// The metadata form `<alg> <base64>` (`sha256`, `sha512`, `sha1`, `md5`).
pub fn parse_metadata_digest(value: &[u8]) -> Result<Digest, DigestError> {
    let text = std::str::from_utf8(value).map_err(|_| DigestError::Metadata)?;
    let (name, encoded) = text.trim().split_once(' ').ok_or(DigestError::Metadata)?;
    let algorithm: ChecksumAlgorithm = name.parse().map_err(|_| DigestError::Metadata)?;
    if algorithm == ChecksumAlgorithm::Crc32 {
        return Err(DigestError::Metadata);
    }
    let value = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| DigestError::Metadata)?;
    if value.len() != algorithm.digest_len() {
        return Err(DigestError::Metadata);
    }
    Ok(Digest { algorithm, value })
}

/// A `Repr-Digest` (or `Content-Digest`) value for the digests RFC 9530 has keys for, or
/// `None` if there are none.
pub fn repr_digest(digests: &[Digest]) -> Option<HeaderValue> {
    let members: Vec<String> =
        digests.iter().filter_map(|d| d.field_key().map(|key| format!("{key}=:{}:", d.base64()))).collect();
    if members.is_empty() {
        return None;
    }
    HeaderValue::from_str(&members.join(", ")).ok()
}

/// Hashes a whole file once for every algorithm wanted: sha-256 always (for hook payloads),
/// and each declared digest's algorithm.
pub struct FileHasher {
    hashers: Vec<(ChecksumAlgorithm, ChecksumHasher)>,
}

impl FileHasher {
    /// A hasher for sha-256 and the algorithms of `declared`.
    pub fn new(declared: &[Digest]) -> Self {
        let mut algorithms = vec![ChecksumAlgorithm::Sha256];
        for d in declared {
            if !algorithms.contains(&d.algorithm) {
                algorithms.push(d.algorithm);
            }
        }
        FileHasher { hashers: algorithms.into_iter().map(|a| (a, a.hasher())).collect() }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        for (_, h) in &mut self.hashers {
            h.update(data);
        }
    }

    /// The digests of everything fed, sha-256 first.
    pub fn finish(self) -> Vec<Digest> {
        self.hashers.into_iter().map(|(algorithm, h)| Digest { algorithm, value: h.finalize() }).collect()
    }
}

impl std::fmt::Debug for FileHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.hashers.iter().map(|(a, _)| a)).finish()
    }
}

/// The first declared digest that `computed` contradicts, if any (every declared algorithm
/// is among the computed ones when they come from a [`FileHasher`] over the declared list).
pub fn mismatch<'a>(declared: &'a [Digest], computed: &[Digest]) -> Option<&'a Digest> {
    declared.iter().find(|d| !computed.iter().any(|c| c.algorithm == d.algorithm && c.value == d.value))
}

/// The sha-256 of `computed`, in hex, for hook payloads.
pub fn sha256_hex(computed: &[Digest]) -> Option<String> {
    computed.iter().find(|d| d.algorithm == ChecksumAlgorithm::Sha256).map(Digest::hex)
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA256: &str = "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=";

    fn field(lines: &[&str]) -> Result<Vec<Digest>, DigestError> {
        let values: Vec<HeaderValue> = lines.iter().map(|l| HeaderValue::from_str(l).unwrap()).collect();
        parse_digest_field(values.iter())
    }

    fn hello() -> Vec<Digest> {
        let mut h = FileHasher::new(&[]);
        h.update(b"hello world");
        h.finish()
    }

    #[test]
    fn known_algorithms_are_read_and_others_ignored() {
        let digests = field(&[&format!("sha-256=:{HELLO_SHA256}:, md5=:XrY7u+Ae7tCTyyK7j1rNww==:, x=1")]).unwrap();
        assert_eq!(digests, hello());
        assert_eq!(field(&["unixsum=:AA==:", "id-sha-256=:AA==:"]).unwrap(), vec![]);
        // Several lines make one dictionary; the last of a repeated key wins (RFC 9651).
        let two = field(&["sha-256=:AAAA:", &format!("sha-256=:{HELLO_SHA256}:")]).unwrap();
        assert_eq!(two, hello());
    }

    #[test]
    fn malformed_fields_and_wrong_lengths_are_errors() {
        for bad in [
            "sha-256",
            "sha-256=:abc",
            "sha-256=:YQ==:",
            "sha-256=\"text\"",
            "sha-256=(:YQ==:)",
            ",,",
            "SHA-256=:YQ==:",
        ] {
            assert!(field(&[bad]).is_err(), "{bad:?}");
        }
        let huge = format!("x=:{}:", "A".repeat(MAX_FIELD_LEN));
        assert_eq!(field(&[&huge]), Err(DigestError::Syntax));
    }

    #[test]
    fn the_metadata_form() {
        assert_eq!(parse_metadata_digest(format!("sha256 {HELLO_SHA256}").as_bytes()).unwrap(), hello()[0]);
        let md5 = parse_metadata_digest(b"md5 XrY7u+Ae7tCTyyK7j1rNww==").unwrap();
        assert_eq!(md5.algorithm, ChecksumAlgorithm::Md5);
        for bad in [&b"sha256"[..], b"sha256 !!", b"crc32 DUoRhQ==", b"sha3 AAAA", b"sha256 YQ==", b"\xff"] {
            assert_eq!(parse_metadata_digest(bad), Err(DigestError::Metadata), "{bad:?}");
        }
    }

    #[test]
    fn hashing_comparing_and_rendering() {
        let declared = parse_metadata_digest(b"md5 XrY7u+Ae7tCTyyK7j1rNww==").unwrap();
        let mut h = FileHasher::new(std::slice::from_ref(&declared));
        h.update(b"hello ");
        h.update(b"world");
        let computed = h.finish();
        assert_eq!(computed.len(), 2);
        assert_eq!(mismatch(std::slice::from_ref(&declared), &computed), None);
        let wrong = Digest { algorithm: ChecksumAlgorithm::Md5, value: vec![0; 16] };
        assert_eq!(mismatch(std::slice::from_ref(&wrong), &computed), Some(&wrong));
        assert_eq!(sha256_hex(&computed).unwrap(), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(repr_digest(&computed).unwrap(), format!("sha-256=:{HELLO_SHA256}:").as_str());
        assert_eq!(repr_digest(&[wrong]), None);
        let json = serde_json::to_string(&computed[0]).unwrap();
        assert_eq!(json, format!(r#"{{"algorithm":"sha256","value":"{HELLO_SHA256}"}}"#));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), computed[0]);
    }
}
