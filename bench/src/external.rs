//! Independent load generators beside our own client: `wrk` for creation-with-upload POSTs and
//! ApacheBench (`ab -i`) for HEADs (wrk waits for a body after a HEAD response, ab knows a HEAD
//! has none). Both come from Debian (`apt-get install wrk apache2-utils`). Their figures are
//! what a client that shares no code with the servers sees.

use std::path::Path;
use std::time::Duration;

use crate::Res;
use crate::load::{RunResult, Target};

/// Whether `tool` runs here (`--version`/`-V` answers).
pub(crate) fn available(tool: &str) -> bool {
    let flag = if tool == "ab" { "-V" } else { "--version" };
    std::process::Command::new(tool)
        .arg(flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Scenario 2 through wrk: creation-with-upload POSTs of `size` bytes from `clients`
/// connections on 2 threads for `secs` seconds. Uploads/s, with p50/p99 latency.
pub(crate) async fn small_uploads_wrk(
    target: &Target,
    scratch: &Path,
    clients: usize,
    size: u64,
    secs: u64,
) -> Res<RunResult> {
    let script = scratch.join(format!("post-{size}.lua"));
    // The body is the same bytes for every server; none of them compresses or dedupes.
    let lua = format!(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"Tus-Resumable\"] = \"1.0.0\"\n\
         wrk.headers[\"Upload-Length\"] = \"{size}\"\n\
         wrk.headers[\"Content-Type\"] = \"application/offset+octet-stream\"\n\
         wrk.body = string.rep(\"x\", {size})\n"
    );
    tokio::fs::write(&script, lua).await?;
    let url = format!("http://{}{}", target.addr, target.base_path);
    let out = run(
        tokio::process::Command::new("wrk")
            .args(["-t2", &format!("-c{clients}"), &format!("-d{secs}s"), "--latency", "--timeout", "10s", "-s"])
            .arg(&script)
            .arg(&url),
        secs + 30,
    )
    .await?;
    if let Some(bad) = field(&out, "Non-2xx or 3xx responses:") {
        return Err(format!("wrk: {bad} POSTs were not answered 201\n{out}").into());
    }
    if let Some(errors) = out.lines().find(|l| l.trim_start().starts_with("Socket errors:")) {
        return Err(format!("wrk: {}", errors.trim()).into());
    }
    let rate = field(&out, "Requests/sec:").ok_or_else(|| format!("wrk printed no rate:\n{out}"))?;
    let mut r = RunResult { value: rate, ..Default::default() };
    for (name, key) in [("50%", "p50_ms"), ("99%", "p99_ms")] {
        if let Some(ms) = latency_ms(&out, name) {
            r.extra.insert(key.into(), ms);
        }
    }
    Ok(r)
}

/// HEADs of `path` through ab: `count` requests from `clients` keep-alive connections, at most
/// `secs` seconds. HEADs/s; any failed or non-2xx answer fails the run.
pub(crate) async fn head_rate_ab(target: &Target, path: &str, clients: usize, count: u64, secs: u64) -> Res<RunResult> {
    let url = format!("http://{}{path}", target.addr);
    // `-t` first: it implies `-n 50000`, which the `-n` after it replaces.
    let out = run(
        tokio::process::Command::new("ab")
            .args(["-q", "-k", "-i", "-t", &secs.to_string(), "-n", &count.to_string(), "-c", &clients.to_string()])
            .args(["-H", "Tus-Resumable: 1.0.0", "-s", "10"])
            .arg(&url),
        secs + 30,
    )
    .await?;
    let failed = field(&out, "Failed requests:").unwrap_or(0.0);
    let non_2xx = field(&out, "Non-2xx responses:").unwrap_or(0.0);
    if failed > 0.0 || non_2xx > 0.0 {
        return Err(format!("ab: {failed} failed, {non_2xx} non-2xx HEADs\n{out}").into());
    }
    let rate = field(&out, "Requests per second:").ok_or_else(|| format!("ab printed no rate:\n{out}"))?;
    let mut r = RunResult { value: rate, ..Default::default() };
    if let Some(n) = field(&out, "Complete requests:") {
        r.extra.insert("requests".into(), n);
    }
    Ok(r)
}

/// Runs a load tool to its end (killed after `limit_secs`); its standard output.
async fn run(cmd: &mut tokio::process::Command, limit_secs: u64) -> Res<String> {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(limit_secs), cmd.output())
        .await
        .map_err(|_| format!("load tool ran past {limit_secs} s"))??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(
            format!("load tool failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)).into()
        );
    }
    Ok(stdout)
}

/// The number after `label` on the line starting with it (`Requests/sec:   1234.5`).
fn field(out: &str, label: &str) -> Option<f64> {
    let line = out.lines().find_map(|l| l.trim_start().strip_prefix(label))?;
    line.split_whitespace().next()?.parse().ok()
}

/// wrk's `--latency` percentile `name` (`99%`) in milliseconds.
fn latency_ms(out: &str, name: &str) -> Option<f64> {
    let distribution = out.split("Latency Distribution").nth(1)?;
    let value = distribution.lines().find_map(|l| l.trim_start().strip_prefix(name))?.trim();
    let (number, unit) = value.split_at(value.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:1080/files/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.10ms    2.31ms  40.20ms   80.00%
  Latency Distribution
     50%    6.83ms
     75%    8.01ms
     90%    9.70ms
     99%    1.20s
  44812 requests in 5.00s, 7.43MB read
Requests/sec:   8960.31
Transfer/sec:      1.49MB
";

    #[test]
    fn reads_wrk_rate_and_percentiles() {
        assert_eq!(field(WRK, "Requests/sec:"), Some(8960.31));
        assert_eq!(latency_ms(WRK, "50%"), Some(6.83));
        assert_eq!(latency_ms(WRK, "99%"), Some(1200.0));
        assert_eq!(field(WRK, "Non-2xx or 3xx responses:"), None);
    }

    #[test]
    fn reads_ab_counts() {
        let ab = "Complete requests:      50000\nFailed requests:        0\nNon-2xx responses:      12\n\
                  Requests per second:    41234.56 [#/sec] (mean)\n";
        assert_eq!(field(ab, "Requests per second:"), Some(41234.56));
        assert_eq!(field(ab, "Non-2xx responses:"), Some(12.0));
        assert_eq!(field(ab, "Complete requests:"), Some(50000.0));
    }
}
