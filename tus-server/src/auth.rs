//! JWT bearer authentication (`--auth-jwt-*`): a [`tus_core::auth::Authorize`] over the
//! `jsonwebtoken` crate (RustCrypto backend).
//!
//! The token comes from `Authorization: Bearer <token>`, or, when a cookie name is configured
//! (browsers that cannot set headers on every request), from that cookie; the header wins when
//! both are sent. A cookie sent twice is refused rather than one of them picked: a sibling
//! subdomain (or a page on plain HTTP) can set a second cookie of the same name for the parent
//! domain, and the browser then sends both, in an order the attacker can influence. Name the
//! cookie with the `__Host-` prefix (`__Host-tus_token`, set with `Secure; Path=/` and no
//! `Domain`): browsers let only this exact host set such a cookie, so none can be planted. It is verified with the configured keys, and its `sub` becomes the
//! [`Principal`]'s subject: the owner stored with every upload it creates. With more than one
//! accepted issuer, the owner is [`issuer_subject`] (`["<iss>","<sub>"]`) instead, since two
//! issuers may give the same `sub` to different users; with one issuer or none it stays the
//! plain `sub`. Adding a second issuer therefore changes every owner: uploads created before
//! answer `404` to their creators. Optional claims
//! narrow the service's limits for that token: `max_size` (an integer, bytes) and
//! `allowed_types` (an array of MIME patterns, or one comma-separated string).
//!
//! What is checked, in order, each failure with its fixed [`reasons`] value (shown to the
//! client in `WWW-Authenticate` and used as the `reason` metric label):
//!
//! | check | reason |
//! |---|---|
//! | a `Bearer` token (or the cookie) is present | `missing` |
//! | without a `Bearer` token, the cookie is sent once only | `duplicate_cookie` |
//! | at most [`MAX_TOKEN_LEN`] bytes, three base64url parts, a JSON header naming a known `alg` (never `none`), JSON claims, a numeric `exp`, well-typed `max_size` / `allowed_types` | `malformed` |
//! | a configured key of the token's algorithm family (and its `kid`, when both have one) | `unknown_key` |
//! | the signature verifies with one of those keys | `bad_signature` |
//! | `exp` (required) has not passed, allowing the leeway | `expired` |
//! | `nbf`, if present, has come, allowing the leeway | `not_yet_valid` |
//! | `iss` is a configured issuer (required once one is configured) | `wrong_issuer` |
//! | `aud` names a configured audience (required once one is configured; a token carrying `aud` is refused when none is) | `wrong_audience` |
//! | `sub` is a non-empty string of at most 1024 bytes without control characters | `no_subject` |
//!
//! Keys (see [`JwtAuthorizer::from_key_bytes`]): an HMAC secret, PEM public keys (RSA, EC
//! P-256/P-384, Ed25519; several blocks for rotation) or a JWKS. Each key verifies only the
//! algorithms of its own type, so an RSA public key can never be used as an HMAC secret.
//!
//! ```
//! use tus_core::auth::Authorize as _;
//!
//! let secret = b"an example secret of at least 32 bytes!!";
//! let auth = tus_server::auth::JwtAuthorizer::from_key_bytes(secret).unwrap().with_audience("uploads");
//! let request = http::Request::builder().header("authorization", "Bearer not.a.token").body(()).unwrap();
//! let refused = futures_util::FutureExt::now_or_never(auth.authorize(&request.into_parts().0)).unwrap();
//! assert_eq!(refused.unwrap_err().reason, "malformed");
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;
use serde_json::Value;
use tus_core::auth::{Authorize, Principal, Unauthorized};

use crate::ServerError;
use crate::options::AuthOptions;

/// The longest token read, in bytes; longer ones are refused (`malformed`) before decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The clock-skew allowance when none is configured.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway accepted (more would make `exp` meaningless).
pub const MAX_LEEWAY: Duration = Duration::from_secs(24 * 3600);
/// The shortest HMAC secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// The longest `sub` accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 1024;
/// The `WWW-Authenticate` realm.
const REALM: &str = "tus";

/// The fixed set of refusal reasons ([`Unauthorized::reason`]), one per failed check.
pub mod reasons {
    /// No `Bearer` token (nor the configured cookie).
    pub const MISSING: &str = "missing";
    /// No `Bearer` token, and the configured cookie more than once (one may be planted).
    pub const DUPLICATE_COOKIE: &str = "duplicate_cookie";
    /// Not a well-formed token this server accepts.
    pub const MALFORMED: &str = "malformed";
    /// No configured key verifies the signature.
    pub const BAD_SIGNATURE: &str = "bad_signature";
    /// `exp` has passed.
    pub const EXPIRED: &str = "expired";
    /// `nbf` has not come yet.
    pub const NOT_YET_VALID: &str = "not_yet_valid";
    /// `iss` is not a configured issuer.
    pub const WRONG_ISSUER: &str = "wrong_issuer";
    /// `aud` names no configured audience.
    pub const WRONG_AUDIENCE: &str = "wrong_audience";
    /// No usable `sub`.
    pub const NO_SUBJECT: &str = "no_subject";
    /// No configured key for the token's algorithm (and `kid`).
    pub const UNKNOWN_KEY: &str = "unknown_key";
    /// Every reason, e.g. to pre-register metric series.
    pub const ALL: [&str; 10] = [
        MISSING,
        DUPLICATE_COOKIE,
        MALFORMED,
        BAD_SIGNATURE,
        EXPIRED,
        NOT_YET_VALID,
        WRONG_ISSUER,
        WRONG_AUDIENCE,
        NO_SUBJECT,
        UNKNOWN_KEY,
    ];
}

use reasons::*;

/// A key file or setting that cannot be used; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwtConfigError(String);

impl JwtConfigError {
    fn new(message: impl Into<String>) -> Self {
        JwtConfigError(message.into())
    }
}

/// One verification key.
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    /// The algorithms this key verifies: of its own type only, and only those it works with.
    algorithms: Vec<Algorithm>,
}

impl VerifyKey {
    /// Whether this key is tried for a token with `alg` and `kid`: a key and a token that both
    /// name a key ID must name the same one.
    fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        self.algorithms.contains(&alg)
            && match (self.kid.as_deref(), kid) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            }
    }
}

/// Authenticates requests by a JWT: see the [module documentation](self).
pub struct JwtAuthorizer {
    keys: Vec<VerifyKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    cookie: Option<String>,
    /// One validation per algorithm some key verifies (`jsonwebtoken` wants the algorithms of
    /// one validation to be of the verifying key's family).
    validations: HashMap<Algorithm, Validation>,
}

impl fmt::Debug for JwtAuthorizer {
    // Keys are not printed (their `Debug` is redacted anyway): only what identifies them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                format!("{:?}{}", k.key.family(), k.kid.as_deref().map(|kid| format!(" kid={kid}")).unwrap_or_default())
            })
            .collect();
        f.debug_struct("JwtAuthorizer")
            .field("keys", &keys)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl JwtAuthorizer {
    /// An authorizer with the keys in the file at `path` (see [`Self::from_key_bytes`]).
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self, JwtConfigError> {
        let bytes = std::fs::read(path.as_ref()).map_err(|e| JwtConfigError::new(format!("cannot read it: {e}")))?;
        Self::from_key_bytes(&bytes)
    }

    /// An authorizer with the keys in `bytes`, which are, by their first bytes:
    ///
    /// - PEM (contains `-----BEGIN`): one or more `PUBLIC KEY` (SPKI: RSA, EC P-256/P-384,
    ///   Ed25519) or `RSA PUBLIC KEY` (PKCS#1) blocks; private keys and certificates are refused.
    /// - a JWKS (starts with `{`): `{"keys": [...]}` or a single JWK. Keys for encryption
    ///   (`use: enc`, `key_ops` without `verify`, an encryption `alg`) and of unsupported
    ///   types or curves are skipped; a malformed key of a supported type is an error.
    /// - otherwise an HMAC secret (HS256/HS384/HS512): the bytes as they are, one trailing
    ///   newline ignored, at least [`MIN_SECRET_LEN`] bytes, and not something that looks like
    ///   a public key (DER, OpenSSH), which anyone could sign with.
    ///
    /// RSA keys must have 2048 to 8192 bits. At least one usable key is required. With no
    /// `kid` in a token, every key of its algorithm is tried.
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Self, JwtConfigError> {
        let provider = provider()?;
        let keys = if contains(bytes, b"-----BEGIN") {
            pem_keys(bytes, provider)?
        } else if bytes.trim_ascii_start().starts_with(b"{") {
            jwks_keys(bytes, provider)?
        } else {
            vec![secret_key(bytes, provider)?]
        };
        if keys.is_empty() {
            return Err(JwtConfigError::new("no usable verification key in it"));
        }
        let mut authorizer = JwtAuthorizer {
            keys,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            cookie: None,
            validations: HashMap::new(),
        };
        authorizer.rebuild();
        Ok(authorizer)
    }

    /// Also accepts tokens issued by `issuer`; once any issuer is set, `iss` is required.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self.rebuild();
        self
    }

    /// Also accepts tokens for `audience`; once any audience is set, `aud` is required. With
    /// none set, a token that carries `aud` is refused (RFC 7519 §4.1.3).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self.rebuild();
        self
    }

    /// The clock-skew allowance for `exp` and `nbf` (whole seconds; default
    /// [`DEFAULT_LEEWAY`], at most [`MAX_LEEWAY`]).
    pub fn with_leeway(mut self, leeway: Duration) -> Result<Self, JwtConfigError> {
        if leeway > MAX_LEEWAY {
            return Err(JwtConfigError::new(format!(
                "a leeway of {} is more than the {} allowed",
                humantime::format_duration(leeway),
                humantime::format_duration(MAX_LEEWAY)
            )));
        }
        self.leeway = leeway;
        self.rebuild();
        Ok(self)
    }

    /// Also reads the token from the cookie `name` when there is no `Authorization: Bearer`;
    /// a request carrying that cookie more than once is refused (`duplicate_cookie`). Prefer a
    /// `__Host-` name, which no other host can set (see the [module documentation](self)).
    pub fn with_cookie(mut self, name: impl Into<String>) -> Result<Self, JwtConfigError> {
        let name = name.into();
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(JwtConfigError::new(format!("{name:?} is not a valid cookie name")));
        }
        self.cookie = Some(name);
        Ok(self)
    }

    /// How many verification keys were loaded.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The algorithms some key verifies, e.g. for a startup log line.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = Vec::new();
        for alg in self.keys.iter().flat_map(|k| k.algorithms.iter()) {
            if !algs.contains(alg) {
                algs.push(*alg);
            }
        }
        algs
    }

    fn rebuild(&mut self) {
        let mut required = vec!["exp", "sub"];
        if !self.issuers.is_empty() {
            required.push("iss");
        }
        if !self.audiences.is_empty() {
            required.push("aud");
        }
        self.validations = self
            .algorithms()
            .into_iter()
            .map(|alg| {
                let mut v = Validation::new(alg);
                v.leeway = self.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                v.set_required_spec_claims(&required);
                if !self.issuers.is_empty() {
                    v.set_issuer(&self.issuers);
                }
                if !self.audiences.is_empty() {
                    v.set_audience(&self.audiences);
                }
                (alg, v)
            })
            .collect();
    }

    /// The principal a request's token names, or the reason it does not.
    pub fn check(&self, headers: &HeaderMap) -> Result<Principal, &'static str> {
        let token = self.token(headers)?;
        if token.len() > MAX_TOKEN_LEN || !is_compact_jws(token) {
            return Err(MALFORMED);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| MALFORMED)?;
        let validation = self.validations.get(&header.alg).ok_or(UNKNOWN_KEY)?;
        let mut tried = false;
        for key in self.keys.iter().filter(|k| k.accepts(header.alg, header.kid.as_deref())) {
            tried = true;
            match jsonwebtoken::decode::<Claims>(token, &key.key, validation) {
                Ok(data) => return data.claims.principal(self.issuers.len() > 1),
                // Another key may verify it.
                Err(e) if is_key_specific(e.kind()) => {}
                Err(e) => return Err(reason(e.kind())),
            }
        }
        Err(if tried { BAD_SIGNATURE } else { UNKNOWN_KEY })
    }

    /// The token bytes: the `Authorization: Bearer` value, else the configured cookie if it
    /// was sent exactly once.
    fn token<'a>(&self, headers: &'a HeaderMap) -> Result<&'a [u8], &'static str> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        if let Some(value) = values.next() {
            if values.next().is_some() {
                return Err(MALFORMED);
            }
            // Another scheme (`Basic`, ...) is not ours: as if absent.
            if let Some(token) = bearer(value.as_bytes()) {
                return if token.is_empty() { Err(MALFORMED) } else { Ok(token) };
            }
        }
        let Some(name) = self.cookie.as_deref() else { return Err(MISSING) };
        let mut values = cookies(headers, name);
        match (values.next(), values.next()) {
            // Which of two is genuine cannot be told: the browser's order is no proof.
            (Some(_), Some(_)) => {
                tracing::debug!(cookie = name, "token cookie sent more than once; refused");
                Err(DUPLICATE_COOKIE)
            }
            // An emptied cookie (a logout) is no credential.
            (Some(token), None) if !token.is_empty() => Ok(token),
            _ => Err(MISSING),
        }
    }
}

#[async_trait]
impl Authorize for JwtAuthorizer {
    async fn authorize(&self, request: &http::request::Parts) -> Result<Principal, Unauthorized> {
        self.check(&request.headers).map_err(refusal)
    }
}

/// The refusal for `reason`, with its RFC 6750 challenge.
pub fn refusal(reason: &'static str) -> Unauthorized {
    if reason == MISSING {
        Unauthorized::new(reason, format!("Bearer realm=\"{REALM}\""))
    } else {
        Unauthorized::new(
            reason,
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{reason}\""),
        )
    }
}

/// The authorizer `options` describe (the `--auth-jwt-*` flags); errors name the flag.
pub fn from_options(options: &AuthOptions) -> Result<JwtAuthorizer, ServerError> {
    let path = &options.jwt_key_file;
    let config = |flag: &str, e: JwtConfigError| ServerError::Config(format!("{flag}: {e}"));
    let mut auth = JwtAuthorizer::from_key_file(path)
        .map_err(|e| config(&format!("--auth-jwt-key-file {}", path.display()), e))?;
    for issuer in options.issuers.iter().filter(|i| !i.is_empty()) {
        auth = auth.with_issuer(issuer.clone());
    }
    for audience in options.audiences.iter().filter(|a| !a.is_empty()) {
        auth = auth.with_audience(audience.clone());
    }
    auth = auth.with_leeway(options.leeway).map_err(|e| config("--auth-jwt-leeway", e))?;
    if let Some(name) = &options.cookie {
        auth = auth.with_cookie(name.clone()).map_err(|e| config("--auth-jwt-cookie", e))?;
    }
    tracing::info!(keys = auth.key_count(), algorithms = ?auth.algorithms(), "JWT authentication on");
    Ok(auth)
}

/// The claims read beyond the registered ones `jsonwebtoken` validates. Loosely typed, so a
/// wrong type is told apart from a bad token; duplicate names are refused by serde.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<Value>,
    #[serde(default)]
    sub: Option<Value>,
    #[serde(default)]
    max_size: Option<Value>,
    #[serde(default)]
    allowed_types: Option<Value>,
}

impl Claims {
    /// The principal these (verified) claims name; with `by_issuer` (several accepted
    /// issuers) its subject is [`issuer_subject`], else the plain `sub`.
    fn principal(self, by_issuer: bool) -> Result<Principal, &'static str> {
        let subject = match self.sub {
            Some(Value::String(s))
                if !s.is_empty() && s.len() <= MAX_SUBJECT_LEN && !s.chars().any(char::is_control) =>
            {
                s
            }
            _ => return Err(NO_SUBJECT),
        };
        let subject = if by_issuer {
            // `iss` was required and checked against the configured issuers already.
            let Some(Value::String(issuer)) = &self.iss else { return Err(WRONG_ISSUER) };
            issuer_subject(issuer, &subject)
        } else {
            subject
        };
        let mut principal = Principal::new(subject);
        if let Some(max) = self.max_size {
            principal = principal.with_max_size(max.as_u64().ok_or(MALFORMED)?);
        }
        if let Some(types) = self.allowed_types {
            principal = principal.with_allowed_types(allowed_types(types)?);
        }
        Ok(principal)
    }
}

/// The owner of a token from `issuer` for `sub` when several issuers are accepted: the JSON
/// array `["<iss>","<sub>"]`. Two issuers may hand out the same `sub` to different users, so
/// `sub` alone would let them share uploads; JSON string escaping is one-to-one and the array
/// delimits both parts, so no two (iss, sub) pairs give the same owner.
pub fn issuer_subject(issuer: &str, sub: &str) -> String {
    Value::from(vec![issuer, sub]).to_string()
}

/// `allowed_types` as MIME patterns (`type/subtype`, `type/*`, lowercased): an array of
/// strings or one comma-separated string, with at least one pattern (an empty list would be
/// read as "any" by some and "none" by others).
fn allowed_types(value: Value) -> Result<Vec<String>, &'static str> {
    let items: Vec<String> = match value {
        Value::String(s) => s.split(',').map(str::to_owned).collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|v| if let Value::String(s) = v { Ok(s) } else { Err(MALFORMED) })
            .collect::<Result<_, _>>()?,
        _ => return Err(MALFORMED),
    };
    let patterns: Vec<String> =
        items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
    let well_formed = |p: &String| {
        p.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty() && !s.is_empty() && t.bytes().all(is_token_char) && s.bytes().all(is_token_char)
        })
    };
    if patterns.is_empty() || !patterns.iter().all(well_formed) {
        return Err(MALFORMED);
    }
    Ok(patterns)
}

/// Errors that depend on the key tried, so another key may still verify the token.
fn is_key_specific(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::Provider(_)
    )
}

/// The reason for a `jsonwebtoken` error that is not about the key.
fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => EXPIRED,
        ErrorKind::ImmatureSignature => NOT_YET_VALID,
        ErrorKind::InvalidIssuer => WRONG_ISSUER,
        ErrorKind::InvalidAudience => WRONG_AUDIENCE,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "sub" => NO_SUBJECT,
            "iss" => WRONG_ISSUER,
            "aud" => WRONG_AUDIENCE,
            // `exp`: a token without one is not one this server accepts.
            _ => MALFORMED,
        },
        ErrorKind::InvalidSignature => BAD_SIGNATURE,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::UnsupportedAlgorithm => UNKNOWN_KEY,
        _ => MALFORMED,
    }
}

/// The token of an `Authorization` value with the `Bearer` scheme (case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    scheme.eq_ignore_ascii_case(b"bearer").then(|| rest.trim_ascii())
}

/// The values of every cookie called `name` in all `Cookie` headers, in order (quotes removed).
fn cookies<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h [u8]> {
    headers.get_all(COOKIE).iter().flat_map(|v| v.as_bytes().split(|b| *b == b';')).filter_map(move |pair| {
        let value = pair.trim_ascii().strip_prefix(name.as_bytes())?.strip_prefix(b"=")?.trim_ascii();
        Some(value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value))
    })
}

/// Three non-empty base64url parts separated by dots (a JWS in compact form; `alg: none`
/// tokens, with an empty signature, are not).
fn is_compact_jws(token: &[u8]) -> bool {
    let mut parts = 0;
    for part in token.split(|b| *b == b'.') {
        parts += 1;
        if part.is_empty() || !part.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
            return false;
        }
    }
    parts == 3
}

/// An RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The crypto backend. With only the `rust_crypto` feature it is chosen by itself; should
/// another crate in the build enable a second backend, the RustCrypto one is installed, so
/// decoding never meets the crate's "no provider" panic.
fn provider() -> Result<&'static CryptoProvider, JwtConfigError> {
    if let Some(provider) = CryptoProvider::try_get_default() {
        return Ok(provider);
    }
    // Fails only if another thread installed one meanwhile: then that one is used.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    CryptoProvider::try_get_default().ok_or_else(|| JwtConfigError::new("no JWT crypto backend"))
}

/// A verification key with the algorithms it works with: of its family (or `alg` alone), and
/// only those the backend can build a verifier for (a P-256 key verifies ES256, not ES384).
fn finish_key(
    key: DecodingKey,
    kid: Option<String>,
    alg: Option<Algorithm>,
    provider: &CryptoProvider,
) -> Result<VerifyKey, String> {
    match key.family() {
        AlgorithmFamily::Rsa => check_rsa(&key, provider)?,
        // The backend slices the first 32 bytes: never hand it fewer.
        AlgorithmFamily::Ed => {
            if key.try_get_as_bytes().map_or(true, |b| b.len() != 32) {
                return Err("not an Ed25519 public key (32 bytes)".into());
            }
        }
        AlgorithmFamily::Hmac => {
            if key.try_get_as_bytes().map_or(true, |b| b.len() < MIN_SECRET_LEN) {
                return Err(format!("an HMAC secret must be at least {MIN_SECRET_LEN} bytes"));
            }
        }
        AlgorithmFamily::Ec => {}
    }
    let candidates = match alg {
        Some(alg) if alg.family() != key.family() => {
            return Err(format!("its alg {alg:?} is not for a {:?} key", key.family()));
        }
        Some(alg) => vec![alg],
        None => key.family().algorithms().to_vec(),
    };
    let algorithms: Vec<Algorithm> =
        candidates.into_iter().filter(|alg| (provider.verifier_factory)(alg, &key).is_ok()).collect();
    if algorithms.is_empty() {
        return Err(format!("not a usable {:?} public key", key.family()));
    }
    Ok(VerifyKey { kid, key, algorithms })
}

/// A public RSA key of 2048 to 8192 bits with an odd modulus and a sane exponent.
fn check_rsa(key: &DecodingKey, provider: &CryptoProvider) -> Result<(), String> {
    let (n, e) = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => (n.clone(), e.clone()),
        DecodingKeyKind::SecretOrDer(der) => (provider.key_utils.rsa_pub_components_from_public_key)(der)
            .map_err(|e| format!("not a valid RSA public key: {e}"))?,
    };
    let strip = |b: &[u8]| b.iter().position(|x| *x != 0).map_or(Vec::new(), |i| b[i..].to_vec());
    let (n, e) = (strip(&n), strip(&e));
    let bits = n.first().map_or(0, |top| (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize));
    if !(2048..=8192).contains(&bits) {
        return Err(format!("an RSA key must have 2048 to 8192 bits, not {bits}"));
    }
    let e_value = if e.len() <= 8 { e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) } else { u64::MAX };
    if n.last().is_some_and(|b| b % 2 == 0) || e_value < 3 || e_value % 2 == 0 || e_value >= 1 << 33 {
        return Err("not a valid RSA public key (modulus or exponent)".into());
    }
    Ok(())
}

/// The public keys of a PEM file, in order.
fn pem_keys(bytes: &[u8], provider: &CryptoProvider) -> Result<Vec<VerifyKey>, JwtConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JwtConfigError::new("PEM, but not UTF-8 text"))?;
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let n = keys.len() + 1;
        let after = &rest[start + "-----BEGIN ".len()..];
        let tag_end =
            after.find("-----").ok_or_else(|| JwtConfigError::new(format!("PEM block {n}: no header end")))?;
        let tag = &after[..tag_end];
        let end_marker = format!("-----END {tag}-----");
        let end = rest[start..]
            .find(&end_marker)
            .map(|i| start + i + end_marker.len())
            .ok_or_else(|| JwtConfigError::new(format!("PEM block {n} ({tag}): no {end_marker}")))?;
        let block = &rest.as_bytes()[start..end];
        rest = &rest[end..];
        let key = match tag {
            "PUBLIC KEY" => DecodingKey::from_rsa_pem(block)
                .or_else(|_| DecodingKey::from_ec_pem(block))
                .or_else(|_| DecodingKey::from_ed_pem(block)),
            "RSA PUBLIC KEY" => DecodingKey::from_rsa_pem(block),
            t if t.contains("PRIVATE KEY") => {
                return Err(JwtConfigError::new(format!(
                    "PEM block {n} is a private key: give the public key (`openssl pkey -pubout`)"
                )));
            }
            "CERTIFICATE" => {
                return Err(JwtConfigError::new(format!(
                    "PEM block {n} is a certificate: give its public key (`openssl x509 -pubkey -noout`)"
                )));
            }
            other => {
                return Err(JwtConfigError::new(format!("PEM block {n} is a {other}, not a PUBLIC KEY")));
            }
        };
        let key =
            key.map_err(|_| JwtConfigError::new(format!("PEM block {n}: not an RSA, EC or Ed25519 public key")))?;
        keys.push(
            finish_key(key, None, None, provider).map_err(|e| JwtConfigError::new(format!("PEM block {n}: {e}")))?,
        );
    }
    Ok(keys)
}

/// The usable keys of a JWKS (or of a single JWK).
fn jwks_keys(bytes: &[u8], provider: &CryptoProvider) -> Result<Vec<VerifyKey>, JwtConfigError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| JwtConfigError::new(format!("not valid JSON (a JWKS?): {e}")))?;
    let raw: Vec<Value> = match value {
        Value::Object(mut map) if map.contains_key("keys") => match map.remove("keys") {
            Some(Value::Array(keys)) => keys,
            _ => return Err(JwtConfigError::new("a JWKS whose \"keys\" is not an array")),
        },
        v @ Value::Object(_) if v.get("kty").is_some() => vec![v],
        _ => return Err(JwtConfigError::new("JSON, but neither a JWKS ({\"keys\": [...]}) nor a JWK")),
    };
    let mut keys = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
        let name = match &kid {
            Some(kid) => format!("JWK {} (kid {kid:?})", i + 1),
            None => format!("JWK {}", i + 1),
        };
        let kty = raw.get("kty").and_then(Value::as_str).unwrap_or_default().to_owned();
        let jwk: Jwk = serde_json::from_value(raw).map_err(|e| JwtConfigError::new(format!("{name}: {e}")))?;
        match jwk_key(&jwk, &kty, provider) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {
                tracing::debug!(key = %name, kty, "JWK skipped: not a signature verification key this server supports")
            }
            Err(e) => return Err(JwtConfigError::new(format!("{name}: {e}"))),
        }
    }
    Ok(keys)
}

/// A JWK's verification key; `None` for a key not meant for verifying signatures, or of a
/// type or curve not supported.
fn jwk_key(jwk: &Jwk, kty: &str, provider: &CryptoProvider) -> Result<Option<VerifyKey>, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))) {
        return Ok(None);
    }
    if jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return Ok(None);
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        // An encryption or unknown algorithm.
        Some(alg) => match Algorithm::try_from(alg) {
            Ok(alg) => Some(alg),
            Err(_) => return Ok(None),
        },
    };
    let key = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => DecodingKey::from_rsa_components(&p.n, &p.e),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 | EllipticCurve::P384 => DecodingKey::from_ec_components(&p.x, &p.y),
            _ => return Ok(None),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => DecodingKey::from_ed_components(&p.x),
            _ => return Ok(None),
        },
        AlgorithmParameters::OctetKey(_) => DecodingKey::from_jwk(jwk),
        // A type this crate parses, but with missing or mistyped members: an error, not a
        // silently skipped key.
        _ if matches!(kty, "RSA" | "EC" | "OKP" | "oct") => return Err(format!("malformed {kty} key")),
        _ => return Ok(None),
    }
    .map_err(|e| format!("unreadable key: {e}"))?;
    finish_key(key, jwk.common.key_id.clone(), alg, provider).map(Some)
}

/// The HMAC secret of a key file that is neither PEM nor JSON.
fn secret_key(bytes: &[u8], provider: &CryptoProvider) -> Result<VerifyKey, JwtConfigError> {
    let secret = bytes.strip_suffix(b"\n").map_or(bytes, |s| s.strip_suffix(b"\r").unwrap_or(s));
    if looks_like_public_key(secret) {
        return Err(JwtConfigError::new(
            "this looks like a public key (DER or OpenSSH), which would be used as an HMAC secret \
             anyone can sign with: give public keys as PEM",
        ));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(JwtConfigError::new(format!(
            "an HMAC secret must be at least {MIN_SECRET_LEN} bytes (it has {}); e.g. `openssl rand -hex 32`",
            secret.len()
        )));
    }
    let key = DecodingKey::from_secret(secret).map_err(|e| JwtConfigError::new(e.to_string()))?;
    finish_key(key, None, None, provider).map_err(JwtConfigError::new)
}

/// A DER structure spanning the whole input (an SPKI or PKCS#1 key), or an OpenSSH public key.
fn looks_like_public_key(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"ssh-") || bytes.starts_with(b"ecdsa-sha2-") {
        return true;
    }
    let [0x30, len, rest @ ..] = bytes else { return false };
    let total = match *len {
        l if l < 0x80 => usize::from(l),
        0x81 => rest.first().map_or(usize::MAX, |b| usize::from(*b) + 1),
        0x82 => match rest {
            [hi, lo, ..] => (usize::from(*hi) << 8 | usize::from(*lo)) + 2,
            _ => usize::MAX,
        },
        _ => usize::MAX,
    };
    total == rest.len()
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use futures_util::FutureExt as _;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn claims(sub: &str) -> Value {
        json!({ "sub": sub, "exp": now() + 600 })
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, key).unwrap()
    }

    fn hs(claims: &Value) -> String {
        sign(Algorithm::HS256, None, claims, &EncodingKey::from_secret(SECRET).unwrap())
    }

    fn hs_auth() -> JwtAuthorizer {
        JwtAuthorizer::from_key_bytes(SECRET).unwrap()
    }

    fn request(headers: &[(&str, &[u8])]) -> http::request::Parts {
        let mut builder = http::Request::builder();
        for (name, value) in headers {
            builder = builder.header(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn bearer_request(token: &str) -> http::request::Parts {
        request(&[("authorization", format!("Bearer {token}").as_bytes())])
    }

    /// What the authorizer decides for a request, run to completion (it never waits).
    fn decide(auth: &JwtAuthorizer, parts: &http::request::Parts) -> Result<Principal, Unauthorized> {
        auth.authorize(parts).now_or_never().expect("authorize never waits")
    }

    fn reason_for(auth: &JwtAuthorizer, token: &str) -> &'static str {
        decide(auth, &bearer_request(token)).unwrap_err().reason
    }

    fn subject_for(auth: &JwtAuthorizer, token: &str) -> String {
        decide(auth, &bearer_request(token)).unwrap().subject
    }

    fn pem(tag: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(tag, der.to_vec()))
    }

    /// Keys made at test time: RSA (generated, slow in debug builds, so once), P-256 and
    /// Ed25519 from fixed seeds.
    struct TestKeys {
        rsa: EncodingKey,
        rsa_spki_pem: String,
        rsa_pkcs1_pem: String,
        rsa_jwk: Value,
        ec: [EncodingKey; 2],
        ec_pem: [String; 2],
        ec_jwk: [Value; 2],
        ed: [EncodingKey; 2],
        ed_pem: [String; 2],
        ed_jwk: Value,
    }

    fn keys() -> &'static TestKeys {
        static KEYS: OnceLock<TestKeys> = OnceLock::new();
        KEYS.get_or_init(|| {
            use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
            use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
            use rsa::traits::PublicKeyParts as _;

            let rsa_key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
            let rsa_pub = rsa_key.to_public_key();
            let rsa_spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&rsa_pub).unwrap();
            let ec_key = |seed: u8| {
                let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
                let private = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&sk).unwrap();
                let public = p256::pkcs8::EncodePublicKey::to_public_key_der(sk.verifying_key()).unwrap();
                let point = sk.verifying_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                let jwk = json!({
                    "kty": "EC", "crv": "P-256", "use": "sig",
                    "x": B64.encode(&bytes[1..33]), "y": B64.encode(&bytes[33..65]),
                });
                (EncodingKey::from_ec_der(private.as_bytes()), pem("PUBLIC KEY", public.as_bytes()), jwk)
            };
            let ed_key = |seed: u8| {
                let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
                let private = sk.to_pkcs8_der().unwrap();
                let public = sk.verifying_key().to_public_key_der().unwrap();
                let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": B64.encode(sk.verifying_key().as_bytes()) });
                (EncodingKey::from_ed_der(private.as_bytes()), pem("PUBLIC KEY", public.as_bytes()), jwk)
            };
            let (ec1, ec1_pem, ec1_jwk) = ec_key(7);
            let (ec2, ec2_pem, ec2_jwk) = ec_key(9);
            let (ed1, ed1_pem, ed1_jwk) = ed_key(3);
            let (ed2, ed2_pem, _) = ed_key(5);
            TestKeys {
                rsa: EncodingKey::from_rsa_der(rsa_key.to_pkcs1_der().unwrap().as_bytes()),
                rsa_spki_pem: pem("PUBLIC KEY", rsa_spki.as_bytes()),
                rsa_pkcs1_pem: pem("RSA PUBLIC KEY", rsa_pub.to_pkcs1_der().unwrap().as_bytes()),
                rsa_jwk: json!({
                    "kty": "RSA", "alg": "RS256",
                    "n": B64.encode(rsa_pub.n_bytes()), "e": B64.encode(rsa_pub.e_bytes()),
                }),
                ec: [ec1, ec2],
                ec_pem: [ec1_pem, ec2_pem],
                ec_jwk: [ec1_jwk, ec2_jwk],
                ed: [ed1, ed2],
                ed_pem: [ed1_pem, ed2_pem],
                ed_jwk: ed1_jwk,
            }
        })
    }

    fn with_kid(mut jwk: Value, kid: &str) -> Value {
        jwk["kid"] = json!(kid);
        jwk
    }

    fn jwks(keys: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({ "keys": keys })).unwrap()
    }

    fn load_error(bytes: &[u8]) -> String {
        JwtAuthorizer::from_key_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn hs256_token_becomes_a_principal_with_its_limits() {
        let auth = hs_auth();
        let p = decide(&auth, &bearer_request(&hs(&claims("alice")))).unwrap();
        assert_eq!(p, Principal::new("alice"));

        let token = hs(
            &json!({ "sub": "bob", "exp": now() + 60, "max_size": 1024, "allowed_types": ["image/*", " Application/PDF "] }),
        );
        let p = decide(&auth, &bearer_request(&token)).unwrap();
        assert_eq!(p.subject, "bob");
        assert_eq!(p.max_size, Some(1024));
        assert_eq!(p.allowed_types, Some(vec!["image/*".to_owned(), "application/pdf".to_owned()]));

        let token = hs(
            &json!({ "sub": "carol", "exp": now() + 60, "allowed_types": "image/png, text/plain", "max_size": null }),
        );
        let p = decide(&auth, &bearer_request(&token)).unwrap();
        assert_eq!(p.max_size, None);
        assert_eq!(p.allowed_types, Some(vec!["image/png".to_owned(), "text/plain".to_owned()]));

        // HS384 and HS512 with the same secret; the scheme is case-insensitive.
        let key = EncodingKey::from_secret(SECRET).unwrap();
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            assert_eq!(subject_for(&auth, &sign(alg, None, &claims("dave"), &key)), "dave");
        }
        let lower = request(&[("authorization", format!("bearer   {}  ", hs(&claims("erin"))).as_bytes())]);
        assert_eq!(decide(&auth, &lower).unwrap().subject, "erin");
    }

    #[test]
    fn missing_credentials() {
        let auth = hs_auth();
        let refused = decide(&auth, &request(&[])).unwrap_err();
        assert_eq!(refused.reason, MISSING);
        assert_eq!(refused.challenge, r#"Bearer realm="tus""#);
        // Another scheme, and a cookie when no cookie name is configured.
        assert_eq!(decide(&auth, &request(&[("authorization", b"Basic dXNlcjpwYXNz")])).unwrap_err().reason, MISSING);
        let cookie = format!("token={}", hs(&claims("alice")));
        assert_eq!(decide(&auth, &request(&[("cookie", cookie.as_bytes())])).unwrap_err().reason, MISSING);
    }

    #[test]
    fn refusals_carry_an_rfc6750_challenge() {
        let refused = decide(&hs_auth(), &bearer_request("x.y.z")).unwrap_err();
        assert_eq!(refused.reason, MALFORMED);
        assert_eq!(refused.challenge, r#"Bearer realm="tus", error="invalid_token", error_description="malformed""#);
        for reason in reasons::ALL {
            let challenge = refusal(reason).challenge;
            assert!(http::HeaderValue::from_str(&challenge).is_ok(), "{challenge}");
        }
    }

    #[test]
    fn malformed_tokens() {
        let auth = hs_auth();
        let good = hs(&claims("alice"));
        let (head, rest) = good.split_once('.').unwrap();
        let (payload, _sig) = rest.split_once('.').unwrap();
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "empty"),
            ("abc".into(), "one part"),
            ("a.b".into(), "two parts"),
            (format!("{good}.extra"), "four parts"),
            (format!("{none_header}.{payload}."), "alg none, empty signature"),
            (format!("{none_header}.{payload}.{}", B64.encode(b"sig")), "alg none with a signature"),
            (format!("{}.{payload}.{}", B64.encode(br#"{"alg":"HS1024"}"#), B64.encode(b"sig")), "unknown alg"),
            (format!("{}.{payload}.{}", B64.encode(b"not json"), B64.encode(b"sig")), "header not JSON"),
            (format!("{head}!.{rest}"), "not base64url"),
            (format!("{head}.{payload}.a"), "signature of bad base64 length"),
            (format!("{head}+/.{rest}"), "standard base64 alphabet"),
            ("a.b.c".into(), "garbage"),
        ];
        for (token, what) in &cases {
            let parts = request(&[("authorization", format!("Bearer {token}").as_bytes())]);
            assert_eq!(decide(&auth, &parts).unwrap_err().reason, MALFORMED, "{what}: {token}");
        }
        // `Bearer` with no token, two Authorization headers, non-ASCII bytes.
        assert_eq!(decide(&auth, &request(&[("authorization", b"Bearer")])).unwrap_err().reason, MALFORMED);
        assert_eq!(decide(&auth, &request(&[("authorization", b"Bearer ")])).unwrap_err().reason, MALFORMED);
        let two = request(&[("authorization", format!("Bearer {good}").as_bytes()), ("authorization", b"Bearer x")]);
        assert_eq!(decide(&auth, &two).unwrap_err().reason, MALFORMED);
        assert_eq!(
            decide(&auth, &request(&[("authorization", b"Bearer \xff\xfe.a.b")])).unwrap_err().reason,
            MALFORMED
        );

        // Signed, but claims this server does not take.
        for bad in [
            json!({ "sub": "a" }),
            json!({ "sub": "a", "exp": "tomorrow" }),
            json!({ "sub": "a", "exp": -5 }),
            json!({ "sub": "a", "exp": now() + 60, "max_size": -1 }),
            json!({ "sub": "a", "exp": now() + 60, "max_size": 1.5 }),
            json!({ "sub": "a", "exp": now() + 60, "max_size": "10" }),
            json!({ "sub": "a", "exp": now() + 60, "allowed_types": 5 }),
            json!({ "sub": "a", "exp": now() + 60, "allowed_types": [] }),
            json!({ "sub": "a", "exp": now() + 60, "allowed_types": "" }),
            json!({ "sub": "a", "exp": now() + 60, "allowed_types": ["image/png", 3] }),
            json!({ "sub": "a", "exp": now() + 60, "allowed_types": ["image"] }),
            json!({ "sub": "a", "exp": now() + 60, "allowed_types": ["image/p ng"] }),
            json!([1, 2, 3]),
            // jsonwebtoken's own claim parsing stops at a `sub` that is no string or number.
            json!({ "sub": ["a"], "exp": now() + 60 }),
        ] {
            assert_eq!(reason_for(&auth, &hs(&bad)), MALFORMED, "{bad}");
        }
        // Duplicate claim names (one parser's `sub` is not another's).
        let dup = format!(r#"{{"sub":"a","sub":"b","exp":{}}}"#, now() + 60);
        let message = format!("{head}.{}", B64.encode(dup));
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET).unwrap(),
            Algorithm::HS256,
        )
        .unwrap();
        assert_eq!(reason_for(&auth, &format!("{message}.{sig}")), MALFORMED);
    }

    #[test]
    fn oversized_tokens_are_refused_before_decoding() {
        let auth = hs_auth();
        // A validly signed token just over the limit, and one 1 MB long.
        let padding = "x".repeat(MAX_TOKEN_LEN);
        let big = hs(&json!({ "sub": "a", "exp": now() + 60, "pad": padding }));
        assert!(big.len() > MAX_TOKEN_LEN);
        assert_eq!(reason_for(&auth, &big), MALFORMED);
        let huge = format!("{}.{}.{}", "a".repeat(500_000), "b".repeat(500_000), "c".repeat(100));
        let started = Instant::now();
        assert_eq!(reason_for(&auth, &huge), MALFORMED);
        assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
        // Just under the limit is read.
        let fits = hs(&json!({ "sub": "a", "exp": now() + 60, "pad": "x".repeat(5000) }));
        assert!(fits.len() <= MAX_TOKEN_LEN);
        assert_eq!(subject_for(&auth, &fits), "a");
    }

    #[test]
    fn bad_signatures() {
        let auth = hs_auth();
        let other = EncodingKey::from_secret(b"another secret of at least 32 bytes long").unwrap();
        assert_eq!(reason_for(&auth, &sign(Algorithm::HS256, None, &claims("a"), &other)), BAD_SIGNATURE);
        // A payload swapped under a valid signature.
        let good = hs(&claims("alice"));
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], B64.encode(claims("mallory").to_string()), parts[2]);
        assert_eq!(reason_for(&auth, &forged), BAD_SIGNATURE);
        // The signature is checked over the text before the payload is decoded.
        assert_eq!(reason_for(&auth, &format!("{}.A.{}", parts[0], parts[2])), BAD_SIGNATURE);
        // A signature of the wrong length.
        assert_eq!(reason_for(&auth, &format!("{}.{}.{}", parts[0], parts[1], B64.encode([0u8; 7]))), BAD_SIGNATURE);
        // An expired token with a bad signature is a bad signature: claims count only once signed.
        let expired = json!({ "sub": "a", "exp": 1000 });
        assert_eq!(reason_for(&auth, &sign(Algorithm::HS256, None, &expired, &other)), BAD_SIGNATURE);
    }

    #[test]
    fn expiry_with_leeway() {
        let auth = hs_auth();
        let at = |exp: u64| hs(&json!({ "sub": "a", "exp": exp }));
        assert_eq!(subject_for(&auth, &at(now() - 10)), "a", "within the default 30 s leeway");
        assert_eq!(reason_for(&auth, &at(now() - 120)), EXPIRED);
        assert_eq!(reason_for(&auth, &at(0)), EXPIRED);
        let strict = hs_auth().with_leeway(Duration::ZERO).unwrap();
        assert_eq!(reason_for(&strict, &at(now() - 10)), EXPIRED);
        let lenient = hs_auth().with_leeway(Duration::from_secs(300)).unwrap();
        assert_eq!(subject_for(&lenient, &at(now() - 120)), "a");
        // Far future and float timestamps.
        assert_eq!(subject_for(&auth, &hs(&json!({ "sub": "a", "exp": u64::MAX }))), "a");
        assert_eq!(subject_for(&auth, &hs(&json!({ "sub": "a", "exp": (now() + 60) as f64 + 0.5 }))), "a");
        assert!(hs_auth().with_leeway(Duration::from_secs(2 * 24 * 3600)).is_err());
    }

    #[test]
    fn not_before() {
        let auth = hs_auth();
        let nbf = |nbf: u64| hs(&json!({ "sub": "a", "exp": now() + 600, "nbf": nbf }));
        assert_eq!(reason_for(&auth, &nbf(now() + 300)), NOT_YET_VALID);
        assert_eq!(subject_for(&auth, &nbf(now() + 10)), "a", "within the leeway");
        assert_eq!(subject_for(&auth, &nbf(now() - 10)), "a");
        let strict = hs_auth().with_leeway(Duration::ZERO).unwrap();
        assert_eq!(reason_for(&strict, &nbf(now() + 10)), NOT_YET_VALID);
        assert_eq!(reason_for(&auth, &hs(&json!({ "sub": "a", "exp": now() + 600, "nbf": "soon" }))), MALFORMED);
    }

    #[test]
    fn issuer() {
        let auth = hs_auth().with_issuer("https://id.example").with_issuer("https://id2.example");
        let with = |iss: Value| hs(&json!({ "sub": "a", "exp": now() + 60, "iss": iss }));
        assert_eq!(subject_for(&auth, &with(json!("https://id.example"))), r#"["https://id.example","a"]"#);
        assert_eq!(subject_for(&auth, &with(json!("https://id2.example"))), r#"["https://id2.example","a"]"#);
        assert_eq!(reason_for(&auth, &with(json!("https://evil.example"))), WRONG_ISSUER);
        assert_eq!(reason_for(&auth, &hs(&claims("a"))), WRONG_ISSUER, "iss required once configured");
        // Without a configured issuer, any iss is fine.
        assert_eq!(subject_for(&hs_auth(), &with(json!("https://whoever.example"))), "a");
    }

    #[test]
    fn several_issuers_keep_their_users_apart() {
        let token = |iss: &str, sub: &str| hs(&json!({ "sub": sub, "exp": now() + 60, "iss": iss }));
        // One issuer (or none): the plain `sub`, so owners stay what they were.
        let one = hs_auth().with_issuer("https://a.example");
        assert_eq!(subject_for(&one, &token("https://a.example", "alice")), "alice");
        assert_eq!(subject_for(&hs_auth(), &token("https://a.example", "alice")), "alice");

        // Two issuers that both have an "alice": two owners.
        let two = hs_auth().with_issuer("https://a.example").with_issuer("https://b.example");
        let from_a = subject_for(&two, &token("https://a.example", "alice"));
        let from_b = subject_for(&two, &token("https://b.example", "alice"));
        assert_ne!(from_a, from_b);
        assert_eq!(from_a, issuer_subject("https://a.example", "alice"));

        // Pairs a naive `iss + separator + sub` would merge stay apart.
        let tricky = hs_auth().with_issuer("a").with_issuer("a:b").with_issuer(r#"a","b"#).with_issuer("a\\");
        let pairs = [("a", "b:c"), ("a:b", "c"), ("a", r#"b","c"#), (r#"a","b"#, "c"), ("a\\", "\\"), ("a", "\\\\")];
        let mut subjects: Vec<String> = pairs.iter().map(|(iss, sub)| subject_for(&tricky, &token(iss, sub))).collect();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), pairs.len(), "{subjects:?}");
        // The encoding reads back as the pair (so it is one-to-one).
        for (iss, sub) in pairs {
            let back: (String, String) = serde_json::from_str(&issuer_subject(iss, sub)).unwrap();
            assert_eq!(back, (iss.to_owned(), sub.to_owned()));
        }
    }

    #[test]
    fn audience() {
        let auth = hs_auth().with_audience("uploads");
        let with = |aud: Value| hs(&json!({ "sub": "a", "exp": now() + 60, "aud": aud }));
        assert_eq!(subject_for(&auth, &with(json!("uploads"))), "a");
        assert_eq!(subject_for(&auth, &with(json!(["billing", "uploads"]))), "a");
        assert_eq!(reason_for(&auth, &with(json!("billing"))), WRONG_AUDIENCE);
        assert_eq!(reason_for(&auth, &with(json!(["billing"]))), WRONG_AUDIENCE);
        assert_eq!(reason_for(&auth, &hs(&claims("a"))), WRONG_AUDIENCE, "aud required once configured");
        // A token meant for some audience is not for a server that names none.
        assert_eq!(reason_for(&hs_auth(), &with(json!("uploads"))), WRONG_AUDIENCE);
    }

    #[test]
    fn subject() {
        let auth = hs_auth();
        for sub in [json!(null), json!(""), json!(42), json!("a\nb"), json!("x".repeat(MAX_SUBJECT_LEN + 1))] {
            assert_eq!(reason_for(&auth, &hs(&json!({ "sub": sub, "exp": now() + 60 }))), NO_SUBJECT, "{sub}");
        }
        assert_eq!(reason_for(&auth, &hs(&json!({ "exp": now() + 60 }))), NO_SUBJECT);
        assert_eq!(subject_for(&auth, &hs(&claims("ünïcode user@example.com"))), "ünïcode user@example.com");
        assert_eq!(subject_for(&auth, &hs(&claims(&"x".repeat(MAX_SUBJECT_LEN)))), "x".repeat(MAX_SUBJECT_LEN));
    }

    #[test]
    fn rsa_keys_from_pem_and_jwks() {
        let k = keys();
        for file in [&k.rsa_spki_pem, &k.rsa_pkcs1_pem] {
            let auth = JwtAuthorizer::from_key_bytes(file.as_bytes()).unwrap();
            for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
                assert_eq!(subject_for(&auth, &sign(alg, None, &claims("r"), &k.rsa)), "r", "{alg:?}");
            }
            // The classic confusion: an HS256 token "signed" with the public key as secret.
            let confused = EncodingKey::from_secret(file.as_bytes()).unwrap();
            assert_eq!(reason_for(&auth, &sign(Algorithm::HS256, None, &claims("r"), &confused)), UNKNOWN_KEY);
            assert_eq!(reason_for(&auth, &sign(Algorithm::ES256, None, &claims("r"), &k.ec[0])), UNKNOWN_KEY);
        }
        // A JWK with `alg: RS256` verifies RS256 only.
        let auth = JwtAuthorizer::from_key_bytes(&jwks(&[with_kid(k.rsa_jwk.clone(), "r1")])).unwrap();
        assert_eq!(subject_for(&auth, &sign(Algorithm::RS256, Some("r1"), &claims("r"), &k.rsa)), "r");
        assert_eq!(subject_for(&auth, &sign(Algorithm::RS256, None, &claims("r"), &k.rsa)), "r");
        assert_eq!(reason_for(&auth, &sign(Algorithm::PS256, Some("r1"), &claims("r"), &k.rsa)), UNKNOWN_KEY);
        assert_eq!(reason_for(&auth, &sign(Algorithm::RS256, Some("r2"), &claims("r"), &k.rsa)), UNKNOWN_KEY);
    }

    #[test]
    fn ec_and_ed25519_keys_from_pem_and_jwks() {
        let k = keys();
        let ec = JwtAuthorizer::from_key_bytes(k.ec_pem[0].as_bytes()).unwrap();
        assert_eq!(ec.algorithms(), vec![Algorithm::ES256], "a P-256 key verifies ES256 only");
        assert_eq!(subject_for(&ec, &sign(Algorithm::ES256, None, &claims("e"), &k.ec[0])), "e");
        assert_eq!(reason_for(&ec, &sign(Algorithm::ES256, None, &claims("e"), &k.ec[1])), BAD_SIGNATURE);
        assert_eq!(reason_for(&ec, &sign(Algorithm::EdDSA, None, &claims("e"), &k.ed[0])), UNKNOWN_KEY);

        let ed = JwtAuthorizer::from_key_bytes(k.ed_pem[0].as_bytes()).unwrap();
        assert_eq!(subject_for(&ed, &sign(Algorithm::EdDSA, None, &claims("d"), &k.ed[0])), "d");
        assert_eq!(reason_for(&ed, &sign(Algorithm::EdDSA, None, &claims("d"), &k.ed[1])), BAD_SIGNATURE);
        assert_eq!(
            reason_for(&ed, &sign(Algorithm::ES256, None, &claims("d"), &k.ec[0])),
            UNKNOWN_KEY,
            "wrong key type"
        );

        // All types in one JWKS, HMAC (`oct`) included; each verifies its own algorithms only.
        let oct = json!({ "kty": "oct", "kid": "h", "k": B64.encode(SECRET) });
        let set = jwks(&[with_kid(k.ec_jwk[0].clone(), "e"), with_kid(k.ed_jwk.clone(), "d"), oct, k.rsa_jwk.clone()]);
        let auth = JwtAuthorizer::from_key_bytes(&set).unwrap();
        assert_eq!(auth.key_count(), 4);
        assert_eq!(subject_for(&auth, &sign(Algorithm::ES256, Some("e"), &claims("1"), &k.ec[0])), "1");
        assert_eq!(subject_for(&auth, &sign(Algorithm::EdDSA, Some("d"), &claims("2"), &k.ed[0])), "2");
        assert_eq!(
            subject_for(
                &auth,
                &sign(Algorithm::HS256, Some("h"), &claims("3"), &EncodingKey::from_secret(SECRET).unwrap())
            ),
            "3"
        );
        assert_eq!(subject_for(&auth, &sign(Algorithm::RS256, None, &claims("4"), &k.rsa)), "4");
        // A kid naming a key of another type.
        assert_eq!(reason_for(&auth, &sign(Algorithm::ES256, Some("d"), &claims("5"), &k.ec[0])), UNKNOWN_KEY);
    }

    #[test]
    fn rotation_by_kid_and_by_trying_every_key() {
        let k = keys();
        let set = jwks(&[with_kid(k.ec_jwk[0].clone(), "2024"), with_kid(k.ec_jwk[1].clone(), "2025")]);
        let auth = JwtAuthorizer::from_key_bytes(&set).unwrap();
        assert_eq!(subject_for(&auth, &sign(Algorithm::ES256, Some("2025"), &claims("new"), &k.ec[1])), "new");
        assert_eq!(subject_for(&auth, &sign(Algorithm::ES256, Some("2024"), &claims("old"), &k.ec[0])), "old");
        // The kid picks the key: signed by the second, named as the first.
        assert_eq!(reason_for(&auth, &sign(Algorithm::ES256, Some("2024"), &claims("x"), &k.ec[1])), BAD_SIGNATURE);
        assert_eq!(reason_for(&auth, &sign(Algorithm::ES256, Some("2023"), &claims("x"), &k.ec[1])), UNKNOWN_KEY);
        // No kid: every key of the type is tried.
        assert_eq!(subject_for(&auth, &sign(Algorithm::ES256, None, &claims("any"), &k.ec[1])), "any");

        // Several PEM blocks (mixed types) in one file, with text around them.
        let file = format!("# keys\n{}\nsome comment\n{}{}", k.ed_pem[0], k.ec_pem[0], k.ed_pem[1]);
        let auth = JwtAuthorizer::from_key_bytes(file.as_bytes()).unwrap();
        assert_eq!(auth.key_count(), 3);
        assert_eq!(subject_for(&auth, &sign(Algorithm::EdDSA, None, &claims("second"), &k.ed[1])), "second");
        assert_eq!(subject_for(&auth, &sign(Algorithm::EdDSA, Some("whatever"), &claims("first"), &k.ed[0])), "first");
        assert_eq!(subject_for(&auth, &sign(Algorithm::ES256, None, &claims("ec"), &k.ec[0])), "ec");
    }

    #[test]
    fn cookie_extraction() {
        let auth = hs_auth().with_cookie("tus_token").unwrap();
        let token = hs(&claims("browser"));
        for cookie in [
            format!("tus_token={token}"),
            format!("theme=dark; tus_token={token}; other=1"),
            format!("tus_token=\"{token}\""),
            format!("tus_tokenx=nope; tus_token={token}"),
        ] {
            assert_eq!(
                decide(&auth, &request(&[("cookie", cookie.as_bytes())])).unwrap().subject,
                "browser",
                "{cookie}"
            );
        }
        // Several Cookie headers (HTTP/2 sends one per cookie).
        let parts = request(&[("cookie", b"a=1"), ("cookie", format!("tus_token={token}").as_bytes())]);
        assert_eq!(decide(&auth, &parts).unwrap().subject, "browser");
        // The header wins over the cookie; other cookie names and an emptied cookie are nothing.
        let header = hs(&claims("header"));
        let both = request(&[
            ("authorization", format!("Bearer {header}").as_bytes()),
            ("cookie", format!("tus_token={token}").as_bytes()),
        ]);
        assert_eq!(decide(&auth, &both).unwrap().subject, "header");
        let basic =
            request(&[("authorization", b"Basic Zm9vOmJhcg=="), ("cookie", format!("tus_token={token}").as_bytes())]);
        assert_eq!(decide(&auth, &basic).unwrap().subject, "browser");
        assert_eq!(
            decide(&auth, &request(&[("cookie", format!("token={token}").as_bytes())])).unwrap_err().reason,
            MISSING
        );
        assert_eq!(decide(&auth, &request(&[("cookie", b"tus_token=")])).unwrap_err().reason, MISSING);
        assert_eq!(decide(&auth, &request(&[("cookie", b"tus_token=garbage")])).unwrap_err().reason, MALFORMED);
        for bad in ["", "a b", "a;b", "tok=en"] {
            assert!(hs_auth().with_cookie(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cookie_sent_twice_is_refused_unless_the_header_has_the_token() {
        let auth = hs_auth().with_cookie("tus_token").unwrap();
        let (mine, planted) = (hs(&claims("victim")), hs(&claims("attacker")));
        let refused = |parts: &http::request::Parts| decide(&auth, parts).map(|p| p.subject).unwrap_err().reason;
        // In one header, across headers, even when both are the same token or one is empty:
        // which one is genuine cannot be told.
        for headers in [
            vec![format!("tus_token={planted}; tus_token={mine}")],
            vec![format!("tus_token={mine}; a=1; tus_token={planted}")],
            vec![format!("a=1; tus_token={mine}"), format!("tus_token={planted}")],
            vec![format!("tus_token={mine}"), format!("tus_token=\"{mine}\"")],
            vec![format!("tus_token=; tus_token={mine}")],
        ] {
            let pairs: Vec<(&str, &[u8])> = headers.iter().map(|h| ("cookie", h.as_bytes())).collect();
            assert_eq!(refused(&request(&pairs)), DUPLICATE_COOKIE, "{headers:?}");
        }
        let twice = format!("tus_token={planted}; tus_token={mine}");
        // Another scheme in the header supplies no token: still refused.
        assert_eq!(
            refused(&request(&[("authorization", b"Basic Zm9vOmJhcg=="), ("cookie", twice.as_bytes())])),
            DUPLICATE_COOKIE
        );
        // A bearer token wins, as it does over a single cookie.
        let header = format!("Bearer {}", hs(&claims("header")));
        let both = request(&[("authorization", header.as_bytes()), ("cookie", twice.as_bytes())]);
        assert_eq!(decide(&auth, &both).unwrap().subject, "header");
        // Similar names are other cookies.
        let similar = format!("tus_token={mine}; tus_token2={planted}; xtus_token={planted}");
        assert_eq!(decide(&auth, &request(&[("cookie", similar.as_bytes())])).unwrap().subject, "victim");
        // Without a configured cookie, cookies are never looked at.
        assert_eq!(decide(&hs_auth(), &request(&[("cookie", twice.as_bytes())])).unwrap_err().reason, MISSING);
    }

    #[test]
    fn key_files() {
        let k = keys();
        // One trailing newline (LF or CRLF) is not part of the secret; anything else is.
        let token = hs(&claims("nl"));
        for file in [[SECRET, b"\n"].concat(), [SECRET, b"\r\n"].concat(), SECRET.to_vec()] {
            assert_eq!(subject_for(&JwtAuthorizer::from_key_bytes(&file).unwrap(), &token), "nl");
        }
        let two_newlines = JwtAuthorizer::from_key_bytes(&[SECRET, b"\n\n"].concat()).unwrap();
        assert_eq!(reason_for(&two_newlines, &token), BAD_SIGNATURE);
        let spaced = JwtAuthorizer::from_key_bytes(&[b" ", SECRET].concat()).unwrap();
        assert_eq!(reason_for(&spaced, &token), BAD_SIGNATURE);

        let dir = std::env::temp_dir().join(format!("tus-jwt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap();
        assert_eq!(subject_for(&JwtAuthorizer::from_key_file(&path).unwrap(), &token), "nl");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(JwtAuthorizer::from_key_file(dir.join("missing")).unwrap_err().to_string().contains("cannot read"));

        // Refused at startup, with a reason.
        let ed_pub_der = pem::parse(&k.ed_pem[0]).unwrap().into_contents();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "at least 32 bytes"),
            (b"\n".to_vec(), "at least 32 bytes"),
            (b"short".to_vec(), "at least 32 bytes"),
            (ed_pub_der, "looks like a public key"),
            (
                b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDcjjjjjjjjjjjjjjjjjjjjjjjjjj user@host".to_vec(),
                "looks like a public key",
            ),
            (
                b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n".to_vec(),
                "private key",
            ),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(), "certificate"),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_vec(), "not an RSA, EC or Ed25519"),
            (b"-----BEGIN PUBLIC KEY-----\nAAAA\n".to_vec(), "no -----END PUBLIC KEY-----"),
            (b"{ not json".to_vec(), "not valid JSON"),
            (b"{\"foo\": 1}".to_vec(), "neither a JWKS"),
            (b"{\"keys\": {}}".to_vec(), "not an array"),
            (b"{\"keys\": []}".to_vec(), "no usable verification key"),
            (jwks(&[json!({ "kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB" })]), "no usable verification key"),
            (jwks(&[json!({ "kty": "RSA", "n": "AQAB" })]), "malformed RSA key"),
            (
                jwks(&[json!({ "kty": "RSA", "n": B64.encode([0xffu8; 128]), "e": "AQAB" })]),
                "2048 to 8192 bits, not 1024",
            ),
            (jwks(&[json!({ "kty": "OKP", "crv": "Ed25519", "x": B64.encode([1u8; 16]) })]), "32 bytes"),
            (jwks(&[json!({ "kty": "OKP", "crv": "Ed25519", "x": "" })]), "32 bytes"),
            (
                jwks(&[json!({ "kty": "EC", "crv": "P-256", "x": B64.encode([1u8; 32]), "y": B64.encode([2u8; 32]) })]),
                "not a usable Ec",
            ),
            (jwks(&[json!({ "kty": "oct", "k": B64.encode(b"short") })]), "at least 32 bytes"),
            (jwks(&[with_kid(k.ed_jwk.clone(), "x"), json!({ "kty": "oct", "k": "" })]), "JWK 2"),
            (jwks(&[json!({ "kty": "EC", "crv": "P-256", "alg": "EdDSA", "x": "AA", "y": "AA" })]), "JWK 1"),
        ];
        for (file, expected) in cases {
            let error = load_error(&file);
            assert!(error.contains(expected), "{error:?} lacks {expected:?} for {:?}", String::from_utf8_lossy(&file));
        }
        // Unsupported and encryption keys are skipped when usable ones remain.
        let set = jwks(&[
            json!({ "kty": "EC", "crv": "P-521", "x": "AA", "y": "AA" }),
            json!({ "kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB" }),
            json!({ "kty": "OKP", "crv": "Ed25519", "key_ops": ["encrypt"], "x": "AA" }),
            json!({ "kty": "XYZ" }),
            k.ed_jwk.clone(),
        ]);
        assert_eq!(JwtAuthorizer::from_key_bytes(&set).unwrap().key_count(), 1);
        // A single JWK (not a set) is read too.
        assert_eq!(JwtAuthorizer::from_key_bytes(&serde_json::to_vec(&k.ed_jwk).unwrap()).unwrap().key_count(), 1);
    }

    #[test]
    fn cli_wiring() {
        use clap::Parser as _;
        let dir = std::env::temp_dir().join(format!("tus-jwt-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("secret");
        std::fs::write(&key, SECRET).unwrap();
        let key = key.to_str().unwrap();
        let auth_options = |args: &[&str]| {
            let cli = crate::Cli::parse_from([&["tus-server"], args].concat());
            cli.options().unwrap().auth
        };
        assert!(auth_options(&[]).is_none(), "auth off by default");
        let options = auth_options(&[
            "--auth-jwt-key-file",
            key,
            "--auth-jwt-issuer",
            "https://id.example",
            "--auth-jwt-audience",
            "a,b",
            "--auth-jwt-leeway",
            "1m",
            "--auth-jwt-cookie",
            "jwt",
        ])
        .unwrap();
        let auth = from_options(&options).unwrap();
        assert_eq!(auth.audiences, ["a", "b"]);
        assert_eq!(auth.leeway, Duration::from_secs(60));
        let token = hs(&json!({ "sub": "c", "exp": now() - 45, "iss": "https://id.example", "aud": "b" }));
        let parts = request(&[("cookie", format!("jwt={token}").as_bytes())]);
        assert_eq!(decide(&auth, &parts).unwrap().subject, "c");

        let bad = dir.join("bad");
        std::fs::write(&bad, b"short\n").unwrap();
        let error = from_options(&AuthOptions::new(&bad)).unwrap_err();
        assert!(
            matches!(&error, ServerError::Config(m) if m.contains("--auth-jwt-key-file") && m.contains("32 bytes")),
            "{error}"
        );
        let options = auth_options(&["--auth-jwt-key-file", key, "--auth-jwt-leeway", "3d"]).unwrap();
        assert!(matches!(from_options(&options), Err(ServerError::Config(m)) if m.contains("--auth-jwt-leeway")));
        let options = AuthOptions { cookie: Some("a b".into()), ..AuthOptions::new(key) };
        assert!(matches!(from_options(&options), Err(ServerError::Config(m)) if m.contains("--auth-jwt-cookie")));
        // The other flags need the key file.
        assert!(crate::Cli::try_parse_from(["tus-server", "--auth-jwt-issuer", "x"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A claim value of any JSON type, or a timestamp around now.
    fn claim_value() -> impl Strategy<Value = Option<Value>> {
        let t = now();
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            any::<bool>().prop_map(|b| Some(json!(b))),
            any::<i64>().prop_map(|n| Some(json!(n))),
            any::<u64>().prop_map(|n| Some(json!(n))),
            any::<f64>().prop_map(|f| Some(json!(f))),
            (0..1200u64).prop_map(move |d| Some(json!(t + d - 600))),
            "[ -~]{0,12}".prop_map(|s| Some(json!(s))),
            proptest::collection::vec("[a-z/*, ]{0,8}", 0..4).prop_map(|v| Some(json!(v))),
            Just(Some(json!({ "nested": [1, { "deep": true }] }))),
        ]
    }

    /// Claim sets of every shape, HS256-signed with the test secret, so they get past the
    /// signature to the claim checks. `sub` and `exp` are mostly sensible, so the later checks
    /// are reached too.
    fn signed_token() -> impl Strategy<Value = Vec<u8>> {
        const NAMES: [&str; 6] = ["nbf", "iss", "aud", "max_size", "allowed_types", "iat"];
        let t = now();
        let sub = prop_oneof![3 => "[a-z]{1,8}".prop_map(|s| Some(json!(s))), 1 => claim_value()];
        let exp = prop_oneof![3 => (0..1200u64).prop_map(move |d| Some(json!(t + d - 600))), 1 => claim_value()];
        (sub, exp, proptest::collection::vec(claim_value(), NAMES.len())).prop_map(|(sub, exp, values)| {
            let mut claims: serde_json::Map<String, Value> =
                NAMES.iter().zip(values).filter_map(|(name, value)| Some(((*name).to_owned(), value?))).collect();
            claims.extend(sub.map(|v| ("sub".to_owned(), v)));
            claims.extend(exp.map(|v| ("exp".to_owned(), v)));
            hs(&Value::Object(claims)).into_bytes()
        })
    }

    /// One dot-separated part of a would-be token.
    fn segment() -> impl Strategy<Value = Vec<u8>> {
        let good = hs(&claims("fuzz"));
        let pieces: Vec<Vec<u8>> = good.split('.').map(|p| p.as_bytes().to_vec()).collect();
        prop_oneof![
            proptest::sample::select(pieces),
            proptest::collection::vec(any::<u8>(), 0..24),
            proptest::collection::vec(any::<u8>(), 0..96).prop_map(|b| B64.encode(b).into_bytes()),
            "[A-Za-z0-9_-]{0,40}".prop_map(String::into_bytes),
            "\\{\"alg\":\"(HS256|HS512|RS256|PS256|none|EdDSA|ES256|ES384)\"(,\"kid\":\"[a-z]{0,3}\")?(,\"crit\":\\[\"(b64|exp)\"\\])?(,\"b64\":(true|false|1))?\\}"
                .prop_map(|s| B64.encode(s).into_bytes()),
            "\\{\"sub\":(\"[a-z]{0,3}\"|1|null|\\[\\]),\"exp\":(1|\"x\"|99999999999|-1|1e400)\\}"
                .prop_map(|s| B64.encode(s).into_bytes()),
        ]
    }

    /// A would-be token: signed ones with odd claims, pieces joined by dots, or anything.
    fn token() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            2 => signed_token(),
            4 => proptest::collection::vec(segment(), 1..5).prop_map(|parts| parts.join(&b'.')),
            1 => proptest::collection::vec(any::<u8>(), 0..200),
        ]
    }

    /// An `Authorization` or `Cookie` value around a token, or none.
    fn header_value() -> impl Strategy<Value = Option<Vec<u8>>> {
        let prefix = proptest::sample::select(vec![
            &b"Bearer "[..],
            b"bearer   ",
            b"Basic ",
            b"Bearer",
            b"tus=",
            b"a=1; tus=\"",
            b"",
        ]);
        let tail = proptest::collection::vec(any::<u8>(), 0..3);
        prop_oneof![
            1 => Just(None),
            8 => (prefix, token(), tail).prop_map(|(p, t, tail)| Some([p, &t, &tail].concat())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// Whatever a client sends as `Authorization` and `Cookie`, the answer is a principal
        /// with a usable subject or a refusal from the fixed set with a valid challenge, never
        /// a panic; for every key type and with issuer and audience checks on.
        #[test]
        fn arbitrary_header_values_never_panic(
            authorization in header_value(),
            cookie in header_value(),
            second in header_value(),
        ) {
            let mut parts = request(&[]);
            for (name, value) in [(AUTHORIZATION, authorization), (COOKIE, cookie), (COOKIE, second)] {
                if let Some(Ok(value)) = value.map(|v| http::HeaderValue::from_bytes(&v)) {
                    parts.headers.append(name, value);
                }
            }
            let authorizers = [
                hs_auth().with_cookie("tus").unwrap(),
                hs_auth().with_cookie("tus").unwrap().with_issuer("i").with_audience("a"),
                JwtAuthorizer::from_key_bytes(keys().ec_pem[0].as_bytes()).unwrap(),
                JwtAuthorizer::from_key_bytes(keys().ed_pem[0].as_bytes()).unwrap(),
            ];
            for auth in &authorizers {
                match decide(auth, &parts) {
                    Ok(p) => prop_assert!(!p.subject.is_empty() && p.subject.len() <= MAX_SUBJECT_LEN),
                    Err(refused) => {
                        prop_assert!(reasons::ALL.contains(&refused.reason), "{}", refused.reason);
                        prop_assert!(http::HeaderValue::from_str(&refused.challenge).is_ok());
                    }
                }
            }
        }
    }
}
