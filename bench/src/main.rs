//! Side-by-side benchmark of `tus-server` against its peers (`@tus/server`, `rustus`) and
//! this machine's limits (loopback TCP, disk writes with `fdatasync`, single-core hashing).
//!
//! `cargo run --release -p bench` (3 runs each, issue 7's sizes except where they cannot fit
//! 15 minutes on a 2-core machine: see [`Sizes`]), `-- --quick` (a few minutes) or
//! `-- --issue-sizes` (every size exactly as in issue 7; about an hour). Everything binds
//! 127.0.0.1; every load is bounded in request count and time. Results (table, JSON, SVG
//! chart, server logs) go to `bench/results/<mode>-<unix time>/`.

mod chart;
mod external;
mod limits;
mod load;
mod report;
mod servers;
mod sys;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use http::Method;

use load::{Data, RunResult, Target};
use report::{Group, Sample, Series};
use servers::{Env, Kind, S3Server};

/// Error type of the harness.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result type of the harness.
pub(crate) type Res<T> = Result<T, Error>;

const MIB: u64 = 1 << 20;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Benchmark tus-server against @tus/server and rustus on 127.0.0.1")]
struct Args {
    /// Small sizes and 3 runs (a few minutes).
    #[arg(long, conflicts_with = "issue_sizes")]
    quick: bool,
    /// Every size exactly as issue 7 gives it (about an hour: scenario 3 alone writes 12.5 GiB
    /// per run and server, scenario 5 pushes that through s3s-fs).
    #[arg(long)]
    issue_sizes: bool,
    /// Runs per scenario and server (default 3, the fewest a median needs).
    #[arg(long)]
    runs: Option<usize>,
    /// Only these scenarios (comma-separated: limits,s1,s2,s3,s4,s5,s6,s7).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these servers (comma-separated: ours-sync,ours-nosync,ours-s3,node-file,node-s3,rustus).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Skip `cargo build` of tus-server and s3s_fs_server and `npm ci`.
    #[arg(long)]
    no_build: bool,
    /// The rustus 0.5.10 binary (default ~/.cache/tus-bench/rustus/bin/rustus).
    #[arg(long)]
    rustus: Option<PathBuf>,
    /// Before each scenario/server, wait (at most this many seconds) for other processes to
    /// use less than --quiet-cores.
    #[arg(long, default_value_t = 20)]
    max_wait: u64,
    /// CPU use of other processes (cores) considered quiet enough to measure.
    #[arg(long, default_value_t = 0.5)]
    quiet_cores: f64,
}

/// Sizes and counts of one mode.
///
/// The default mode keeps issue 7's sizes for scenarios 1, 2, 4 and 6 and its concurrency
/// for 3 and 5, but smaller uploads there: 200 × 64 MiB is 12.5 GiB per run and server
/// (about 8 minutes for the four file servers at 5 runs, and over 20 minutes through s3s-fs),
/// which cannot fit the 15 minutes the whole run has. `--issue-sizes` runs them as written.
#[derive(Debug, Clone, serde::Serialize)]
struct Sizes {
    runs: usize,
    s1_total: u64,
    s1_chunk: u64,
    s2_count: u64,
    s2_clients: usize,
    s2_size: u64,
    s3_count: usize,
    s3_size: u64,
    s5_total: u64,
    s5_count: usize,
    s5_size: u64,
    s6_count: u64,
    s6_clients: usize,
    s6_max_secs: u64,
    /// Uploads streaming while scenario 7's HEADs run.
    s7_streams: usize,
    /// Seconds each run of an external tool with a fixed duration (wrk) lasts.
    tool_secs: u64,
    loopback_total: u64,
    disk_total: u64,
    hash_total: u64,
    run_timeout_secs: u64,
}

impl Sizes {
    fn new(quick: bool, issue_sizes: bool, runs: Option<usize>) -> Self {
        if quick {
            Sizes {
                runs: runs.unwrap_or(3),
                s1_total: 256 * MIB,
                s1_chunk: 8 * MIB,
                s2_count: 2000,
                s2_clients: 64,
                s2_size: 64 * 1024,
                s3_count: 200,
                s3_size: 8 * MIB,
                s5_total: 256 * MIB,
                s5_count: 50,
                s5_size: 16 * MIB,
                s6_count: 20_000,
                s6_clients: 64,
                s6_max_secs: 5,
                s7_streams: 50,
                tool_secs: 4,
                loopback_total: 2048 * MIB,
                disk_total: 512 * MIB,
                hash_total: 512 * MIB,
                run_timeout_secs: 120,
            }
        } else {
            let default = Sizes {
                runs: runs.unwrap_or(3),
                s1_total: 1024 * MIB,
                s1_chunk: 8 * MIB,
                s2_count: 10_000,
                s2_clients: 64,
                s2_size: 64 * 1024,
                s3_count: 200,
                s3_size: 8 * MIB,
                s5_total: 256 * MIB,
                s5_count: 200,
                s5_size: 5 * MIB,
                s6_count: 50_000,
                s6_clients: 64,
                s6_max_secs: 4,
                s7_streams: 50,
                tool_secs: 6,
                loopback_total: 4096 * MIB,
                disk_total: 1024 * MIB,
                hash_total: 1024 * MIB,
                run_timeout_secs: 300,
            };
            if !issue_sizes {
                return default;
            }
            Sizes {
                s3_size: 64 * MIB,
                s5_total: 1024 * MIB,
                s5_size: 64 * MIB,
                s6_count: 100_000,
                s6_max_secs: 10,
                loopback_total: 8192 * MIB,
                run_timeout_secs: 600,
                ..default
            }
        }
    }
}

/// What one run does against a server.
#[derive(Debug, Clone)]
enum Work {
    /// One upload in PATCHes of `chunk` bytes, optionally checksummed.
    Big { total: u64, chunk: u64, checksum: Option<String> },
    /// `count` concurrent uploads of `size` bytes in 8 MiB PATCHes.
    Concurrent { count: usize, size: u64 },
    /// `count` creation-with-upload POSTs of `size` bytes from `clients` connections.
    Small { count: u64, clients: usize, size: u64 },
    /// `count` bodiless requests from `clients` connections, at most `secs` seconds.
    Rate { method: Method, count: u64, clients: usize, secs: u64 },
    /// Scenario 2 through wrk: creation-with-upload POSTs of `size` bytes for `secs` seconds.
    SmallWrk { clients: usize, size: u64, secs: u64 },
    /// HEADs of one upload through ab (`count` from `clients` connections, at most `secs` s),
    /// while `streams` other uploads stream at 1 MiB/s each; with `streams` > 0 the HEADs go
    /// to one of the live uploads, which must not be interrupted.
    Heads { tool: LoadTool, streams: usize, count: u64, clients: usize, secs: u64 },
}

/// Who generates a scenario's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadTool {
    /// Our own tokio + hyper client (`load.rs`).
    Ours,
    /// ApacheBench, an independent client (`external.rs`).
    Ab,
}

impl Work {
    async fn run(&self, target: &Target, data: &Data, scratch: &std::path::Path) -> Res<RunResult> {
        match self {
            Work::Big { total, chunk, checksum } => {
                load::big_upload(target, data, *total, *chunk, checksum.as_deref()).await
            }
            Work::Concurrent { count, size } => load::concurrent_uploads(target, data, *count, *size, 8 * MIB).await,
            Work::Small { count, clients, size } => load::small_uploads(target, data, *count, *clients, *size).await,
            Work::Rate { method, count, clients, secs } => {
                load::request_rate(target, method.clone(), None, *count, *clients, Duration::from_secs(*secs)).await
            }
            Work::SmallWrk { clients, size, secs } => {
                external::small_uploads_wrk(target, scratch, *clients, *size, *secs).await
            }
            Work::Heads { tool, streams, count, clients, secs } => {
                let live = if *streams > 0 { Some(load::Streams::start(target, data, *streams).await?) } else { None };
                let path = match &live {
                    Some(live) => live.paths[0].clone(),
                    None => load::new_upload(target, 1000).await?,
                };
                let measured = match tool {
                    LoadTool::Ours => {
                        let max = Duration::from_secs(*secs);
                        load::request_rate(target, Method::HEAD, Some(&path), *count, *clients, max).await
                    }
                    LoadTool::Ab => external::head_rate_ab(target, &path, *clients, *count, *secs).await,
                };
                // Every live upload must still be streaming when the HEADs are done.
                if let Some(live) = live {
                    live.stop().await?;
                }
                measured
            }
        }
    }
}

struct Harness {
    args: Args,
    sizes: Sizes,
    env: Env,
    data: Data,
    series: Vec<Series>,
    starts: usize,
}

impl Harness {
    fn wanted(&self, scenario: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|o| o == scenario)
    }

    fn server_wanted(&self, kind: Kind) -> bool {
        self.args.servers.is_empty() || self.args.servers.iter().any(|s| s == kind.slug())
    }

    /// Runs `work` against a fresh `kind` server per run and records the series.
    async fn measure(&mut self, scenario: &str, unit: &str, kind: Kind, work: &Work) {
        self.measure_with(scenario, unit, kind, work, "").await;
    }

    /// [`Self::measure`] with an external load `tool` (skipped, and said so, when it is not
    /// installed; `""` for our own client).
    async fn measure_with(&mut self, scenario: &str, unit: &str, kind: Kind, work: &Work, tool: &str) {
        if !self.server_wanted(kind) {
            return;
        }
        let mut series = Series::new(scenario, kind.name(), unit, kind.is_ours(), false);
        if !tool.is_empty() && !external::available(tool) {
            series.error = Some(format!("skipped: {tool} is not installed (apt-get install wrk apache2-utils)"));
            println!("{scenario:<14} {:<18} SKIPPED: {tool} is not installed", kind.name());
            self.series.push(series);
            return;
        }
        if kind == Kind::Rustus && self.env.rustus.is_none() {
            series.error = Some("skipped: rustus not built (see README)".into());
            println!("{scenario:<14} {:<18} SKIPPED: rustus 0.5.10 is not built (see bench README)", kind.name());
            self.series.push(series);
            return;
        }
        let other = sys::wait_quiet(self.args.quiet_cores, self.args.max_wait).await;
        if other >= self.args.quiet_cores {
            println!("  (other processes still use {other:.2} cores; measuring anyway)");
        }
        for run in 0..self.sizes.runs {
            match self.one_run(kind, work).await {
                Ok(sample) => {
                    println!(
                        "{scenario:<14} {:<18} run {}/{}: {:>9.1} {unit}  (load1 {:.2}, other CPU {:.2} cores)",
                        kind.name(),
                        run + 1,
                        self.sizes.runs,
                        sample.value,
                        sample.load1,
                        sample.other_cpu
                    );
                    series.samples.push(sample);
                }
                Err(e) => {
                    println!("{scenario:<14} {:<18} run {}: FAILED: {e}", kind.name(), run + 1);
                    series.error = Some(format!("failed: {e}"));
                    break;
                }
            }
        }
        series.summarize();
        self.series.push(series);
    }

    async fn one_run(&mut self, kind: Kind, work: &Work) -> Res<Sample> {
        self.starts += 1;
        let s3 = if matches!(kind, Kind::OursS3 | Kind::NodeS3) {
            Some(S3Server::start(&self.env, self.starts).await?)
        } else {
            None
        };
        // Small-file runs each get a filesystem of their own (see `sys::FreshExt4`).
        let small = matches!(work, Work::Small { .. } | Work::SmallWrk { .. });
        let server = match servers::start(kind, &self.env, s3.as_ref(), self.starts, small).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(s3) = s3 {
                    s3.stop().await;
                }
                return Err(e);
            }
        };
        let mut pids = vec![server.pid];
        pids.extend(s3.as_ref().map(S3Server::pid));
        // Every run starts without dirty pages left by the previous one.
        let _ = tokio::process::Command::new("sync").status().await;
        let load1 = sys::load1();
        let watch = sys::CpuWatch::start(&pids);
        let result = tokio::time::timeout(
            Duration::from_secs(self.sizes.run_timeout_secs),
            work.run(&server.target, &self.data, &self.env.scratch),
        )
        .await;
        let other_cpu = watch.foreign_cores();
        let rss = sys::peak_rss(server.pid);
        if small && !server.has_fresh_fs() {
            // Without a filesystem of its own, a directory full of small files stays until the
            // scratch directory goes at the end: ext4 skips inodes deleted in the last minutes
            // when it allocates new ones, so deleting 20 000 files between runs made every
            // following run of scenario 2 slower than the one before (2743, 1495, 855
            // uploads/s in a row for the same server), whichever server came next paying.
            let _ = server.kill().await;
        } else {
            server.stop().await;
        }
        if let Some(s3) = s3 {
            s3.stop().await;
        }
        let mut r = match result {
            Ok(r) => r?,
            Err(_) => return Err(format!("run exceeded {} s", self.sizes.run_timeout_secs).into()),
        };
        if let Some(rss) = rss {
            r.extra.insert("peak_rss".into(), rss as f64);
        }
        Ok(Sample { value: r.value, extra: r.extra, load1, other_cpu })
    }

    /// Records a machine limit measured `runs` times.
    async fn limit(&mut self, name: &str, mut f: impl AsyncFnMut(&Data) -> Res<f64>) {
        let mut series = Series::new("limit", name, "MiB/s", false, true);
        sys::wait_quiet(self.args.quiet_cores, self.args.max_wait).await;
        for run in 0..self.sizes.runs {
            let load1 = sys::load1();
            let watch = sys::CpuWatch::start(&[]);
            match f(&self.data).await {
                Ok(value) => {
                    let other_cpu = watch.foreign_cores();
                    println!(
                        "{:<14} {name:<18} run {}/{}: {value:>9.1} MiB/s  (load1 {load1:.2}, other CPU {other_cpu:.2} cores)",
                        "limit",
                        run + 1,
                        self.sizes.runs
                    );
                    series.samples.push(Sample { value, extra: Default::default(), load1, other_cpu });
                }
                Err(e) => {
                    series.error = Some(format!("failed: {e}"));
                    break;
                }
            }
        }
        series.summarize();
        self.series.push(series);
    }

    fn limit_value(&self, name: &str) -> Option<(String, f64)> {
        report::value(&self.series, "limit", name).map(|v| (name.to_owned(), v))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Res<()> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no workspace root")?.to_owned();
    let sizes = Sizes::new(args.quick, args.issue_sizes, args.runs);
    let mode = match (args.quick, args.issue_sizes) {
        (true, _) => "quick",
        (_, true) => "issue-sizes",
        _ => "default",
    };
    let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    let out = root.join("bench/results").join(format!("{mode}-{unix}"));
    let logs = out.join("logs");
    let scratch = root.join("bench/results/scratch");
    std::fs::create_dir_all(&logs)?;
    // Whatever an interrupted earlier run left behind.
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    if !args.no_build {
        prepare(&root)?;
    }
    let rustus = args
        .rustus
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tus-bench/rustus/bin/rustus")))
        .filter(|p| p.is_file());
    if rustus.is_none() {
        println!(
            "NOTE: rustus is not built, its rows are skipped. Build it once (~10 min):\n  cargo install rustus --version 0.5.10 --features hashers --locked --root ~/.cache/tus-bench/rustus"
        );
    }
    let started = Instant::now();
    println!("bench: {mode} mode, {} runs each; results in {}", sizes.runs, out.display());
    println!("load at start: {:.2} (1 min average)", sys::load1());
    let env = Env { root: root.clone(), rustus, logs, scratch: scratch.clone() };
    let data = Data::new(8 * MIB as usize);
    let mut h = Harness { args, sizes: sizes.clone(), env, data, series: Vec::new(), starts: 0 };
    let fs_kinds = [Kind::OursSync, Kind::OursNoSync, Kind::NodeFile, Kind::Rustus];
    let mut groups = Vec::new();

    if h.wanted("limits") || h.wanted("s1") || h.wanted("s3") || h.wanted("s4") {
        let (lt, dt, ht) = (sizes.loopback_total, sizes.disk_total, sizes.hash_total);
        h.limit("loopback TCP", async |d| limits::loopback(d, lt).await).await;
        let dir = scratch.clone();
        h.limit("disk 8 MiB+fdatasync", async |d| limits::disk_sync(d, &dir, dt).await).await;
        h.limit("sha1 1 core", async |d| limits::hash(d, "sha1", ht).await).await;
        h.limit("sha256 1 core", async |d| limits::hash(d, "sha256", ht).await).await;
        groups.push(Group { id: "limit".into(), title: "machine limits".into(), limit: None });
    }
    let disk = h.limit_value("disk 8 MiB+fdatasync");
    let gib = |b: u64| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64).replace(".00 GiB", " GiB");
    let human = |b: u64| if b >= 1 << 30 { gib(b) } else { format!("{} MiB", b / MIB) };

    if h.wanted("s1") {
        let (total, chunk) = (sizes.s1_total, sizes.s1_chunk);
        for (id, c, label) in
            [("s1-chunked", chunk, format!("{} MiB PATCHes", chunk / MIB)), ("s1-single", total, "one PATCH".into())]
        {
            let work = Work::Big { total, chunk: c, checksum: None };
            for k in fs_kinds {
                h.measure(id, "MiB/s", k, &work).await;
            }
            groups.push(Group {
                id: id.into(),
                title: format!("1: {} upload, {label}", human(total)),
                limit: disk.clone(),
            });
        }
    }
    if h.wanted("s2") {
        let work = Work::Small { count: sizes.s2_count, clients: sizes.s2_clients, size: sizes.s2_size };
        for k in fs_kinds {
            h.measure("s2", "uploads/s", k, &work).await;
        }
        let title = format!(
            "2: {} × {} KiB creation-with-upload, {} clients",
            sizes.s2_count,
            sizes.s2_size / 1024,
            sizes.s2_clients
        );
        groups.push(Group { id: "s2".into(), title, limit: None });
        // The same through wrk, an independent client.
        let work = Work::SmallWrk { clients: sizes.s2_clients, size: sizes.s2_size, secs: sizes.tool_secs };
        for k in fs_kinds {
            h.measure_with("s2-wrk", "uploads/s", k, &work, "wrk").await;
        }
        let title = format!(
            "2 (wrk): {} KiB creation-with-upload, {} connections, {} s",
            sizes.s2_size / 1024,
            sizes.s2_clients,
            sizes.tool_secs
        );
        groups.push(Group { id: "s2-wrk".into(), title, limit: None });
    }
    if h.wanted("s3") {
        let work = Work::Concurrent { count: sizes.s3_count, size: sizes.s3_size };
        for k in fs_kinds {
            h.measure("s3", "MiB/s", k, &work).await;
        }
        let title = format!("3: {} concurrent × {}", sizes.s3_count, human(sizes.s3_size));
        groups.push(Group { id: "s3".into(), title, limit: disk.clone() });
    }
    if h.wanted("s4") {
        for algo in ["sha1", "sha256"] {
            let checksum = h.data.checksum(algo, sizes.s1_chunk as usize);
            let work = Work::Big { total: sizes.s1_total, chunk: sizes.s1_chunk, checksum };
            let id = format!("s4-{algo}");
            for k in [Kind::OursSync, Kind::OursNoSync, Kind::Rustus] {
                h.measure(&id, "MiB/s", k, &work).await;
            }
            let title = format!("4: scenario 1 with Upload-Checksum {algo}");
            groups.push(Group { id, title, limit: h.limit_value(&format!("{algo} 1 core")) });
        }
    }
    if h.wanted("s5") {
        let work = Work::Big { total: sizes.s5_total, chunk: sizes.s1_chunk, checksum: None };
        for k in [Kind::OursS3, Kind::NodeS3] {
            h.measure("s5-big", "MiB/s", k, &work).await;
        }
        let title = format!("5: S3, {} in {} MiB PATCHes", human(sizes.s5_total), sizes.s1_chunk / MIB);
        groups.push(Group { id: "s5-big".into(), title, limit: None });
        let work = Work::Concurrent { count: sizes.s5_count, size: sizes.s5_size };
        for k in [Kind::OursS3, Kind::NodeS3] {
            h.measure("s5-concurrent", "MiB/s", k, &work).await;
        }
        let title = format!("5: S3, {} concurrent × {}", sizes.s5_count, human(sizes.s5_size));
        groups.push(Group { id: "s5-concurrent".into(), title, limit: None });
    }
    if h.wanted("s6") {
        for method in [Method::HEAD, Method::OPTIONS] {
            let id = format!("s6-{}", method.as_str().to_lowercase());
            let work = Work::Rate {
                method: method.clone(),
                count: sizes.s6_count,
                clients: sizes.s6_clients,
                secs: sizes.s6_max_secs,
            };
            for k in fs_kinds {
                h.measure(&id, "req/s", k, &work).await;
            }
            let title = format!("6: {method} at {} connections", sizes.s6_clients);
            groups.push(Group { id, title, limit: None });
        }
        let work = Work::Heads {
            tool: LoadTool::Ab,
            streams: 0,
            count: sizes.s6_count,
            clients: sizes.s6_clients,
            secs: sizes.s6_max_secs,
        };
        for k in fs_kinds {
            h.measure_with("s6-head-ab", "req/s", k, &work, "ab").await;
        }
        let title = format!("6 (ab): HEAD at {} connections", sizes.s6_clients);
        groups.push(Group { id: "s6-head-ab".into(), title, limit: None });
    }
    if h.wanted("s7") {
        for (id, tool) in [("s7-head", LoadTool::Ours), ("s7-head-ab", LoadTool::Ab)] {
            let work = Work::Heads {
                tool,
                streams: sizes.s7_streams,
                count: sizes.s6_count,
                clients: sizes.s6_clients,
                secs: sizes.s6_max_secs,
            };
            for k in fs_kinds {
                h.measure_with(id, "req/s", k, &work, if tool == LoadTool::Ab { "ab" } else { "" }).await;
            }
            let by = if tool == LoadTool::Ab { " (ab)" } else { "" };
            let title = format!(
                "7{by}: HEAD of a live upload at {} connections while {} uploads stream at 1 MiB/s",
                sizes.s6_clients, sizes.s7_streams
            );
            groups.push(Group { id: id.into(), title, limit: None });
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);

    let targets = check_targets(&h.series);
    let table = report::table(&h.series, &groups);
    let targets_md = report::targets_table(&targets);
    let elapsed = started.elapsed().as_secs();
    let text = format!(
        "# tus benchmark ({mode} mode, {} runs each, {elapsed} s)\n\nload1 = 1-minute load average read just before each run (min–max); other CPU = cores used by processes outside the benchmark during the runs (median).\n\n{table}\n## Targets (issues 7 and 18)\n\n{targets_md}",
        sizes.runs
    );
    println!("\n{text}");
    std::fs::write(out.join("table.md"), &text)?;
    let json = serde_json::json!({
        "mode": mode,
        "unix_time": unix,
        "elapsed_s": elapsed,
        "sizes": sizes,
        "series": h.series,
        "targets": targets,
    });
    std::fs::write(out.join("results.json"), serde_json::to_vec_pretty(&json)?)?;
    let panels: Vec<chart::Panel<'_>> = groups
        .iter()
        .map(|g| chart::Panel {
            title: g.title.clone(),
            unit: h.series.iter().find(|s| s.scenario == g.id).map_or("", |s| s.unit.as_str()),
            bars: h.series.iter().filter(|s| s.scenario == g.id).collect(),
            limit: g.limit.clone(),
        })
        .collect();
    chart::draw(&out.join("chart.svg"), &panels)?;
    println!("wrote {0}/table.md, {0}/results.json, {0}/chart.svg", out.display());
    Ok(())
}

/// Builds the release binaries the harness starts and installs the Node peer.
fn prepare(root: &std::path::Path) -> Res<()> {
    // Two invocations: built together, the example's dev-dependency features would be unified
    // into tus-server's dependencies and the two would rebuild each other every time.
    for args in [["-p", "tus-server", "--bin", "tus-server"], ["-p", "tus-store-s3", "--example", "s3s_fs_server"]] {
        let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(root)
            .args(["build", "--release"])
            .args(args)
            .status()?;
        if !status.success() {
            return Err(format!("cargo build --release {} failed", args.join(" ")).into());
        }
    }
    let node = root.join("bench/node");
    if !node.join("node_modules/@tus/server").is_dir() {
        let status =
            std::process::Command::new("npm").current_dir(&node).args(["ci", "--no-audit", "--no-fund"]).status()?;
        if !status.success() {
            return Err("npm ci in bench/node failed".into());
        }
    }
    Ok(())
}

/// A target of reaching `share` of a machine limit: "ours of limit MiB/s = n %", and whether met.
fn share_of_limit(ours: f64, limit: f64, share: f64) -> (String, bool) {
    (format!("{ours:.0} of {limit:.0} MiB/s = {:.0} %", 100.0 * ours / limit), ours >= share * limit)
}

/// A target of beating the peer `peer` by `factor`: "ours vs peer value unit = n×", and whether
/// met.
fn times_peer(ours: f64, peer: &str, value: f64, unit: &str, factor: f64) -> (String, bool) {
    (format!("{ours:.0} vs {peer} {value:.0} {unit} = {:.2}×", ours / value), ours >= factor * value)
}

/// Checks issue 7's and issue 18's targets against the medians.
fn check_targets(series: &[Series]) -> Vec<report::Target> {
    use report::{best_peer, extra, value};
    let mut t = Vec::new();
    let mut push = |target: &str, measured: Option<(String, bool)>| {
        let (measured, met) = match measured {
            Some((m, ok)) => (m, Some(ok)),
            None => ("—".into(), None),
        };
        t.push(report::Target { target: target.into(), measured, met });
    };
    let disk = value(series, "limit", "disk 8 MiB+fdatasync");
    push(
        "1: synced, ≥ 90 % of disk-with-sync limit",
        value(series, "s1-chunked", "ours (sync)").zip(disk).map(|(o, d)| share_of_limit(o, d, 0.9)),
    );
    for id in ["s1-chunked", "s1-single"] {
        push(
            &format!("1 ({id}): no-sync ≥ 1.5× best peer"),
            value(series, id, "ours (no-sync)")
                .zip(best_peer(series, id))
                .map(|(o, (p, pv))| times_peer(o, &p, pv, "MiB/s", 1.5)),
        );
    }
    for server in ["ours (sync)", "ours (no-sync)"] {
        push(
            &format!("2: {server} ≥ 2× best peer uploads/s"),
            value(series, "s2", server)
                .zip(best_peer(series, "s2"))
                .map(|(o, (p, pv))| times_peer(o, &p, pv, "/s", 2.0)),
        );
    }
    for server in ["ours (sync)", "ours (no-sync)"] {
        push(
            &format!("3: {server} peak RSS ≤ 128 MiB"),
            extra(series, "s3", server, "peak_rss")
                .map(|r| (format!("{:.0} MiB", r / 1048576.0), r <= 128.0 * 1048576.0)),
        );
    }
    for algo in ["sha1", "sha256"] {
        let limit = value(series, "limit", &format!("{algo} 1 core"));
        push(
            &format!("4: {algo}, no-sync ≥ 85 % of single-core {algo}"),
            value(series, &format!("s4-{algo}"), "ours (no-sync)").zip(limit).map(|(o, l)| share_of_limit(o, l, 0.85)),
        );
    }
    // Issue 18's ratios against rustus, by each load generator.
    let vs_rustus = |id: &str, server: &str, unit: &str, factor: f64| {
        value(series, id, server)
            .zip(value(series, id, "rustus"))
            .map(|(o, p)| times_peer(o, "rustus", p, unit, factor))
    };
    for id in ["s2", "s2-wrk"] {
        push(&format!("18 ({id}): no-sync ≥ 2× rustus uploads/s"), vs_rustus(id, "ours (no-sync)", "/s", 2.0));
        push(&format!("18 ({id}): sync ≥ 1× rustus uploads/s"), vs_rustus(id, "ours (sync)", "/s", 1.0));
    }
    for id in ["s6-head", "s6-head-ab", "s7-head", "s7-head-ab"] {
        push(&format!("18 ({id}): no-sync ≥ 1.5× rustus HEAD/s"), vs_rustus(id, "ours (no-sync)", "/s", 1.5));
    }
    for algo in ["sha1", "sha256"] {
        for server in ["ours (sync)", "ours (no-sync)"] {
            let plain = value(series, "s1-chunked", server);
            push(
                &format!("18: {server} {algo} ≥ 85 % of its own unchecksummed s1-chunked"),
                value(series, &format!("s4-{algo}"), server).zip(plain).map(|(o, l)| share_of_limit(o, l, 0.85)),
            );
        }
    }
    for id in ["s5-big", "s5-concurrent"] {
        push(
            &format!("5 ({id}): ours ≥ 1.5× @tus/s3-store"),
            value(series, id, "ours (s3)")
                .zip(value(series, id, "@tus/server s3"))
                .map(|(o, p)| (format!("{o:.0} vs {p:.0} MiB/s = {:.2}×", o / p), o >= 1.5 * p)),
        );
    }
    t
}
