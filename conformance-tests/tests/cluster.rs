//! Several instances over shared storage, and the operations a production server needs.
//!
//! Two `tus-server` processes share one S3 bucket (moto, from `TUS_TEST_MOTO_ENDPOINT`, which
//! `scripts/test-all.sh` starts) and one Redis (each test starts its own `redis-server` on a
//! free loopback port) for their upload locks.
#![allow(clippy::unwrap_used)] // test fixtures: a failed setup step should just fail the test

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use conformance_tests::{Request, TestServer, get, head, offset, patch, poll, pseudo_random};

/// A redis-server of our own.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Redis { child: None, port };
        redis.restart();
        redis
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): `apt-get install redis-server` (scripts/test-all.sh does)")
            });
        self.child = Some(child);
        let up = poll(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", self.port)).ok());
        assert!(up.is_some(), "redis-server did not start");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh bucket on the shared moto server.
fn moto_bucket() -> (String, String) {
    let endpoint = std::env::var("TUS_TEST_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TUS_TEST_MOTO_ENDPOINT is not set: these tests need a moto S3 server (and AWS_ACCESS_KEY_ID etc.). \
             Run `bash scripts/test-all.sh`, which starts one."
        )
    });
    assert!(
        std::env::var("AWS_ACCESS_KEY_ID").is_ok(),
        "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (any value for moto)"
    );
    let bucket = format!("cluster-{}", &tus_id());
    Request::new("PUT", &format!("{endpoint}/{bucket}")).body(b"").send().expect_status(200);
    (endpoint, bucket)
}

fn tus_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

struct Cluster {
    a: TestServer,
    b: TestServer,
    redis: Redis,
}

fn cluster(extra: &[&str]) -> Cluster {
    let redis = Redis::start();
    let (endpoint, bucket) = moto_bucket();
    let url = redis.url();
    let mut args =
        vec!["--s3-bucket", &bucket, "--s3-endpoint", &endpoint, "--s3-force-path-style", "--redis-url", &url];
    args.extend_from_slice(extra);
    let a = TestServer::spawn(&args);
    let b = TestServer::spawn(&args);
    Cluster { a, b, redis }
}

/// The same upload's URL on the other instance.
fn on(server: &TestServer, url: &str) -> String {
    format!("{}{}", server.url(), url.rsplit('/').next().unwrap())
}

#[test]
fn upload_cut_on_a_resumes_on_b_with_identical_bytes() {
    let c = cluster(&[]);
    let data = pseudo_random(12 << 20, 11);
    let url_a = c.a.create(data.len() as u64);
    let mut conn = Request::patch(&url_a, 0, &[]).header("Content-Length", data.len().to_string()).open();
    conn.write_all(&data[..7 << 20]).unwrap();
    thread::sleep(Duration::from_millis(300));
    drop(conn);
    let url_b = on(&c.b, &url_a);
    let resumed = poll(Duration::from_secs(10), || {
        let o = offset(&url_b);
        (o > 0).then_some(o)
    })
    .expect("B sees the bytes A stored");
    assert!(resumed <= 7 << 20);
    patch(&url_b, resumed, &data[resumed as usize..]).expect_status(204);
    assert_eq!(get(&url_b).body, data);
    assert_eq!(get(&url_a).body, data);
}

#[test]
fn a_stale_patch_on_a_is_interrupted_by_a_resume_on_b_quickly() {
    let c = cluster(&[]);
    let url_a = c.a.create(10 << 20);
    let mut stale = Request::patch(&url_a, 0, &[]).header("Content-Length", (10 << 20).to_string()).open();
    stale.write_all(&pseudo_random(6 << 20, 3)).unwrap();
    thread::sleep(Duration::from_millis(300));
    // The stale connection is still open (its client vanished without closing): B must not
    // wait for A's read timeout, and must not answer 423.
    let started = Instant::now();
    let res = head(&on(&c.b, &url_a));
    res.expect_status(200);
    assert!(started.elapsed() < Duration::from_secs(3), "HEAD on B took {:?}", started.elapsed());
    let at = res.offset();
    let more = patch(&on(&c.b, &url_a), at, &pseudo_random(1000, 4));
    more.expect_status(204);
    assert_eq!(more.offset(), at + 1000);
}

#[test]
fn concurrent_patches_through_a_and_b_never_corrupt_the_upload() {
    let c = cluster(&[]);
    let len = 8 << 20;
    let url_a = c.a.create(len as u64);
    let url_b = on(&c.b, &url_a);
    let data = pseudo_random(len, 5);
    let (d1, d2) = (data.clone(), data.clone());
    let (ua, ub) = (url_a.clone(), url_b.clone());
    let t1 = thread::spawn(move || patch(&ua, 0, &d1).status);
    let t2 = thread::spawn(move || patch(&ub, 0, &d2).status);
    let statuses = [t1.join().unwrap(), t2.join().unwrap()];
    // Each either stored its bytes or got the protocol's answer (409 offset moved, 400
    // interrupted); never a 5xx.
    for s in statuses {
        assert!([204, 400, 409].contains(&s), "statuses {statuses:?}");
    }
    let o = offset(&url_a);
    if o < len as u64 {
        patch(&url_b, o, &data[o as usize..]).expect_status(204);
    }
    assert_eq!(get(&url_a).body, data, "statuses {statuses:?}");
}

#[test]
fn a_killed_lock_holder_frees_the_upload_when_its_lease_expires() {
    let mut c = cluster(&["--redis-lock-lease", "2s"]);
    let url_a = c.a.create(4 << 20);
    let mut conn = Request::patch(&url_a, 0, &[]).header("Content-Length", (4 << 20).to_string()).open();
    conn.write_all(&pseudo_random(1 << 20, 9)).unwrap();
    thread::sleep(Duration::from_millis(300));
    c.a.kill();
    drop(conn);
    let url_b = on(&c.b, &url_a);
    let started = Instant::now();
    let o = offset(&url_b);
    assert!(started.elapsed() < Duration::from_secs(8), "B waited {:?} for the dead holder's lease", started.elapsed());
    patch(&url_b, o, &pseudo_random((4 << 20) - o as usize, 10)).expect_status(204);
    assert_eq!(offset(&url_b), 4 << 20);
}

#[test]
fn metrics_count_requests_and_ready_follows_redis() {
    let mut c = cluster(&[]);
    for _ in 0..3 {
        let url = c.a.create(5);
        patch(&url, 0, b"hello").expect_status(204);
    }
    patch(&c.a.unknown_url(), 0, b"x").expect_status(404);
    let metrics = get(&format!("{}/metrics", c.a.origin()));
    metrics.expect_status(200);
    let text = metrics.text();
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    };
    assert_eq!(value("tus_requests_total{method=\"POST\",status=\"201\"}"), 3.0);
    assert_eq!(value("tus_requests_total{method=\"PATCH\",status=\"204\"}"), 3.0);
    assert_eq!(value("tus_errors_total{code=\"ERR_UPLOAD_NOT_FOUND\"}"), 1.0);
    assert_eq!(value("tus_uploads_total{event=\"created\"}"), 3.0);
    assert_eq!(value("tus_bytes_received_total"), 15.0);
    assert!(text.contains("tus_store_request_seconds_bucket"));

    get(&format!("{}/health", c.a.origin())).expect_status(200);
    get(&format!("{}/ready", c.a.origin())).expect_status(200);
    c.redis.stop();
    let not_ready =
        poll(Duration::from_secs(10), || (get(&format!("{}/ready", c.a.origin())).status == 503).then_some(()));
    assert!(not_ready.is_some(), "/ready stayed 200 with Redis down");
    get(&format!("{}/health", c.a.origin())).expect_status(200);
}

#[test]
fn sigterm_mid_upload_exits_zero_and_leaves_a_resumable_upload() {
    let mut c = cluster(&[]);
    let url_a = c.a.create(3 << 20);
    let mut conn = Request::patch(&url_a, 0, &[]).header("Content-Length", (3 << 20).to_string()).open();
    conn.write_all(&pseudo_random(1 << 20, 12)).unwrap();
    thread::sleep(Duration::from_millis(300));
    let code = c.a.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0));
    drop(conn);
    let url_b = on(&c.b, &url_a);
    let o = offset(&url_b);
    assert_eq!(o, 1 << 20, "the bytes received before SIGTERM were kept");
    patch(&url_b, o, &pseudo_random((3 << 20) - (1 << 20), 13)).expect_status(204);
}

/// A bearer token for `sub`, valid for an hour, signed with `secret`.
fn bearer(secret: &str, sub: &str) -> String {
    let claims = format!(r#"{{"sub":"{sub}","exp":{}}}"#, conformance_tests::in_an_hour());
    format!("Bearer {}", conformance_tests::hs256_token(secret, &claims))
}

/// The HS256 secret of the quota tests.
const SECRET: &str = "cluster-quota-test-secret-0123456789";

/// `secret` in a key file for `--auth-jwt-key-file` (gone with the returned directory).
fn key_file(secret: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("jwt.key");
    std::fs::write(&key, secret).unwrap();
    let key = key.display().to_string();
    (dir, key)
}

#[test]
fn the_quota_is_shared_by_instances_through_redis() {
    let (_dir, key) = key_file(SECRET);
    let secret = SECRET;
    let c = cluster(&["--auth-jwt-key-file", &key, "--quota-uploads", "2"]);
    let create = |s: &TestServer, user: &str| {
        s.post().header("Upload-Length", "5").header("Authorization", bearer(secret, user)).body(b"").send()
    };
    create(&c.a, "alice").expect_status(201);
    let second = create(&c.b, "alice");
    second.expect_status(201);
    // The third, on either instance, would cross the quota the two share.
    for s in [&c.a, &c.b] {
        let refused = create(s, "alice");
        assert_eq!(refused.status, 413, "{refused}");
        assert!(refused.text().contains("uploads quota exceeded: limit 2, 0 left"), "{refused}");
    }
    // Finishing an upload on B frees a place on A.
    let url = c.b.resolve(second.location());
    let done = Request::patch(&url, 0, b"hello").header("Authorization", bearer(secret, "alice")).send();
    done.expect_status(204);
    create(&c.a, "alice").expect_status(201);
    create(&c.a, "bob").expect_status(201);
    drop(c.redis);
}

#[test]
fn quota_counts_lost_with_redis_come_back_when_an_instance_starts() {
    let (_dir, key) = key_file(SECRET);
    let secret = SECRET;
    let mut redis = Redis::start();
    let (endpoint, bucket) = moto_bucket();
    let url = redis.url();
    let args = [
        "--s3-bucket",
        &bucket,
        "--s3-endpoint",
        &endpoint,
        "--s3-force-path-style",
        "--redis-url",
        &url,
        "--auth-jwt-key-file",
        &key,
        "--quota-uploads",
        "2",
    ];
    let (mut a, b) = (TestServer::spawn(&args), TestServer::spawn(&args));
    let create = |s: &TestServer| {
        s.post().header("Upload-Length", "5").header("Authorization", bearer(secret, "alice")).body(b"").send()
    };
    create(&a).expect_status(201);
    create(&b).expect_status(201);
    assert_eq!(create(&b).status, 413);
    // A Redis without persistence restarts: every count is gone...
    redis.stop();
    redis.restart();
    // ...until an instance starts and reconciles the book with the bucket.
    a.kill();
    let a = TestServer::spawn(&args);
    // (In the background: a few listings and reads of two uploads on moto.)
    std::thread::sleep(Duration::from_secs(3));
    let refused = create(&b);
    assert_eq!(refused.status, 413, "the quota did not hold again after the Redis restart: {refused}");
    assert!(refused.text().contains("uploads quota exceeded: limit 2, 0 left"), "{refused}");
    drop(a);
}

#[test]
fn zero_byte_holdings_in_redis_grow_and_go_back() {
    // Deferred-length uploads hold 0 bytes until bytes arrive, and final uploads hold 0 bytes
    // for good: the scripts must grow and release such holdings (Redis refuses "-0").
    let (_dir, key) = key_file(SECRET);
    let c = cluster(&["--auth-jwt-key-file", &key, "--quota-uploads", "2", "--quota-bytes", "1000"]);
    let auth = || bearer(SECRET, "alice");
    let deferred = c.a.post().header("Upload-Defer-Length", "1").header("Authorization", auth()).body(b"").send();
    deferred.expect_status(201);
    let url = c.a.resolve(deferred.location());
    // Bytes into a deferred upload grow its holding from 0, with and without a Content-Length.
    Request::patch(&url, 0, b"hello").header("Authorization", auth()).send().expect_status(204);
    let done = Request::patch(&url, 5, b" world").header("Authorization", auth()).header("Upload-Length", "11").send();
    done.expect_status(204);
    // A partial and a final over it: the final holds 0 bytes, and goes when assembled.
    let partial =
        c.b.post()
            .headers(&[("Upload-Length", "3"), ("Upload-Concat", "partial")])
            .header("Authorization", auth())
            .body(b"")
            .send();
    partial.expect_status(201);
    let partial_url = c.b.resolve(partial.location());
    let path = format!("/{}", partial_url.splitn(4, '/').nth(3).unwrap());
    let final_ =
        c.b.post().header("Upload-Concat", format!("final;{path}")).header("Authorization", auth()).body(b"").send();
    final_.expect_status(201);
    let refused = c.a.post().header("Upload-Length", "1").header("Authorization", auth()).body(b"").send();
    assert_eq!(refused.status, 413, "partial and final count as two: {refused}");
    Request::patch(&partial_url, 0, b"abc").header("Authorization", auth()).send().expect_status(204);
    let final_url = c.b.resolve(final_.location());
    let assembled = poll(Duration::from_secs(10), || {
        let res = Request::tus("HEAD", &final_url).header("Authorization", auth()).send();
        (res.header("Upload-Offset") == Some("3")).then_some(res)
    });
    assert!(assembled.is_some(), "final never assembled");
    for s in [&c.a, &c.b] {
        s.post().header("Upload-Length", "1").header("Authorization", auth()).body(b"").send().expect_status(201);
    }
}
