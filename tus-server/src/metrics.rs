//! Prometheus metrics (`/metrics`), with the official `prometheus-client` crate.
//!
//! | metric | labels | source |
//! |---|---|---|
//! | `tus_requests_total` | method (GET, HEAD, POST, PATCH, DELETE, OPTIONS, PUT, other), status | every response |
//! | `tus_errors_total` | code | error responses (`ERR_*` codes) |
//! | `tus_bytes_received_total` | | bytes stores accepted |
//! | `tus_uploads_total` | event (created, finished, terminated, expired) | hooks and the reaper |
//! | `tus_open_connections` | | accepted, not yet closed connections |
//! | `tus_patches_in_flight` | | PATCH requests being handled |
//! | `tus_hook_invocations_total` | hook, outcome (ok, failed) | configured hook transport |
//! | `tus_store_request_seconds` | op (create, info, append, read) | store calls |
//! | `tus_auth_failures_total` | reason (missing, duplicate_cookie, malformed, bad_signature, expired, not_yet_valid, wrong_issuer, wrong_audience, no_subject, unknown_key) | [`CountedAuthorizer`] refusals |
//! | `tus_quota_refusals_total` | quota (bytes, uploads) | [`Metrics::quota_refused`] |
//! | `tus_media_step_seconds` | step (thumbnails, decode, strip, store) | the media step's work per image |
//! | `tus_media_images_total` | | images the media step made derivatives of |
//! | `tus_media_skipped_total` | reason (too_large, too_many_bytes, corrupt, unsupported, timeout, failed) | images the media step left alone |

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tus_core::UploadId;
use tus_core::auth::{Authorize, Principal, Unauthorized};
use tus_core::hooks::{HookError, HookEvent, HookResponse, HookType, Hooks};
use tus_core::store::{AppendOptions, ByteStream, Capabilities, ChunkStream, NewUpload, Store, StoreError, UploadInfo};

// Every label value is a `&'static str` chosen by the server, never text from a request: each
// distinct value is a series kept forever, so client-chosen values would grow memory and
// `/metrics` without bound. (`status` is a `StatusCode`, so at most 900 values.)

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    quota: &'static str,
}

/// The `method` label of a request: one of the methods the server serves, else `other`.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PUT => "PUT",
        _ => "other",
    }
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<CodeLabels, Counter>,
    bytes_received: Counter,
    uploads: Family<EventLabels, Counter>,
    /// Connections accepted and not yet closed.
    pub open_connections: Gauge,
    /// PATCH requests being handled.
    pub patches_in_flight: Gauge,
    hooks: Family<HookLabels, Counter>,
    store_seconds: Family<OpLabels, Histogram>,
    auth_failures: Family<ReasonLabels, Counter>,
    quota_refusals: Family<QuotaLabels, Counter>,
    media_seconds: Family<StepLabels, Histogram>,
    media_images: Counter,
    media_skipped: Family<ReasonLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// A fresh, registered set of metrics.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("tus");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<CodeLabels, Counter>::default();
        let bytes_received = Counter::default();
        let uploads = Family::<EventLabels, Counter>::default();
        let open_connections = Gauge::default();
        let patches_in_flight = Gauge::default();
        let hooks = Family::<HookLabels, Counter>::default();
        let store_seconds = Family::<OpLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        let quota_refusals = Family::<QuotaLabels, Counter>::default();
        let media_seconds =
            Family::<StepLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let media_images = Counter::default();
        let media_skipped = Family::<ReasonLabels, Counter>::default();
        registry.register("requests", "HTTP requests by method and status", requests.clone());
        registry.register("errors", "Error responses by tus error code", errors.clone());
        registry.register("bytes_received", "Upload bytes accepted by the store", bytes_received.clone());
        registry.register("uploads", "Upload lifecycle events", uploads.clone());
        registry.register("open_connections", "Open client connections", open_connections.clone());
        registry.register("patches_in_flight", "PATCH requests being handled", patches_in_flight.clone());
        registry.register("hook_invocations", "Hook calls by hook and outcome", hooks.clone());
        registry.register("store_request_seconds", "Store call latency", store_seconds.clone());
        registry.register("auth_failures", "Requests refused authentication, by reason", auth_failures.clone());
        registry.register(
            "quota_refusals",
            "Creations or length declarations refused by a per-owner quota",
            quota_refusals.clone(),
        );
        registry.register("media_step_seconds", "Time the media step spent per image, by step", media_seconds.clone());
        registry.register("media_images", "Images the media step made derivatives of", media_images.clone());
        registry.register("media_skipped", "Images the media step left alone, by reason", media_skipped.clone());
        Arc::new(Metrics {
            registry,
            requests,
            errors,
            bytes_received,
            uploads,
            open_connections,
            patches_in_flight,
            hooks,
            store_seconds,
            auth_failures,
            quota_refusals,
            media_seconds,
            media_images,
            media_skipped,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts one response.
    pub fn request(&self, method: &http::Method, status: http::StatusCode, error_code: Option<&'static str>) {
        self.requests.get_or_create(&RequestLabels { method: method_label(method), status: status.as_u16() }).inc();
        if let Some(code) = error_code {
            self.errors.get_or_create(&CodeLabels { code }).inc();
        }
    }

    /// Counts uploads removed by the expiry reaper.
    pub fn expired(&self, n: usize) {
        self.uploads.get_or_create(&EventLabels { event: "expired" }).inc_by(n as u64);
    }

    /// Counts one request refused authentication; `reason` is the authorizer's fixed
    /// [`Unauthorized::reason`] (for `tus_server::auth::JwtAuthorizer`, one of
    /// `tus_server::auth::reasons::ALL`).
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts one creation or length declaration refused by a per-owner quota: `which` is
    /// `"bytes"` (`--quota-bytes`) or `"uploads"` (`--quota-uploads`).
    pub fn quota_refused(&self, which: &'static str) {
        self.quota_refusals.get_or_create(&QuotaLabels { quota: which }).inc();
    }

    /// Records the time one step of the media step took for one image.
    pub fn media_step(&self, step: &'static str, seconds: f64) {
        self.media_seconds.get_or_create(&StepLabels { step }).observe(seconds);
    }

    /// Counts an image the media step made derivatives of.
    pub fn media_processed(&self) {
        self.media_images.inc();
    }

    /// Counts an image the media step left alone, and why.
    pub fn media_skipped(&self, reason: &'static str) {
        self.media_skipped.get_or_create(&ReasonLabels { reason }).inc();
    }

    fn upload_event(&self, event: &'static str) {
        self.uploads.get_or_create(&EventLabels { event }).inc();
    }

    fn store_call(&self, op: &'static str, started: Instant) {
        self.store_seconds.get_or_create(&OpLabels { op }).observe(started.elapsed().as_secs_f64());
    }
}

/// Counts lifecycle events and hook outcomes, forwarding to the configured transport (if any).
/// Wants the triggering request described ([`Hooks::wants_http_request`]) only if that
/// transport does.
#[derive(Debug)]
pub struct MetricsHooks {
    metrics: Arc<Metrics>,
    inner: Option<Arc<dyn Hooks>>,
}

impl MetricsHooks {
    /// Wraps `inner` (the transport the flags chose, if any).
    pub fn new(metrics: Arc<Metrics>, inner: Option<Arc<dyn Hooks>>) -> Self {
        MetricsHooks { metrics, inner }
    }
}

#[async_trait]
impl Hooks for MetricsHooks {
    fn enabled(&self, hook: HookType) -> bool {
        matches!(hook, HookType::PostCreate | HookType::PostFinish | HookType::PostTerminate)
            || self.inner.as_ref().is_some_and(|h| h.enabled(hook))
    }

    /// Counting needs only the hook type: the request is described only for a transport that
    /// wants it, so without one no request has its headers copied.
    fn wants_http_request(&self) -> bool {
        self.inner.as_ref().is_some_and(|h| h.wants_http_request())
    }

    async fn call(&self, event: &HookEvent) -> Result<HookResponse, HookError> {
        match event.hook {
            HookType::PostCreate => self.metrics.upload_event("created"),
            HookType::PostFinish => self.metrics.upload_event("finished"),
            HookType::PostTerminate => self.metrics.upload_event("terminated"),
            _ => {}
        }
        let Some(inner) = self.inner.as_ref().filter(|h| h.enabled(event.hook)) else {
            return Ok(HookResponse::default());
        };
        let result = inner.call(event).await;
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.metrics.hooks.get_or_create(&HookLabels { hook: event.hook.name(), outcome }).inc();
        result
    }
}

/// Counts the refusals of an authorizer by reason (`tus_auth_failures_total`), delegating
/// every decision to it; so authorizers themselves need no metrics.
#[derive(Debug)]
pub struct CountedAuthorizer<A> {
    inner: A,
    metrics: Arc<Metrics>,
}

impl<A> CountedAuthorizer<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, metrics: Arc<Metrics>) -> Self {
        CountedAuthorizer { inner, metrics }
    }
}

#[async_trait]
impl<A: Authorize> Authorize for CountedAuthorizer<A> {
    async fn authorize(&self, request: &http::request::Parts) -> Result<Principal, Unauthorized> {
        let result = self.inner.authorize(request).await;
        if let Err(refused) = &result {
            self.metrics.auth_failed(refused.reason);
        }
        result
    }
}

/// A store decorator timing the core operations and counting accepted bytes.
#[derive(Debug)]
pub struct TimedStore<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> TimedStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        TimedStore { inner, metrics }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: Store> Store for TimedStore<S> {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo, StoreError> {
        let started = Instant::now();
        let result = self.inner.create(upload).await;
        self.metrics.store_call("create", started);
        result
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo, StoreError> {
        let started = Instant::now();
        let result = self.inner.info(id).await;
        self.metrics.store_call("info", started);
        result
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        data: ChunkStream<'_>,
        options: AppendOptions,
    ) -> Result<u64, StoreError> {
        let started = Instant::now();
        let result = self.inner.append(id, offset, data, options).await;
        self.metrics.store_call("append", started);
        if let Ok(end) = &result {
            self.metrics.bytes_received.inc_by(end.saturating_sub(offset));
        }
        result
    }

    async fn read(&self, id: &UploadId, range: Range<u64>) -> Result<ByteStream, StoreError> {
        let started = Instant::now();
        let result = self.inner.read(id, range).await;
        self.metrics.store_call("read", started);
        result
    }

    fn capabilities(&self) -> Capabilities<'_> {
        self.inner.capabilities()
    }
    fn describe(&self, id: &UploadId) -> std::collections::BTreeMap<String, String> {
        self.inner.describe(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        let metrics = Metrics::new();
        for i in 0..20 {
            let method = http::Method::from_bytes(format!("FOOBAR{i}").as_bytes()).expect("token");
            metrics.request(&method, http::StatusCode::METHOD_NOT_ALLOWED, None);
        }
        metrics.request(&http::Method::from_bytes(b"get").expect("token"), http::StatusCode::OK, None);
        metrics.request(&http::Method::PATCH, http::StatusCode::NO_CONTENT, None);
        let text = metrics.render();
        assert!(text.contains("tus_requests_total{method=\"other\",status=\"405\"} 20"), "{text}");
        assert!(text.contains("tus_requests_total{method=\"other\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("tus_requests_total{method=\"PATCH\",status=\"204\"} 1"), "{text}");
        assert!(!text.contains("FOOBAR") && !text.contains("\"get\""), "{text}");
    }

    #[test]
    fn metrics_hooks_want_the_request_only_for_a_transport_that_does() {
        let metrics = Metrics::new();
        assert!(!MetricsHooks::new(metrics.clone(), None).wants_http_request());
        let http: Arc<dyn Hooks> = Arc::new(crate::hooks::HttpHooks::new(
            http::Uri::from_static("http://127.0.0.1:9/hooks"),
            std::time::Duration::from_secs(1),
            0,
            HookType::ALL.into_iter().collect(),
        ));
        assert!(MetricsHooks::new(metrics, Some(http)).wants_http_request());
    }

    #[test]
    fn auth_failures_and_quota_refusals_are_counted() {
        use futures_util::FutureExt as _;

        let metrics = Metrics::new();
        let auth = CountedAuthorizer::new(
            crate::auth::JwtAuthorizer::from_key_bytes(b"0123456789abcdef0123456789abcdef").expect("key"),
            metrics.clone(),
        );
        let request = |value: &'static str| {
            let mut builder = http::Request::builder();
            if !value.is_empty() {
                builder = builder.header(http::header::AUTHORIZATION, value);
            }
            builder.body(()).expect("request").into_parts().0
        };
        for value in ["", "", "Bearer a.b.c", "Bearer not-a-jwt"] {
            let refused = auth.authorize(&request(value)).now_or_never().expect("ready");
            assert!(refused.is_err());
        }
        metrics.quota_refused("bytes");
        let text = metrics.render();
        assert!(text.contains("tus_auth_failures_total{reason=\"missing\"} 2"), "{text}");
        assert!(text.contains("tus_auth_failures_total{reason=\"malformed\"} 2"), "{text}");
        assert!(text.contains("tus_quota_refusals_total{quota=\"bytes\"} 1"), "{text}");
    }
}
