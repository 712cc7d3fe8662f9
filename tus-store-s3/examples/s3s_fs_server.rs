//! Test helper: an s3s-fs 0.14.1 S3 server (SigV4 and Content-MD5 verified) on 127.0.0.1.
//!
//! `cargo run -p tus-store-s3 --example s3s_fs_server -- <root-dir> <bucket> [port]` creates
//! `<bucket>` under `<root-dir>`, accepts access key `test` / secret `test`, prints
//! `s3s-fs listening on http://127.0.0.1:<port>` and serves until killed. `scripts/test-all.sh`
//! runs the conformance suite against the S3 store through it.

use std::io::Write as _;

use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: s3s_fs_server <root-dir> <bucket> [port]";
    let root = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let bucket = args.next().ok_or(usage)?;
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    std::fs::create_dir_all(root.join(&bucket))?;
    let mut builder =
        s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(&root).map_err(|e| format!("{e:?}"))?);
    builder.set_auth(s3s::auth::SimpleAuth::from_single("test", "test"));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let mut out = std::io::stdout();
    writeln!(out, "s3s-fs listening on http://{}", listener.local_addr()?)?;
    out.flush()?;
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        // Without it a response written in two segments waits for the client's delayed ACK
        // (40 ms on Linux), which real S3 endpoints do not make clients sit through.
        let _ = socket.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
