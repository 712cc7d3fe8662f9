//! PATCH: appending bytes at an offset (core protocol, `checksum`, `checksum-trailer`, and
//! declaring a deferred length).

use bytes::Buf;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Inner;
use super::body::{BodyOutcome, BodyRules, chunk_stream};
use super::lifecycle::apply_hook_response;
use super::response::{ResponseBody, error_response, tus_response};
use crate::error::TusError;
use crate::headers::{self, UploadChecksum, UploadLength, UploadOffset, names};
use crate::hooks::{HookHttpRequest, HookHttpResponse, HookType};
use crate::id::UploadId;
use crate::locker::UploadLock;
use crate::store::{AppendOptions, UploadInfo};

/// How often `post-receive` reports progress during one request.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The only content type a PATCH body may have.
pub(crate) const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

impl Inner {
    /// PATCH: store the body at `Upload-Offset`.
    pub(super) async fn patch<B>(
        &self,
        id: &UploadId,
        req: Request<B>,
        hr: &HookHttpRequest,
    ) -> Result<Response<ResponseBody>, TusError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Buf + Send,
    {
        let (parts, body) = req.into_parts();
        let h = &parts.headers;
        check_content_type(h)?;
        let offset = headers::get::<UploadOffset>(h)?.ok_or(TusError::MissingOffset)?.0;
        let declared_length = headers::get::<UploadLength>(h)?.map(|l| l.0);
        headers::get::<UploadChecksum>(h)?;

        let lock = self.lock(id).await?;
        let mut info = self.store.info(id).await?;
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
            let error = TusError::MismatchedOffset { current: info.offset };
            return Ok(with_expiry(error_response(&error, &parts.method), &info));
        }
        let was_complete = info.is_complete();
        if let Some(length) = declared_length
            && let Err(error) = self.declare_length(&mut info, length).await
        {
            return Ok(with_expiry(error_response(&error, &parts.method), &info));
        }

        let written = match self.receive_locked(&info, h, body, lock.as_ref(), hr).await {
            Ok(written) => written,
            Err(error) => {
                drop(lock);
                let now = self.store.info(id).await.unwrap_or(info);
                return Ok(with_expiry(error_response(&error, &parts.method), &now));
            }
        };
        drop(lock);
        let mut res = tus_response(StatusCode::NO_CONTENT);
        // (Also when an empty PATCH completes a deferred upload by declaring its length.)
        if written.is_complete() && !was_complete {
            let changes = self.on_complete(&written, hr).await?;
            apply_hook_response(&mut res, &changes);
        }
        res.headers_mut().insert(names::UPLOAD_OFFSET, HeaderValue::from(written.offset));
        Ok(with_expiry(res, &written))
    }

    /// `Upload-Length` on a PATCH: set a deferred length once; repeating it is harmless,
    /// changing it is not.
    async fn declare_length(&self, info: &mut UploadInfo, length: u64) -> Result<(), TusError> {
        match info.length {
            Some(known) if known == length => Ok(()),
            Some(_) => Err(TusError::InvalidLength),
            None if length < info.offset => Err(TusError::InvalidLength),
            None if self.config.max_size.is_some_and(|max| length > max) => Err(TusError::SizeExceeded),
            None => {
                let deferrer = self.store.length_deferrer().ok_or(TusError::NotImplemented)?;
                deferrer.declare_length(&info.id, length).await?;
                info.length = Some(length);
                Ok(())
            }
        }
    }

    /// Streams a request body into a just-created upload (creation-with-upload).
    pub(super) async fn receive<B>(
        &self,
        info: &UploadInfo,
        headers: &HeaderMap,
        body: B,
        hr: &HookHttpRequest,
    ) -> Result<(UploadInfo, HookHttpResponse), TusError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Buf + Send,
    {
        let lock = self.lock(&info.id).await?;
        let written = self.receive_locked(info, headers, body, lock.as_ref(), hr).await?;
        drop(lock);
        let mut changes = HookHttpResponse::default();
        if written.is_complete() {
            changes = self.on_complete(&written, hr).await?;
        }
        Ok((written, changes))
    }

    /// Streams a request body into the upload at its current offset; the caller holds `lock`.
    /// Returns the upload's info afterwards.
    pub(super) async fn receive_locked<B>(
        &self,
        info: &UploadInfo,
        headers: &HeaderMap,
        body: B,
        lock: &dyn UploadLock,
        hr: &HookHttpRequest,
    ) -> Result<UploadInfo, TusError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Buf + Send,
    {
        let checksum = headers::get::<UploadChecksum>(headers)?;
        let checksum_trailer = announces_checksum_trailer(headers);
        let limit = match info.length {
            Some(length) => length.saturating_sub(info.offset),
            None => self.config.max_size.map_or(u64::MAX, |max| max.saturating_sub(info.offset)),
        };
        // Refuse before reading anything if the client already told us it sends too much.
        if content_length(headers).is_some_and(|n| n > limit) {
            return Err(TusError::SizeExceeded);
        }
        if limit == 0 && body.is_end_stream() {
            return Ok(info.clone());
        }
        let outcome = BodyOutcome::default();
        let progress = AtomicU64::new(0);
        let stop_upload = Arc::new(Notify::new());
        let all_or_nothing = checksum.is_some() || checksum_trailer;
        let rules = BodyRules {
            limit,
            read_timeout: self.config.body_read_timeout,
            checksum,
            checksum_trailer,
            lock,
            shutdown: self.shutdown.subscribe(),
            stop_upload: &stop_upload,
            progress: &progress,
        };
        let stream = chunk_stream(body, rules, &outcome);
        let options = AppendOptions::default().with_all_or_nothing(all_or_nothing);
        let append = self.store.append(&info.id, info.offset, stream, options);
        let mut at = info.clone();
        let offset = if self.hook_enabled(HookType::PostReceive) {
            // Progress for post-receive, about once a second while bytes flow.
            tokio::pin!(append);
            let mut tick = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
            loop {
                tokio::select! {
                    appended = &mut append => break appended,
                    _ = tick.tick() => {
                        at.offset = info.offset + progress.load(Ordering::Relaxed);
                        self.notify_progress(&at, hr, Some(stop_upload.clone()));
                    }
                }
            }
        } else {
            append.await
        }?;
        at.offset = offset;
        self.notify_progress(&at, hr, Some(stop_upload.clone()));
        if let Some(error) = outcome.take() {
            tracing::debug!(upload = %info.id, offset, error = %error, "body ended early");
            if matches!(error, TusError::UploadStopped)
                && let Some(terminater) = self.store.terminater()
            {
                terminater.terminate(&info.id).await?;
                tracing::info!(upload = %info.id, "upload stopped by a post-receive hook and terminated");
            }
            return Err(error);
        }
        Ok(at)
    }
}

/// 415 unless the body is `application/offset+octet-stream` (parameters ignored).
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), TusError> {
    if content_type_is(headers, OFFSET_OCTET_STREAM) { Ok(()) } else { Err(TusError::InvalidContentType) }
}

/// Whether the body's media type (parameters ignored) is `expected`.
pub(super) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|t| t.eq_ignore_ascii_case(expected))
}

/// `Content-Length`, if present and valid.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(headers::parse_u64)
}

/// Whether a request carries a body: a positive `Content-Length`, or none and a body that is
/// not known to be empty (chunked, HTTP/2 data frames).
pub(super) fn has_body<B: Body>(headers: &HeaderMap, body: &B) -> bool {
    match content_length(headers) {
        Some(n) => n > 0,
        None => !body.is_end_stream(),
    }
}

fn announces_checksum_trailer(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case(names::UPLOAD_CHECKSUM.as_str()))
}
