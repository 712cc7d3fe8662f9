//! Uppy (Dashboard + Tus plugin) in a browser, uploading to the tus service.
//!
//! One listener serves the page and mounts the tus service at `/files/` (same origin). With
//! `--page-port`, a second listener serves the same page from another origin (another port), and
//! that page uploads to the first listener's `/files/`, so every tus request is a CORS request.
//! With `--endpoint URL`, the pages upload to that tus server instead (e.g. a running
//! `tus-server`).
//!
//! The page's JavaScript is Uppy from npm, bundled locally (no CDN) into `examples/uppy/dist/`:
//!
//! ```sh
//! npm ci --prefix conformance-tests/clients
//! node conformance-tests/clients/scripts/build-uppy.mjs
//! cargo run -p example-uppy -- --page-port 3003
//! ```
//!
//! Then open `http://127.0.0.1:3002/` (same origin) or `http://127.0.0.1:3003/` (cross-origin).
//! For a tus server with authentication (`tus-server --auth-jwt-key-file`), the page takes two
//! optional settings in its URL's fragment (never sent to a server): `#token=<JWT>` sends
//! `Authorization: Bearer <JWT>` with every tus request, and `#withCredentials` sends cookies
//! with cross-origin ones (`tus-server --auth-jwt-cookie NAME --cors-allow-origin <page origin>
//! --cors-allow-credentials`); both together as `#token=<JWT>&withCredentials`.
//!
//! On start it prints one line per listener (`tus endpoint: URL`, `page: URL`,
//! `cross-origin page: URL`), which the browser tests in `conformance-tests/clients` read.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use tus_core::{CorsConfig, TusService};
use tus_store_fs::FileStore;

/// The page, with `{{ENDPOINT}}` standing for the tus endpoint it uploads to.
const PAGE: &str = include_str!("../web/index.html");

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(about = "Uppy's Dashboard + Tus plugin against the tus service, same origin or cross-origin")]
struct Args {
    /// Address both listeners bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the main listener: the page and the tus service at `/files/` (`0` picks one).
    #[arg(long, default_value_t = 3002)]
    port: u16,
    /// Also serve the page on this port (another origin), uploading to the main listener (`0` picks one).
    #[arg(long)]
    page_port: Option<u16>,
    /// Make the pages upload to this tus endpoint instead of the built-in one.
    #[arg(long)]
    endpoint: Option<String>,
    /// Origins granted CORS access to the tus service (repeatable); default any origin, no credentials.
    #[arg(long)]
    cors_allow_origin: Vec<String>,
    /// Where uploads are stored.
    #[arg(long, default_value = "./data")]
    upload_dir: PathBuf,
    /// Directory holding the bundled `app.js` and `app.css`.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/dist"))]
    dist: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bundle = args.dist.join("app.js");
    if !bundle.is_file() {
        return Err(format!(
            "{} not found: bundle the page first with `node conformance-tests/clients/scripts/build-uppy.mjs` \
             (after `npm ci --prefix conformance-tests/clients`)",
            bundle.display()
        )
        .into());
    }

    let store = FileStore::builder(&args.upload_dir).build()?;
    let cors = if args.cors_allow_origin.is_empty() {
        CorsConfig::default()
    } else {
        CorsConfig::allow_origins(args.cors_allow_origin.clone())
    };
    let tus = TusService::builder(store).base_path("/files/").cors(Some(cors)).build();
    tokio::spawn(tus.reaper());

    let main_listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port)).await?;
    let main_addr = main_listener.local_addr()?;
    let own_endpoint = format!("http://{main_addr}/files/");
    let dist = Arc::new(args.dist);

    // Same origin: a relative endpoint, so the browser never needs CORS.
    let same_origin_endpoint = args.endpoint.clone().unwrap_or_else(|| "/files/".to_owned());
    let app = page_routes(&same_origin_endpoint, &dist)
        .route_service("/files", tus.clone())
        .route_service("/files/", tus.clone())
        .route_service("/files/{id}", tus);
    println!("tus endpoint: {own_endpoint}");
    println!("page: http://{main_addr}/");
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(async move { axum::serve(main_listener, app).await });

    if let Some(page_port) = args.page_port {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, page_port)).await?;
        let addr = listener.local_addr()?;
        let endpoint = args.endpoint.clone().unwrap_or(own_endpoint);
        let app = page_routes(&endpoint, &dist);
        println!("cross-origin page: http://{addr}/");
        servers.spawn(async move { axum::serve(listener, app).await });
    }

    // Both servers run until one fails (or the process is stopped).
    if let Some(result) = servers.join_next().await {
        result??;
    }
    Ok(())
}

/// The page (uploading to `endpoint`) and its bundled assets.
fn page_routes(endpoint: &str, dist: &Arc<PathBuf>) -> Router {
    let page = PAGE.replace("{{ENDPOINT}}", &html_escape(endpoint));
    let js = dist.join("app.js");
    let css = dist.join("app.css");
    Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route("/app.js", get(move || asset(js, "text/javascript; charset=utf-8")))
        .route("/app.css", get(move || asset(css, "text/css; charset=utf-8")))
}

/// One bundled file, read on each request so a rebuilt bundle needs no restart.
async fn asset(path: PathBuf, content_type: &'static str) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], bytes).into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, format!("{}: {e}\n", path.display())).into_response(),
    }
}

/// Escapes text for an HTML attribute value.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}
