//! Serving the tus service from plain hyper, one task per connection.
//!
//! Run with `cargo run -p example-hyper`, then upload to `http://127.0.0.1:3001/files/`.

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tus_core::TusService;
use tus_store_fs::FileStore;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let store = FileStore::builder("./data").build()?;
    let tus = TusService::builder(store).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}/files/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(tus.clone());
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                eprintln!("connection error: {e}");
            }
        });
    }
}
