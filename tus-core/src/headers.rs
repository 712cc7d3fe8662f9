//! Typed tus headers: every header the protocol defines, parsed and encoded in one place.
//!
//! Each header is a type implementing [`TusHeader`] (`decode` from a [`HeaderValue`], `encode`
//! back). [`get`] reads one from a [`HeaderMap`] and rejects repeated headers, so a request can
//! never carry two conflicting offsets. Parsers are strict: numbers are plain ASCII digits that
//! fit in `u64`, metadata values must be valid base64 and keys unique.

use std::time::SystemTime;

use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::checksum::ChecksumAlgorithm;

/// The protocol version this crate speaks.
pub const TUS_VERSION: &str = "1.0.0";

/// Header names used by tus, as lower-case constants.
pub mod names {
    use http::header::HeaderName;

    macro_rules! names {
        ($($(#[$doc:meta])* $ident:ident = $name:literal;)*) => {
            $($(#[$doc])* pub const $ident: HeaderName = HeaderName::from_static($name);)*
        };
    }

    names! {
        /// `Tus-Resumable`: the protocol version of a request or response.
        TUS_RESUMABLE = "tus-resumable";
        /// `Tus-Version`: versions the server supports.
        TUS_VERSION = "tus-version";
        /// `Tus-Extension`: extensions the server supports.
        TUS_EXTENSION = "tus-extension";
        /// `Tus-Max-Size`: the largest upload the server accepts.
        TUS_MAX_SIZE = "tus-max-size";
        /// `Tus-Checksum-Algorithm`: supported checksum algorithms.
        TUS_CHECKSUM_ALGORITHM = "tus-checksum-algorithm";
        /// `Upload-Offset`: bytes received so far.
        UPLOAD_OFFSET = "upload-offset";
        /// `Upload-Length`: the size of the whole upload.
        UPLOAD_LENGTH = "upload-length";
        /// `Upload-Defer-Length: 1`: the size is not known yet.
        UPLOAD_DEFER_LENGTH = "upload-defer-length";
        /// `Upload-Metadata`: base64 key/value pairs.
        UPLOAD_METADATA = "upload-metadata";
        /// `Upload-Concat`: `partial` or `final;<urls>`.
        UPLOAD_CONCAT = "upload-concat";
        /// `Upload-Checksum`: `<algorithm> <base64 digest>` of a request body.
        UPLOAD_CHECKSUM = "upload-checksum";
        /// `Upload-Expires`: when an unfinished upload will be removed.
        UPLOAD_EXPIRES = "upload-expires";
        /// `X-HTTP-Method-Override`: the method a POST stands in for.
        X_HTTP_METHOD_OVERRIDE = "x-http-method-override";
        /// IETF draft: the draft version a request speaks.
        UPLOAD_DRAFT_INTEROP_VERSION = "upload-draft-interop-version";
        /// IETF draft (interop ≥ 4): `?1` once the request carries the last byte.
        UPLOAD_COMPLETE = "upload-complete";
        /// IETF draft interop 3: the inverse of `Upload-Complete`.
        UPLOAD_INCOMPLETE = "upload-incomplete";
        /// IETF draft: the server's limits, a structured dictionary.
        UPLOAD_LIMIT = "upload-limit";
        /// RFC 9530: digests of the whole file (declared at creation, told when known).
        REPR_DIGEST = "repr-digest";
        /// RFC 9530: which whole-file digests a client would like to be told.
        WANT_REPR_DIGEST = "want-repr-digest";
        /// RFC 9530: digests of one request's content (an IETF draft append).
        CONTENT_DIGEST = "content-digest";
    }
}

/// A Structured Field (RFC 9651) Boolean item (`?1` / `?0`), parameters ignored; `None` for
/// anything else, which the IETF draft says to treat as if the field were absent.
pub fn parse_sf_bool(value: &HeaderValue) -> Option<bool> {
    match sf_item(value)?.bare_item {
        sfv::BareItem::Boolean(b) => Some(b),
        _ => None,
    }
}

/// A Structured Field Integer item that is non-negative (RFC 9651 allows at most 15 digits),
/// parameters ignored; `None` for anything else.
pub fn parse_sf_uint(value: &HeaderValue) -> Option<u64> {
    match sf_item(value)?.bare_item {
        sfv::BareItem::Integer(n) => u64::try_from(i64::from(n)).ok(),
        _ => None,
    }
}

/// A Structured Field item, parsed by the `sfv` crate.
fn sf_item(value: &HeaderValue) -> Option<sfv::Item> {
    sfv::Parser::new(value.as_bytes()).parse().ok()
}

/// A header value that does not follow the grammar of its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Malformed value (or the header was repeated).
    #[error("invalid {0} header")]
    Invalid(HeaderName),
    /// `Upload-Checksum` names an algorithm this server does not implement.
    #[error("unsupported checksum algorithm")]
    UnsupportedChecksumAlgorithm,
}

/// A tus header with a typed value.
pub trait TusHeader: Sized {
    /// The header's name.
    fn name() -> HeaderName;
    /// Parses one header value.
    fn decode(value: &HeaderValue) -> Result<Self, HeaderError>;
    /// Renders the value.
    fn encode(&self) -> HeaderValue;
}

/// Reads header `H`; `Ok(None)` if absent, an error if malformed or present more than once.
pub fn get<H: TusHeader>(headers: &HeaderMap) -> Result<Option<H>, HeaderError> {
    let mut values = headers.get_all(H::name()).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(HeaderError::Invalid(H::name()));
    }
    H::decode(first).map(Some)
}

/// A Structured Field Item (as the IETF draft's fields are): `Ok(None)` if absent, an error if
/// malformed or sent on two lines. Two lines are their combination (RFC 9110 §5.3), which for an
/// Item is no valid Item. The draft's counterpart of [`get`].
pub fn get_item<T>(
    headers: &HeaderMap,
    name: &HeaderName,
    parse: fn(&HeaderValue) -> Option<T>,
) -> Result<Option<T>, HeaderError> {
    let mut lines = headers.get_all(name).iter();
    let Some(first) = lines.next() else { return Ok(None) };
    if lines.next().is_some() {
        return Err(HeaderError::Invalid(name.clone()));
    }
    parse(first).map(Some).ok_or_else(|| HeaderError::Invalid(name.clone()))
}

/// Inserts header `H` into `headers`.
pub fn set<H: TusHeader>(headers: &mut HeaderMap, value: &H) {
    headers.insert(H::name(), value.encode());
}

fn invalid<H: TusHeader>() -> HeaderError {
    HeaderError::Invalid(H::name())
}

/// Parses a non-negative decimal integer: ASCII digits only, no sign, no spaces, no overflow.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn decode_u64<H: TusHeader>(value: &HeaderValue) -> Result<u64, HeaderError> {
    value.to_str().ok().and_then(parse_u64).ok_or_else(invalid::<H>)
}

fn encode_u64(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

macro_rules! number_header {
    ($(#[$doc:meta])* $ty:ident, $name:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty(pub u64);

        impl TusHeader for $ty {
            fn name() -> HeaderName {
                $name
            }
            fn decode(value: &HeaderValue) -> Result<Self, HeaderError> {
                decode_u64::<Self>(value).map($ty)
            }
            fn encode(&self) -> HeaderValue {
                encode_u64(self.0)
            }
        }
    };
}

number_header!(
    /// `Upload-Offset`.
    UploadOffset,
    names::UPLOAD_OFFSET
);
number_header!(
    /// `Upload-Length`.
    UploadLength,
    names::UPLOAD_LENGTH
);
number_header!(
    /// `Tus-Max-Size`.
    TusMaxSize,
    names::TUS_MAX_SIZE
);

/// `Upload-Defer-Length`; the only valid value is `1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadDeferLength;

impl TusHeader for UploadDeferLength {
    fn name() -> HeaderName {
        names::UPLOAD_DEFER_LENGTH
    }
    fn decode(value: &HeaderValue) -> Result<Self, HeaderError> {
        if value.as_bytes() == b"1" { Ok(UploadDeferLength) } else { Err(invalid::<Self>()) }
    }
    fn encode(&self) -> HeaderValue {
        HeaderValue::from_static("1")
    }
}

/// `Tus-Resumable`: the version a request claims to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusResumable(pub String);

impl TusResumable {
    /// Whether this server speaks the version.
    pub fn is_supported(&self) -> bool {
        self.0 == TUS_VERSION
    }
}

impl TusHeader for TusResumable {
    fn name() -> HeaderName {
        names::TUS_RESUMABLE
    }
    fn decode(value: &HeaderValue) -> Result<Self, HeaderError> {
        value.to_str().map(|s| TusResumable(s.to_owned())).map_err(|_| invalid::<Self>())
    }
    fn encode(&self) -> HeaderValue {
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static(TUS_VERSION))
    }
}

/// `Upload-Expires`, an IMF-fixdate (RFC 9110 §5.6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadExpires(pub SystemTime);

impl TusHeader for UploadExpires {
    fn name() -> HeaderName {
        names::UPLOAD_EXPIRES
    }
    fn decode(value: &HeaderValue) -> Result<Self, HeaderError> {
        let s = value.to_str().map_err(|_| invalid::<Self>())?;
        httpdate::parse_http_date(s).map(UploadExpires).map_err(|_| invalid::<Self>())
    }
    fn encode(&self) -> HeaderValue {
        // An IMF-fixdate is always visible ASCII.
        HeaderValue::from_str(&httpdate::fmt_http_date(self.0))
            .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
    }
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChecksum {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// The expected digest bytes.
    pub digest: Vec<u8>,
}

impl TusHeader for UploadChecksum {
    fn name() -> HeaderName {
        names::UPLOAD_CHECKSUM
    }
    fn decode(value: &HeaderValue) -> Result<Self, HeaderError> {
        let s = value.to_str().map_err(|_| invalid::<Self>())?;
        let (algorithm, digest) = s.split_once(' ').ok_or_else(invalid::<Self>)?;
        let algorithm: ChecksumAlgorithm = algorithm.parse().map_err(|_| HeaderError::UnsupportedChecksumAlgorithm)?;
        // A digest of the wrong size is well-formed but can match no body: the handler answers
        // it with `460 Checksum Mismatch`, not `400`.
        let digest = BASE64.decode(digest).map_err(|_| invalid::<Self>())?;
        Ok(UploadChecksum { algorithm, digest })
    }
    fn encode(&self) -> HeaderValue {
        let s = format!("{} {}", self.algorithm, BASE64.encode(&self.digest));
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Standard base64; padding optional on input because some clients strip it.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// `Upload-Metadata`: ordered, unique keys with binary values.
///
/// Serialized (in store info files) as its canonical header form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, Vec<u8>)>,
}

impl Metadata {
    /// Parses the header grammar: `key base64,key2 base64,key3`.
    ///
    /// An empty string is empty metadata. Rejected: empty keys, more than one space in a pair,
    /// invalid base64, duplicate keys, non-ASCII keys.
    pub fn parse(s: &str) -> Option<Metadata> {
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        if s.trim().is_empty() {
            return Some(Metadata { entries });
        }
        // Parsed on every read of an upload's info: the duplicate check must stay linear.
        let mut seen = std::collections::HashSet::new();
        for pair in s.split(',') {
            let pair = pair.trim_matches(|c| c == ' ' || c == '\t');
            let (key, value) = match pair.split_once(' ') {
                Some((k, v)) => (k, BASE64.decode(v).ok()?),
                None => (pair, Vec::new()),
            };
            let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
            if !key_ok || !seen.insert(key) {
                return None;
            }
            entries.push((key.to_owned(), value));
        }
        Some(Metadata { entries })
    }

    /// The canonical header form (`key base64` pairs, key-only for empty values).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            if !v.is_empty() {
                out.push(' ');
                out.push_str(&base64::engine::general_purpose::STANDARD.encode(v));
            }
        }
        out
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// The value of `key` if it is valid UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Sets `key` (keeping its position if present).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        let (key, value) = (key.into(), value.into());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl TusHeader for Metadata {
    fn name() -> HeaderName {
        names::UPLOAD_METADATA
    }
    fn decode(value: &HeaderValue) -> Result<Self, HeaderError> {
        value.to_str().ok().and_then(Metadata::parse).ok_or_else(invalid::<Self>)
    }
    fn encode(&self) -> HeaderValue {
        HeaderValue::from_str(&self.encode()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Metadata::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid metadata"))
    }
}

/// `Upload-Concat`: a partial upload, or a final one listing its partials' URLs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadConcat {
    /// `partial`
    Partial,
    /// `final;<url> <url> ...` (the URLs as the client sent them).
    Final(Vec<String>),
}

impl TusHeader for UploadConcat {
    fn name() -> HeaderName {
        names::UPLOAD_CONCAT
    }
    fn decode(value: &HeaderValue) -> Result<Self, HeaderError> {
        let s = value.to_str().map_err(|_| invalid::<Self>())?;
        if s == "partial" {
            return Ok(UploadConcat::Partial);
        }
        let urls = s.strip_prefix("final;").ok_or_else(invalid::<Self>)?;
        let urls: Vec<String> = urls.split_ascii_whitespace().map(str::to_owned).collect();
        if urls.is_empty() {
            return Err(invalid::<Self>());
        }
        Ok(UploadConcat::Final(urls))
    }
    fn encode(&self) -> HeaderValue {
        match self {
            UploadConcat::Partial => HeaderValue::from_static("partial"),
            UploadConcat::Final(urls) => HeaderValue::from_str(&format!("final;{}", urls.join(" ")))
                .unwrap_or_else(|_| HeaderValue::from_static("final;")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(UploadOffset::decode(&hv("0")), Ok(UploadOffset(0)));
        assert_eq!(UploadOffset::decode(&hv("18446744073709551615")), Ok(UploadOffset(u64::MAX)));
        for bad in ["", "-1", "+1", "1e3", "abc", " 1", "0x10", "18446744073709551616", "1.0"] {
            assert!(UploadOffset::decode(&hv(bad)).is_err(), "{bad:?}");
            assert!(UploadLength::decode(&hv(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repeated_header_is_invalid() {
        let mut h = HeaderMap::new();
        h.append(names::UPLOAD_OFFSET, hv("1"));
        h.append(names::UPLOAD_OFFSET, hv("2"));
        assert_eq!(get::<UploadOffset>(&h), Err(HeaderError::Invalid(names::UPLOAD_OFFSET)));
        assert_eq!(get::<UploadLength>(&h), Ok(None));
    }

    #[test]
    fn defer_length_accepts_only_one() {
        assert!(UploadDeferLength::decode(&hv("1")).is_ok());
        assert!(UploadDeferLength::decode(&hv("0")).is_err());
        assert!(UploadDeferLength::decode(&hv("2")).is_err());
    }

    #[test]
    fn metadata_grammar() {
        let m = Metadata::parse("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").unwrap();
        assert_eq!(m.get_str("filename"), Some("world_domination_plan.pdf"));
        assert_eq!(m.get("is_confidential"), Some(&b""[..]));
        let m = Metadata::parse("k1 dmFsdWU=,k2 ,k3").unwrap();
        assert_eq!(m.get_str("k1"), Some("value"));
        assert_eq!(m.get_str("k2"), Some(""));
        assert_eq!(m.encode(), "k1 dmFsdWU=,k2,k3");
        assert!(Metadata::parse("").unwrap().is_empty());
        for bad in ["a YQ==,a Yg==", "filename ***", "a b c", "a YQ==,,b", "a\u{e9} YQ=="] {
            assert_eq!(Metadata::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn concat_grammar() {
        assert_eq!(UploadConcat::decode(&hv("partial")), Ok(UploadConcat::Partial));
        assert_eq!(
            UploadConcat::decode(&hv("final;/files/a http://h/files/b")),
            Ok(UploadConcat::Final(vec!["/files/a".into(), "http://h/files/b".into()]))
        );
        for bad in ["final;", "final; ", "foo", "final", "partial;x", "Partial"] {
            assert!(UploadConcat::decode(&hv(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checksum_grammar() {
        let c = UploadChecksum::decode(&hv("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")).unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.digest.len(), 20);
        assert_eq!(UploadChecksum::decode(&hv("nosuchalgo AAAA")), Err(HeaderError::UnsupportedChecksumAlgorithm));
        for bad in ["sha1", "sha1 !!!!", "sha1  Kq5sNclPz7QV2+lfQIuc6R7oRu0="] {
            assert_eq!(UploadChecksum::decode(&hv(bad)), Err(HeaderError::Invalid(names::UPLOAD_CHECKSUM)), "{bad:?}");
        }
        // Well-formed but of the wrong size for sha1: parsed, so the handler can answer 460.
        assert_eq!(UploadChecksum::decode(&hv("sha1 AAAA")).map(|c| c.digest.len()), Ok(3));
    }

    #[test]
    fn items_on_two_lines_are_invalid() {
        let mut h = HeaderMap::new();
        assert_eq!(get_item(&h, &names::UPLOAD_OFFSET, parse_sf_uint), Ok(None));
        h.append(names::UPLOAD_OFFSET, hv("5"));
        assert_eq!(get_item(&h, &names::UPLOAD_OFFSET, parse_sf_uint), Ok(Some(5)));
        h.append(names::UPLOAD_OFFSET, hv("5"));
        assert_eq!(get_item(&h, &names::UPLOAD_OFFSET, parse_sf_uint), Err(HeaderError::Invalid(names::UPLOAD_OFFSET)));
        let bad: HeaderMap = [(names::UPLOAD_OFFSET, hv("x"))].into_iter().collect();
        assert!(get_item(&bad, &names::UPLOAD_OFFSET, parse_sf_uint).is_err());
    }

    #[test]
    fn structured_field_items() {
        assert_eq!(parse_sf_bool(&hv("?1")), Some(true));
        assert_eq!(parse_sf_bool(&hv("?0;x=1")), Some(false));
        for bad in ["true", "1", "?2", "", "?"] {
            assert_eq!(parse_sf_bool(&hv(bad)), None, "{bad:?}");
        }
        assert_eq!(parse_sf_uint(&hv("42")), Some(42));
        assert_eq!(parse_sf_uint(&hv(" 7 ")), Some(7));
        for bad in ["-1", "\"5\"", "1.5", "abc", "1234567890123456"] {
            assert_eq!(parse_sf_uint(&hv(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn expires_is_imf_fixdate() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_403_712_000);
        let v = UploadExpires(t).encode();
        assert_eq!(v, "Wed, 25 Jun 2014 16:00:00 GMT");
        assert_eq!(UploadExpires::decode(&v), Ok(UploadExpires(t)));
    }

    fn metadata_strategy() -> impl Strategy<Value = Metadata> {
        proptest::collection::btree_map("[!-+--~]{1,12}", proptest::collection::vec(any::<u8>(), 0..24), 0..6).prop_map(
            |m| {
                let mut md = Metadata::default();
                for (k, v) in m {
                    md.insert(k, v);
                }
                md
            },
        )
    }

    proptest! {
        #[test]
        fn numbers_round_trip(n in any::<u64>()) {
            prop_assert_eq!(UploadOffset::decode(&UploadOffset(n).encode()), Ok(UploadOffset(n)));
            prop_assert_eq!(UploadLength::decode(&UploadLength(n).encode()), Ok(UploadLength(n)));
        }

        #[test]
        fn metadata_round_trips(m in metadata_strategy()) {
            prop_assert_eq!(Metadata::decode(&TusHeader::encode(&m)), Ok(m));
        }

        #[test]
        fn checksum_round_trips(alg in proptest::sample::select(ChecksumAlgorithm::ALL.to_vec()), seed in any::<u8>()) {
            let c = UploadChecksum { algorithm: alg, digest: vec![seed; alg.digest_len()] };
            prop_assert_eq!(UploadChecksum::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn concat_round_trips(ids in proptest::collection::vec("[a-z0-9]{1,8}", 1..5)) {
            let c = UploadConcat::Final(ids.iter().map(|i| format!("/files/{i}")).collect());
            prop_assert_eq!(UploadConcat::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,64}") {
            if let Ok(v) = HeaderValue::from_str(&s) {
                let _ = UploadOffset::decode(&v);
                let _ = Metadata::decode(&v);
                let _ = UploadConcat::decode(&v);
                let _ = UploadChecksum::decode(&v);
                let _ = UploadExpires::decode(&v);
            }
        }
    }
}
