//! Operating the server: TLS and HTTP/2, h2c, proxies, connection and header limits, and the
//! health and metrics endpoints.
#![allow(clippy::unwrap_used)] // test fixtures: a failed setup step should just fail the test

use std::process::Command;
use std::time::Duration;

use conformance_tests::{Conn, Request, TestServer, get};

/// Runs curl (installed with the test tools) and returns its stdout.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("curl is needed for these tests ({e}): apt-get install curl"));
    assert!(out.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `OPTIONS url` with curl and `flags`: the status code and HTTP version it got, e.g. `200 2`.
fn curl_options(flags: &[&str], url: &str) -> String {
    let mut args = flags.to_vec();
    args.extend(["-X", "OPTIONS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", url]);
    curl(&args)
}

#[test]
fn tls_serves_http2_and_http11() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let s = TestServer::spawn(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(s.url().starts_with("https://"), "{}", s.url());
    // ALPN offers both: each client gets the version it asks for.
    for (flag, answer) in [("--http2", "200 2"), ("--http1.1", "200 1.1")] {
        assert_eq!(curl_options(&["--cacert", &cert, flag], s.url()), answer, "{flag}");
    }
    // A whole upload over HTTP/2.
    let created = curl(&[
        "--cacert",
        &cert,
        "--http2",
        "-X",
        "POST",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        "Upload-Length: 5",
        "-D",
        "-",
        "-o",
        "/dev/null",
        s.url(),
    ]);
    let location = created.lines().find_map(|l| l.strip_prefix("location: ")).unwrap().trim().to_owned();
    assert!(location.starts_with("https://127.0.0.1:"), "{location}");
    let patched = curl(&[
        "--cacert",
        &cert,
        "--http2",
        "-X",
        "PATCH",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        "Upload-Offset: 0",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "--data-binary",
        "hello",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &location,
    ]);
    assert_eq!(patched, "204");
    assert_eq!(curl(&["--cacert", &cert, "--http2", &location]), "hello");
}

#[test]
fn h2c_prior_knowledge_on_the_plain_port() {
    let s = TestServer::spawn(&[]);
    assert_eq!(curl_options(&["--http2-prior-knowledge"], s.url()), "200 2");
}

#[test]
fn behind_proxy_location_follows_forwarded_headers_only_when_trusted() {
    let forwarded = |s: &TestServer| {
        s.post()
            .header("Upload-Length", "1")
            .header("X-Forwarded-Host", "uploads.example.com")
            .header("X-Forwarded-Proto", "https")
            .send()
            .location()
            .to_owned()
    };
    let trusting = TestServer::spawn(&["--behind-proxy"]);
    assert!(forwarded(&trusting).starts_with("https://uploads.example.com/files/"));
    let plain = TestServer::spawn(&[]);
    assert!(forwarded(&plain).starts_with(&format!("{}/files/", plain.origin())));
    let rfc7239 = trusting
        .post()
        .header("Upload-Length", "1")
        .header("Forwarded", "for=10.0.0.1;host=u.example;proto=https")
        .send();
    assert!(rfc7239.location().starts_with("https://u.example/files/"));
}

#[test]
fn connection_limit_queues_extra_connections() {
    let s = TestServer::spawn(&["--max-connections", "2"]);
    let first = Conn::connect(s.authority(), Duration::from_secs(5)).unwrap();
    let second = Conn::connect(s.authority(), Duration::from_secs(5)).unwrap();
    // The third connection is accepted by the kernel but not served while two are open.
    let blocked = Request::new("OPTIONS", s.url()).timeout(Duration::from_millis(700)).try_send();
    assert!(blocked.is_err(), "a third connection was served: {blocked:?}");
    drop(first);
    let served = Request::new("OPTIONS", s.url()).timeout(Duration::from_secs(5)).send();
    served.expect_status(200);
    drop(second);
}

#[test]
fn oversized_request_heads_get_431_and_the_server_stays_up() {
    let s = TestServer::spawn(&["--max-header-size", "16384"]);
    let res =
        s.post().header("Upload-Length", "1").header("Upload-Metadata", format!("k {}", "A".repeat(40_000))).try_send();
    if let Ok(res) = res {
        res.expect_status(431);
    }
    s.options().expect_status(200);
}

#[test]
fn health_ready_and_metrics_on_the_filesystem_store() {
    let s = TestServer::spawn(&[]);
    let url = s.create(3);
    conformance_tests::patch(&url, 0, b"abc").expect_status(204);
    get(&format!("{}/health", s.origin())).expect_status(200);
    get(&format!("{}/ready", s.origin())).expect_status(200);
    let metrics = get(&format!("{}/metrics", s.origin()));
    metrics.expect_status(200);
    let text = metrics.text();
    assert!(text.contains("tus_requests_total{method=\"PATCH\",status=\"204\"} 1"), "{text}");
    assert!(text.contains("tus_bytes_received_total 3"), "{text}");
    assert!(text.contains("tus_uploads_total{event=\"finished\"} 1"), "{text}");
    assert!(text.contains("tus_open_connections"), "{text}");
}
