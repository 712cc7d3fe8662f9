//! Direct-to-S3 uploads through the signing API (`--direct-s3`), raw: what the server refuses
//! at completion (wrong, missing or foreign parts, another owner's upload, too many bytes),
//! single-request uploads found by the sweep and by S3 events, and two instances.
//!
//! Every test runs against moto (`TUS_TEST_MOTO_ENDPOINT`, started by `scripts/test-all.sh`)
//! and against s3s-fs (the workspace's `s3s_fs_server` example, started here); the parts go
//! straight to the S3 server over presigned URLs, never through tus-server.
#![allow(clippy::unwrap_used)] // test fixtures: a failed setup step should just fail the test

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use conformance_tests::{Request, Response, TestServer, hs256_token, in_an_hour, poll, pseudo_random, write_script};
use serde_json::{Value, json};

const PART: usize = 5 * 1024 * 1024;
const SECRET: &str = "direct-s3-test-secret-of-enough-length";

/// An S3 server the tests upload to.
struct S3 {
    name: &'static str,
    endpoint: String,
    bucket: String,
    /// s3s-fs: the process and its root directory (objects are files there).
    fs: Option<(Child, tempfile::TempDir)>,
}

impl Drop for S3 {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.fs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

fn moto() -> S3 {
    let endpoint = std::env::var("TUS_TEST_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TUS_TEST_MOTO_ENDPOINT is not set: these tests need a moto S3 server (and AWS_ACCESS_KEY_ID etc.). \
             Run `bash scripts/test-all.sh`, which starts one."
        )
    });
    let bucket = format!("direct-{}", unique());
    Request::new("PUT", &format!("{endpoint}/{bucket}")).body(b"").send().expect_status(200);
    S3 { name: "moto", endpoint, bucket, fs: None }
}

fn s3s_fs() -> S3 {
    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/examples/s3s_fs_server");
    assert!(binary.exists(), "{} is missing: `cargo build --workspace --all-targets` builds it", binary.display());
    let dir = tempfile::tempdir().unwrap();
    let bucket = "direct".to_owned();
    let mut child = Command::new(&binary)
        .arg(dir.path())
        .arg(&bucket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let endpoint = conformance_tests::extract_url(&line).expect("s3s_fs_server prints its URL");
    S3 { name: "s3s-fs", endpoint, bucket, fs: Some((child, dir)) }
}

fn both() -> [S3; 2] {
    [moto(), s3s_fs()]
}

impl S3 {
    /// Whether the object `key` exists in the bucket.
    fn exists(&self, key: &str) -> bool {
        match &self.fs {
            Some((_, dir)) => dir.path().join(&self.bucket).join(key).exists(),
            None => {
                let url = format!("{}/{}?list-type=2&prefix={key}", self.endpoint, self.bucket);
                let listed = Request::new("GET", &url).send();
                assert_eq!(listed.status, 200, "{listed}");
                listed.text().contains(&format!("<Key>{key}</Key>"))
            }
        }
    }

    fn server(&self, extra: &[&str]) -> Direct {
        let mut args = vec![
            "--s3-bucket",
            &self.bucket,
            "--s3-endpoint",
            &self.endpoint,
            "--s3-force-path-style",
            "--s3-object-prefix",
            "tmp/",
            "--direct-s3",
        ];
        args.extend_from_slice(extra);
        Direct { server: Rc::new(TestServer::spawn(&args)), user: None }
    }
}

/// A tus-server with the direct routes, and the user its requests act for.
struct Direct {
    server: Rc<TestServer>,
    user: Option<String>,
}

impl Direct {
    fn as_user(&self, user: &str) -> Direct {
        Direct { server: self.server.clone(), user: Some(user.to_owned()) }
    }

    fn request(&self, method: &str, path: &str) -> Request {
        self.request_to(method, &format!("{}{path}", self.server.origin()))
    }

    fn request_to(&self, method: &str, url: &str) -> Request {
        let req = Request::new(method, url);
        match &self.user {
            Some(user) => req.header(
                "Authorization",
                format!("Bearer {}", hs256_token(SECRET, &format!(r#"{{"sub":"{user}","exp":{}}}"#, in_an_hour()))),
            ),
            None => req,
        }
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        }
        let res = req.send();
        (res.status, serde_json::from_slice(&res.body).unwrap_or(Value::Null))
    }

    /// `POST /s3/multipart`: (key, uploadId).
    fn create(&self, name: &str, mime: &str) -> (String, String) {
        let (status, body) = self.json(
            "POST",
            "/s3/multipart",
            Some(json!({ "filename": name, "type": mime, "metadata": { "name": name } })),
        );
        assert_eq!(status, 200, "{body}");
        (body["key"].as_str().unwrap().to_owned(), body["uploadId"].as_str().unwrap().to_owned())
    }

    fn part_path(upload_id: &str, tail: &str, key: &str) -> String {
        format!("/s3/multipart/{upload_id}{tail}?key={}", key.replace('/', "%2F"))
    }

    /// Signs part `n` and PUTs `data` to S3 with it; returns the part's ETag.
    fn put_part(&self, key: &str, upload_id: &str, n: u32, data: &[u8]) -> String {
        let (status, signed) = self.json("GET", &Self::part_path(upload_id, &format!("/{n}"), key), None);
        assert_eq!(status, 200, "{signed}");
        let url = signed["url"].as_str().unwrap();
        let res = Request::new("PUT", url).header("Content-Type", "application/octet-stream").body(data).send();
        assert_eq!(res.status, 200, "{res}");
        res.header("ETag").expect("S3 answers the part's ETag").to_owned()
    }

    fn complete(&self, key: &str, upload_id: &str, parts: &[(u32, &str)]) -> (u16, Value) {
        let parts: Vec<Value> = parts.iter().map(|(n, etag)| json!({ "PartNumber": n, "ETag": etag })).collect();
        self.json("POST", &Self::part_path(upload_id, "/complete", key), Some(json!({ "parts": parts })))
    }

    /// The upload's state report, polled until it is no longer `processing`/`uploading`.
    fn settled(&self, id: &str) -> (u16, Value) {
        poll(Duration::from_secs(20), || {
            let (status, body) = self.json("GET", &format!("/s3/uploads/{id}"), None);
            let state = body["state"].as_str().unwrap_or("");
            (status != 200 || !matches!(state, "processing" | "uploading")).then_some((status, body))
        })
        .expect("the upload settles")
    }

    fn download(&self, location: &str) -> Response {
        let url =
            if location.starts_with('/') { format!("{}{location}", self.server.origin()) } else { location.to_owned() };
        let res = self.request_to("GET", &url).send();
        // A presigned S3 GET is a redirect away.
        match (res.status, res.header("Location")) {
            (302 | 303 | 307, Some(to)) => Request::new("GET", to).send(),
            _ => res,
        }
    }
}

fn id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap().trim_end_matches(".post")
}

#[test]
fn a_verified_multipart_upload_is_checked_promoted_and_served() {
    for s3 in both() {
        let d = s3.server(&["--allowed-types", "application/*", "--s3-promote-prefix", "prod/"]);
        let data = pseudo_random(PART + 123_457, 1);
        let (key, upload_id) = d.create("a.bin", "application/octet-stream");
        assert!(key.starts_with("tmp/"), "the server chose a key in the temporary area: {key}");
        let e1 = d.put_part(&key, &upload_id, 1, &data[..PART]);
        let e2 = d.put_part(&key, &upload_id, 2, &data[PART..]);
        let (status, listed) = d.json("GET", &Direct::part_path(&upload_id, "", &key), None);
        assert_eq!(status, 200);
        assert_eq!(listed.as_array().map(Vec::len), Some(2), "{}: {listed}", s3.name);
        let (status, done) = d.complete(&key, &upload_id, &[(1, &e1), (2, &e2)]);
        assert_eq!(status, 200, "{}: {done}", s3.name);
        assert_eq!(done["key"], key.as_str());
        assert!(matches!(done["state"].as_str(), Some("processing" | "clean")), "{done}");
        let (_, settled) = d.settled(id_of(&key));
        assert_eq!(settled["state"], "clean", "{}: {settled}", s3.name);
        let res = d.download(settled["location"].as_str().unwrap());
        assert_eq!(res.status, 200, "{res}");
        assert!(res.body == data, "{}: the download is the uploaded bytes", s3.name);
        let id = id_of(&key);
        assert!(s3.exists(&format!("prod/{id}")), "{}: promoted", s3.name);
        assert!(!s3.exists(&key), "{}: gone from the temporary area", s3.name);
        // The same completion again (a client's retry) answers the same upload.
        let (status, again) = d.complete(&key, &upload_id, &[(1, &e1), (2, &e2)]);
        assert_eq!((status, &again["id"]), (200, &done["id"]), "{again}");
        // Bytes arrive in S3 directly: a tus PATCH of an unfinished one is refused.
        let (unfinished, _) = d.create("j.bin", "application/octet-stream");
        let patch = Request::patch(&format!("{}{}", d.server.url(), id_of(&unfinished)), 0, b"x").send();
        assert_eq!(patch.status, 403, "{patch}");
    }
}

#[test]
fn a_completion_with_a_wrong_missing_or_foreign_part_is_refused_and_nothing_is_kept() {
    for s3 in both() {
        let d = s3.server(&["--allowed-types", "application/*", "--s3-promote-prefix", "prod/"]);
        let data = pseudo_random(PART + 1000, 2);
        let upload = |seed_part2: &[u8]| {
            let (key, upload_id) = d.create("b.bin", "application/octet-stream");
            let e1 = d.put_part(&key, &upload_id, 1, &data[..PART]);
            let e2 = d.put_part(&key, &upload_id, 2, seed_part2);
            (key, upload_id, e1, e2)
        };
        let other = pseudo_random(1000, 3);
        let cases: [(&str, Box<PartsFor>); 4] = [
            (
                "a wrong ETag",
                Box::new(|e1, _, _| vec![(1, e1.to_owned()), (2, "\"0123456789abcdef0123456789abcdef\"".into())]),
            ),
            ("a missing part", Box::new(|e1, _, _| vec![(1, e1.to_owned())])),
            ("a part of another upload", Box::new(|e1, _, foreign| vec![(1, e1.to_owned()), (2, foreign.to_owned())])),
            ("parts out of order", Box::new(|e1, e2, _| vec![(2, e2.to_owned()), (1, e1.to_owned())])),
        ];
        for (what, parts) in cases {
            let (key, upload_id, e1, e2) = upload(&data[PART..]);
            let (_, _, _, foreign) = upload(&other);
            let parts = parts(&e1, &e2, &foreign);
            let parts: Vec<(u32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            let (status, body) = d.complete(&key, &upload_id, &parts);
            assert_eq!(status, 400, "{} {what}: {body}", s3.name);
            assert_eq!(body["code"], "ERR_PARTS_MISMATCH", "{body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            let id = id_of(&key);
            assert!(!s3.exists(&key) && !s3.exists(&format!("prod/{id}")), "{} {what}: nothing kept", s3.name);
            let (status, _) = d.json("GET", &format!("/s3/uploads/{id}"), None);
            assert_eq!(status, 410, "{} {what}: the refused upload is terminated", s3.name);
            assert_eq!(d.download(&format!("/files/{id}")).status, 410);
        }
    }
}

#[test]
fn another_owners_upload_is_not_found_and_credentials_are_required() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("jwt.key");
    std::fs::write(&key_file, format!("{SECRET}\n")).unwrap();
    let key_file = key_file.display().to_string();
    for s3 in both() {
        let d = s3.server(&["--auth-jwt-key-file", &key_file]);
        let (alice, bob) = (d.as_user("alice"), d.as_user("bob"));
        let (key, upload_id) = alice.create("c.bin", "application/octet-stream");
        let e1 = alice.put_part(&key, &upload_id, 1, b"alice's bytes");
        let (status, _) = d.json("POST", "/s3/multipart", Some(json!({ "filename": "x", "type": "text/plain" })));
        assert_eq!(status, 401, "{}: no credentials", s3.name);
        for (method, tail) in [("GET", "".to_owned()), ("GET", "/1".to_owned()), ("DELETE", "".to_owned())] {
            let (status, body) = bob.json(method, &Direct::part_path(&upload_id, &tail, &key), None);
            assert_eq!(status, 404, "{} {method} {tail} as another owner: {body}", s3.name);
        }
        let (status, _) = bob.complete(&key, &upload_id, &[(1, &e1)]);
        assert_eq!(status, 404, "{}: completing another owner's upload", s3.name);
        let (status, _) = bob.json("GET", &format!("/s3/uploads/{}", id_of(&key)), None);
        assert_eq!(status, 404);
        // The right key with another upload's ID, or a key the server never issued.
        let (other_key, other_id) = bob.create("d.bin", "application/octet-stream");
        let (status, _) = bob.json("GET", &Direct::part_path(&upload_id, "/1", &other_key), None);
        assert_eq!(status, 404, "an uploadId that is not the key's");
        let (status, _) = bob.json("GET", &Direct::part_path(&other_id, "/1", "tmp/../etc/passwd"), None);
        assert_eq!(status, 404, "a key the server did not issue");
        // Alice's upload is untouched: she completes it.
        let (status, body) = alice.complete(&key, &upload_id, &[(1, &e1)]);
        assert_eq!(status, 200, "{}: {body}", s3.name);
    }
}

#[test]
fn more_than_the_maximum_size_is_refused_at_completion() {
    for s3 in both() {
        let d = s3.server(&["--max-size", &(PART + 500).to_string()]);
        let data = pseudo_random(PART + 1000, 4);
        let (key, upload_id) = d.create("e.bin", "application/octet-stream");
        let e1 = d.put_part(&key, &upload_id, 1, &data[..PART]);
        let e2 = d.put_part(&key, &upload_id, 2, &data[PART..]);
        let (status, body) = d.complete(&key, &upload_id, &[(1, &e1), (2, &e2)]);
        assert_eq!(status, 413, "{}: {body}", s3.name);
        assert!(!s3.exists(&key), "{}: nothing completed", s3.name);
    }
}

#[test]
fn a_refused_type_is_never_signed() {
    for s3 in both() {
        let d = s3.server(&["--allowed-types", "image/*"]);
        let (status, body) =
            d.json("POST", "/s3/multipart", Some(json!({ "filename": "x.pdf", "type": "application/pdf" })));
        assert_eq!((status, body["code"].as_str()), (415, Some("ERR_TYPE_NOT_ALLOWED")), "{body}");
        let res = d.request("GET", "/s3/params?filename=x.pdf&type=application%2Fpdf").send();
        assert_eq!(res.status, 415, "{res}");
        let sts = d.request("GET", "/s3/sts").send();
        assert_eq!(sts.status, 403, "{}: no bucket-wide credentials for browsers", s3.name);
        let big = d.request("POST", "/s3/multipart").body(vec![b' '; 2 << 20]).send();
        assert_eq!(big.status, 413, "a body beyond the signing routes' limit");
    }
}

/// The parts a completion lists, from the ETags of an upload's parts 1 and 2 and of another
/// upload's part 2.
type PartsFor = dyn Fn(&str, &str, &str) -> Vec<(u32, String)>;

/// A `multipart/form-data` body of `fields` and then the file, as a browser posts a form.
fn post_form(url: &str, fields: &serde_json::Map<String, Value>, data: &[u8]) -> Response {
    let boundary = format!("----direct{}", unique());
    let mut body = Vec::new();
    for (name, value) in fields {
        let value = value.as_str().unwrap();
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: \
             application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::new("POST", url)
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
}

fn params(d: &Direct, name: &str, mime: &str) -> Value {
    let (status, p) = d.json(
        "GET",
        &format!("/s3/params?filename={name}&type={}&metadata%5Bname%5D={name}", mime.replace('/', "%2F")),
        None,
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["method"], "POST");
    p
}

#[test]
fn single_request_uploads_are_found_by_the_sweep_and_by_s3_events_once() {
    for s3 in both() {
        // Found by the sweep.
        let d = s3.server(&["--allowed-types", "application/*", "--direct-s3-sweep-interval", "300ms"]);
        let data = pseudo_random(200_000, 5);
        let p = params(&d, "f.bin", "application/octet-stream");
        let posted = post_form(p["url"].as_str().unwrap(), p["fields"].as_object().unwrap(), &data);
        assert!(posted.is_success(), "{}: {posted}", s3.name);
        let key = p["fields"]["key"].as_str().unwrap();
        let (_, settled) = d.settled(id_of(key));
        assert_eq!(settled["state"], "clean", "{}: {settled}", s3.name);
        assert!(d.download(settled["location"].as_str().unwrap()).body == data);

        // Found by an event (the sweep looks only once an hour), once.
        let d = s3.server(&[
            "--allowed-types",
            "application/*",
            "--direct-s3-sweep-interval",
            "1h",
            "--direct-s3-events-token",
            "events-secret",
        ]);
        let p = params(&d, "g.bin", "application/octet-stream");
        let key = p["fields"]["key"].as_str().unwrap().to_owned();
        let posted = post_form(p["url"].as_str().unwrap(), p["fields"].as_object().unwrap(), &data);
        assert!(posted.is_success(), "{posted}");
        let (_, waiting) = d.json("GET", &format!("/s3/uploads/{}", id_of(&key)), None);
        assert_eq!(waiting["state"], "uploading", "not found before the event: {waiting}");
        let event = json!({ "Records": [{ "eventName": "ObjectCreated:Post",
            "s3": { "bucket": { "name": s3.bucket }, "object": { "key": key, "size": data.len() } } }] });
        let send = |token: &str| {
            let res = d
                .request("POST", "/s3/events")
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .body(event.to_string())
                .send();
            (res.status, serde_json::from_slice::<Value>(&res.body).unwrap_or(Value::Null))
        };
        assert_eq!(send("wrong").0, 401, "a wrong token");
        let (status, accepted) = send("events-secret");
        assert_eq!((status, &accepted["accepted"]), (200, &json!(1)), "{}: {accepted}", s3.name);
        let (status, again) = send("events-secret");
        assert_eq!((status, &again["accepted"]), (200, &json!(0)), "a repeated event finishes nothing twice");
        let (_, settled) = d.settled(id_of(&key));
        assert_eq!(settled["state"], "clean", "{settled}");

        // More bytes than the server's maximum: refused by the policy or on arrival, never served.
        let d = s3.server(&["--max-size", "1000", "--direct-s3-sweep-interval", "300ms"]);
        let p = params(&d, "h.bin", "application/octet-stream");
        let key = p["fields"]["key"].as_str().unwrap().to_owned();
        let posted = post_form(p["url"].as_str().unwrap(), p["fields"].as_object().unwrap(), &data);
        if posted.is_success() {
            // A server that does not enforce the policy's content-length-range (moto).
            let gone = poll(Duration::from_secs(10), || {
                let (status, _) = d.json("GET", &format!("/s3/uploads/{}", id_of(&key)), None);
                (status == 410).then_some(())
            });
            assert!(gone.is_some(), "{}: an oversized single upload is discarded on arrival", s3.name);
        } else {
            assert!((400..500).contains(&posted.status), "{}: the policy refuses it: {posted}", s3.name);
            std::thread::sleep(Duration::from_millis(700));
            let (_, waiting) = d.json("GET", &format!("/s3/uploads/{}", id_of(&key)), None);
            assert_eq!(waiting["state"], "uploading", "nothing arrived: {waiting}");
        }
        assert!(!s3.exists(&key), "{}: no object is kept", s3.name);
    }
}

#[test]
fn signed_on_one_instance_completed_on_another() {
    for s3 in both() {
        let a = s3.server(&[]);
        let b = s3.server(&[]);
        let data = pseudo_random(PART + 77, 6);
        let (key, upload_id) = a.create("i.bin", "application/octet-stream");
        let e1 = a.put_part(&key, &upload_id, 1, &data[..PART]);
        let e2 = b.put_part(&key, &upload_id, 2, &data[PART..]);
        let (status, done) = b.complete(&key, &upload_id, &[(1, &e1), (2, &e2)]);
        assert_eq!(status, 200, "{}: {done}", s3.name);
        assert_eq!(done["state"], "finished", "no checks configured: servable at once");
        assert!(a.download(done["location"].as_str().unwrap()).body == data, "{}: served by A", s3.name);
    }
}

#[test]
fn hooks_refuse_signing_and_report_the_finished_direct_upload() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let log = log.display();
    write_script(
        dir.path(),
        "pre-create",
        &format!(
            "input=$(cat)\necho \"$input\" >> {log}\ncase \"$input\" in *'refuse-me'*) \
             echo '{{\"RejectUpload\":true,\"HTTPResponse\":{{\"StatusCode\":403,\"Body\":\"not this one\"}}}}';; esac"
        ),
    );
    write_script(dir.path(), "post-finish", &format!("cat >> {log}; echo"));
    let hooks_dir = dir.path().display().to_string();
    let s3 = s3s_fs();
    let d = s3.server(&["--hooks-dir", &hooks_dir, "--allowed-types", "application/*", "--s3-promote-prefix", "prod/"]);
    let (status, body) = d.json(
        "POST",
        "/s3/multipart",
        Some(json!({ "filename": "refuse-me.bin", "type": "application/octet-stream" })),
    );
    assert_eq!((status, body["message"].as_str()), (403, Some("not this one")), "{body}");

    let data = pseudo_random(1000, 7);
    let (key, upload_id) = d.create("k.bin", "application/octet-stream");
    let etag = d.put_part(&key, &upload_id, 1, &data);
    let (status, done) = d.complete(&key, &upload_id, &[(1, &etag)]);
    assert_eq!(status, 200, "{done}");
    let id = id_of(&key).to_owned();
    let finished = poll(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(dir.path().join("events.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["Type"] == "post-finish" && e["Event"]["Upload"]["ID"] == id.as_str())
    })
    .expect("post-finish ran for the direct upload");
    let upload = &finished["Event"]["Upload"];
    assert_eq!(upload["State"], "clean", "{finished}");
    assert_eq!(upload["Size"], 1000);
    assert_eq!(upload["MetaData"]["filename"], "k.bin");
    assert!(!upload["Storage"]["Key"].as_str().unwrap_or("").is_empty(), "{finished}");
}

#[test]
fn tus_uploads_on_the_s3_store_are_promoted_once_clean() {
    for s3 in both() {
        let d = s3.server(&["--allowed-types", "application/*", "--s3-promote-prefix", "prod/"]);
        let data = pseudo_random(300_000, 8);
        let url = d.server.create(data.len() as u64);
        Request::patch(&url, 0, &data).send().expect_status(204);
        let id = url.rsplit('/').next().unwrap().to_owned();
        let clean = poll(Duration::from_secs(20), || {
            let head = Request::tus("HEAD", &url).send();
            (head.header("Upload-State") == Some("clean")).then_some(())
        });
        assert!(clean.is_some(), "{}: the tus upload is found clean", s3.name);
        // The state route answers for direct uploads and promoted ones, not for any tus upload.
        let (status, settled) = d.json("GET", &format!("/s3/uploads/{id}"), None);
        assert_eq!((status, &settled["state"]), (200, &json!("clean")), "{settled}");
        let unchecked = d.server.create(5);
        let (status, _) = d.json("GET", &format!("/s3/uploads/{}", unchecked.rsplit('/').next().unwrap()), None);
        assert_eq!(status, 404, "an unfinished tus upload is not the state route's");
        assert!(s3.exists(&format!("prod/{id}")) && !s3.exists(&format!("tmp/{id}")), "{}: promoted", s3.name);
        assert!(d.download(&url).body == data, "{}: served from the production area", s3.name);
    }
}

#[test]
fn abandoned_direct_uploads_are_removed_by_the_expiry_reaper() {
    for s3 in both() {
        let d = s3.server(&["--expiration", "2s"]);
        let (key, upload_id) = d.create("l.bin", "application/octet-stream");
        d.put_part(&key, &upload_id, 1, &pseudo_random(1000, 9));
        let p = params(&d, "m.bin", "application/octet-stream");
        let single = p["fields"]["key"].as_str().unwrap().to_owned();
        for key in [&key, &single] {
            let gone = poll(Duration::from_secs(15), || {
                let (status, _) = d.json("GET", &format!("/s3/uploads/{}", id_of(key)), None);
                matches!(status, 404 | 410).then_some(())
            });
            assert!(gone.is_some(), "{}: {key} expired", s3.name);
        }
        let (status, _) = d.json("GET", &Direct::part_path(&upload_id, "/2", &key), None);
        assert_eq!(status, 404, "{}: an expired upload signs nothing", s3.name);
        let (status, _) = d.json("GET", &Direct::part_path(&upload_id, "", &key), None);
        assert_eq!(status, 404);
    }
}

#[test]
fn a_single_request_upload_signed_before_a_restart_is_still_found() {
    for s3 in both() {
        let signer = s3.server(&["--direct-s3-sweep-interval", "1h"]);
        let p = params(&signer, "n.bin", "application/octet-stream");
        drop(signer);
        let after = s3.server(&["--direct-s3-sweep-interval", "300ms"]);
        let data = pseudo_random(5000, 10);
        let posted = post_form(p["url"].as_str().unwrap(), p["fields"].as_object().unwrap(), &data);
        assert!(posted.is_success(), "{posted}");
        let (_, settled) = after.settled(id_of(p["fields"]["key"].as_str().unwrap()));
        assert_eq!(settled["state"], "finished", "{}: found by the instance started after signing: {settled}", s3.name);
        assert!(after.download(settled["location"].as_str().unwrap()).body == data);
    }
}

#[test]
fn malformed_signing_requests_get_a_4xx_and_tus_uploads_are_never_signed() {
    let s3 = s3s_fs();
    let d = s3.server(&[]);
    let (key, upload_id) = d.create("o.bin", "application/octet-stream");
    let bad_json = d.request("POST", "/s3/multipart").header("Content-Type", "application/json").body("{").send();
    assert_eq!(bad_json.status, 400, "{bad_json}");
    for part in ["0", "10001", "-1", "abc", "99999999999"] {
        let (status, body) = d.json("GET", &Direct::part_path(&upload_id, &format!("/{part}"), &key), None);
        assert_eq!(status, 400, "part number {part}: {body}");
    }
    let many: Vec<String> = (1..=1001).map(|n| n.to_string()).collect();
    let batch = format!("{}&partNumbers={}", Direct::part_path(&upload_id, "/batch", &key), many.join(","));
    assert_eq!(d.json("GET", &batch, None).0, 400, "a batch of 1001 parts");
    let batch = format!("{}&partNumbers=1,2", Direct::part_path(&upload_id, "/batch", &key));
    let (status, urls) = d.json("GET", &batch, None);
    assert_eq!(status, 200, "{urls}");
    assert_eq!(urls["presignedUrls"].as_object().map(|o| o.len()), Some(2), "{urls}");
    let (status, _) = d.json("GET", &format!("/s3/multipart/{upload_id}/1"), None);
    assert_eq!(status, 404, "no key");
    for body in [json!({ "parts": "x" }), json!({ "parts": [] }), json!({ "parts": [{ "PartNumber": 1 }] })] {
        let (status, answer) = d.json("POST", &Direct::part_path(&upload_id, "/complete", &key), Some(body.clone()));
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let many: serde_json::Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, _) =
        d.json("POST", "/s3/multipart", Some(json!({ "filename": "p", "type": "a/b", "metadata": many })));
    assert_eq!(status, 400, "65 metadata entries");
    let (status, _) =
        d.json("POST", "/s3/multipart", Some(json!({ "filename": "p", "type": "a/b", "metadata": { "a,b": "v" } })));
    assert_eq!(status, 400, "a metadata key tus cannot carry");
    // An upload made through tus is not a direct upload: nothing of it is signed.
    let tus = d.server.create(10);
    let tus_key = format!("tmp/{}", tus.rsplit('/').next().unwrap());
    for path in [format!("/{upload_id}/1"), format!("/{upload_id}")] {
        let url = format!("/s3/multipart{path}?key={}", tus_key.replace('/', "%2F"));
        assert_eq!(d.json("GET", &url, None).0, 404, "{url}");
    }
    let (status, _) = d.json("GET", "/s3/uploads/not-an-id!", None);
    assert_eq!(status, 404);
    let (status, _) = d.json("PUT", "/s3/multipart", None);
    assert_eq!(status, 405);
}

#[test]
fn a_second_post_with_the_same_policy_never_replaces_checked_bytes() {
    for s3 in both() {
        let d = s3.server(&["--allowed-types", "application/*", "--direct-s3-sweep-interval", "300ms"]);
        let p = params(&d, "q.bin", "application/octet-stream");
        let (url, fields) = (p["url"].as_str().unwrap(), p["fields"].as_object().unwrap());
        let first = pseudo_random(3000, 11);
        assert!(post_form(url, fields, &first).is_success());
        let id = id_of(p["fields"]["key"].as_str().unwrap()).to_owned();
        let (_, settled) = d.settled(&id);
        assert_eq!(settled["state"], "clean", "{}: {settled}", s3.name);
        // The policy is still valid: the same form with other bytes.
        let second = pseudo_random(3000, 12);
        assert!(post_form(url, fields, &second).is_success());
        std::thread::sleep(Duration::from_millis(900));
        let served = d.download(settled["location"].as_str().unwrap());
        assert!(served.body == first, "{}: the checked bytes are still what is served", s3.name);
        assert_eq!(fields["Content-Type"], "application/octet-stream", "no client-chosen type is stored in S3");
    }
}

/// A `width` × `height` PNG with a `tEXt` chunk (an author's name: metadata to strip).
fn png_with_text(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    // tEXt before IEND (the last 12 bytes): length, type, data, CRC of type and data.
    let text = b"Author\0Jane Doe, 52.5N 13.4E";
    let mut chunk = (text.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(b"tEXt");
    chunk.extend_from_slice(text);
    chunk.extend_from_slice(&crc32fast::hash(&chunk[4..]).to_be_bytes());
    let iend = png.len() - 12;
    png.splice(iend..iend, chunk);
    png
}

#[test]
fn a_direct_image_gets_derivatives_promoted_and_removed_with_it() {
    for s3 in both() {
        let signing_key = "direct-media-signing-key-0123456789";
        let d = s3.server(&[
            "--thumbnails",
            "64",
            "--strip-metadata",
            "--s3-promote-prefix",
            "prod/",
            "--signing-key",
            signing_key,
        ]);
        let png = png_with_text(300, 200);
        assert!(png.windows(8).any(|w| w == b"Jane Doe"), "the test image carries its text");
        let (key, upload_id) = d.create("photo.png", "image/png");
        let etag = d.put_part(&key, &upload_id, 1, &png);
        let (status, done) = d.complete(&key, &upload_id, &[(1, &etag)]);
        assert_eq!(status, 200, "{}: {done}", s3.name);
        let id = id_of(&key).to_owned();
        let (_, settled) = d.settled(&id);
        assert_eq!(settled["state"], "clean", "{}: {settled}", s3.name);

        let upload = format!("{}{id}", d.server.url());
        let head = Request::tus("HEAD", &upload).send();
        assert_eq!(head.header("Upload-Derivatives"), Some("thumbnails/64, stripped"), "{}: {head}", s3.name);
        // Downloads need the upload's signature, which covers its derivatives; a signed one is
        // sent to a presigned GET of the promoted derivative.
        let expires = in_an_hour();
        let signed = |path: &str| {
            format!("{upload}{path}?expires={expires}&sig={}", conformance_tests::sign(signing_key, &id, expires))
        };
        let unsigned = Request::new("GET", &format!("{upload}/thumbnails/64")).send();
        assert_eq!(unsigned.status, 403, "{}: {unsigned}", s3.name);
        let redirect = Request::new("GET", &signed("/thumbnails/64")).send();
        assert_eq!(redirect.status, 307, "{}: {redirect}", s3.name);
        let location = redirect.header("Location").unwrap();
        assert!(location.contains(&format!("prod/{id}.derived/thumbnail-64")), "{}: {location}", s3.name);
        // A HEAD is answered by the server (a presigned URL is for GET only), signed or not.
        let head_thumb = Request::new("HEAD", &signed("/thumbnails/64")).send();
        assert_eq!(head_thumb.status, 200, "{}: {head_thumb}", s3.name);
        assert_eq!(head_thumb.header("Content-Type"), Some("image/jpeg"), "{}: {head_thumb}", s3.name);
        let unsigned_head = Request::new("HEAD", &format!("{upload}/thumbnails/64")).send();
        assert_eq!(unsigned_head.status, 403, "{}: {unsigned_head}", s3.name);
        let thumb = d.download(&signed("/thumbnails/64"));
        assert_eq!((thumb.status, thumb.header("Content-Type")), (200, Some("image/jpeg")), "{thumb}");
        let img = image::load_from_memory(&thumb.body).unwrap();
        assert_eq!((img.width(), img.height()), (64, 43), "{}", s3.name);
        let stripped = d.download(&signed("/stripped"));
        assert_eq!(stripped.status, 200, "{stripped}");
        assert!(!stripped.body.windows(8).any(|w| w == b"Jane Doe"), "{}: the text survived", s3.name);
        let (a, b) = (image::load_from_memory(&stripped.body).unwrap(), image::load_from_memory(&png).unwrap());
        assert!(a.as_bytes() == b.as_bytes(), "{}: the stripped copy has other pixels", s3.name);
        assert!(d.download(&signed("")).body == png, "{}: the original is untouched", s3.name);

        // Promoted beside the original, nothing left in the temporary area.
        for name in ["thumbnail-64", "stripped"] {
            assert!(s3.exists(&format!("prod/{id}.derived/{name}")), "{}: {name} promoted", s3.name);
            assert!(!s3.exists(&format!("tmp/{id}.derived/{name}")), "{}: {name} left behind", s3.name);
        }
        let deleted = Request::tus("DELETE", &upload).send();
        assert_eq!(deleted.status, 204, "{deleted}");
        for name in ["thumbnail-64", "stripped"] {
            assert!(!s3.exists(&format!("prod/{id}.derived/{name}")), "{}: {name} outlived its upload", s3.name);
        }
    }
}
