//! This machine's limits, measured in the same run: loopback TCP, disk writes with
//! `fdatasync`, and single-core hashing.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use sha1::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::Res;
use crate::load::{Data, mib};

/// One TCP stream over 127.0.0.1 into a sink that reads and discards. MiB/s.
pub(crate) async fn loopback(data: &Data, total: u64) -> Res<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sink = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>((got, Instant::now()));
            }
            got += n as u64;
        }
    });
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(data.bytes().len() as u64) as usize;
        sock.write_all(&data.bytes()[..n]).await?;
        sent += n as u64;
    }
    sock.shutdown().await?;
    drop(sock);
    let (got, end) = sink.await.map_err(|e| e.to_string())??;
    if got != total {
        return Err(format!("loopback sink got {got} of {total} bytes").into());
    }
    Ok(mib(got) / (end - start).as_secs_f64())
}

/// Sequential 8 MiB writes to a new file in `dir`, each followed by `fdatasync`. MiB/s.
pub(crate) async fn disk_sync(data: &Data, dir: &Path, total: u64) -> Res<f64> {
    let path = dir.join("disk-limit.tmp");
    let data = data.clone();
    let secs = tokio::task::spawn_blocking(move || -> std::io::Result<f64> {
        let mut f = std::fs::File::create(&path)?;
        let start = Instant::now();
        let mut written = 0u64;
        while written < total {
            let n = (total - written).min(8 << 20) as usize;
            f.write_all(&data.bytes()[..n])?;
            f.sync_data()?;
            written += n as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        std::fs::remove_file(&path)?;
        Ok(secs)
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(mib(total) / secs)
}

/// Single-core hashing of `total` bytes with `algo` (`sha1` or `sha256`). MiB/s.
pub(crate) async fn hash(data: &Data, algo: &'static str, total: u64) -> Res<f64> {
    let data = data.clone();
    let secs = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut done = 0u64;
        let (mut s1, mut s256) = (sha1::Sha1::new(), sha2::Sha256::new());
        while done < total {
            let n = (total - done).min(data.bytes().len() as u64) as usize;
            match algo {
                "sha1" => s1.update(&data.bytes()[..n]),
                _ => s256.update(&data.bytes()[..n]),
            }
            done += n as u64;
        }
        std::hint::black_box((s1.finalize(), s256.finalize()));
        start.elapsed().as_secs_f64()
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(mib(total) / secs)
}
