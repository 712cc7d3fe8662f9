//! POST: the creation extension (with `creation-with-upload`, `creation-defer-length` and the
//! creation side of `concatenation`).

use bytes::Buf;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;

use super::lifecycle::apply_hook_response;
use super::patch::LengthClaim;
use super::response::{ResponseBody, error_response, tus_response};
use super::{Inner, parse_metadata};
use crate::error::TusError;
use crate::hooks::{HookHttpRequest, HookHttpResponse, HookType};
use std::time::SystemTime;

use crate::headers::{self, Metadata, UploadConcat, UploadDeferLength, UploadLength, names};
use crate::hooks::HookError;
use crate::id::UploadId;
use crate::store::{ConcatRole, NewUpload, StoreError, UploadInfo};

impl Inner {
    /// POST: create an upload, and store the body if one came along.
    pub(super) async fn post<B>(
        &self,
        req: Request<B>,
        hr: &HookHttpRequest,
    ) -> Result<Response<ResponseBody>, TusError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Buf + Send,
    {
        let h = req.headers();
        let metadata = parse_metadata(h, self.config.max_metadata_size)?;
        let concat = headers::get::<UploadConcat>(h)?;
        let length = headers::get::<UploadLength>(h)?;
        let defer = headers::get::<UploadDeferLength>(h)?;
        let has_body = super::patch::has_body(h, req.body());
        let host = self.request_origin(&req);

        let upload = match concat {
            Some(UploadConcat::Final(urls)) => {
                if has_body {
                    return Err(TusError::ModifyFinal);
                }
                if length.is_some() || defer.is_some() {
                    return Err(TusError::InvalidLengthHeaders);
                }
                return self.create_final(&urls, metadata, host.as_deref(), hr).await;
            }
            concat => {
                let length = match (length, defer) {
                    (Some(UploadLength(n)), None) => Some(n),
                    (None, Some(UploadDeferLength)) if self.store.length_deferrer().is_some() => None,
                    (None, Some(UploadDeferLength)) => return Err(TusError::NotImplemented),
                    _ => return Err(TusError::InvalidLengthHeaders),
                };
                if let Some(n) = length {
                    self.check_length(n)?;
                }
                let role = concat.map(|_| ConcatRole::Partial);
                let mut upload = NewUpload::new(UploadId::random(), length).with_metadata(metadata);
                if let Some(role) = role {
                    upload = upload.with_concat(role);
                }
                upload
            }
        };
        if has_body {
            super::patch::check_content_type(h)?;
        }

        let (info, pre_create) = self.create_with_hooks(upload, hr).await?;
        let location = self.upload_url(host.as_deref(), &info.id);
        let mut finish = HookHttpResponse::default();
        if info.is_complete() {
            finish = self.complete(&info, hr).await?;
        }

        let mut offset = None;
        let mut res = if has_body {
            // creation-with-upload: the body is a PATCH at offset 0. Even if it fails the
            // upload exists, so the response still carries `Location` for the client to resume.
            let (parts, body) = req.into_parts();
            let received = async {
                let lock = self.lock(&info.id).await?;
                self.append_body(info.clone(), LengthClaim::default(), &parts.headers, body, lock, hr).await
            };
            match received.await {
                Ok((written, changes)) => {
                    offset = Some(written.offset);
                    finish = changes;
                    tus_response(StatusCode::CREATED)
                }
                Err(e) => error_response(&e, &parts.method),
            }
        } else {
            tus_response(StatusCode::CREATED)
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

    /// A final upload over the partials named by `urls`, concatenated now if they are all
    /// complete, or as soon as they are (`concatenation-unfinished`).
    async fn create_final(
        &self,
        urls: &[String],
        metadata: crate::headers::Metadata,
        host: Option<&str>,
        hr: &HookHttpRequest,
    ) -> Result<Response<ResponseBody>, TusError> {
        if self.store.concatenater().is_none() {
            return Err(TusError::NotImplemented);
        }
        if urls.len() > self.config.max_concat_parts {
            return Err(TusError::InvalidConcat);
        }
        let mut partials: Vec<UploadInfo> = Vec::with_capacity(urls.len());
        for url in urls {
            let id = self.partial_id(url, host).ok_or(TusError::InvalidConcat)?;
            let info = match self.store.info(&id).await {
                Ok(info) if !self.is_expired(&info) => info,
                Ok(_) | Err(StoreError::NotFound | StoreError::Gone) => return Err(TusError::InvalidConcat),
                Err(e) => return Err(e.into()),
            };
            if !info.is_partial() {
                return Err(TusError::InvalidConcat);
            }
            partials.push(info);
        }
        let length = final_length(&partials)?;
        if let Some(n) = length {
            self.check_length(n)?;
        }
        let role = ConcatRole::Final { partials: partials.iter().map(|p| p.id.clone()).collect() };
        let upload = NewUpload::new(UploadId::random(), length).with_metadata(metadata).with_concat(role);
        let (info, pre_create) = self.create_with_hooks(upload, hr).await?;

        if partials.iter().all(UploadInfo::is_complete) {
            self.settle_final(info.clone(), hr).await?;
        } else if let Ok(mut waiting) = self.waiting_finals.lock() {
            for p in partials.iter().filter(|p| !p.is_complete()) {
                waiting.entry(p.id.clone()).or_default().insert(info.id.clone());
            }
        }
        let mut res = tus_response(StatusCode::CREATED);
        apply_hook_response(&mut res, &pre_create);
        if let Ok(v) = HeaderValue::from_str(&self.upload_url(host, &info.id)) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Ok(res)
    }

    /// Runs `pre-create` (which may refuse, or change the ID and metadata), creates the
    /// upload, and fires `post-create`. Returns the response changes `pre-create` asked for.
    pub(super) async fn create_with_hooks(
        &self,
        mut upload: NewUpload,
        hr: &HookHttpRequest,
    ) -> Result<(UploadInfo, HookHttpResponse), TusError> {
        let hook = self.blocking_hook(HookType::PreCreate, &upload.clone().into_info(SystemTime::now()), hr).await?;
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
        let info = self.store.create(upload).await?;
        tracing::info!(upload = %info.id, length = ?info.length, final_upload = info.is_final(), "upload created");
        self.notify(HookType::PostCreate, &info, hr);
        Ok((info, hook.http_response))
    }

    /// The ID in a partial upload URL: absolute on this host, or a path under the base path.
    fn partial_id(&self, url: &str, origin: Option<&str>) -> Option<UploadId> {
        let host = origin.and_then(|o| o.split_once("://")).map(|(_, authority)| authority);
        let path = match url.split_once("://") {
            Some((scheme, rest)) => {
                if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                    return None;
                }
                let (authority, path) = rest.split_at(rest.find('/')?);
                // Another host's upload is not ours to read.
                if !host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
                    return None;
                }
                path
            }
            None => url,
        };
        let id = path.strip_prefix(self.config.base_path.as_str())?;
        UploadId::parse(id).ok()
    }
}

/// The length of a final upload over `partials`: their sum, `None` while one is deferred.
/// A sum past what a `u64` holds is past any maximum.
pub(super) fn final_length(partials: &[UploadInfo]) -> Result<Option<u64>, TusError> {
    let mut sum = 0u64;
    for p in partials {
        let Some(length) = p.length else { return Ok(None) };
        sum = sum.checked_add(length).ok_or(TusError::SizeExceeded)?;
    }
    Ok(Some(sum))
}
