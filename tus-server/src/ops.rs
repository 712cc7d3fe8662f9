//! The HTTP application the binary serves: the tus service plus `/metrics`, `/health` and
//! `/ready`, with per-request metrics and the client's address for hooks.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tower_service::Service as _;
use tus_core::error::ErrorCode;
use tus_core::hooks::RemoteAddr;
use tus_core::{ResponseBody, Store, StoreError, TusService, UploadId};

use crate::metrics::Metrics;

/// A backend `/ready` checks besides the store, such as the Redis locker.
#[async_trait::async_trait]
pub trait Probe: std::fmt::Debug + Send + Sync {
    /// Its name in a `not ready` answer (`redis`).
    fn name(&self) -> &'static str;
    /// Whether it answers now.
    async fn is_ready(&self) -> bool;
}

/// What `/ready` checks.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// The store (probed with an info lookup of a random ID).
    pub store: Arc<dyn Store>,
    /// The other backends the service depends on (the Redis locker, if one is used).
    pub backends: Vec<Arc<dyn Probe>>,
}

impl Readiness {
    /// Whether the store and the lock backend answer.
    pub async fn check(&self) -> Result<(), String> {
        let probe = tokio::time::timeout(Duration::from_secs(3), self.store.info(&UploadId::random())).await;
        match probe {
            Ok(Ok(_) | Err(StoreError::NotFound | StoreError::Gone)) => {}
            Ok(Err(e)) => return Err(format!("store: {e}")),
            Err(_) => return Err("store: timed out".into()),
        }
        for backend in &self.backends {
            if !backend.is_ready().await {
                return Err(format!("{}: unreachable", backend.name()));
            }
        }
        Ok(())
    }
}

/// Routes served beside the tus endpoint, by path: the direct-to-S3 signing API.
#[async_trait::async_trait]
pub trait SideRoutes: std::fmt::Debug + Send + Sync {
    /// Whether `path` is one of these routes.
    fn serves(&self, path: &str) -> bool;
    /// Handles one request to them.
    async fn handle(&self, req: Request<Incoming>) -> Response<ResponseBody>;
    /// Background work the routes need while the server runs (spawned once by [`crate::serve`]).
    fn background(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// The tus service with the operational endpoints next to it.
#[derive(Debug, Clone)]
pub struct App {
    /// The tus protocol handler.
    pub tus: TusService,
    /// Metrics shared with the store and hook decorators.
    pub metrics: Arc<Metrics>,
    /// Readiness probe.
    pub readiness: Readiness,
    /// The direct-to-S3 signing routes, when on.
    pub direct: Option<Arc<dyn SideRoutes>>,
}

impl App {
    /// Handles one request from `peer`.
    pub async fn handle(&self, mut req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<ResponseBody> {
        // RFC 9112 §3.2: an HTTP/1.1 request without `Host` is malformed (HTTP/2 carries the
        // authority in `:authority`; HTTP/1.0 may omit it). Two `Host` lines are refused by
        // the tus service itself, for library users too.
        if req.version() == http::Version::HTTP_11 && !req.headers().contains_key(http::header::HOST) {
            return text(StatusCode::BAD_REQUEST, "missing Host header\n".into(), "text/plain");
        }
        if req.method() == Method::GET {
            match req.uri().path() {
                "/metrics" => return text(StatusCode::OK, self.metrics.render(), "text/plain; version=0.0.4"),
                "/health" => return text(StatusCode::OK, "ok\n".into(), "text/plain"),
                "/ready" => {
                    return match self.readiness.check().await {
                        Ok(()) => text(StatusCode::OK, "ready\n".into(), "text/plain"),
                        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n"), "text/plain"),
                    };
                }
                _ => {}
            }
        }
        req.extensions_mut().insert(RemoteAddr(peer));
        let method = req.method().clone();
        if let Some(direct) = self.direct.as_ref().filter(|d| d.serves(req.uri().path())) {
            let version = req.version();
            let mut res = direct.handle(req).await;
            let code = res.extensions().get::<ErrorCode>().map(|c| c.0);
            self.metrics.request(&method, res.status(), code);
            // Uppy's S3 plugin shows a failed request's status text, not its body: the
            // refusal's message goes into the HTTP/1.1 reason phrase too.
            let message = res.extensions().get::<tus_core::handler::RefusalMessage>().map(|m| m.0.clone());
            if let (Some(message), http::Version::HTTP_11 | http::Version::HTTP_10) = (message, version)
                && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(message.into_bytes())
            {
                res.extensions_mut().insert(phrase);
            }
            return res;
        }
        // A guard, so the gauge also comes down when hyper drops this future (client gone).
        let _in_flight = (method == Method::PATCH).then(|| InFlight::new(&self.metrics.patches_in_flight));
        let res = match self.tus.clone().call(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let code = res.extensions().get::<ErrorCode>().map(|c| c.0);
        self.metrics.request(&method, res.status(), code);
        match code {
            Some("ERR_QUOTA_BYTES_EXCEEDED") => self.metrics.quota_refused("bytes"),
            Some("ERR_QUOTA_UPLOADS_EXCEEDED") => self.metrics.quota_refused("uploads"),
            _ => {}
        }
        res
    }
}

/// Counts one request in a gauge for as long as it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    res.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    res
}
