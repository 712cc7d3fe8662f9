//! The server under test: a `tus-server` process on a fixed port that can be killed
//! (SIGKILL) and restarted over the same storage, and whose RSS can be sampled.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Where the server keeps uploads.
#[derive(Clone, Debug)]
pub(crate) enum Storage {
    /// The filesystem store in this directory.
    Fs(PathBuf),
    /// The filesystem store on a tmpfs of this many bytes mounted over the directory in a
    /// private mount namespace (`unshare -rm`), so it can fill up.
    SmallTmpfs(PathBuf, u64),
    /// The S3 store: endpoint, bucket.
    S3(String, String),
}

/// A `tus-server` process.
pub(crate) struct Server {
    bin: PathBuf,
    storage: Storage,
    extra: Vec<String>,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    /// How often it was started.
    pub(crate) starts: u32,
}

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port on 127.0.0.1")
}

impl Server {
    /// A server that is not running yet; its stderr goes to `log`.
    pub(crate) fn new(bin: &Path, storage: Storage, extra: &[&str], log: PathBuf) -> Server {
        Server {
            bin: bin.to_owned(),
            storage,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            port: free_port(),
            child: None,
            log,
            starts: 0,
        }
    }

    /// The creation URL (fixed across restarts).
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/files/", self.port)
    }

    /// The process ID while running.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server and waits until it prints its URL and accepts connections.
    pub(crate) fn start(&mut self) -> Result<(), String> {
        // After a SIGKILL the port can take a moment to be free again: retry a few times.
        let mut last = String::new();
        for _ in 0..20 {
            match self.try_start() {
                Ok(()) => {
                    self.starts += 1;
                    return Ok(());
                }
                Err(e) => {
                    last = e;
                    thread::sleep(Duration::from_millis(250));
                }
            }
        }
        Err(format!("tus-server did not start: {last} (log: {})", self.log.display()))
    }

    fn try_start(&mut self) -> Result<(), String> {
        let log = File::options().create(true).append(true).open(&self.log).map_err(|e| e.to_string())?;
        let mut server_args: Vec<String> =
            vec!["--host".into(), "127.0.0.1".into(), "--port".into(), self.port.to_string()];
        let mut cmd = match &self.storage {
            Storage::Fs(dir) => {
                server_args.extend(["--upload-dir".into(), dir.display().to_string()]);
                Command::new(&self.bin)
            }
            Storage::SmallTmpfs(dir, size) => {
                server_args.extend(["--upload-dir".into(), dir.display().to_string()]);
                // A private mount namespace: the tmpfs is visible to this server only and
                // disappears with it. Needs root or unprivileged user namespaces.
                let mut cmd = Command::new("unshare");
                cmd.args([
                    "-rm",
                    "sh",
                    "-c",
                    "mount -t tmpfs -o size=\"$1\" tmpfs \"$2\" && shift 2 && exec \"$@\"",
                    "sh",
                ])
                .arg(size.to_string())
                .arg(dir)
                .arg(&self.bin);
                cmd
            }
            Storage::S3(endpoint, bucket) => {
                server_args.extend([
                    "--s3-bucket".into(),
                    bucket.clone(),
                    "--s3-endpoint".into(),
                    endpoint.clone(),
                    "--s3-force-path-style".into(),
                    "--s3-region".into(),
                    "us-east-1".into(),
                ]);
                let mut cmd = Command::new(&self.bin);
                for (k, v) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")] {
                    if std::env::var_os(k).is_none() {
                        cmd.env(k, v);
                    }
                }
                cmd.env("AWS_EC2_METADATA_DISABLED", "true");
                cmd
            }
        };
        cmd.args(&server_args).args(&self.extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        let mut child = cmd.spawn().map_err(|e| format!("cannot spawn {}: {e}", self.bin.display()))?;
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("no `listening on` line within 15 s".into());
                }
            }
        }
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err("the server does not accept connections".into())
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Resident set size of the server process in KiB (from `/proc/<pid>/status`).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
