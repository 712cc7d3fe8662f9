//! Measures what one JWT `authorize` costs, refused and accepted, per key type: the numbers in
//! the README's Authentication section.
//!
//! `cargo run --release -p tus-server --example auth_cost`
//!
//! Keys are made here (RSA generated, P-256 and Ed25519 from fixed seeds) and never written.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures_util::FutureExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tus_core::auth::Authorize as _;
use tus_server::auth::JwtAuthorizer;
use tus_server::auth::reasons::{BAD_SIGNATURE, EXPIRED, MALFORMED, MISSING, UNKNOWN_KEY};

type Error = Box<dyn std::error::Error>;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench";

/// A signing key and its public key as PEM.
struct KeyPair {
    signing: EncodingKey,
    pem: String,
}

fn pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
}

fn rsa_key() -> Result<KeyPair, Error> {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)?;
    let public = rsa::pkcs8::EncodePublicKey::to_public_key_der(&key.to_public_key())?;
    Ok(KeyPair { signing: EncodingKey::from_rsa_der(key.to_pkcs1_der()?.as_bytes()), pem: pem(public.as_bytes()) })
}

fn ec_key(seed: u8) -> Result<KeyPair, Error> {
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32])?;
    let private = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)?;
    let public = p256::pkcs8::EncodePublicKey::to_public_key_der(key.verifying_key())?;
    Ok(KeyPair { signing: EncodingKey::from_ec_der(private.as_bytes()), pem: pem(public.as_bytes()) })
}

fn ed_key(seed: u8) -> Result<KeyPair, Error> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let public = key.verifying_key().to_public_key_der()?;
    Ok(KeyPair { signing: EncodingKey::from_ed_der(key.to_pkcs8_der()?.as_bytes()), pem: pem(public.as_bytes()) })
}

fn claims(sub: &str) -> Result<Value, Error> {
    Ok(json!({ "sub": sub, "exp": SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 600 }))
}

fn sign(alg: Algorithm, claims: &Value, key: &EncodingKey) -> Result<String, Error> {
    Ok(jsonwebtoken::encode(&Header::new(alg), claims, key)?)
}

/// The payload swapped under a valid signature: a full verification that fails.
fn tampered(token: &str) -> Result<String, Error> {
    let parts: Vec<&str> = token.split('.').collect();
    let [head, _, signature] = parts[..] else { return Err("not a JWS".into()) };
    Ok(format!("{head}.{}.{signature}", B64.encode(claims("mallory")?.to_string())))
}

fn request(authorization: Option<&str>) -> Result<http::request::Parts, Error> {
    let mut builder = http::Request::builder();
    if let Some(value) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    Ok(builder.body(())?.into_parts().0)
}

fn bearer(token: &str) -> Result<http::request::Parts, Error> {
    request(Some(&format!("Bearer {token}")))
}

/// `ok`, or the refusal's reason; the JWT authorizer never waits.
fn outcome(auth: &JwtAuthorizer, parts: &http::request::Parts) -> Result<&'static str, Error> {
    let decided = auth.authorize(parts).now_or_never().ok_or("authorize waited")?;
    Ok(decided.map_or_else(|refused| refused.reason, |_| "ok"))
}

fn main() -> Result<(), Error> {
    let (rsa, ec, ec2, ed) = (rsa_key()?, ec_key(7)?, ec_key(9)?, ed_key(3)?);
    let hs_key = EncodingKey::from_secret(SECRET)?;
    let hs_a = JwtAuthorizer::from_key_bytes(SECRET)?;
    let rsa_a = JwtAuthorizer::from_key_bytes(rsa.pem.as_bytes())?;
    let ec_a = JwtAuthorizer::from_key_bytes(ec.pem.as_bytes())?;
    let ed_a = JwtAuthorizer::from_key_bytes(ed.pem.as_bytes())?;
    let ec_rotated = JwtAuthorizer::from_key_bytes(format!("{}{}", ec.pem, ec2.pem).as_bytes())?;
    let good = |alg, key| -> Result<_, Error> { bearer(&sign(alg, &claims("a")?, key)?) };
    let bad = |alg, key| -> Result<_, Error> { bearer(&tampered(&sign(alg, &claims("a")?, key)?)?) };
    let expired = sign(Algorithm::HS256, &json!({ "sub": "a", "exp": 1000 }), &hs_key)?;

    let cases: Vec<(&str, &JwtAuthorizer, http::request::Parts, &str)> = vec![
        ("denied: no token", &hs_a, request(None)?, MISSING),
        ("denied: not a JWT", &hs_a, bearer("a.b.c")?, MALFORMED),
        ("denied: 1 MB token", &hs_a, bearer(&"a".repeat(1 << 20))?, MALFORMED),
        ("denied: HS256 token vs RSA key", &rsa_a, good(Algorithm::HS256, &hs_key)?, UNKNOWN_KEY),
        ("denied: HS256 bad signature", &hs_a, bad(Algorithm::HS256, &hs_key)?, BAD_SIGNATURE),
        ("denied: HS256 expired", &hs_a, bearer(&expired)?, EXPIRED),
        ("denied: RS256 bad signature", &rsa_a, bad(Algorithm::RS256, &rsa.signing)?, BAD_SIGNATURE),
        ("denied: ES256 bad signature", &ec_a, bad(Algorithm::ES256, &ec.signing)?, BAD_SIGNATURE),
        ("denied: ES256 bad sig, 2 keys", &ec_rotated, bad(Algorithm::ES256, &ec.signing)?, BAD_SIGNATURE),
        ("denied: EdDSA bad signature", &ed_a, bad(Algorithm::EdDSA, &ed.signing)?, BAD_SIGNATURE),
        ("accepted: HS256", &hs_a, good(Algorithm::HS256, &hs_key)?, "ok"),
        ("accepted: RS256 (2048 bits)", &rsa_a, good(Algorithm::RS256, &rsa.signing)?, "ok"),
        ("accepted: ES256", &ec_a, good(Algorithm::ES256, &ec.signing)?, "ok"),
        ("accepted: ES256, 2nd of 2 keys", &ec_rotated, good(Algorithm::ES256, &ec2.signing)?, "ok"),
        ("accepted: EdDSA", &ed_a, good(Algorithm::EdDSA, &ed.signing)?, "ok"),
    ];
    for (what, auth, parts, expected) in &cases {
        // A case that does not end as intended would measure something else.
        let got = outcome(auth, parts)?;
        if got != *expected {
            return Err(format!("{what}: {got}, not {expected}").into());
        }
        let asymmetric = ["RS256", "ES256", "EdDSA"].iter().any(|alg| what.contains(alg));
        let rounds = if asymmetric { 300 } else { 5000 };
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(outcome(auth, std::hint::black_box(parts))?);
        }
        let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!("{what:<34} {expected:<14} {micros:>9.2} µs per authorize");
    }
    Ok(())
}
