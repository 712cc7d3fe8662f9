//! POST: the creation extension (with `creation-with-upload`, `creation-defer-length` and the
//! creation side of `concatenation`).

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};

use super::Inner;
use super::RequestBody;
use super::append::LengthClaim;
use super::hooks::Call;
use super::request::{check_content_type, declared_digests, has_body, parse_metadata};
use super::response::{ResponseBody, apply_hook_response, error_response, tus_response};
use crate::error::TusError;
use crate::headers::{self, Metadata, UploadConcat, UploadDeferLength, UploadLength, names};
use crate::hooks::{HookError, HookHttpResponse, HookType};
use crate::id::UploadId;
use crate::store::{ConcatRole, NewUpload, UploadInfo};

impl Inner {
    /// POST: create an upload, and store the body if one came along.
    pub(super) async fn post(
        &self,
        req: Request<RequestBody>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        let h = req.headers();
        let metadata = parse_metadata(h, self.config.max_metadata_size)?;
        let concat = headers::get::<UploadConcat>(h)?;
        let length = headers::get::<UploadLength>(h)?;
        let defer = headers::get::<UploadDeferLength>(h)?;
        let has_body = has_body(h, req.body());
        let host = self.request_origin(&req);

        let upload = match concat {
            Some(UploadConcat::Final(urls)) => {
                if has_body {
                    return Err(TusError::ModifyFinal);
                }
                if length.is_some() || defer.is_some() {
                    return Err(TusError::InvalidLengthHeaders);
                }
                let declared = declared_digests(h, &metadata)?;
                return self.create_final(&urls, metadata, declared, host.as_deref(), call).await;
            }
            concat => {
                let length = match (length, defer) {
                    (Some(UploadLength(n)), None) => Some(n),
                    (None, Some(UploadDeferLength)) => None,
                    _ => return Err(TusError::InvalidLengthHeaders),
                };
                let role = concat.map(|_| ConcatRole::Partial);
                let mut upload = NewUpload::new(UploadId::random(), length)
                    .with_metadata(metadata)
                    .with_owner(call.principal.clone());
                if let Some(role) = role {
                    upload = upload.with_concat(role);
                }
                upload
            }
        };
        if has_body {
            check_content_type(h)?;
        }
        // creation-with-upload: the body is a PATCH at offset 0.
        let (parts, body) = req.into_parts();
        let body = has_body.then_some(body);
        let created = self.create_upload(upload, LengthClaim::default(), &parts.headers, body, call).await?;
        let Created { info, pre_create, finish, appended } = created;
        let location = self.upload_url(host.as_deref(), &info.id);
        let mut offset = None;
        let mut res = match appended {
            None => tus_response(StatusCode::CREATED),
            Some(Ok(written)) => {
                offset = Some(written.offset);
                tus_response(StatusCode::CREATED)
            }
            // Even if the body failed the upload exists, so the response still carries
            // `Location` for the client to resume.
            Some(Err(e)) => error_response(&e, &parts.method),
        };
        apply_hook_response(&mut res, &pre_create);
        apply_hook_response(&mut res, &finish);
        let headers = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, v);
        }
        if let Some(offset) = offset {
            headers.insert(names::UPLOAD_OFFSET, HeaderValue::from(offset));
        }
        // Only expiring uploads need the post-write state (for their new activity time).
        if self.expiration().is_some() {
            let now = self.store.info(&info.id).await.unwrap_or(info);
            self.set_expires_header(headers, &now);
        }
        Ok(res)
    }

    /// Creates an upload and appends the body that came with the creation, the same for both
    /// dialects: each parses its request into `upload` (length or deferred, metadata, concat
    /// role, owner) and `claim`, and renders what this returns. The whole file's declared
    /// digests are read here (`Repr-Digest`, `checksum` metadata), the length is checked here
    /// (`length.rs`), a zero-length upload is completed at once, and the body goes through
    /// the one append path.
    pub(super) async fn create_upload(
        &self,
        mut upload: NewUpload,
        claim: LengthClaim,
        headers: &HeaderMap,
        body: Option<RequestBody>,
        call: &Call,
    ) -> Result<Created, TusError> {
        upload.declared_digests = declared_digests(headers, &upload.metadata)?;
        upload.body_follows = body.is_some();
        // A partial is never inspected (its final is): a digest on it would never be proven.
        if upload.concat.is_some() && !upload.declared_digests.is_empty() {
            return Err(TusError::InvalidDigest(crate::digest::DigestError::OnPartial));
        }
        match upload.length {
            Some(n) => self.check_length(n, upload.owner.as_deref())?,
            None if self.store.capabilities().defer_length.is_none() => return Err(TusError::NotImplemented),
            None => {}
        }
        let (info, pre_create) = self.create_with_hooks(upload, call).await?;
        let mut finish = HookHttpResponse::default();
        if info.is_complete() {
            finish = self.complete(&info, call).await?;
        }
        let appended = match body {
            None => None,
            Some(body) => {
                let appended = async {
                    let lock = self.lock(&info.id).await?;
                    self.append_body(info.clone(), claim, headers, body, lock, call).await
                };
                Some(appended.await.map(|(written, changes)| {
                    // Completed by its body, not at creation: that append's pre-finish counts.
                    if !info.is_complete() {
                        finish = changes;
                    }
                    written
                }))
            }
        };
        Ok(Created { info, pre_create, finish, appended })
    }

    /// Runs `pre-create` (which may refuse, or change the ID and metadata), creates the
    /// upload, and fires `post-create`. Returns the response changes `pre-create` asked for.
    pub(super) async fn create_with_hooks(
        &self,
        mut upload: NewUpload,
        call: &Call,
    ) -> Result<(UploadInfo, HookHttpResponse), TusError> {
        let hook = self.blocking_hook(HookType::PreCreate, &upload.clone().into_info(SystemTime::now()), call).await?;
        if hook.reject_upload {
            return Err(TusError::UploadRejected(hook.http_response));
        }
        let changes = hook.change_file_info;
        if !changes.id.is_empty() {
            upload.id = UploadId::parse(&changes.id).map_err(|_| {
                TusError::Hook(HookError {
                    hook: HookType::PreCreate,
                    source: format!("ChangeFileInfo.ID {:?} is not a valid upload ID", changes.id).into(),
                })
            })?;
        }
        if let Some(meta) = changes.meta_data {
            let mut metadata = Metadata::default();
            for (k, v) in meta {
                metadata.insert(k, v.into_bytes());
            }
            upload.metadata = metadata;
        }
        let holding = self.hold_new_upload(&upload).await?;
        let info = match self.store.create(upload).await {
            Ok(info) => info,
            Err(e) => {
                self.undo(holding).await;
                return Err(e.into());
            }
        };
        tracing::info!(upload = %info.id, length = ?info.length, final_upload = info.is_final(), "upload created");
        self.notify(HookType::PostCreate, &info, call);
        Ok((info, hook.http_response))
    }
}

/// What creating an upload came to (see [`Inner::create_upload`]).
pub(super) struct Created {
    /// The upload as created.
    pub(super) info: UploadInfo,
    /// `pre-create`'s response changes.
    pub(super) pre_create: HookHttpResponse,
    /// `pre-finish`'s response changes, if the upload is complete.
    pub(super) finish: HookHttpResponse,
    /// What appending the creation's body came to, if one came along.
    pub(super) appended: Option<Result<UploadInfo, TusError>>,
}
