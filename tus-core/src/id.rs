//! Upload identifiers.
//!
//! An [`UploadId`] names an upload in URLs and in storage. New IDs carry 128 random bits as 32
//! lower-case hex characters. IDs taken from a request path are validated against a strict
//! alphabet (`[A-Za-z0-9_-]`, 1..=128 characters) so no ID can ever spell a path separator, a dot
//! segment or a NUL byte: a store may use an ID directly as a file or object name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest accepted upload ID, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A validated upload identifier.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

/// The string was not a valid upload ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upload id")]
pub struct InvalidUploadId;

impl UploadId {
    /// A fresh ID: 128 bits from the operating system's random source, hex encoded.
    ///
    /// # Panics
    /// Panics if the operating system has no random source, which no supported platform lacks.
    #[allow(clippy::expect_used)]
    pub fn random() -> Self {
        let mut bits = [0u8; 16];
        getrandom::fill(&mut bits).expect("the OS random source is available");
        let mut hex = String::with_capacity(32);
        for b in bits {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        UploadId(hex)
    }

    /// Validates `s` as an upload ID.
    pub fn parse(s: &str) -> Result<Self, InvalidUploadId> {
        let valid = !s.is_empty()
            && s.len() <= MAX_ID_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid { Ok(UploadId(s.to_owned())) } else { Err(InvalidUploadId) }
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

impl std::str::FromStr for UploadId {
    type Err = InvalidUploadId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for UploadId {
    type Error = InvalidUploadId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<UploadId> for String {
    fn from(id: UploadId) -> String {
        id.0
    }
}

impl AsRef<str> for UploadId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_32_hex_chars_and_distinct() {
        let a = UploadId::random();
        let b = UploadId::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_eq!(UploadId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn rejects_anything_that_could_name_another_file() {
        for bad in
            ["", ".", "..", "../x", "a/b", "a\\b", "a\0b", "%2e%2e", "a.info", "a b", "é", &"a".repeat(MAX_ID_LEN + 1)]
        {
            assert_eq!(UploadId::parse(bad), Err(InvalidUploadId), "{bad:?}");
        }
        assert!(UploadId::parse("Abc_-09").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parse_accepts_exactly_the_alphabet(s in "\\PC{0,40}") {
            let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            proptest::prop_assert_eq!(UploadId::parse(&s).is_ok(), ok);
        }
    }
}
