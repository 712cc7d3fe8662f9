//! The binary at the edge: connections that hold a slot without asking for anything (HTTP/1.1
//! keep-alive, h2c prior knowledge, silent sockets) or without reading their answers, bounded
//! metrics labels, the `sign-url` subcommand's flags, and log colouring.
//!
//! HTTP/2 is spoken with a minimal raw client (frames and literal HPACK fields, no Huffman, no
//! dynamic table), enough to open a stream, send a slow body and see the answer.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use conformance_tests::{
    Conn, OFFSET_OCTET_STREAM, Request, TUS_RESUMABLE, TestServer, Url, get, last_segment, offset, open_patch,
    pseudo_random, server_binary,
};

/// The HTTP/2 connection preface a prior-knowledge (h2c) client starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame too large");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), first byte's high bits zero.
fn hpack_int(out: &mut Vec<u8>, value: usize, n: u32) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A header block of literal fields without indexing, names and values as plain strings.
fn hpack_literals(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, name.len(), 7);
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, value.len(), 7);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn read_frame(sock: &mut TcpStream) -> io::Result<Frame> {
    let mut head = [0u8; 9];
    sock.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    sock.read_exact(&mut payload)?;
    Ok(Frame { kind: head[3], flags: head[4], stream, payload })
}

/// Reads frames, acknowledging the server's SETTINGS and PINGs as a live client does, until
/// `stop` picks one.
fn read_until(sock: &mut TcpStream, mut stop: impl FnMut(&Frame) -> bool) -> io::Result<Frame> {
    loop {
        let frame = read_frame(sock)?;
        if frame.kind == SETTINGS && frame.flags & ACK == 0 {
            sock.write_all(&h2_frame(SETTINGS, ACK, 0, &[]))?;
        }
        if frame.kind == PING && frame.flags & ACK == 0 {
            sock.write_all(&h2_frame(PING, ACK, 0, &frame.payload))?;
        }
        if stop(&frame) {
            return Ok(frame);
        }
    }
}

fn connect(authority: &str) -> TcpStream {
    let sock = TcpStream::connect(authority).unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    sock.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
    sock
}

/// Whether the server closes `sock` within `within` (reading and discarding what it sends).
fn closed_within(sock: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        sock.set_read_timeout(Some(left)).expect("read timeout");
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Asserts that a fresh HTTP/1.1 client gets an answer within a few seconds although every
/// connection slot was taken by the `hogs` (which the server must therefore have closed).
#[track_caller]
fn assert_not_locked_out(s: &TestServer, hogs: &mut [TcpStream]) {
    assert_not_locked_out_then_closed(s, hogs, Duration::ZERO);
}

/// [`assert_not_locked_out`], but waits `before_reading` after the answer before reading the
/// hogs to see that they were closed. Reading is what a live client does: an HTTP/1.1 hog read
/// before the server cut it takes its response after all, gets the whole of it and then stays
/// open as an idle keep-alive connection, under the idle limit instead of the stall limit.
#[track_caller]
fn assert_not_locked_out_then_closed(s: &TestServer, hogs: &mut [TcpStream], before_reading: Duration) {
    let started = Instant::now();
    let res = Request::new("OPTIONS", s.url())
        .timeout(Duration::from_secs(8))
        .try_send()
        .unwrap_or_else(|e| panic!("a client was locked out by the connections holding every slot: {e}"));
    assert!(res.is_success(), "OPTIONS:\n{res}");
    assert!(started.elapsed() < Duration::from_secs(6), "OPTIONS waited {:?}", started.elapsed());
    thread::sleep(before_reading);
    for hog in hogs {
        assert!(closed_within(hog, Duration::from_secs(5)), "a connection holding a slot was left open");
    }
}

// ---------------------------------------------------------------------------------------------
// Idle connections
// ---------------------------------------------------------------------------------------------

#[test]
fn idle_h2c_connections_do_not_lock_out_other_clients() {
    let s = TestServer::spawn(&["--max-connections", "2", "--header-read-timeout", "1s"]);
    let mut preface_only = connect(s.authority());
    preface_only.write_all(H2_PREFACE).expect("preface");
    let mut with_settings = connect(s.authority());
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(h2_frame(SETTINGS, 0, 0, &[]));
    with_settings.write_all(&hello).expect("preface");
    // Both slots are taken before the client arrives.
    thread::sleep(Duration::from_millis(200));
    assert_not_locked_out(&s, &mut [preface_only, with_settings]);
}

#[test]
fn silent_and_half_preface_connections_do_not_lock_out_other_clients() {
    let s = TestServer::spawn(&["--max-connections", "2", "--header-read-timeout", "1s"]);
    let silent = connect(s.authority());
    let mut half = connect(s.authority());
    // Still a possible HTTP/2 preface, so the server cannot tell the protocol yet.
    half.write_all(&H2_PREFACE[..16]).expect("half preface");
    thread::sleep(Duration::from_millis(200));
    assert_not_locked_out(&s, &mut [silent, half]);
}

#[test]
fn idle_http1_keep_alive_connection_is_closed() {
    let s = TestServer::spawn(&["--header-read-timeout", "1s"]);
    let mut conn = Conn::connect(s.authority(), Duration::from_secs(10)).expect("connect");
    let res = conn.send(&Request::new("OPTIONS", s.url()).header("Connection", "keep-alive")).expect("OPTIONS");
    assert!(res.is_success(), "OPTIONS:\n{res}");
    let started = Instant::now();
    conn.set_read_timeout(Duration::from_secs(6)).expect("read timeout");
    let rest = conn.read_to_end();
    assert!(rest.closed, "the idle keep-alive connection was not closed within 6 s");
    assert!(rest.data.is_empty(), "unexpected bytes: {:?}", rest.text());
    assert!(started.elapsed() < Duration::from_secs(4), "closed only after {:?}", started.elapsed());
}

/// The body of the slow uploads below: 10 chunks, one every 400 ms, so the request lasts four
/// times the 1 s idle timeout.
const SLOW_CHUNKS: usize = 10;
const SLOW_CHUNK: usize = 1000;
const SLOW_GAP: Duration = Duration::from_millis(400);

#[test]
fn slow_http1_upload_outlives_the_idle_timeout() {
    let s = TestServer::spawn(&["--header-read-timeout", "1s"]);
    let total = SLOW_CHUNKS * SLOW_CHUNK;
    let url = s.create(total as u64);
    let mut conn = open_patch(&url, 0, total);
    for i in 0..SLOW_CHUNKS {
        thread::sleep(SLOW_GAP);
        conn.write_all(&[b'a' + i as u8; SLOW_CHUNK]).expect("the server cut the slow upload");
    }
    let res = conn.read_response().expect("no answer to the slow upload");
    res.expect_status(204);
    assert_eq!(offset(&url), total as u64);
}

#[test]
fn slow_h2c_upload_outlives_the_idle_timeout_then_the_idle_connection_closes() {
    let s = TestServer::spawn(&["--header-read-timeout", "1s"]);
    let total = SLOW_CHUNKS * SLOW_CHUNK;
    let url = s.create(total as u64);
    let path = format!("{}{}", s.base_path(), last_segment(&url));
    let len = total.to_string();
    let block = hpack_literals(&[
        (":method", "PATCH"),
        (":scheme", "http"),
        (":authority", s.authority()),
        (":path", &path),
        ("tus-resumable", TUS_RESUMABLE),
        ("upload-offset", "0"),
        ("content-type", OFFSET_OCTET_STREAM),
        ("content-length", &len),
    ]);
    let mut sock = connect(s.authority());
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(h2_frame(SETTINGS, 0, 0, &[]));
    hello.extend(h2_frame(HEADERS, END_HEADERS, 1, &block));
    sock.write_all(&hello).expect("request head");
    for i in 0..SLOW_CHUNKS {
        thread::sleep(SLOW_GAP);
        let flags = if i + 1 == SLOW_CHUNKS { END_STREAM } else { 0 };
        sock.write_all(&h2_frame(DATA, flags, 1, &[b'a' + i as u8; SLOW_CHUNK]))
            .expect("the server cut the slow upload");
    }
    let answer = read_until(&mut sock, |f| f.stream == 1 || f.kind == GOAWAY).expect("no answer to the slow upload");
    let answered = Instant::now();
    assert_eq!(answer.kind, HEADERS, "expected the response head on stream 1, got {answer:?}");
    // The server's HPACK encoder sends `:status: 204` as static-table entry 9.
    assert_eq!(answer.payload.first(), Some(&0x89), "expected 204, got header block {:?}", answer.payload);
    assert_eq!(offset(&url), total as u64);

    // Nothing in flight any more: the connection is now idle and goes away.
    let goaway = read_until(&mut sock, |f| f.kind == GOAWAY || f.kind == RST_STREAM);
    assert!(matches!(&goaway, Ok(f) if f.kind == GOAWAY), "expected GOAWAY, got {goaway:?}");
    // Answering the server's PING as a live client does lets the graceful close complete.
    sock.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let end = read_until(&mut sock, |_| false).expect_err("frames until the end");
    assert_eq!(end.kind(), io::ErrorKind::UnexpectedEof, "the idle HTTP/2 connection stayed open: {end}");
    let after = answered.elapsed();
    eprintln!("idle HTTP/2 connection closed {after:?} after the answer");
    assert!(after < Duration::from_secs(3), "closed only {after:?} after the answer");
}

#[test]
fn sigterm_answers_the_upload_in_flight_and_does_not_wait_for_idle_connections() {
    // The default 30 s idle timeout: only the shutdown may close the idle connections here.
    let mut s = TestServer::spawn(&[]);
    let total = 1 << 20;
    let url = s.create(total as u64);
    let mut upload = open_patch(&url, 0, total);
    upload.write_all(&pseudo_random(1000, 34)).expect("first bytes");
    // An HTTP/2 client that never answers the server's PING, and an idle HTTP/1.1 one.
    let mut h2 = connect(s.authority());
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(h2_frame(SETTINGS, 0, 0, &[]));
    h2.write_all(&hello).expect("preface");
    let mut h1 = Conn::connect(s.authority(), Duration::from_secs(10)).expect("connect");
    let res = h1.send(&Request::new("OPTIONS", s.url()).header("Connection", "keep-alive")).expect("OPTIONS");
    assert!(res.is_success(), "OPTIONS:\n{res}");
    thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let code = s.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    assert!(started.elapsed() < Duration::from_secs(5), "the shutdown took {:?}", started.elapsed());
    let answer = upload.read_response().expect("the upload in flight got no answer");
    assert!(answer.status >= 400, "the interrupted upload answered:\n{answer}");
    assert!(closed_within(&mut h2, Duration::from_secs(1)), "the HTTP/2 connection outlived the server");
}

// ---------------------------------------------------------------------------------------------
// Clients that stop reading their responses
// ---------------------------------------------------------------------------------------------

/// More than the socket buffers of both ends and hyper's write buffer hold, so a client that
/// does not read leaves the server's writes pending.
const LARGE: usize = 16 << 20;

/// The `--body-read-timeout` of the HTTP/1.1 hogs below.
const STALL: Duration = Duration::from_secs(1);

#[test]
fn http1_clients_that_stop_reading_do_not_lock_out_other_clients() {
    let stall = format!("{}s", STALL.as_secs());
    let s = TestServer::spawn(&["--max-connections", "2", "--body-read-timeout", &stall]);
    let url = s.upload(&pseudo_random(LARGE, 31));
    let target = Url::parse(&url).path;
    let mut hogs = Vec::new();
    for _ in 0..2 {
        let mut hog = connect(s.authority());
        hog.write_all(format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", s.authority()).as_bytes()).expect("request");
        hogs.push(hog);
    }
    thread::sleep(Duration::from_millis(200));
    // The hogs' responses stop moving a few milliseconds apart (more on S3, whose GETs take
    // varying time to start), so once the first is cut and the client is answered, the other
    // may still be within its timeout: reading it then would make it a reader. Every hog has
    // been stalled for longer than the timeout once it has passed again after the answer.
    assert_not_locked_out_then_closed(&s, &mut hogs, STALL);
}

#[test]
fn a_reader_pausing_less_than_the_timeout_gets_the_whole_download() {
    let s = TestServer::spawn(&["--body-read-timeout", "2s"]);
    let data = pseudo_random(LARGE, 32);
    let url = s.upload(&data);
    let mut conn = Conn::connect(s.authority(), Duration::from_secs(10)).expect("connect");
    conn.write_all(&Request::new("GET", &url).head_bytes()).expect("request");
    // Reads a little, then nothing for a second (writes stall), then the rest.
    conn.wait_readable(Duration::from_secs(5)).expect("first bytes");
    thread::sleep(Duration::from_secs(1));
    let res = conn.read_response().expect("the paused download was cut");
    res.expect_status(200);
    assert!(res.body == data, "download differs ({} of {} bytes)", res.body.len(), data.len());
}

#[test]
fn h2c_clients_with_a_closed_window_do_not_lock_out_other_clients() {
    let s = TestServer::spawn(&["--max-connections", "1", "--body-read-timeout", "1s"]);
    let url = s.upload(&pseudo_random(1000, 33));
    let path = Url::parse(&url).path;
    let block =
        hpack_literals(&[(":method", "GET"), (":scheme", "http"), (":authority", s.authority()), (":path", &path)]);
    let mut hog = connect(s.authority());
    let mut hello = H2_PREFACE.to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may send no DATA on any stream.
    hello.extend(h2_frame(SETTINGS, 0, 0, &[0x00, 0x04, 0, 0, 0, 0]));
    hello.extend(h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    hog.write_all(&hello).expect("request");
    let head = read_until(&mut hog, |f| f.stream == 1 || f.kind == GOAWAY).expect("response head");
    assert_eq!(head.kind, HEADERS, "expected the response head, got {head:?}");
    assert_not_locked_out(&s, &mut [hog]);
}

#[test]
fn quick_h2c_answers_do_not_keep_a_stalled_response_alive() {
    let s = TestServer::spawn(&["--body-read-timeout", "1s"]);
    let url = s.upload(&pseudo_random(1000, 35));
    let path = Url::parse(&url).path;
    let request = |method: &str, target: &str| {
        hpack_literals(&[(":method", method), (":scheme", "http"), (":authority", s.authority()), (":path", target)])
    };
    let mut hog = connect(s.authority());
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(h2_frame(SETTINGS, 0, 0, &[0x00, 0x04, 0, 0, 0, 0]));
    hello.extend(h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("GET", &path)));
    hog.write_all(&hello).expect("request");
    // Answers without a body need no window: each one completes at once, while the download
    // on stream 1 stays stalled. The connection must go anyway.
    let started = Instant::now();
    let mut stream = 3;
    let cut = loop {
        thread::sleep(Duration::from_millis(250));
        let options = h2_frame(HEADERS, END_HEADERS | END_STREAM, stream, &request("OPTIONS", s.base_path()));
        if hog.write_all(&options).is_err() {
            break true;
        }
        stream += 2;
        if started.elapsed() > Duration::from_secs(6) {
            break false;
        }
    };
    assert!(cut, "the stalled download was kept alive by {} quick requests", (stream - 3) / 2);
    assert!(started.elapsed() < Duration::from_secs(4), "cut only after {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Metrics labels
// ---------------------------------------------------------------------------------------------

#[test]
fn made_up_methods_do_not_grow_metrics() {
    let s = TestServer::spawn(&[]);
    let upload = s.create(5);
    let metrics_url = format!("{}/metrics", s.origin());
    // Made-up methods, some the lowercase spelling of a real one, on the creation URL and on
    // an upload: every (case, target) pair every 6 numbers.
    let send = |i: usize| {
        let method = if i.is_multiple_of(2) { format!("FOOBAR{i}") } else { format!("patch{i}") };
        let target = if i.is_multiple_of(3) { s.url() } else { upload.as_str() };
        let res = Request::tus(&method, target).try_send().expect("made-up method");
        assert!((400..500).contains(&res.status), "{method}: {res}");
    };
    // A first round creates the series all later ones are counted in.
    (1000..1006).for_each(send);
    let before = get(&metrics_url);
    before.expect_status(200);
    (1..=50).for_each(send);
    let after = get(&metrics_url);
    after.expect_status(200);
    let text = after.text();
    assert!(!text.to_ascii_lowercase().contains("foobar"), "made-up methods became labels:\n{text}");
    assert!(!text.contains("patch1"), "made-up methods became labels:\n{text}");
    assert!(text.contains("method=\"other\""), "made-up methods are not counted as other:\n{text}");
    let series = |t: &str| -> Vec<String> {
        // The series names with their labels, without the values.
        let mut names: Vec<String> = t
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, _)| k.to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(series(&before.text()), series(&text), "new series appeared:\n{text}");
    // Only counter values changed (a few more digits).
    assert!(
        after.body.len() <= before.body.len() + 64,
        "/metrics grew from {} to {} bytes:\n{text}",
        before.body.len(),
        after.body.len()
    );
}

// ---------------------------------------------------------------------------------------------
// sign-url
// ---------------------------------------------------------------------------------------------

/// Runs `tus-server <args>` to completion, returning its stdout (asserting success).
#[track_caller]
fn run_binary(args: &[&str]) -> String {
    let out = Command::new(server_binary())
        .args(args)
        .env_remove("TUS_SIGNING_KEY")
        .env_remove("TUS_SIGNING_KEY_FILE")
        .env_remove("TUS_HOST")
        .env_remove("TUS_PORT")
        .env_remove("TUS_BASE_PATH")
        .stdin(Stdio::null())
        .output()
        .expect("run tus-server");
    assert!(
        out.status.success(),
        "tus-server {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output").trim().to_owned()
}

/// Downloads `url`, following one redirect (S3 stores answer signed downloads with a
/// presigned URL), and returns the status and body.
fn download(url: &str) -> (u16, Vec<u8>) {
    let res = get(url);
    if (300..400).contains(&res.status)
        && let Some(location) = res.header("Location")
    {
        let next = get(location);
        return (next.status, next.body);
    }
    (res.status, res.body)
}

#[test]
fn sign_url_takes_the_key_flags_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("keys");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n").expect("key file");
    let key_file = key_file.to_str().expect("utf-8 path");
    let s = TestServer::spawn(&["--signing-key-file", key_file]);
    let data = b"signed download";
    let url = s.upload(data);
    let id = last_segment(&url);
    assert_eq!(get(&url).status, 403, "downloads are not signed");
    let (host, port) = s.authority().rsplit_once(':').expect("host:port");

    let before = run_binary(&["--signing-key-file", key_file, "--host", host, "--port", port, "sign-url", id]);
    let after = run_binary(&["sign-url", id, "--signing-key-file", key_file, "--host", host, "--port", port]);
    let mixed =
        run_binary(&["--host", host, "sign-url", id, "--ttl", "5m", "--port", port, "--signing-key-file", key_file]);
    let inline =
        run_binary(&["sign-url", id, "--signing-key", "0123456789abcdef0123456789abcdef", "--public-url", s.origin()]);
    for signed in [&before, &after, &mixed, &inline] {
        assert!(signed.starts_with(&url), "{signed:?} is not a URL of {url}");
        assert_eq!(download(signed), (200, data.to_vec()), "{signed} does not verify");
    }
    let tampered = format!("{}{}", &before[..before.len() - 1], if before.ends_with('0') { '1' } else { '0' });
    assert_eq!(get(&tampered).status, 403, "a tampered signature verified");
}

// ---------------------------------------------------------------------------------------------
// Log colour
// ---------------------------------------------------------------------------------------------

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(server_binary())
        .args(["--host", "127.0.0.1", "--port", "0", "--upload-dir"])
        .arg(dir.path())
        .env_remove("NO_COLOR")
        .env("TUS_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tus-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.contains("ready") {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("ready"), "the server logged no start-up line:\n{log}");
    assert!(!log.contains("\x1b["), "colour codes in piped logs:\n{log:?}");
}

/// The output of `tus-server` failing at start-up (a weak signing key) on a pseudo-terminal,
/// through `script(1)`; `None` if `script` is not available.
fn on_a_terminal(upload_dir: &Path, no_color: Option<&str>) -> Option<String> {
    let bin = server_binary();
    let command = format!(
        "'{}' --host 127.0.0.1 --port 0 --upload-dir '{}' --signing-key weak",
        bin.display(),
        upload_dir.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_remove("TUS_SIGNING_KEY_FILE")
        .env("TUS_LOG", "info")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    match no_color {
        Some(value) => cmd.env("NO_COLOR", value),
        None => cmd.env_remove("NO_COLOR"),
    };
    let out = cmd.output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(plain) = on_a_terminal(dir.path(), None) else {
        eprintln!("script(1) is not available; skipping the terminal case");
        return;
    };
    assert!(plain.contains("tus-server failed"), "no error logged:\n{plain:?}");
    assert!(plain.contains("\x1b["), "no colour on a terminal:\n{plain:?}");
    let empty = on_a_terminal(dir.path(), Some("")).expect("script");
    assert!(empty.contains("\x1b["), "an empty NO_COLOR turned colour off:\n{empty:?}");
    let no_color = on_a_terminal(dir.path(), Some("1")).expect("script");
    assert!(no_color.contains("tus-server failed"), "no error logged:\n{no_color:?}");
    assert!(!no_color.contains("\x1b["), "colour codes despite NO_COLOR:\n{no_color:?}");
}
