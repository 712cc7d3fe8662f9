//! What happens around the protocol: hooks, completion, and post-upload processing.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};

use super::Inner;
use super::response::ResponseBody;
use crate::error::TusError;
use crate::hooks::{
    EventDetails, HookEvent, HookHttpRequest, HookHttpResponse, HookResponse, HookType, HookUpload, RemoteAddr,
};
use crate::id::UploadId;
use crate::inspect::Verdict;
use crate::store::{UploadInfo, UploadState};

/// Longest wait between two attempts to inspect an upload or record its state.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The request a hook event reports; empty when no hooks are configured.
pub(crate) fn hook_request<B>(req: &Request<B>, method: &http::Method, with_hooks: bool) -> HookHttpRequest {
    if !with_hooks {
        return HookHttpRequest::default();
    }
    let mut header = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (name, value) in req.headers() {
        header
            .entry(canonical_header_name(name))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    HookHttpRequest {
        method: method.to_string(),
        uri: req.uri().to_string(),
        remote_addr: req.extensions().get::<RemoteAddr>().map(|a| a.0.to_string()).unwrap_or_default(),
        header,
    }
}

/// `upload-length` → `Upload-Length`, as Go's `http.Header` (and so tusd's hooks) spell it.
fn canonical_header_name(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Applies the parts of a hook's `HTTPResponse` that are set to `res`.
pub(crate) fn apply_hook_response(res: &mut Response<ResponseBody>, changes: &HookHttpResponse) {
    if let Ok(status) = StatusCode::from_u16(changes.status_code) {
        *res.status_mut() = status;
    }
    for (name, value) in &changes.header {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            res.headers_mut().insert(name, value);
        }
    }
    if !changes.body.is_empty() {
        res.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(changes.body.len()));
        *res.body_mut() = ResponseBody::full(changes.body.clone());
    }
}

impl Inner {
    pub(crate) fn hook_enabled(&self, hook: HookType) -> bool {
        self.hooks.as_ref().is_some_and(|h| h.enabled(hook))
    }

    fn event(&self, hook: HookType, info: &UploadInfo, request: &HookHttpRequest) -> HookEvent {
        let mut upload = HookUpload::from_info(info);
        upload.storage = self.store.describe(&info.id);
        if hook == HookType::PostFinish && info.state.is_none_or(|s| s == UploadState::Clean) {
            upload.download_url = self.signed_download_url(&info.id, request);
        }
        HookEvent { hook, event: EventDetails { upload, http_request: request.clone() } }
    }

    /// Calls a blocking hook; its failure fails the request.
    pub(crate) async fn blocking_hook(
        &self,
        hook: HookType,
        info: &UploadInfo,
        request: &HookHttpRequest,
    ) -> Result<HookResponse, TusError> {
        let Some(hooks) = self.hooks.as_ref().filter(|h| h.enabled(hook)) else { return Ok(HookResponse::default()) };
        hooks.call(&self.event(hook, info, request)).await.map_err(TusError::Hook)
    }

    /// Fires a notification hook in the background.
    pub(crate) fn notify(&self, hook: HookType, info: &UploadInfo, request: &HookHttpRequest) {
        if !self.hook_enabled(hook) {
            return;
        }
        let Some(hooks) = self.hooks.clone() else { return };
        let event = self.event(hook, info, request);
        tokio::spawn(async move {
            if let Err(e) = hooks.call(&event).await {
                tracing::warn!(error = %e, upload = %event.event.upload.id, "notification hook failed");
            }
        });
    }

    /// `post-receive`, whose answer may ask to stop the upload; `stop` is then fired.
    pub(crate) fn notify_progress(
        &self,
        info: &UploadInfo,
        request: &HookHttpRequest,
        stop: Option<Arc<tokio::sync::Notify>>,
    ) {
        if !self.hook_enabled(HookType::PostReceive) {
            return;
        }
        let Some(hooks) = self.hooks.clone() else { return };
        let event = self.event(HookType::PostReceive, info, request);
        tokio::spawn(async move {
            match hooks.call(&event).await {
                Ok(res) if res.stop_upload => {
                    if let Some(stop) = stop {
                        stop.notify_one();
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "post-receive hook failed"),
            }
        });
    }

    /// Runs [`Inner::on_complete`] on a task of its own and waits for it: a client that goes
    /// away while hooks run or states are recorded cannot cut completion short.
    pub(crate) async fn complete(
        &self,
        info: &UploadInfo,
        request: &HookHttpRequest,
    ) -> Result<HookHttpResponse, TusError> {
        let Some(me) = self.me.upgrade() else { return self.on_complete(info, request).await };
        let (info, request) = (info.clone(), request.clone());
        tokio::spawn(async move { me.on_complete(&info, &request).await })
            .await
            .unwrap_or(Err(TusError::Internal("upload completion failed")))
    }

    /// Completes `id` if its stored offset reached its length: after an append whose request
    /// was dropped or whose store call failed (see `CompletionWatch` in `patch.rs`).
    pub(crate) async fn complete_if_reached(&self, id: &UploadId, request: &HookHttpRequest) {
        match self.store.info(id).await {
            Ok(info) if info.is_complete() => {
                tracing::info!(upload = %id, "upload completed by a request that did not end cleanly");
                if let Err(e) = self.on_complete(&info, request).await {
                    tracing::warn!(upload = %id, error = %e, "completing the upload failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(upload = %id, error = %e, "cannot check whether the upload completed"),
        }
    }

    /// Whether finished uploads like `info` are inspected before they may be served.
    pub(crate) fn inspects(&self, info: &UploadInfo) -> bool {
        !info.is_partial() && self.inspector.is_some() && self.store.state_recorder().is_some()
    }

    /// Called once an upload's last byte arrived (or a final upload was assembled). Starts
    /// processing, settles waiting finals, runs `pre-finish`, and returns the response
    /// changes `pre-finish` asked for.
    pub(crate) async fn on_complete(
        &self,
        info: &UploadInfo,
        request: &HookHttpRequest,
    ) -> Result<HookHttpResponse, TusError> {
        tracing::info!(upload = %info.id, length = ?info.length, "upload finished");
        let mut info = info.clone();
        let processed = self.inspects(&info);
        if processed {
            // Recorded before the client hears of completion, so no download can slip through
            // before the verdict.
            if let Some(recorder) = self.store.state_recorder() {
                recorder.set_state(&info.id, UploadState::Processing).await?;
            }
            info.state = Some(UploadState::Processing);
        }
        if info.is_partial()
            && let Some(me) = self.me.upgrade()
        {
            // In the background: assembling the finals that wait for this partial (up to a
            // thousand parts each) is not this request's work to wait for; a HEAD of a final
            // waits for its assembly under the final's lock.
            let (id, request) = (info.id.clone(), request.clone());
            tokio::spawn(async move { me.settle_waiting_finals(&id, &request).await });
        }
        let pre_finish = self.blocking_hook(HookType::PreFinish, &info, request).await;
        if processed {
            self.spawn_processing(info, request.clone());
        } else {
            self.notify(HookType::PostFinish, &info, request);
        }
        Ok(pre_finish?.http_response)
    }

    fn spawn_processing(&self, info: UploadInfo, request: HookHttpRequest) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move { me.process(info, request).await });
    }

    /// Inspects a finished upload until a verdict exists, records it, then fires `post-finish`.
    async fn process(&self, mut info: UploadInfo, request: HookHttpRequest) {
        let (Some(inspector), Some(recorder)) = (self.inspector.as_ref(), self.store.state_recorder()) else {
            return;
        };
        let verdict = retry("inspect", &info.id, || inspector.inspect(self.store.as_ref(), &info)).await;
        let state = match &verdict {
            Verdict::Clean => UploadState::Clean,
            Verdict::Rejected(reason) => {
                tracing::warn!(upload = %info.id, %reason, "upload rejected by content check");
                UploadState::Rejected
            }
            Verdict::Infected(signature) => {
                tracing::warn!(upload = %info.id, %signature, "malware found; quarantining upload");
                UploadState::Quarantined
            }
        };
        retry("record state of", &info.id, || recorder.set_state(&info.id, state)).await;
        tracing::info!(upload = %info.id, state = state.name(), "upload processed");
        info.state = Some(state);
        self.notify(HookType::PostFinish, &info, &request);
    }

    /// Restarts processing of uploads a restart interrupted: those whose checks had begun,
    /// and those complete but never inspected (the process stopped between storing the last
    /// byte and recording `processing`), which get their whole completion (hooks included).
    /// Returns how many it picked up.
    pub(crate) async fn resume_processing(&self) -> Result<usize, TusError> {
        if self.inspector.is_none() {
            return Ok(0);
        }
        let Some(recorder) = self.store.state_recorder() else { return Ok(0) };
        let mut picked = 0;
        for id in recorder.list_processing().await? {
            match self.store.info(&id).await {
                Ok(info) if !self.inspects(&info) || !info.is_complete() => {}
                Ok(info) if info.state.is_none() => {
                    picked += 1;
                    let Some(me) = self.me.upgrade() else { break };
                    tokio::spawn(async move {
                        if let Err(e) = me.on_complete(&info, &HookHttpRequest::default()).await {
                            tracing::warn!(upload = %info.id, error = %e, "completing an uninspected upload failed");
                        }
                    });
                }
                Ok(info) if info.state == Some(UploadState::Processing) => {
                    picked += 1;
                    self.spawn_processing(info, HookHttpRequest::default());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(upload = %id, error = %e, "cannot resume processing"),
            }
        }
        Ok(picked)
    }
}

/// Retries `attempt` with exponential backoff (1 s doubling, at most a minute apart) until it
/// succeeds. Used only in background tasks, where giving up would leave an upload in limbo.
async fn retry<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    id: &UploadId,
    mut attempt: impl FnMut() -> F,
) -> T {
    let mut delay = Duration::from_secs(1);
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(upload = %id, error = %e, retry_in = ?delay, "could not {what} upload; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}
