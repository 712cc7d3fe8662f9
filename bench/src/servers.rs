//! Starting and stopping the servers under test (and the S3 server behind the S3 stores).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::Res;
use crate::load::Target;

/// Bucket the S3 stores write to.
pub(crate) const BUCKET: &str = "bench";
/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `tus-server`, filesystem store, data synced before each 204 (the default).
    OursSync,
    /// `tus-server --no-sync`.
    OursNoSync,
    /// `tus-server --s3-bucket`.
    OursS3,
    /// `@tus/server` with `@tus/file-store`.
    NodeFile,
    /// `@tus/server` with `@tus/s3-store`.
    NodeS3,
    /// `rustus` 0.5.10, file storage.
    Rustus,
}

impl Kind {
    /// Display name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::OursSync => "ours (sync)",
            Kind::OursNoSync => "ours (no-sync)",
            Kind::OursS3 => "ours (s3)",
            Kind::NodeFile => "@tus/server file",
            Kind::NodeS3 => "@tus/server s3",
            Kind::Rustus => "rustus",
        }
    }

    /// One of ours (as opposed to a peer).
    pub(crate) fn is_ours(self) -> bool {
        matches!(self, Kind::OursSync | Kind::OursNoSync | Kind::OursS3)
    }

    /// Short name for logs and `--servers`.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            Kind::OursSync => "ours-sync",
            Kind::OursNoSync => "ours-nosync",
            Kind::OursS3 => "ours-s3",
            Kind::NodeFile => "node-file",
            Kind::NodeS3 => "node-s3",
            Kind::Rustus => "rustus",
        }
    }
}

/// Paths every server start needs.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    /// Workspace root.
    pub(crate) root: PathBuf,
    /// The rustus binary, when built.
    pub(crate) rustus: Option<PathBuf>,
    /// Where server logs go.
    pub(crate) logs: PathBuf,
    /// Scratch space for upload directories (same filesystem as the disk limit measurement).
    pub(crate) scratch: PathBuf,
}

/// A running child process with its scratch directory.
pub(crate) struct Running {
    /// Process ID (for `/proc` readings).
    pub(crate) pid: u32,
    /// Where it serves tus.
    pub(crate) target: Target,
    child: Child,
    dir: PathBuf,
    /// The fresh filesystem mounted at `dir` for this run, if any.
    fresh_fs: Option<crate::sys::FreshExt4>,
}

impl Running {
    /// Kills the process, waits for it and removes its scratch directory (unmounting its
    /// fresh filesystem, if it has one).
    pub(crate) async fn stop(self) {
        let (dir, fresh_fs) = self.kill().await;
        if let Some(fs) = fresh_fs {
            fs.unmount();
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }

    /// Whether the run has a filesystem of its own.
    pub(crate) fn has_fresh_fs(&self) -> bool {
        self.fresh_fs.is_some()
    }

    /// Kills the process and waits for it; returns its scratch directory (and its fresh
    /// filesystem), left in place.
    pub(crate) async fn kill(mut self) -> (PathBuf, Option<crate::sys::FreshExt4>) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        (self.dir, self.fresh_fs.take())
    }
}

/// The S3 server (s3s-fs) the S3 stores share.
pub(crate) struct S3Server {
    /// Its URL, `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    running: Running,
}

impl S3Server {
    /// Starts `s3s_fs_server` on a fresh directory.
    pub(crate) async fn start(env: &Env, n: usize) -> Res<Self> {
        let dir = fresh_dir(&env.scratch, &format!("s3-{n}")).await?;
        let bin = env.root.join("target/release/examples/s3s_fs_server");
        let mut cmd = Command::new(bin);
        cmd.arg(&dir).arg(BUCKET);
        let log = env.logs.join(format!("s3s-fs-{n}.log"));
        let (child, line) = spawn_with_line(cmd, &log).await?;
        let url = line.split_whitespace().last().ok_or("s3s-fs printed no URL")?.to_owned();
        let pid = child.id().ok_or("s3s-fs exited")?;
        let target = parse_target(&url)?;
        Ok(S3Server { url, running: Running { pid, target, child, dir, fresh_fs: None } })
    }

    /// Process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.running.pid
    }

    /// Stops it and removes its data.
    pub(crate) async fn stop(self) {
        self.running.stop().await;
    }
}

/// Starts a server of `kind` on 127.0.0.1 with a fresh data directory.
/// With `fresh_fs` the directory is a fresh ext4 filesystem of its own (see
/// [`crate::sys::FreshExt4`]), or, where that cannot be mounted, a plain directory and a note.
pub(crate) async fn start(kind: Kind, env: &Env, s3: Option<&S3Server>, n: usize, fresh_fs: bool) -> Res<Running> {
    let dir = fresh_dir(&env.scratch, &format!("{}-{n}", kind.slug())).await?;
    let fresh_fs = if fresh_fs {
        match crate::sys::FreshExt4::mount(&dir, 16 << 10) {
            Ok(fs) => Some(fs),
            Err(e) => {
                println!("NOTE: no fresh ext4 for this run ({e}); using a plain directory");
                None
            }
        }
    } else {
        None
    };
    let log = env.logs.join(format!("{}-{n}.log", kind.slug()));
    let s3_url = || s3.map(|s| s.url.clone()).ok_or("no S3 server");
    let ours = env.root.join("target/release/tus-server");
    let node_script = env.root.join("bench/node/server.mjs");
    let mut cmd;
    match kind {
        Kind::OursSync | Kind::OursNoSync | Kind::OursS3 => {
            cmd = Command::new(ours);
            cmd.args(["--host", "127.0.0.1", "--port", "0", "--upload-dir"]).arg(&dir);
            if kind == Kind::OursNoSync {
                cmd.arg("--no-sync");
            }
            if kind == Kind::OursS3 {
                cmd.args(["--s3-bucket", BUCKET, "--s3-force-path-style", "--s3-region", "us-east-1"]);
                cmd.arg("--s3-endpoint").arg(s3_url()?);
                s3_credentials(&mut cmd);
            }
        }
        Kind::NodeFile | Kind::NodeS3 => {
            cmd = Command::new("node");
            cmd.arg(node_script);
            if kind == Kind::NodeFile {
                cmd.arg("file").arg(&dir);
            } else {
                cmd.arg("s3").arg(s3_url()?).arg(BUCKET);
                s3_credentials(&mut cmd);
            }
        }
        Kind::Rustus => {
            let bin = env.rustus.clone().ok_or("rustus is not built")?;
            let port = free_port()?;
            cmd = Command::new(bin);
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--data-dir"]).arg(&dir);
            cmd.arg("--info-dir").arg(&dir);
            // Room for the single 1 GiB PATCH (the default cap is 256 KiB).
            cmd.args(["--max-body-size", &(4u64 << 30).to_string()]);
            let log_file = std::fs::File::create(&log)?;
            cmd.stdout(log_file.try_clone()?).stderr(log_file).stdin(Stdio::null()).kill_on_drop(true);
            let child = cmd.spawn()?;
            let pid = child.id().ok_or("rustus exited")?;
            let target = Target { addr: ([127, 0, 0, 1], port).into(), base_path: "/files/".into(), head_check: true };
            let running = Running { pid, target, child, dir, fresh_fs };
            wait_for_port(port).await?;
            return Ok(running);
        }
    }
    let (child, line) = spawn_with_line(cmd, &log).await?;
    let pid = child.id().ok_or("server exited")?;
    let url = line.split_whitespace().last().ok_or("no URL printed")?;
    let mut target = parse_target(url)?;
    // @tus/s3-store answers HEAD of a completed upload from ListParts, which s3s-fs answers
    // with no parts once the multipart upload is completed (offset 0).
    target.head_check = kind != Kind::NodeS3;
    Ok(Running { pid, target, child, dir, fresh_fs })
}

fn s3_credentials(cmd: &mut Command) {
    cmd.env("AWS_ACCESS_KEY_ID", "test").env("AWS_SECRET_ACCESS_KEY", "test").env("AWS_REGION", "us-east-1");
}

/// Spawns `cmd` (stderr to `log`) and waits for its first stdout line containing `http://`;
/// the rest of stdout is drained into the void.
async fn spawn_with_line(mut cmd: Command, log: &Path) -> Res<(Child, String)> {
    cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(log)?).stdin(Stdio::null()).kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("http://") {
                return Ok::<_, std::io::Error>(Some(line));
            }
        }
        Ok(None)
    })
    .await;
    let line = match line {
        Ok(Ok(Some(line))) => line,
        _ => {
            let _ = child.start_kill();
            return Err(format!("server did not start; see {}", log.display()).into());
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, line))
}

/// `http://127.0.0.1:PORT/path` → target.
fn parse_target(url: &str) -> Res<Target> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("not an http URL: {url}"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    Ok(Target { addr: host.parse()?, base_path: path, head_check: true })
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_for_port(port: u16) -> Res<()> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("nothing listens on port {port}").into())
}

async fn fresh_dir(scratch: &Path, name: &str) -> Res<PathBuf> {
    let dir = scratch.join(name);
    let _ = tokio::fs::remove_dir_all(&dir).await;
    tokio::fs::create_dir_all(&dir).await?;
    Ok(dir)
}
