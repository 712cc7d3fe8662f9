//! DELETE: the termination extension.

use http::{Response, StatusCode};

use super::Inner;
use super::hooks::Call;
use super::response::{ResponseBody, apply_hook_response, tus_response};
use crate::error::TusError;
use crate::hooks::{HookHttpResponse, HookType};
use crate::id::UploadId;

impl Inner {
    /// DELETE: terminate an upload.
    pub(super) async fn delete(&self, id: &UploadId, call: &Call) -> Result<Response<ResponseBody>, TusError> {
        self.termination().ok_or(TusError::MethodNotAllowed)?;
        let hook = self.terminate(id, call).await?;
        let mut res = tus_response(StatusCode::NO_CONTENT);
        apply_hook_response(&mut res, &hook);
        Ok(res)
    }

    /// Terminates an upload for `call` (a `DELETE`, or an abandoned external upload): the
    /// owner check, `pre-terminate` (which may refuse), the store's termination, the quota
    /// given back, `post-terminate`. Returns the response changes `pre-terminate` asked for.
    pub(super) async fn terminate(&self, id: &UploadId, call: &Call) -> Result<HookHttpResponse, TusError> {
        let terminater = self.store.capabilities().terminate.ok_or(TusError::NotImplemented)?;
        self.check_access(id, call).await?;
        let lock = self.lock(id).await?;
        let info = self.upload_info(id, call).await?;
        let hook = self.blocking_hook(HookType::PreTerminate, &info, call).await?;
        if hook.reject_termination {
            return Err(TusError::TerminationRejected(hook.http_response));
        }
        terminater.terminate(id).await?;
        // Idempotent: a finished upload holds nothing any more, but one recorded complete just
        // before it was refused (an external upload) still may.
        self.release_upload(&info).await;
        if !info.is_complete() {
            self.forget_waiting(&info);
        }
        drop(lock);
        tracing::info!(upload = %id, "upload terminated");
        self.notify(HookType::PostTerminate, &info, call);
        Ok(hook.http_response)
    }
}
