//! Readings from `/proc`: load average, CPU time (ours and everyone else's), peak RSS.

use std::time::Instant;

/// Linux's `USER_HZ` (clock ticks per second in `/proc/*/stat`), 100 on every mainstream arch.
const TICKS_PER_SEC: f64 = 100.0;

/// The 1-minute load average.
pub(crate) fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Busy clock ticks of the whole machine (every state but idle and iowait).
fn busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0 };
    let Some(line) = stat.lines().next() else { return 0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum()
}

/// User + system ticks of one process (all its threads).
fn proc_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Peak resident set size of `pid` in bytes (`VmHWM`), if it is still running.
pub(crate) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Measures, over an interval, how many cores processes other than ours kept busy.
pub(crate) struct CpuWatch {
    start: Instant,
    busy: u64,
    ours: u64,
    pids: Vec<u32>,
}

impl CpuWatch {
    /// Starts watching; `pids` are the benchmark's own processes besides this one.
    pub(crate) fn start(pids: &[u32]) -> Self {
        let mut pids = pids.to_vec();
        pids.push(std::process::id());
        let ours = pids.iter().map(|&p| proc_ticks(p)).sum();
        CpuWatch { start: Instant::now(), busy: busy_ticks(), ours, pids }
    }

    /// Cores used by foreign processes since the start (average).
    pub(crate) fn foreign_cores(&self) -> f64 {
        let secs = self.start.elapsed().as_secs_f64();
        let ours: u64 = self.pids.iter().map(|&p| proc_ticks(p)).sum();
        let busy = busy_ticks().saturating_sub(self.busy) as f64;
        let ours = ours.saturating_sub(self.ours) as f64;
        if secs <= 0.0 { 0.0 } else { ((busy - ours) / TICKS_PER_SEC / secs).max(0.0) }
    }
}

/// Waits (at most `max_wait_s`) until other processes use less than `threshold` cores,
/// measured over 1 s windows; returns the last reading.
pub(crate) async fn wait_quiet(threshold: f64, max_wait_s: u64) -> f64 {
    let deadline = Instant::now() + std::time::Duration::from_secs(max_wait_s);
    loop {
        let w = CpuWatch::start(&[]);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let foreign = w.foreign_cores();
        if foreign < threshold || Instant::now() >= deadline {
            return foreign;
        }
    }
}
