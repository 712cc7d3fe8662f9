//! PATCH: appending bytes at an offset (core protocol, `checksum`, `checksum-trailer`, and
//! declaring a deferred length).

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};

use super::Inner;
use super::RequestBody;
use super::append::LengthClaim;
use super::hooks::Call;
use super::request::check_content_type;
use super::response::{ResponseBody, apply_hook_response, error_response, tus_response};
use crate::error::TusError;
use crate::headers::{self, UploadChecksum, UploadLength, UploadOffset, names};
use crate::id::UploadId;
use crate::store::UploadInfo;

impl Inner {
    /// PATCH: store the body at `Upload-Offset`.
    pub(super) async fn patch(
        &self,
        id: &UploadId,
        req: Request<RequestBody>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let (parts, body) = req.into_parts();
        let h = &parts.headers;
        check_content_type(h)?;
        let offset = headers::get::<UploadOffset>(h)?.ok_or(TusError::MissingOffset)?.0;
        let declared_length = headers::get::<UploadLength>(h)?.map(|l| l.0);
        headers::get::<UploadChecksum>(h)?;

        self.check_access(id, call).await?;
        let lock = self.lock(id).await?;
        let info = self.upload_info(id, call).await?;
        if self.is_expired(&info) {
            return Err(TusError::Gone);
        }
        // Every PATCH response of an upload that will expire says when, errors included.
        let with_expiry = |mut res: Response<ResponseBody>, info: &UploadInfo| {
            self.set_expires_header(res.headers_mut(), info);
            res
        };
        if info.is_final() {
            return Err(TusError::ModifyFinal);
        }
        if offset != info.offset {
            let error = TusError::MismatchedOffset { current: info.offset, provided: offset };
            return Ok(with_expiry(error_response(&error, &parts.method), &info));
        }
        let claim = LengthClaim { declared: declared_length, ends_upload: false };
        match self.append_body(info.clone(), claim, h, body, lock, call).await {
            Ok((written, changes)) => {
                let mut res = tus_response(StatusCode::NO_CONTENT);
                apply_hook_response(&mut res, &changes);
                res.headers_mut().insert(names::UPLOAD_OFFSET, HeaderValue::from(written.offset));
                Ok(with_expiry(res, &written))
            }
            Err(error) => {
                let now = self.store.info(id).await.unwrap_or(info);
                Ok(with_expiry(error_response(&error, &parts.method), &now))
            }
        }
    }
}
