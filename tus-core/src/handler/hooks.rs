//! Hook events: the request a hook reports, and calling blocking and notification hooks; and
//! [`Call`], what every step of handling a request knows about it.

use std::sync::Arc;

use http::Request;
use http::header::{AUTHORIZATION, COOKIE, HeaderName};

use super::Inner;
use crate::auth::Principal;
use crate::error::TusError;
use crate::hooks::{EventDetails, HookEvent, HookHttpRequest, HookResponse, HookType, HookUpload, RemoteAddr};
use crate::store::UploadInfo;

/// What every step of handling one request knows about it: the request as hooks report it,
/// and the principal it acts for (when an authorizer is configured).
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    /// The request as hook events report it (see [`Inner::hook_request`]); shared, so handing
    /// the call to the append task does not copy every header.
    pub(crate) hook: Arc<HookHttpRequest>,
    /// Who the request acts for; `None` when no authorizer is configured, or for a request
    /// that needs no principal (a signed download).
    pub(crate) principal: Option<Principal>,
    /// The upload a verified signed URL of this request names: with an authorizer, the only
    /// upload a request without a principal may see.
    pub(crate) signed: Option<crate::id::UploadId>,
    /// The request asked for the file's digest (`Want-Repr-Digest`): if it completes the
    /// upload, the file is hashed before the answer, which then carries `Repr-Digest`.
    pub(crate) want_repr_digest: bool,
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

impl Inner {
    /// The request a hook event reports: empty unless a hook receiver is configured that wants
    /// it ([`crate::Hooks::wants_http_request`]), and without `Authorization` and `Cookie` when
    /// an authorizer is configured.
    pub(crate) fn hook_request<B>(&self, req: &Request<B>, method: &http::Method) -> HookHttpRequest {
        if !self.hooks.as_ref().is_some_and(|h| h.wants_http_request()) {
            return HookHttpRequest::default();
        }
        // Authenticated here, the request's owner is in the payload (`Upload.Owner`); its live
        // credential would only leak to hook receivers and their logs.
        let drop_credentials = self.authorizer.is_some();
        let mut header = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (name, value) in req.headers() {
            if drop_credentials && (name == AUTHORIZATION || name == COOKIE) {
                continue;
            }
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

    pub(crate) fn hook_enabled(&self, hook: HookType) -> bool {
        self.hooks.as_ref().is_some_and(|h| h.enabled(hook))
    }

    pub(crate) fn event(&self, hook: HookType, info: &UploadInfo, call: &Call) -> HookEvent {
        let mut upload = HookUpload::from_info(info);
        upload.storage = self.store.describe(&info.id);
        if hook == HookType::PostFinish && info.state_allows_serving() {
            upload.download_url = self.signed_download_url(&info.id, call);
            upload.derivatives = info
                .derivatives
                .iter()
                .map(|d| crate::hooks::HookDerivative {
                    name: d.name.to_string(),
                    content_type: d.content_type.clone(),
                    size: d.size,
                    url: self.derivative_url(&info.id, d.name, call),
                })
                .collect();
        }
        HookEvent { hook, event: EventDetails { upload, http_request: (*call.hook).clone() } }
    }

    /// Calls a blocking hook; its failure fails the request.
    pub(crate) async fn blocking_hook(
        &self,
        hook: HookType,
        info: &UploadInfo,
        call: &Call,
    ) -> Result<HookResponse, TusError> {
        let Some(hooks) = self.hooks.as_ref().filter(|h| h.enabled(hook)) else { return Ok(HookResponse::default()) };
        hooks.call(&self.event(hook, info, call)).await.map_err(TusError::Hook)
    }

    /// Fires a notification hook in the background.
    pub(crate) fn notify(&self, hook: HookType, info: &UploadInfo, call: &Call) {
        if !self.hook_enabled(hook) {
            return;
        }
        let Some(hooks) = self.hooks.clone() else { return };
        let event = self.event(hook, info, call);
        tokio::spawn(async move {
            if let Err(e) = hooks.call(&event).await {
                tracing::warn!(error = %e, upload = %event.event.upload.id, "notification hook failed");
            }
        });
    }

    /// `post-receive`, whose answer may ask to stop the upload; `stop` is then fired.
    pub(crate) fn notify_progress(&self, info: &UploadInfo, call: &Call, stop: Option<Arc<tokio::sync::Notify>>) {
        if !self.hook_enabled(HookType::PostReceive) {
            return;
        }
        let Some(hooks) = self.hooks.clone() else { return };
        let event = self.event(HookType::PostReceive, info, call);
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
}
