//! DELETE: the termination extension.

use http::{Response, StatusCode};

use super::Inner;
use super::hooks::Call;
use super::response::{ResponseBody, apply_hook_response, tus_response};
use crate::error::TusError;
use crate::hooks::HookType;
use crate::id::UploadId;

impl Inner {
    /// DELETE: terminate an upload.
    pub(super) async fn delete(&self, id: &UploadId, call: &Call) -> Result<Response<ResponseBody>, TusError> {
        let terminater = self.termination().ok_or(TusError::MethodNotAllowed)?;
        self.check_access(id, call).await?;
        let lock = self.lock(id).await?;
        let info = self.upload_info(id, call).await?;
        let hook = self.blocking_hook(HookType::PreTerminate, &info, call).await?;
        if hook.reject_termination {
            return Err(TusError::TerminationRejected(hook.http_response));
        }
        terminater.terminate(id).await?;
        if !info.is_complete() {
            self.release_upload(&info).await;
            self.forget_waiting(&info);
        }
        drop(lock);
        tracing::info!(upload = %id, "upload terminated");
        self.notify(HookType::PostTerminate, &info, call);
        let mut res = tus_response(StatusCode::NO_CONTENT);
        apply_hook_response(&mut res, &hook.http_response);
        Ok(res)
    }
}
