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

/// A fresh ext4 filesystem on a loop device, mounted over a directory for one run: small-file
/// runs must not inherit the inodes a previous run deleted (ext4 skips recently deleted inodes
/// when it allocates, so whoever ran next paid for them). Needs root, `mkfs.ext4` and loop
/// devices; the image is sparse, next to the directory. The loop device reads and writes its
/// image with direct I/O: otherwise every byte is cached twice (the run's filesystem and the
/// image file below it) and written back twice, and that writeback, not the servers, took a
/// third of the 2 cores in runs longer than a few seconds.
pub(crate) struct FreshExt4 {
    dir: std::path::PathBuf,
    image: std::path::PathBuf,
    device: String,
}

impl FreshExt4 {
    /// Formats a sparse image of `size_mib` MiB and mounts it at `dir` (which must exist).
    pub(crate) fn mount(dir: &std::path::Path, size_mib: u64) -> Result<FreshExt4, String> {
        let image = dir.with_extension("ext4.img");
        let file = std::fs::File::create(&image).map_err(|e| format!("create {}: {e}", image.display()))?;
        file.set_len(size_mib << 20).map_err(|e| format!("size {}: {e}", image.display()))?;
        drop(file);
        let run = |program: &str, args: &[&std::ffi::OsStr]| -> Result<String, String> {
            let out = std::process::Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            } else {
                Err(format!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim()))
            }
        };
        let fresh = run("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), image.as_os_str()]).and_then(|_| {
            let device =
                run("losetup", &["--direct-io=on".as_ref(), "--show".as_ref(), "-f".as_ref(), image.as_os_str()])?;
            match run("mount", &[device.as_ref(), dir.as_os_str()]) {
                Ok(_) => Ok(device),
                Err(e) => {
                    let _ = run("losetup", &["-d".as_ref(), device.as_ref()]);
                    Err(e)
                }
            }
        });
        match fresh {
            Ok(device) => Ok(FreshExt4 { dir: dir.to_owned(), image, device }),
            Err(e) => {
                let _ = std::fs::remove_file(&image);
                Err(e)
            }
        }
    }

    /// Unmounts, frees the loop device and removes the image (its files go with it, costing
    /// the next run nothing).
    pub(crate) fn unmount(self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
        let _ = std::process::Command::new("losetup").args(["-d", &self.device]).status();
        let _ = std::fs::remove_file(&self.image);
    }
}
