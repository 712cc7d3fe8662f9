//! Authentication, ownership and quotas through the binary (issue 14), with real HS256 JWTs:
//! no or bad token gets `401`; an upload belongs to its token's `sub`, and anyone else's
//! requests for it are answered as for an upload that does not exist; signed download URLs
//! need no token; quotas refuse the upload that would cross them and free up as uploads finish
//! or go. Runs on the fs store and, through `TUS_SERVER_ARGS`, on S3.
#![allow(clippy::unwrap_used)] // test fixtures: a failed setup step should just fail the test

use std::time::Duration;

use conformance_tests::{Request, Response, TestServer, get, poll};

const SECRET: &str = "conformance-auth-test-secret-0123456789";
const SIGNING_KEY: &str = "conformance-auth-signing-key-0123456789";

/// An HS256 token for `sub` with extra claims, signed with `secret`, valid for an hour.
fn token_with(secret: &str, sub: &str, extra: serde_json::Value) -> String {
    let mut claims = serde_json::json!({ "sub": sub, "exp": conformance_tests::in_an_hour() });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    conformance_tests::hs256_token(secret, &claims.to_string())
}

fn token(sub: &str) -> String {
    token_with(SECRET, sub, serde_json::json!({}))
}

/// The key file and the flags of a server that authenticates with it.
struct Auth {
    dir: tempfile::TempDir,
}

impl Auth {
    fn new() -> Auth {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwt.key"), format!("{SECRET}\n")).unwrap();
        Auth { dir }
    }

    fn key_file(&self) -> String {
        self.dir.path().join("jwt.key").display().to_string()
    }

    fn server(&self, extra: &[&str]) -> TestServer {
        let key = self.key_file();
        let mut args = vec!["--auth-jwt-key-file", key.as_str()];
        args.extend_from_slice(extra);
        TestServer::spawn(&args)
    }
}

fn as_user(req: Request, user: &str) -> Request {
    req.header("Authorization", format!("Bearer {}", token(user)))
}

fn create(s: &TestServer, user: &str, headers: &[(&str, &str)]) -> Response {
    as_user(s.post().headers(headers).body(b""), user).send()
}

fn created(s: &TestServer, user: &str, length: u64) -> String {
    let res = create(s, user, &[("Upload-Length", &length.to_string())]);
    res.expect_status(201);
    s.resolve(res.location())
}

fn patch_as(user: &str, url: &str, offset: u64, data: &[u8]) -> Response {
    as_user(Request::patch(url, offset, data), user).send()
}

#[test]
fn no_token_or_a_bad_one_gets_401_with_a_challenge() {
    let auth = Auth::new();
    let s = auth.server(&[]);
    let res = s.post().header("Upload-Length", "1").body(b"").send();
    res.expect_status(401);
    assert!(res.header("WWW-Authenticate").is_some_and(|c| c.starts_with("Bearer")), "{res}");
    for bad in [
        "Bearer not-a-jwt".to_owned(),
        format!("Bearer {}", token_with("another-secret-of-enough-length-000", "alice", serde_json::json!({}))),
        format!("Bearer {}", token("alice").replace("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJhbGciOiJub25lIn0")),
        // Past the 8 KiB a token may have, within the header limit (past that: 431).
        format!("Bearer {}", "A".repeat(10_000)),
    ] {
        let res = s.post().header("Upload-Length", "1").header("Authorization", bad.clone()).body(b"").send();
        assert_eq!(res.status, 401, "{}: {res}", &bad[..bad.len().min(40)]);
    }
    s.options().expect_status(200);
    s.assert_healthy();
}

#[test]
fn a_token_cookie_sent_twice_is_refused_unless_a_bearer_token_comes_too() {
    let auth = Auth::new();
    let s = auth.server(&["--auth-jwt-cookie", "__Host-tus"]);
    let (mine, planted) = (token("victim"), token("attacker"));
    let cookie = |value: String| s.post().header("Upload-Length", "1").header("Cookie", value);
    cookie(format!("__Host-tus={mine}")).body(b"").send().expect_status(201);
    // A second cookie of the name (as a sibling subdomain could plant): neither is trusted.
    let res = cookie(format!("__Host-tus={planted}; __Host-tus={mine}")).body(b"").send();
    res.expect_status(401);
    assert!(res.header("WWW-Authenticate").is_some_and(|c| c.contains("duplicate_cookie")), "{res}");
    // The header still wins over cookies.
    let res = as_user(cookie(format!("__Host-tus={planted}; __Host-tus={mine}")), "header").body(b"").send();
    res.expect_status(201);
    s.assert_healthy();
}

#[test]
fn an_upload_belongs_to_its_token_and_no_one_else_sees_it() {
    let auth = Auth::new();
    let s = auth.server(&[]);
    let url = created(&s, "alice", 10);
    patch_as("alice", &url, 0, b"hello").expect_status(204);
    for (method, req) in [
        ("HEAD", Request::tus("HEAD", &url)),
        ("PATCH", Request::patch(&url, 5, b"evil!")),
        ("DELETE", Request::tus("DELETE", &url)),
        ("GET", Request::new("GET", &url)),
    ] {
        let res = as_user(req, "bob").send();
        assert_eq!(res.status, 404, "{method} by another owner:\n{res}");
    }
    // A final may not list another owner's partial.
    let partial = s.resolve(create(&s, "alice", &[("Upload-Length", "1"), ("Upload-Concat", "partial")]).location());
    let final_of_bob = create(&s, "bob", &[("Upload-Concat", &format!("final;{partial}"))]);
    assert_eq!(final_of_bob.status, 400, "{final_of_bob}");
    // Alice's upload is untouched and hers to finish.
    let h = as_user(Request::tus("HEAD", &url), "alice").send();
    assert_eq!(h.offset(), 5, "{h}");
    patch_as("alice", &url, 5, b"world").expect_status(204);
    // With authentication on, every finished upload is checked (a token may narrow its types).
    let served = poll(Duration::from_secs(10), || {
        let res = as_user(Request::new("GET", &url), "alice").send();
        (res.status == 200).then_some(res.body)
    });
    assert_eq!(served.as_deref(), Some(&b"helloworld"[..]));
}

#[test]
fn the_owner_resumes_after_a_restart_and_a_signed_url_needs_no_token() {
    let auth = Auth::new();
    let dir = tempfile::tempdir().unwrap();
    let key = auth.key_file();
    let flags = ["--auth-jwt-key-file", key.as_str(), "--signing-key", SIGNING_KEY];
    let path = {
        let first = TestServer::spawn_in(dir.path(), &flags);
        let url = created(&first, "alice", 10);
        patch_as("alice", &url, 0, b"hello").expect_status(204);
        url.strip_prefix(first.origin()).unwrap().to_owned()
    };
    let second = TestServer::spawn_in(dir.path(), &flags);
    let url = format!("{}{path}", second.origin());
    assert_eq!(as_user(Request::tus("HEAD", &url), "bob").send().status, 404);
    assert_eq!(as_user(Request::tus("HEAD", &url), "alice").send().offset(), 5);
    patch_as("alice", &url, 5, b"world").expect_status(204);
    let id = url.rsplit('/').next().unwrap();
    let out = std::process::Command::new(conformance_tests::server_binary())
        .args(["sign-url", id, "--signing-key", SIGNING_KEY, "--public-url", second.origin(), "--base-path"])
        .arg(second.base_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let signed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let served = poll(Duration::from_secs(10), || {
        let res = get(&signed);
        (res.status != 409).then_some(res)
    })
    .unwrap();
    // Object stores serve the bytes themselves: the signed URL redirects there.
    let served = if served.status == 307 { get(served.header("Location").unwrap()) } else { served };
    assert_eq!((served.status, served.body.as_slice()), (200, &b"helloworld"[..]), "{served}");
}

#[test]
fn quotas_refuse_the_upload_that_would_cross_them_and_free_up() {
    let auth = Auth::new();
    let s = auth.server(&["--quota-uploads", "2", "--quota-bytes", "100"]);
    let first = created(&s, "alice", 60);
    let res = create(&s, "alice", &[("Upload-Length", "50")]);
    res.expect_status(413);
    assert!(res.text().contains("bytes quota exceeded: limit 100, 40 left"), "{res}");
    let second = created(&s, "alice", 40);
    let res = create(&s, "alice", &[("Upload-Length", "0")]);
    res.expect_status(201);
    let res = create(&s, "alice", &[("Upload-Defer-Length", "1")]);
    res.expect_status(413);
    assert!(res.text().contains("uploads quota exceeded: limit 2, 0 left"), "{res}");
    // Another owner has a quota of its own.
    created(&s, "bob", 100);
    // Completion and termination give back what an upload held.
    patch_as("alice", &first, 0, &[7u8; 60]).expect_status(204);
    created(&s, "alice", 60);
    as_user(Request::tus("DELETE", &second), "alice").send().expect_status(204);
    created(&s, "alice", 40);
    create(&s, "alice", &[("Upload-Length", "1")]).expect_status(413);
    let metrics = get(&format!("{}/metrics", s.origin())).text();
    let refused = |which: &str| {
        let line = format!("tus_quota_refusals_total{{quota=\"{which}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)?.parse::<f64>().ok()).unwrap_or(0.0)
    };
    assert_eq!((refused("bytes"), refused("uploads")), (1.0, 2.0), "{metrics}");
}

#[test]
fn quota_counts_survive_a_restart() {
    let auth = Auth::new();
    let dir = tempfile::tempdir().unwrap();
    let key = auth.key_file();
    let flags = ["--auth-jwt-key-file", key.as_str(), "--quota-uploads", "1"];
    {
        let first = TestServer::spawn_in(dir.path(), &flags);
        created(&first, "alice", 10);
    }
    let second = TestServer::spawn_in(dir.path(), &flags);
    let refused = poll(Duration::from_secs(5), || {
        (create(&second, "alice", &[("Upload-Length", "1")]).status == 413).then_some(())
    });
    assert_eq!(refused, Some(()), "the restarted server forgot Alice's unfinished upload");
    created(&second, "bob", 1);
}
