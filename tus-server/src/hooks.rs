//! Hook transports for the binary: POST to an HTTP endpoint, or run an executable per hook.
//!
//! Both speak tusd's JSON (see [`tus_core::hooks`]), so receivers written for tusd work
//! unchanged.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tus_core::hooks::{HookError, HookEvent, HookResponse, HookType, Hooks};

/// Largest hook answer read, in bytes.
const MAX_RESPONSE: usize = 1024 * 1024;

fn hook_error(hook: HookType, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> HookError {
    HookError { hook, source: source.into() }
}

fn parse_answer(hook: HookType, body: &[u8]) -> Result<HookResponse, HookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(HookResponse::default());
    }
    serde_json::from_slice(body).map_err(|e| hook_error(hook, format!("invalid hook response: {e}")))
}

/// Sends each event as a JSON POST to one URL.
///
/// Each attempt has a timeout; network errors and 5xx answers are retried with exponential
/// backoff (100 ms, 200 ms, ...) up to `retries` times; other non-2xx answers fail the hook at
/// once. Answers are read up to 1 MiB.
#[derive(Debug, Clone)]
pub struct HttpHooks {
    url: http::Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    retries: u32,
    enabled: BTreeSet<HookType>,
}

impl HttpHooks {
    /// Hooks posting to `url` (plain `http://`).
    pub fn new(url: http::Uri, timeout: Duration, retries: u32, enabled: BTreeSet<HookType>) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        HttpHooks { url, client, timeout, retries, enabled }
    }

    async fn attempt(&self, hook: HookType, body: Bytes) -> Result<HookResponse, Attempt> {
        let req = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Attempt::Fatal(hook_error(hook, e)))?;
        let call = async {
            let res = self.client.request(req).await.map_err(|e| Attempt::Retry(hook_error(hook, e)))?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| Attempt::Retry(hook_error(hook, e)))?
                .to_bytes();
            if status.is_server_error() {
                return Err(Attempt::Retry(hook_error(hook, format!("hook endpoint answered {status}"))));
            }
            if !status.is_success() {
                return Err(Attempt::Fatal(hook_error(hook, format!("hook endpoint answered {status}"))));
            }
            parse_answer(hook, &body).map_err(Attempt::Fatal)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(Attempt::Retry(hook_error(hook, "hook endpoint timed out"))))
    }
}

enum Attempt {
    Retry(HookError),
    Fatal(HookError),
}

#[async_trait]
impl Hooks for HttpHooks {
    fn enabled(&self, hook: HookType) -> bool {
        self.enabled.contains(&hook)
    }

    async fn call(&self, event: &HookEvent) -> Result<HookResponse, HookError> {
        let body = Bytes::from(serde_json::to_vec(event).map_err(|e| hook_error(event.hook, e))?);
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            match self.attempt(event.hook, body.clone()).await {
                Ok(res) => return Ok(res),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(e)) if tries >= self.retries => return Err(e),
                Err(Attempt::Retry(e)) => {
                    tracing::debug!(error = %e, retry_in = ?delay, "hook request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    tries += 1;
                }
            }
        }
    }
}

/// Runs `<dir>/<hook-name>` for each event: the event's JSON on stdin, the answer's JSON (or
/// nothing) on stdout. A missing file means the hook is not used; a non-zero exit status or a
/// timeout fails it.
#[derive(Debug, Clone)]
pub struct ExecHooks {
    dir: PathBuf,
    timeout: Duration,
    enabled: BTreeSet<HookType>,
}

impl ExecHooks {
    /// Hooks run from `dir`.
    pub fn new(dir: PathBuf, timeout: Duration, enabled: BTreeSet<HookType>) -> Self {
        ExecHooks { dir, timeout, enabled }
    }
}

#[async_trait]
impl Hooks for ExecHooks {
    fn enabled(&self, hook: HookType) -> bool {
        self.enabled.contains(&hook) && self.dir.join(hook.name()).is_file()
    }

    async fn call(&self, event: &HookEvent) -> Result<HookResponse, HookError> {
        let hook = event.hook;
        let input = serde_json::to_vec(event).map_err(|e| hook_error(hook, e))?;
        let mut child = tokio::process::Command::new(self.dir.join(hook.name()))
            .arg(hook.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| hook_error(hook, e))?;
        let (mut stdin, mut stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(i), Some(o)) => (i, o),
            _ => return Err(hook_error(hook, "hook process has no stdio")),
        };
        let run = async {
            // Write and read concurrently so a hook that answers before reading cannot deadlock.
            let write = async {
                // A hook may exit without reading its input; that is its business.
                let _ = stdin.write_all(&input).await;
                drop(stdin);
            };
            let mut out = Vec::new();
            let read = async { (&mut stdout).take(MAX_RESPONSE as u64).read_to_end(&mut out).await };
            let ((), read) = tokio::join!(write, read);
            read.map_err(|e| hook_error(hook, e))?;
            let status = child.wait().await.map_err(|e| hook_error(hook, e))?;
            if !status.success() {
                return Err(hook_error(hook, format!("hook exited with {status}")));
            }
            parse_answer(hook, &out)
        };
        tokio::time::timeout(self.timeout, run).await.unwrap_or_else(|_| Err(hook_error(hook, "hook timed out")))
    }
}

/// Parses `--hooks-enabled-events` (`pre-create,post-finish,...`).
pub fn parse_events(list: &str) -> Result<BTreeSet<HookType>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<HookType>().map_err(|e| e.to_string()))
        .collect()
}
