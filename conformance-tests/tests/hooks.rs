//! Hooks over both transports, checked from the receiving end: tusd-shaped JSON for all seven
//! events, rejections, ID changes, stopping an upload, and failing hooks.
#![allow(clippy::unwrap_used)] // test fixtures: a failed setup step should just fail the test

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use conformance_tests::{Request, TestServer, b64, head, patch, poll, write_script};
use serde_json::{Value, json};

type Answer = dyn Fn(&Value) -> Value + Send + Sync;

/// An HTTP hook endpoint on 127.0.0.1 that records every event and answers with `answer`.
struct Receiver {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(answer: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let recorded = events.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (recorded, answer) = (recorded.clone(), answer.clone());
                thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let event: Value = serde_json::from_slice(&body).unwrap();
                    let reply = answer(&event).to_string();
                    recorded.lock().unwrap().push(event);
                    let mut conn = conn;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                });
            }
        });
        Receiver { url, events }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn types(&self) -> Vec<String> {
        self.events().iter().map(|e| e["Type"].as_str().unwrap_or("").to_owned()).collect()
    }

    fn wait_for(&self, hook: &str) -> Value {
        poll(Duration::from_secs(10), || self.events().into_iter().find(|e| e["Type"] == hook))
            .unwrap_or_else(|| panic!("no {hook} event; got {:?}", self.types()))
    }
}

fn no_answer(_: &Value) -> Value {
    json!({})
}

fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[test]
fn http_hooks_see_all_seven_events_shaped_like_tusd() {
    let hooks = Receiver::start(no_answer);
    let s = TestServer::spawn(&["--hooks-http", &hooks.url]);
    let meta = format!("filename {},empty", b64("słońce.txt".as_bytes()));
    let url = s.create_with(&[("Upload-Length", "11"), ("Upload-Metadata", &meta)]);
    patch(&url, 0, b"hello world").expect_status(204);
    Request::tus("DELETE", &url).send().expect_status(204);

    for hook in
        ["pre-create", "post-create", "post-receive", "pre-finish", "post-finish", "pre-terminate", "post-terminate"]
    {
        let event = hooks.wait_for(hook);
        let upload = &event["Event"]["Upload"];
        assert_eq!(upload["ID"], id_of(&url), "{hook}");
        assert_eq!(upload["Size"], 11, "{hook}");
        assert_eq!(upload["SizeIsDeferred"], false, "{hook}");
        assert_eq!(upload["MetaData"]["filename"], "słońce.txt", "{hook}");
        assert_eq!(upload["MetaData"]["empty"], "", "{hook}");
        assert_eq!(upload["IsPartial"], false, "{hook}");
        assert_eq!(upload["IsFinal"], false, "{hook}");
        assert!(upload["Storage"].is_object(), "{hook}");
        let request = &event["Event"]["HTTPRequest"];
        assert!(request["RemoteAddr"].as_str().unwrap().starts_with("127.0.0.1:"), "{hook}");
        assert_eq!(request["Header"]["Tus-Resumable"][0], "1.0.0", "{hook}");
    }
    assert_eq!(hooks.wait_for("pre-create")["Event"]["HTTPRequest"]["Method"], "POST");
    assert_eq!(hooks.wait_for("post-finish")["Event"]["Upload"]["Offset"], 11);
    assert_eq!(hooks.wait_for("post-terminate")["Event"]["HTTPRequest"]["Method"], "DELETE");
}

#[test]
fn with_jwt_auth_hooks_get_the_owner_but_not_the_token() {
    let hooks = Receiver::start(no_answer);
    let dir = tempfile::tempdir().unwrap();
    let secret = "conformance-hooks-jwt-secret-0123456789";
    let key = dir.path().join("jwt.key");
    std::fs::write(&key, secret).unwrap();
    let key = key.display().to_string();
    let s = TestServer::spawn(&["--auth-jwt-key-file", &key, "--auth-jwt-cookie", "tus", "--hooks-http", &hooks.url]);
    let claims = json!({ "sub": "alice", "exp": conformance_tests::in_an_hour() }).to_string();
    let bearer = format!("Bearer {}", conformance_tests::hs256_token(secret, &claims));
    let res = s
        .post()
        .headers(&[("Upload-Length", "1"), ("Authorization", &bearer), ("Cookie", "tus=x; theme=dark")])
        .body(b"")
        .send();
    res.expect_status(201);
    let event = hooks.wait_for("pre-create");
    let header = &event["Event"]["HTTPRequest"]["Header"];
    assert!(header.get("Authorization").is_none() && header.get("Cookie").is_none(), "{header}");
    assert_eq!(header["Upload-Length"][0], "1", "{header}");
    assert_eq!(event["Event"]["Upload"]["Owner"], "alice");
}

#[test]
fn pre_create_can_reject_with_its_own_status_and_nothing_is_created() {
    let hooks = Receiver::start(|event| {
        let authorized = event["Event"]["HTTPRequest"]["Header"]["Authorization"][0] == "Bearer ok";
        if event["Type"] == "pre-create" && !authorized {
            json!({"RejectUpload": true, "HTTPResponse": {"StatusCode": 401, "Body": "missing token\n"}})
        } else {
            json!({})
        }
    });
    let s = TestServer::spawn(&["--hooks-http", &hooks.url]);
    let res = s.post().header("Upload-Length", "5").send();
    res.expect_status(401);
    assert_eq!(res.text(), "missing token\n");
    assert!(res.header("Location").is_none());
    let ok = s.post().header("Upload-Length", "5").header("Authorization", "Bearer ok").send();
    ok.expect_status(201);
    hooks.wait_for("post-create");
    let created: Vec<Value> = hooks.events().into_iter().filter(|e| e["Type"] == "post-create").collect();
    assert_eq!(created.len(), 1, "only the authorized creation happened");
}

#[test]
fn pre_create_can_change_id_and_metadata() {
    let hooks = Receiver::start(|event| {
        if event["Type"] == "pre-create" {
            json!({"ChangeFileInfo": {"ID": "chosen-by-hook_1", "MetaData": {"owner": "alice"}}})
        } else {
            json!({})
        }
    });
    let s = TestServer::spawn(&["--hooks-http", &hooks.url]);
    let url = s.create_with(&[("Upload-Length", "3"), ("Upload-Metadata", &format!("owner {}", b64(b"mallory")))]);
    assert_eq!(id_of(&url), "chosen-by-hook_1");
    let res = head(&url);
    res.expect_status(200);
    assert_eq!(res.header("Upload-Metadata"), Some(format!("owner {}", b64(b"alice")).as_str()));
}

#[test]
fn failing_blocking_hook_answers_500_and_creates_nothing() {
    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let s = TestServer::spawn(&["--hooks-http", &url, "--hooks-http-retries", "1", "--hooks-timeout", "2s"]);
    let res = s.post().header("Upload-Length", "5").send();
    res.expect_status(500);
    assert!(res.header("Location").is_none());
    assert!(res.text().contains("hook"), "{}", res.text());
}

#[test]
fn post_receive_can_stop_an_upload() {
    let hooks = Receiver::start(|event| {
        if event["Type"] == "post-receive" && event["Event"]["Upload"]["Offset"].as_u64() > Some(0) {
            json!({"StopUpload": true})
        } else {
            json!({})
        }
    });
    let s = TestServer::spawn(&["--hooks-http", &hooks.url]);
    let url = s.create(1_000_000);
    let mut conn = Request::patch(&url, 0, &[]).header("Content-Length", "1000000").open();
    conn.write_all(&[7u8; 10_000]).unwrap();
    // The server reports progress about once a second; the hook then stops the upload. (No
    // HEAD meanwhile: a HEAD would itself interrupt the PATCH, as a resuming client's does.)
    conn.set_read_timeout(Duration::from_secs(10)).unwrap();
    let res = conn.read_response().unwrap_or_else(|e| panic!("no answer ({e}); events {:?}", hooks.types()));
    res.expect_status(400);
    assert!(res.text().contains("ERR_UPLOAD_STOPPED"), "{}", res.text());
    head(&url).expect_status_in(&[404, 410]);
}

#[test]
fn exec_hooks_get_json_on_stdin_and_can_reject() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let log = log.display();
    // Reject uploads whose metadata asks for it; log every event's JSON.
    write_script(
        dir.path(),
        "pre-create",
        &format!(
            "input=$(cat)\necho \"$input\" >> {log}\ncase \"$input\" in *'\"reject\"'*) \
             echo '{{\"RejectUpload\":true,\"HTTPResponse\":{{\"StatusCode\":403,\"Body\":\"refused by script\"}}}}';; esac"
        ),
    );
    write_script(dir.path(), "post-finish", &format!("cat >> {log}; echo"));
    write_script(dir.path(), "pre-terminate", "cat > /dev/null; exit 3");
    let hooks_dir = dir.path().display().to_string();
    let s = TestServer::spawn(&["--hooks-dir", &hooks_dir]);

    let refused = s.post().header("Upload-Length", "1").header("Upload-Metadata", "reject").send();
    refused.expect_status(403);
    assert_eq!(refused.text(), "refused by script");

    let url = s.create(2);
    patch(&url, 0, b"ok").expect_status(204);
    let logged = poll(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(dir.path().join("events.log")).unwrap_or_default();
        text.contains("\"post-finish\"").then_some(text)
    })
    .expect("post-finish script ran");
    let events: Vec<Value> =
        logged.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|e| e["Type"] == "pre-create" && e["Event"]["Upload"]["ID"] == id_of(&url)));
    assert!(events.iter().any(|e| e["Type"] == "post-finish" && e["Event"]["Upload"]["Offset"] == 2));

    // A hook that exits non-zero fails its request; the upload survives.
    Request::tus("DELETE", &url).send().expect_status(500);
    head(&url).expect_status(200);
}
