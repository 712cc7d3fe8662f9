//! Measures Redis upload-lock latency: uncontended acquire+release, and a takeover (acquire
//! while another holder must be asked to release), printing p50/p99.
//!
//! `cargo run --release -p tus-server --example lock_latency -- redis://127.0.0.1:6379 [rounds]`

use std::time::{Duration, Instant};

use tus_core::UploadId;
use tus_core::locker::Locker as _;
use tus_server::redis_lock::RedisLocker;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let rounds: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);
    let locker = RedisLocker::connect(&url, Duration::from_secs(10)).await?;
    let holder_side = RedisLocker::connect(&url, Duration::from_secs(10)).await?;

    let mut free = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let id = UploadId::random();
        let started = Instant::now();
        let lock = locker.lock(&id, Duration::from_secs(5)).await?;
        free.push(started.elapsed());
        drop(lock);
    }

    let mut takeover = Vec::with_capacity(rounds / 10);
    for _ in 0..rounds / 10 {
        let id = UploadId::random();
        let held = holder_side.lock(&id, Duration::from_secs(5)).await?;
        // The holder lets go as soon as it is asked, as an interrupted PATCH does.
        let release = tokio::spawn(async move {
            held.release_requested().await;
            drop(held);
        });
        let started = Instant::now();
        let lock = locker.lock(&id, Duration::from_secs(5)).await?;
        takeover.push(started.elapsed());
        drop(lock);
        release.await?;
    }
    for (name, mut samples) in [("uncontended acquire", free), ("takeover (release requested)", takeover)] {
        samples.sort();
        println!(
            "{name}: n={} p50={:.2?} p99={:.2?}",
            samples.len(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
    }
    Ok(())
}
