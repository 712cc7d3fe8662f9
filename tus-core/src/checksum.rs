//! Checksum algorithms of the tus `checksum` extension.

use std::fmt;
use std::str::FromStr;

use sha1::Digest as _;

/// An algorithm a client may name in `Upload-Checksum` (also the algorithms of whole-file
/// digests, see [`crate::digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChecksumAlgorithm {
    /// MD5 (RFC 1321).
    Md5,
    /// SHA-1, the one algorithm the spec requires.
    Sha1,
    /// CRC-32 (IEEE), digest sent as its 4 big-endian bytes.
    Crc32,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl ChecksumAlgorithm {
    /// Every supported algorithm, in the order `Tus-Checksum-Algorithm` lists them.
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha512,
    ];

    /// The lower-case name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Md5 => "md5",
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Crc32 => "crc32",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha512 => "sha512",
        }
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Md5 => 16,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Crc32 => 4,
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Sha512 => 64,
        }
    }

    /// A fresh incremental hasher for this algorithm.
    pub fn hasher(self) -> ChecksumHasher {
        ChecksumHasher(match self {
            ChecksumAlgorithm::Md5 => State::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Crc32 => State::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
        })
    }

    /// The value of `Tus-Checksum-Algorithm`.
    pub fn header_list() -> String {
        Self::ALL.map(Self::name).join(",")
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of [`ChecksumAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported checksum algorithm")]
pub struct UnsupportedAlgorithm;

impl FromStr for ChecksumAlgorithm {
    type Err = UnsupportedAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|a| a.name() == s).ok_or(UnsupportedAlgorithm)
    }
}

/// Incremental digest over a request body.
pub struct ChecksumHasher(State);

enum State {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Crc32(crc32fast::Hasher),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl ChecksumHasher {
    /// Feeds bytes into the digest.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            State::Md5(h) => h.update(data),
            State::Sha1(h) => h.update(data),
            State::Crc32(h) => h.update(data),
            State::Sha256(h) => h.update(data),
            State::Sha512(h) => h.update(data),
        }
    }

    /// The final digest bytes.
    pub fn finalize(self) -> Vec<u8> {
        match self.0 {
            State::Md5(h) => h.finalize().to_vec(),
            State::Sha1(h) => h.finalize().to_vec(),
            State::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
            State::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChecksumHasher")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(alg: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = alg.hasher();
        h.update(data);
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    }

    #[test]
    fn known_digests_of_hello_world() {
        // Values from the tus checklist and `printf 'hello world' | openssl dgst -binary | base64`.
        assert_eq!(b64(ChecksumAlgorithm::Sha1, b"hello world"), "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(b64(ChecksumAlgorithm::Md5, b"hello world"), "XrY7u+Ae7tCTyyK7j1rNww==");
        assert_eq!(b64(ChecksumAlgorithm::Crc32, b"hello world"), "DUoRhQ==");
        assert_eq!(b64(ChecksumAlgorithm::Sha256, b"hello world"), "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=");
    }

    #[test]
    fn names_round_trip_and_are_lower_case() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(a.name().parse::<ChecksumAlgorithm>(), Ok(a));
            assert_eq!(a.name(), a.name().to_ascii_lowercase());
            let mut h = a.hasher();
            h.update(b"x");
            assert_eq!(h.finalize().len(), a.digest_len());
        }
        assert_eq!("SHA1".parse::<ChecksumAlgorithm>(), Err(UnsupportedAlgorithm));
        assert_eq!(ChecksumAlgorithm::header_list(), "sha1,md5,crc32,sha256,sha512");
    }
}
