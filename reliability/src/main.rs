//! Fault-injection and soak harness for `tus-server` (issue 8).
//!
//! ```text
//! reliability [--quick] [--server-bin PATH] [--s3-endpoint URL] [--soak-clients N] [--soak-secs S] [MODE...]
//! ```
//!
//! Modes (default: all but `soak`; `all` adds it):
//!
//! * `crash-fs`, `crash-s3`: uploads of random sizes in random PATCH sizes while the server is
//!   SIGKILLed and restarted at random moments; the clients resume with HEAD. Checked: every
//!   final sha256 and byte, no HEAD offset ever goes backwards (it never reported bytes that were
//!   not stored), no acknowledged byte is lost.
//! * `network`: PATCHes cut at random byte positions (close, reset, stall past the body read
//!   timeout); a HEAD right after each answers promptly (nothing left locked) with an offset
//!   between the acknowledged bytes and the bytes sent; every upload finishes identical.
//! * `concurrency`: several clients PATCH, HEAD, GET and DELETE the same upload at once: offsets
//!   are well-formed and monotonic, a GET is either refused or exactly the data.
//! * `disk-full`: the fs store on a small tmpfs (private mount namespace) that fills up: the
//!   client gets a 5xx, nothing acknowledged is lost, and after space is freed the upload
//!   resumes and finishes identical.
//! * `soak`: many concurrent clients upload, verify and delete for a bounded time: zero errors,
//!   zero corrupted files; server RSS sampled from /proc and checked flat after warm-up.
//!
//! `--quick` runs small variants (the one `scripts/test-all.sh` runs). The server binary
//! defaults to `tus-server` next to this executable (build both with the same profile). The S3
//! modes need moto: `--s3-endpoint` or `TUS_TEST_MOTO_ENDPOINT`.

mod server;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use conformance_tests::{Conn, Request, Response, pseudo_random};
use sha2::{Digest as _, Sha256};

use server::{Server, Storage};

type Res<T> = Result<T, String>;

/// Settings from the command line.
#[derive(Clone, Debug)]
struct Opts {
    quick: bool,
    server_bin: PathBuf,
    s3_endpoint: Option<String>,
    soak_clients: Option<usize>,
    soak_secs: Option<u64>,
    work: PathBuf,
}

/// A small deterministic PRNG (xorshift64*).
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next() % (hi - lo + 1) }
    }
    /// Log-uniform in `lo..=hi` (as many small sizes as large ones).
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo.max(1) as f64).ln(), (hi.max(1) as f64).ln());
        let x = a + (b - a) * (self.next() % 1_000_001) as f64 / 1_000_000.0;
        (x.exp() as u64).clamp(lo, hi)
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seed_from_time() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
}

const SHORT: Duration = Duration::from_secs(10);

/// The work directory's folder for `mode`, created if needed.
fn mode_dir(opts: &Opts, mode: &str) -> Res<PathBuf> {
    let dir = opts.work.join(mode);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Starts the server with `extra` arguments on `mode`'s folder, logging to `<mode>.log`.
fn start_fs_server(opts: &Opts, mode: &str, extra: &[&str]) -> Res<Server> {
    let log = opts.work.join(format!("{mode}.log"));
    let mut server = Server::new(&opts.server_bin, Storage::Fs(mode_dir(opts, mode)?), extra, log);
    server.start()?;
    Ok(server)
}

/// The `Upload-Offset` of `r` (`None` without one); a value that is not a number is torn.
fn offset_of(url: &str, r: &Response) -> Res<Option<u64>> {
    let parse = |v: &str| v.parse().map_err(|_| format!("{url}: torn Upload-Offset {v:?}"));
    r.header("Upload-Offset").map(parse).transpose()
}

fn try_req(req: Request, timeout: Duration) -> std::io::Result<Response> {
    req.timeout(timeout).try_send()
}

fn abs(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        let origin = base.trim_end_matches('/').rsplitn(2, "/files").last().unwrap_or(base).to_owned();
        format!("{origin}{location}")
    }
}

/// POST until a 201 (retrying connection errors and 5xx while the server restarts).
fn create(base: &str, len: u64, deadline: Instant) -> Res<String> {
    loop {
        if Instant::now() > deadline {
            return Err("creation did not succeed before the deadline".into());
        }
        match try_req(Request::tus("POST", base).header("Upload-Length", len.to_string()).body(b""), SHORT) {
            Ok(r) if r.status == 201 => return Ok(abs(base, r.location())),
            Ok(r) if r.status >= 500 => {}
            Ok(r) => return Err(format!("POST answered {}:\n{r}", r.status)),
            Err(_) => {}
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// HEAD until it answers 200; returns the offset.
fn head_offset(url: &str, deadline: Instant) -> Res<u64> {
    loop {
        if Instant::now() > deadline {
            return Err(format!("HEAD {url} did not succeed before the deadline"));
        }
        match try_req(Request::tus("HEAD", url), SHORT) {
            Ok(r) if r.status == 200 => {
                return r
                    .header("Upload-Offset")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("HEAD without a valid Upload-Offset:\n{r}"));
            }
            Ok(r) if r.status >= 500 || r.status == 423 => {}
            Ok(r) => return Err(format!("HEAD {url} answered {}:\n{r}", r.status)),
            Err(_) => {}
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// GET until it answers 200; returns the body.
fn download(url: &str, deadline: Instant) -> Res<Vec<u8>> {
    loop {
        if Instant::now() > deadline {
            return Err(format!("GET {url} did not succeed before the deadline"));
        }
        match try_req(Request::new("GET", url), Duration::from_secs(60)) {
            Ok(r) if r.status == 200 => return Ok(r.body),
            Ok(r) if r.status >= 500 => {}
            Ok(r) => return Err(format!("GET {url} answered {}:\n{r}", r.status)),
            Err(_) => {}
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn checksum_header(data: &[u8]) -> String {
    use base64::Engine as _;
    format!("sha256 {}", base64::engine::general_purpose::STANDARD.encode(sha256(data)))
}

// ---------------------------------------------------------------------------------------------
// crash
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct CrashStats {
    uploads_ok: AtomicUsize,
    bytes: AtomicU64,
    patches_acked: AtomicUsize,
    patches_failed: AtomicUsize,
    resumes: AtomicUsize,
}

/// One upload through crashes; returns an error describing any violated guarantee.
fn crash_upload(
    base: &str,
    len: u64,
    seed: u64,
    (min_chunk, max_chunk): (u64, u64),
    stats: &CrashStats,
    deadline: Instant,
) -> Res<()> {
    let data = pseudo_random(len as usize, seed);
    let mut rng = Rng::new(seed ^ 0xc0ffee);
    let url = create(base, len, deadline)?;
    let mut acked = 0u64;
    let mut highest_head = 0u64;
    let mut interrupted = false;
    loop {
        let o = head_offset(&url, deadline)?;
        if interrupted {
            stats.resumes.fetch_add(1, Ordering::Relaxed);
        }
        interrupted = true;
        if o < acked {
            return Err(format!("{url}: HEAD says {o} after {acked} bytes were acknowledged: acknowledged bytes lost"));
        }
        if o < highest_head {
            return Err(format!(
                "{url}: HEAD went back from {highest_head} to {o}: an earlier HEAD reported bytes that were not stored"
            ));
        }
        if o > len {
            return Err(format!("{url}: HEAD offset {o} past the length {len}"));
        }
        highest_head = o;
        if o == len {
            break;
        }
        let n = rng.log_range(min_chunk.min(len - o), max_chunk.min(len - o));
        let chunk = &data[o as usize..(o + n) as usize];
        let mut req = Request::patch(&url, o, chunk);
        if rng.range(0, 3) == 0 {
            req = req.header("Upload-Checksum", checksum_header(chunk));
        }
        match try_req(req, Duration::from_secs(60)) {
            Ok(r) if r.status == 204 => {
                let new: u64 = r.header("Upload-Offset").and_then(|v| v.parse().ok()).unwrap_or(0);
                if new != o + n {
                    return Err(format!("{url}: PATCH of {n} bytes at {o} acknowledged offset {new}"));
                }
                acked = new;
                interrupted = false;
                stats.patches_acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) if r.status >= 500 || matches!(r.status, 400 | 409 | 423) => {
                stats.patches_failed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => return Err(format!("{url}: PATCH answered {}:\n{r}", r.status)),
            Err(_) => {
                stats.patches_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{url}: not finished before the deadline ({o} of {len})"));
        }
    }
    let body = download(&url, deadline)?;
    if sha256(&body) != sha256(&data) || body != data {
        let first_diff = body.iter().zip(&data).position(|(a, b)| a != b);
        return Err(format!(
            "{url}: sha256 {} != expected {} (got {} bytes of {len}, first difference at {first_diff:?})",
            hex(&sha256(&body)),
            hex(&sha256(&data)),
            body.len()
        ));
    }
    // Free the space again (best effort: the server may be restarting).
    let _ = try_req(Request::tus("DELETE", &url), SHORT);
    stats.uploads_ok.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(len, Ordering::Relaxed);
    Ok(())
}

fn crash(opts: &Opts, s3: bool) -> Res<String> {
    let (uploads, max_size, workers, budget) = match (opts.quick, s3) {
        (true, false) => (16, 8 << 20, 3, 120),
        (true, true) => (5, 8 << 20, 3, 180),
        (false, _) => (100, 64 << 20, 4, 1800),
    };
    let name = if s3 { "crash-s3" } else { "crash-fs" };
    let storage = if s3 {
        let endpoint = opts.s3_endpoint.clone().ok_or(
            "crash-s3 needs moto: start `moto_server -H 127.0.0.1 -p PORT` (PyPI moto[server]) and pass \
             --s3-endpoint http://127.0.0.1:PORT or set TUS_TEST_MOTO_ENDPOINT",
        )?;
        let bucket = format!("tus-reliability-{}-{}", std::process::id(), seed_from_time() % 100_000);
        let resp = try_req(Request::new("PUT", &format!("{endpoint}/{bucket}")).body(b""), SHORT)
            .map_err(|e| format!("cannot reach moto at {endpoint}: {e}"))?;
        if !resp.is_success() {
            return Err(format!("creating bucket {bucket} failed:\n{resp}"));
        }
        Storage::S3(endpoint, bucket)
    } else {
        Storage::Fs(mode_dir(opts, name)?)
    };
    let log = opts.work.join(format!("{name}.log"));
    let mut server = Server::new(&opts.server_bin, storage, &["--lock-timeout", "3s"], log);
    server.start()?;
    let base = server.url();
    let server = Arc::new(Mutex::new(server));
    let deadline = Instant::now() + Duration::from_secs(budget);
    let seed = seed_from_time();
    let mut rng = Rng::new(seed);
    // Half log-uniform (many small uploads, down to 1 byte), half uniform in the top half.
    let sizes: Vec<u64> = (0..uploads)
        .map(|i| if i % 2 == 0 { rng.log_range(1, max_size) } else { rng.range(max_size / 2, max_size) })
        .collect();
    let total: u64 = sizes.iter().sum();
    println!("[{name}] {uploads} uploads, {} MiB in total, seed {seed}, {workers} clients", total >> 20);
    let stats = Arc::new(CrashStats::default());
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (server, done, kills) = (Arc::clone(&server), Arc::clone(&done), Arc::clone(&kills));
        let mut rng = Rng::new(seed ^ 0x5eed);
        // The S3 store takes longer to start and to move bytes: crash it less often.
        let (lo, hi) = if s3 { (1500, 5000) } else { (200, 1500) };
        thread::spawn(move || -> Res<()> {
            // The first crash comes early, so even a run that goes faster than planned is
            // crashed at least once; later ones at the mode's pace.
            let mut wait = rng.range(100, 400);
            while !done.load(Ordering::Relaxed) {
                let until = Instant::now() + Duration::from_millis(wait);
                while Instant::now() < until && !done.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(10));
                }
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let mut s = server.lock().map_err(|_| "poisoned")?;
                s.kill();
                kills.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(rng.range(0, 300)));
                s.start()?;
                wait = rng.range(lo, hi);
            }
            Ok(())
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let sizes = Arc::new(sizes);
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (next, sizes, stats, failures, base) =
                (Arc::clone(&next), Arc::clone(&sizes), Arc::clone(&stats), Arc::clone(&failures), base.clone());
            thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&len) = sizes.get(i) else { break };
                    // Every S3 PATCH is several S3 requests: fewer, larger PATCHes there.
                    let min_chunk = if s3 { (len / 12).max(1) } else { 1 };
                    let chunks = (min_chunk, (len / 3).clamp(1, 8 << 20));
                    if let Err(e) = crash_upload(&base, len, seed.wrapping_add(i as u64), chunks, &stats, deadline)
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(e);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    done.store(true, Ordering::Relaxed);
    let killer_result = killer.join().map_err(|_| "the killer thread panicked".to_owned())?;
    killer_result?;
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let ok = stats.uploads_ok.load(Ordering::Relaxed);
    let summary = format!(
        "[{name}] {ok}/{uploads} uploads verified (sha256 + bytes), {} MiB, {} SIGKILL+restart, {} PATCHes acknowledged, \
         {} PATCHes cut by crashes, {} resumes via HEAD",
        stats.bytes.load(Ordering::Relaxed) >> 20,
        kills.load(Ordering::Relaxed),
        stats.patches_acked.load(Ordering::Relaxed),
        stats.patches_failed.load(Ordering::Relaxed),
        stats.resumes.load(Ordering::Relaxed),
    );
    if !failures.is_empty() || ok != uploads {
        return Err(format!("{summary}\nfailures:\n  {}", failures.join("\n  ")));
    }
    if kills.load(Ordering::Relaxed) == 0 {
        return Err(format!("{summary}\nthe server was never killed: the run proves nothing"));
    }
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// network
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    Close,
    Reset,
    Stall,
}

/// Sends a PATCH head announcing `announced` bytes and then only `sent` of `data`, and ends it
/// as `cut` says. Returns what the server answered for a stall.
fn cut_patch(url: &str, offset: u64, data: &[u8], sent: usize, cut: Cut) -> Res<Option<Response>> {
    let req = Request::patch(url, offset, data);
    let authority = req.url.authority.clone();
    let addr: std::net::SocketAddr = authority.parse().map_err(|e| format!("{authority}: {e}"))?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).map_err(|e| e.to_string())?;
    socket.connect_timeout(&addr.into(), SHORT).map_err(|e| e.to_string())?;
    if cut == Cut::Reset {
        socket.set_linger(Some(Duration::ZERO)).map_err(|e| e.to_string())?;
    }
    let mut stream: TcpStream = socket.into();
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(SHORT)).map_err(|e| e.to_string())?;
    let mut head = req.head_bytes();
    head.extend_from_slice(&data[..sent]);
    stream.write_all(&head).map_err(|e| format!("writing the cut PATCH: {e}"))?;
    match cut {
        Cut::Close | Cut::Reset => {
            drop(stream);
            Ok(None)
        }
        Cut::Stall => {
            // Send nothing more and read the answer to the stalled request.
            let mut reader = std::io::BufReader::new(stream);
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut reader, &mut text);
            let status = String::from_utf8_lossy(&text).split_whitespace().nth(1).and_then(|s| s.parse().ok());
            Ok(status.map(|status| Response { status, body: text, ..Response::default() }))
        }
    }
}

fn network(opts: &Opts) -> Res<String> {
    let (uploads, cuts_wanted, max_size, budget): (usize, usize, u64, u64) =
        if opts.quick { (10, 120, 1 << 20, 120) } else { (40, 1000, 4 << 20, 900) };
    let server = start_fs_server(opts, "network", &["--body-read-timeout", "1s", "--lock-timeout", "3s"])?;
    let base = server.url();
    let deadline = Instant::now() + Duration::from_secs(budget);
    let seed = seed_from_time();
    let per_upload = cuts_wanted.div_ceil(uploads);
    let cuts = Arc::new(Mutex::new(BTreeMap::<Cut, usize>::new()));
    let slowest_head = Arc::new(Mutex::new(Duration::ZERO));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let late = Arc::new(Mutex::new(0usize));
    let workers = 4;
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (base, cuts, slowest_head, failures, next, late) = (
                base.clone(),
                Arc::clone(&cuts),
                Arc::clone(&slowest_head),
                Arc::clone(&failures),
                Arc::clone(&next),
                Arc::clone(&late),
            );
            thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    // Uploads that finish in fewer cuts than planned leave a shortfall: keep
                    // adding uploads (up to 4× the plan) until the wanted number of cuts happened.
                    let cut_so_far: usize = cuts.lock().map(|c| c.values().sum()).unwrap_or(0);
                    if i >= uploads && (cut_so_far >= cuts_wanted || i >= uploads * 4 || Instant::now() > deadline) {
                        break;
                    }
                    let mut rng = Rng::new(seed.wrapping_add(i as u64));
                    let result = (|| -> Res<()> {
                        let len = rng.range(max_size / 4, max_size);
                        let data = pseudo_random(len as usize, seed.wrapping_add(1000 + i as u64));
                        let url = create(&base, len, deadline)?;
                        let mut acked = 0u64;
                        let mut done_cuts = 0;
                        // The furthest byte any cut PATCH of this upload carried. A cut request
                        // the server had not started on when the HEAD after it came may still
                        // append its bytes later (tus allows it: the next PATCH gets 409 and the
                        // client asks again); bytes beyond this would come from nowhere.
                        let mut reach = 0u64;
                        loop {
                            let started = Instant::now();
                            let o = head_offset(&url, deadline)?;
                            let took = started.elapsed();
                            if let Ok(mut s) = slowest_head.lock() {
                                *s = (*s).max(took);
                            }
                            if took > Duration::from_secs(3) {
                                return Err(format!("{url}: HEAD after a cut took {took:?}: upload left locked"));
                            }
                            if o < acked {
                                return Err(format!("{url}: offset {o} < acknowledged {acked}"));
                            }
                            acked = o;
                            if o == len {
                                break;
                            }
                            let rest = &data[o as usize..];
                            if done_cuts < per_upload && rest.len() > 1 {
                                let cut = match rng.range(0, 9) {
                                    0 => Cut::Stall,
                                    1..=4 => Cut::Close,
                                    _ => Cut::Reset,
                                };
                                let sent = rng.range(0, rest.len() as u64 - 1) as usize;
                                let earlier_reach = reach;
                                reach = reach.max(o + sent as u64);
                                let answer = cut_patch(&url, o, rest, sent, cut)?;
                                let after = head_offset(&url, deadline)?;
                                if after < o || after > reach {
                                    return Err(format!(
                                        "{url}: after a {cut:?} with {sent} of {} bytes sent at {o}, HEAD says {after} \
                                         (no cut PATCH carried bytes past {reach})",
                                        rest.len()
                                    ));
                                }
                                // An earlier cut request appended after the HEAD that preceded
                                // this one: this one found the offset moved.
                                let overtaken = after > o + sent as u64
                                    || answer
                                        .as_ref()
                                        .is_some_and(|r| r.status == 409 && after > o && after <= earlier_reach);
                                if overtaken && let Ok(mut l) = late.lock() {
                                    *l += 1;
                                }
                                if cut == Cut::Stall && !overtaken {
                                    match answer {
                                        Some(r) if r.status == 500 || r.status == 400 => {}
                                        None => {}
                                        Some(r) => return Err(format!("{url}: stalled PATCH answered {}", r.status)),
                                    }
                                }
                                if cut == Cut::Stall && !overtaken && after != o + sent as u64 {
                                    return Err(format!(
                                        "{url}: a stalled PATCH delivered {sent} bytes at {o}, but only {} were kept",
                                        after - o
                                    ));
                                }
                                done_cuts += 1;
                                if let Ok(mut c) = cuts.lock() {
                                    *c.entry(cut).or_default() += 1;
                                }
                            } else {
                                match try_req(Request::patch(&url, o, rest), Duration::from_secs(30)) {
                                    Ok(r) if r.status == 204 => acked = len,
                                    // Overtaken by a late cut request (see `reach`): ask again.
                                    Ok(r) if r.status == 409 && reach > o => {
                                        if let Ok(mut l) = late.lock() {
                                            *l += 1;
                                        }
                                    }
                                    Ok(r) => return Err(format!("{url}: final PATCH answered {}:\n{r}", r.status)),
                                    Err(e) => return Err(format!("{url}: final PATCH failed: {e}")),
                                }
                            }
                        }
                        let body = download(&url, deadline)?;
                        if body != data {
                            return Err(format!("{url}: downloaded bytes differ from the uploaded ones"));
                        }
                        Ok(())
                    })();
                    if let Err(e) = result
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(e);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let cuts = cuts.lock().map(|c| c.clone()).unwrap_or_default();
    let total: usize = cuts.values().sum();
    // Every worker's last ticket found no more work.
    let uploaded = next.load(Ordering::Relaxed).saturating_sub(workers);
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let summary = format!(
        "[network] {total} PATCHes cut ({} closed mid-body, {} reset, {} stalled past the 1 s read timeout) on {uploaded} \
         uploads; all finished identical: {}; slowest HEAD after a cut {:?}; cut requests appended after a later HEAD: {}",
        cuts.get(&Cut::Close).unwrap_or(&0),
        cuts.get(&Cut::Reset).unwrap_or(&0),
        cuts.get(&Cut::Stall).unwrap_or(&0),
        failures.is_empty(),
        slowest_head.lock().map(|s| *s).unwrap_or_default(),
        late.lock().map(|l| *l).unwrap_or_default(),
    );
    if !failures.is_empty() {
        return Err(format!("{summary}\nfailures:\n  {}", failures.join("\n  ")));
    }
    if total < cuts_wanted {
        return Err(format!("{summary}\nonly {total} of {cuts_wanted} cuts happened"));
    }
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// concurrency
// ---------------------------------------------------------------------------------------------

fn concurrency(opts: &Opts) -> Res<String> {
    let (rounds, clients, max_size) = if opts.quick { (8, 6, 2 << 20) } else { (40, 12, 16 << 20) };
    let server = start_fs_server(opts, "concurrency", &["--lock-timeout", "2s", "--body-read-timeout", "5s"])?;
    let base = server.url();
    let seed = seed_from_time();
    let deadline = Instant::now() + Duration::from_secs(if opts.quick { 120 } else { 900 });
    let counts = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let mut deleted_rounds = 0;
    for round in 0..rounds {
        let mut rng = Rng::new(seed.wrapping_add(round));
        let len = rng.log_range(1, max_size);
        let data = Arc::new(pseudo_random(len as usize, seed ^ round));
        let url = create(&base, len, deadline)?;
        let delete_at = (round % 2 == 1).then(|| Instant::now() + Duration::from_millis(rng.range(0, 400)));
        if delete_at.is_some() {
            deleted_rounds += 1;
        }
        let deleted = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (url, data, counts, deleted) =
                    (url.clone(), Arc::clone(&data), Arc::clone(&counts), Arc::clone(&deleted));
                let mut rng = Rng::new(seed ^ (round << 8) ^ c as u64);
                thread::spawn(move || -> Res<()> {
                    let mut last_seen = 0u64;
                    let mut complete_reads = 0;
                    let count = |what: &str| {
                        if let Ok(mut m) = counts.lock() {
                            *m.entry(what.to_owned()).or_default() += 1;
                        }
                    };
                    loop {
                        if Instant::now() > deadline {
                            return Err(format!("{url}: round not finished before the deadline"));
                        }
                        if c == 0 && delete_at.is_some_and(|t| Instant::now() >= t) && !deleted.load(Ordering::SeqCst) {
                            let r = try_req(Request::tus("DELETE", &url), SHORT).map_err(|e| e.to_string())?;
                            count(&format!("DELETE {}", r.status));
                            match r.status {
                                204 => deleted.store(true, Ordering::SeqCst),
                                423 | 409 | 500 | 503 => {}
                                s => return Err(format!("{url}: DELETE answered {s}:\n{r}")),
                            }
                            continue;
                        }
                        let was_deleted = deleted.load(Ordering::SeqCst);
                        match rng.range(0, 9) {
                            0..=3 => {
                                let r = try_req(Request::tus("HEAD", &url), SHORT).map_err(|e| e.to_string())?;
                                count(&format!("HEAD {}", r.status));
                                match r.status {
                                    200 => {
                                        let o = offset_of(&url, &r)?
                                            .ok_or_else(|| format!("{url}: HEAD 200 without Upload-Offset"))?;
                                        if o < last_seen || o > len {
                                            return Err(format!(
                                                "{url}: HEAD offset {o} after {last_seen} (length {len})"
                                            ));
                                        }
                                        if was_deleted {
                                            return Err(format!("{url}: HEAD 200 after the DELETE answered"));
                                        }
                                        last_seen = o;
                                    }
                                    404 | 410 if delete_at.is_some() => return Ok(()),
                                    423 => {}
                                    s => return Err(format!("{url}: HEAD answered {s}:\n{r}")),
                                }
                            }
                            4..=6 => {
                                let o = last_seen;
                                if o >= len {
                                    continue;
                                }
                                let n = rng.log_range(1, len - o);
                                let r = try_req(Request::patch(&url, o, &data[o as usize..(o + n) as usize]), SHORT)
                                    .map_err(|e| e.to_string())?;
                                count(&format!("PATCH {}", r.status));
                                match r.status {
                                    204 => {
                                        let new = offset_of(&url, &r)?
                                            .ok_or_else(|| format!("{url}: PATCH 204 without Upload-Offset"))?;
                                        if new != o + n {
                                            return Err(format!("{url}: PATCH {n}@{o} acknowledged {new}"));
                                        }
                                        last_seen = new;
                                    }
                                    404 | 410 if delete_at.is_some() => return Ok(()),
                                    400 | 409 | 423 => {
                                        if let Some(o2) = offset_of(&url, &r)? {
                                            last_seen = last_seen.max(o2.min(len));
                                        }
                                    }
                                    s => return Err(format!("{url}: PATCH answered {s}:\n{r}")),
                                }
                            }
                            _ => {
                                let r = try_req(Request::new("GET", &url), Duration::from_secs(30))
                                    .map_err(|e| e.to_string())?;
                                count(&format!("GET {}", r.status));
                                match r.status {
                                    200 => {
                                        if r.body != *data {
                                            return Err(format!("{url}: GET returned corrupted bytes"));
                                        }
                                        if was_deleted {
                                            return Err(format!("{url}: GET 200 after the DELETE answered"));
                                        }
                                        complete_reads += 1;
                                        last_seen = len;
                                        if complete_reads >= 2 && delete_at.is_none() {
                                            return Ok(());
                                        }
                                    }
                                    409 => {}
                                    404 | 410 if delete_at.is_some() => return Ok(()),
                                    s => return Err(format!("{url}: GET answered {s}:\n{r}")),
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "a client thread panicked".to_owned())??;
        }
        if delete_at.is_none() {
            let body = download(&url, deadline)?;
            if body != *data {
                return Err(format!("{url}: final bytes differ"));
            }
        } else {
            let r = try_req(Request::tus("HEAD", &url), SHORT).map_err(|e| e.to_string())?;
            if r.status != 404 && r.status != 410 {
                return Err(format!("{url}: HEAD after DELETE answered {}", r.status));
            }
        }
    }
    let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
    let total: usize = counts.values().sum();
    let detail: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Ok(format!(
        "[concurrency] {rounds} rounds ({deleted_rounds} with a racing DELETE), {clients} clients each, {total} requests; \
         no torn offset, no corrupted GET ({})",
        detail.join(", ")
    ))
}

// ---------------------------------------------------------------------------------------------
// disk full
// ---------------------------------------------------------------------------------------------

fn disk_full(opts: &Opts) -> Res<String> {
    let dir = mode_dir(opts, "disk-full")?;
    let size: u64 = 8 << 20;
    let mut server = Server::new(
        &opts.server_bin,
        Storage::SmallTmpfs(dir, size),
        &["--body-read-timeout", "5s"],
        opts.work.join("disk-full.log"),
    );
    server.start().map_err(|e| {
        format!(
            "{e}\nthe disk-full mode mounts an 8 MiB tmpfs in a private mount namespace (`unshare -rm`): it needs \
             root or unprivileged user namespaces"
        )
    })?;
    let base = server.url();
    let deadline = Instant::now() + Duration::from_secs(60);
    // C: a complete upload that must survive everything below.
    let c_data = pseudo_random(100_000, 3);
    let c = create(&base, c_data.len() as u64, deadline)?;
    let r = try_req(Request::patch(&c, 0, &c_data), SHORT).map_err(|e| e.to_string())?;
    if r.status != 204 {
        return Err(format!("upload C answered {}:\n{r}", r.status));
    }
    // Something else fills most of the disk: a ballast file written through the server's view
    // of its private mount namespace (/proc/<pid>/root).
    let pid = server.pid().ok_or("the server is not running")?;
    let ballast = PathBuf::from(format!("/proc/{pid}/root{}/ballast", dir_of(&opts.work.join("disk-full"))));
    std::fs::write(&ballast, pseudo_random(5 << 20, 9)).map_err(|e| format!("writing {}: {e}", ballast.display()))?;
    let b_data = pseudo_random(6 << 20, 2);
    let b = create(&base, b_data.len() as u64, deadline)?;
    let first = 1 << 20;
    let r = try_req(Request::patch(&b, 0, &b_data[..first]), SHORT).map_err(|e| e.to_string())?;
    if r.status != 204 {
        return Err(format!("first PATCH of B answered {}:\n{r}", r.status));
    }
    let acked = first as u64;
    let mut statuses = Vec::new();
    let mut stuck_at = 0;
    for _ in 0..3 {
        let o = head_offset(&b, deadline)?;
        if o < acked {
            return Err(format!("B: HEAD {o} < acknowledged {acked} on a full disk"));
        }
        let r = try_req(Request::patch(&b, o, &b_data[o as usize..]), SHORT).map_err(|e| e.to_string())?;
        statuses.push(r.status);
        if r.status == 204 {
            return Err(format!("B: a PATCH past the free space was acknowledged (offset {o}); is the tmpfs mounted?"));
        }
        if r.status < 500 {
            return Err(format!("B: disk full answered {} (expected a retryable 5xx):\n{r}", r.status));
        }
        stuck_at = head_offset(&b, deadline)?;
    }
    // Termination on a full disk: refused or done, but never a half-deleted upload.
    let del = try_req(Request::tus("DELETE", &c), SHORT).map_err(|e| e.to_string())?;
    let c_after = try_req(Request::new("GET", &c), SHORT).map_err(|e| e.to_string())?;
    match (del.status, c_after.status) {
        (204, 404 | 410) => {}
        (s, 200) if s >= 500 => {
            if c_after.body != c_data {
                return Err("C: a refused DELETE on a full disk changed its bytes".into());
            }
        }
        (d, g) => return Err(format!("C: DELETE on a full disk answered {d}, then GET {g}")),
    }
    // Space is freed; the client resumes.
    std::fs::remove_file(&ballast).map_err(|e| format!("removing {}: {e}", ballast.display()))?;
    let o = head_offset(&b, deadline)?;
    if o < acked {
        return Err(format!("B: HEAD {o} < acknowledged {acked} after freeing space"));
    }
    let r = try_req(Request::patch(&b, o, &b_data[o as usize..]), SHORT).map_err(|e| e.to_string())?;
    if r.status != 204 {
        return Err(format!("B: resumed PATCH answered {}:\n{r}", r.status));
    }
    let body = download(&b, deadline)?;
    if body != b_data {
        return Err("B: downloaded bytes differ after the disk-full episode".into());
    }
    if del.status != 204 {
        let r = try_req(Request::tus("DELETE", &c), SHORT).map_err(|e| e.to_string())?;
        if r.status != 204 {
            return Err(format!("C: DELETE after freeing space answered {}", r.status));
        }
    }
    Ok(format!(
        "[disk-full] fs store on an {} MiB tmpfs filled by a 5 MiB ballast: PATCHes past the free space answered \
         {statuses:?} (retryable), HEAD kept {stuck_at} bytes (>= {acked} acknowledged); DELETE of another upload \
         on the full disk answered {} (upload intact); after freeing space the upload resumed at {o} and finished \
         identical",
        size >> 20,
        del.status
    ))
}

fn dir_of(p: &std::path::Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// soak
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct SoakStats {
    uploads: AtomicUsize,
    bytes: AtomicU64,
    requests: AtomicUsize,
    errors: AtomicUsize,
    corrupted: AtomicUsize,
}

fn soak_client(base: &str, id: u64, until: Instant, stats: &SoakStats, errors: &Mutex<Vec<String>>) {
    let mut rng = Rng::new(id.wrapping_mul(7919) ^ seed_from_time());
    let authority = conformance_tests::Url::parse(base).authority;
    let mut conn: Option<Conn> = None;
    let fail = |e: String| {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut v) = errors.lock()
            && v.len() < 20
        {
            v.push(e);
        }
    };
    let send = |conn: &mut Option<Conn>, req: Request| -> Res<Response> {
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let req = req.header("Connection", "keep-alive");
        if conn.is_none() {
            *conn = Some(Conn::connect(&authority, Duration::from_secs(60)).map_err(|e| format!("connect: {e}"))?);
        }
        let c = conn.as_mut().ok_or("no connection")?;
        match c.send(&req) {
            Ok(r) => Ok(r),
            Err(e) => {
                *conn = None;
                Err(format!("{} {}: {e}", req.method, req.target))
            }
        }
    };
    while Instant::now() < until {
        let len = rng.log_range(1, 1 << 20);
        let data = pseudo_random(len as usize, rng.next());
        let result = (|| -> Res<()> {
            let r = send(&mut conn, Request::tus("POST", base).header("Upload-Length", len.to_string()).body(b""))?;
            if r.status != 201 {
                return Err(format!("POST {}", r.status));
            }
            let url = abs(base, r.location());
            let mut o = 0u64;
            while o < len {
                let n = rng.log_range(1, len - o);
                let r = send(&mut conn, Request::patch(&url, o, &data[o as usize..(o + n) as usize]))?;
                if r.status != 204 || r.header("Upload-Offset") != Some(&(o + n).to_string()) {
                    return Err(format!("PATCH {}:\n{r}", r.status));
                }
                o += n;
            }
            let r = send(&mut conn, Request::tus("HEAD", &url))?;
            if r.status != 200 || r.header("Upload-Offset") != Some(&len.to_string()) {
                return Err(format!("HEAD {}:\n{r}", r.status));
            }
            let r = send(&mut conn, Request::new("GET", &url))?;
            if r.status != 200 {
                return Err(format!("GET {}", r.status));
            }
            if sha256(&r.body) != sha256(&data) {
                stats.corrupted.fetch_add(1, Ordering::Relaxed);
                return Err(format!("{url}: corrupted download"));
            }
            let r = send(&mut conn, Request::tus("DELETE", &url))?;
            if r.status != 204 {
                return Err(format!("DELETE {}", r.status));
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                stats.uploads.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(len, Ordering::Relaxed);
            }
            Err(e) => fail(e),
        }
    }
}

fn soak(opts: &Opts) -> Res<String> {
    let clients = opts.soak_clients.unwrap_or(if opts.quick { 50 } else { 500 });
    let secs = opts.soak_secs.unwrap_or(if opts.quick { 20 } else { 300 });
    let server = start_fs_server(opts, "soak", &[])?;
    let base = server.url();
    let rss_start = server.rss_kib().unwrap_or(0);
    println!("[soak] {clients} clients for {secs} s; server RSS at start {} MiB", rss_start / 1024);
    let stats = Arc::new(SoakStats::default());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (base, stats, errors) = (base.clone(), Arc::clone(&stats), Arc::clone(&errors));
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || soak_client(&base, i as u64, until, &stats, &errors))
                .map_err(|e| e.to_string())
        })
        .collect::<Res<_>>()?;
    let interval = Duration::from_secs((secs / 30).max(1));
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while Instant::now() < until {
        thread::sleep(interval.min(until.saturating_duration_since(Instant::now())));
        let t = started.elapsed().as_secs();
        let rss = server.rss_kib().ok_or("the server is gone (no /proc entry)")?;
        let uploads = stats.uploads.load(Ordering::Relaxed);
        println!("[soak] t={t:>4}s rss={:>6.1} MiB uploads={uploads}", rss as f64 / 1024.0);
        samples.push((t, rss));
    }
    for h in handles {
        let _ = h.join();
    }
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    let n_err = stats.errors.load(Ordering::Relaxed);
    let corrupted = stats.corrupted.load(Ordering::Relaxed);
    let uploads = stats.uploads.load(Ordering::Relaxed);
    // Flat after warm-up: the mean of the last third is at most 20 % (or 16 MiB) above the mean
    // of the middle third.
    let third = samples.len() / 3;
    let mean =
        |s: &[(u64, u64)]| if s.is_empty() { 0.0 } else { s.iter().map(|x| x.1 as f64).sum::<f64>() / s.len() as f64 };
    let middle = mean(&samples[third..2 * third]);
    let last = mean(&samples[2 * third..]);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let curve: Vec<String> = samples.iter().map(|(t, r)| format!("{t}s:{:.0}", *r as f64 / 1024.0)).collect();
    let summary = format!(
        "[soak] {clients} clients, {secs} s: {uploads} uploads ({} MiB) verified and deleted, {} requests, {n_err} errors, \
         {corrupted} corrupted; RSS MiB start {:.0}, middle-third mean {:.1}, last-third mean {:.1}, peak {:.1}; curve \
         [{}]",
        stats.bytes.load(Ordering::Relaxed) >> 20,
        stats.requests.load(Ordering::Relaxed),
        rss_start as f64 / 1024.0,
        middle / 1024.0,
        last / 1024.0,
        peak as f64 / 1024.0,
        curve.join(" "),
    );
    if n_err > 0 || corrupted > 0 {
        return Err(format!("{summary}\nerrors (first 20):\n  {}", errors.join("\n  ")));
    }
    if uploads < clients {
        return Err(format!("{summary}\nfewer uploads than clients: the server did not keep up"));
    }
    if samples.len() >= 3 && last > middle * 1.2 + 16.0 * 1024.0 {
        return Err(format!("{summary}\nRSS still growing after warm-up"));
    }
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

const MODES: [&str; 6] = ["crash-fs", "crash-s3", "network", "concurrency", "disk-full", "soak"];

fn parse_args() -> Res<(Opts, Vec<String>)> {
    let mut args = std::env::args().skip(1);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut opts = Opts {
        quick: false,
        server_bin: exe.with_file_name("tus-server"),
        s3_endpoint: std::env::var("TUS_TEST_MOTO_ENDPOINT").ok().filter(|s| !s.is_empty()),
        soak_clients: None,
        soak_secs: None,
        work: std::env::temp_dir().join(format!("tus-reliability-{}", std::process::id())),
    };
    let mut modes = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--server-bin" => opts.server_bin = PathBuf::from(value("--server-bin")?),
            "--s3-endpoint" => opts.s3_endpoint = Some(value("--s3-endpoint")?),
            "--soak-clients" => opts.soak_clients = Some(value("--soak-clients")?.parse().map_err(|e| format!("{e}"))?),
            "--soak-secs" => opts.soak_secs = Some(value("--soak-secs")?.parse().map_err(|e| format!("{e}"))?),
            "--work-dir" => opts.work = PathBuf::from(value("--work-dir")?),
            "all" => modes.extend(MODES.iter().map(|m| (*m).to_owned())),
            "-h" | "--help" => {
                return Err(format!(
                    "usage: reliability [--quick] [--server-bin PATH] [--s3-endpoint URL] [--soak-clients N] \
                     [--soak-secs S] [--work-dir DIR] [all | {}]...",
                    MODES.join(" | ")
                ));
            }
            m if MODES.contains(&m) => modes.push(m.to_owned()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if modes.is_empty() {
        modes.extend(MODES.iter().filter(|m| **m != "soak").map(|m| (*m).to_owned()));
    }
    if !opts.server_bin.is_file() {
        return Err(format!(
            "tus-server not found at {}: build it with the same profile (`cargo build --release -p tus-server -p \
             reliability`) or pass --server-bin",
            opts.server_bin.display()
        ));
    }
    Ok((opts, modes))
}

fn run_mode(opts: &Opts, mode: &str) -> Res<String> {
    match mode {
        "crash-fs" => crash(opts, false),
        "crash-s3" => crash(opts, true),
        "network" => network(opts),
        "concurrency" => concurrency(opts),
        "disk-full" => disk_full(opts),
        "soak" => soak(opts),
        other => Err(format!("unknown mode {other}")),
    }
}

fn main() -> ExitCode {
    let (opts, modes) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&opts.work) {
        eprintln!("cannot create {}: {e}", opts.work.display());
        return ExitCode::from(2);
    }
    println!(
        "reliability harness ({}), server {}, work dir {}",
        if opts.quick { "quick" } else { "full" },
        opts.server_bin.display(),
        opts.work.display()
    );
    let mut failed = false;
    let mut report = Vec::new();
    for mode in &modes {
        let started = Instant::now();
        println!("==> {mode}");
        match run_mode(&opts, mode) {
            Ok(summary) => {
                println!("{summary} ({:.1} s)\nPASS {mode}", started.elapsed().as_secs_f64());
                report.push(format!("PASS {summary}"));
            }
            Err(e) => {
                println!("{e}\nFAIL {mode} (server logs in {})", opts.work.display());
                report.push(format!("FAIL {mode}"));
                failed = true;
            }
        }
    }
    println!("\n==> summary");
    for line in &report {
        println!("{line}");
    }
    if failed {
        return ExitCode::FAILURE;
    }
    let _ = std::fs::remove_dir_all(&opts.work);
    ExitCode::SUCCESS
}
