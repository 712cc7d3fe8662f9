//! Mounting the tus service inside an axum application, next to ordinary routes.
//!
//! Run with `cargo run -p example-axum`, then upload to `http://127.0.0.1:3000/files/`.

use axum::Router;
use axum::routing::get;
use tus_core::TusService;
use tus_store_fs::FileStore;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let store = FileStore::builder("./data").build()?;
    let tus = TusService::builder(store).base_path("/files/").max_size(1 << 30).build();
    tokio::spawn(tus.reaper());

    // `route_service` keeps the full path (unlike `nest_service`), so the service sees
    // `/files/<id>` and writes matching `Location` URLs.
    let app = Router::new()
        .route("/", get(|| async { "upload with any tus client to /files/\n" }))
        .route_service("/files", tus.clone())
        .route_service("/files/", tus.clone())
        .route_service("/files/{id}", tus);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}/files/", listener.local_addr()?);
    axum::serve(listener, app).await
}
