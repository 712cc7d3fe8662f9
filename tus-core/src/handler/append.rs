//! Appending a request body to an upload, the same for tus PATCH, creation-with-upload and the
//! IETF draft's creation and append: the length the request claims, the body's limits and
//! checksum, progress for `post-receive`, and completion from what was stored.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderMap;
use http_body::Body as _;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::body::{BodyOutcome, BodyRules, Progress, chunk_stream};
use super::hooks::Call;
use super::request::{announces_checksum_trailer, content_length};
use super::{Inner, RequestBody};
use crate::error::TusError;
use crate::headers::{self, UploadChecksum};
use crate::hooks::{HookHttpResponse, HookType};
use crate::locker::UploadLock;
use crate::store::{AppendOptions, UploadInfo};

/// How often `post-receive` reports progress during one request.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Inner {
    /// Streams `body` into the upload under `lock` (after taking the length `claim` makes),
    /// releases the lock, and runs completion if the stored offset reached the length.
    /// Returns the upload's info and the `pre-finish` hook's response changes.
    ///
    /// Both dialects and creation-with-upload append through here, and all of it runs on a
    /// task of its own that this request only waits for (tusd does the same). So a request
    /// dropped half-way (its client gone, an HTTP/2 reset, a timeout layer) cancels nothing:
    /// the store's append always runs to completion, the upload stays locked until it has, and
    /// completion follows from what was stored, not from how the request ended. (Dropping the
    /// request makes its body end at once with an error, so the task ends promptly.)
    pub(super) async fn append_body(
        &self,
        info: UploadInfo,
        claim: LengthClaim,
        headers: &HeaderMap,
        body: RequestBody,
        lock: Box<dyn UploadLock>,
        call: &Call,
    ) -> Result<(UploadInfo, HookHttpResponse), TusError> {
        let framing = BodyFraming::parse(headers)?;
        let Some(me) = self.me.upgrade() else { return Err(TusError::Internal("service is shutting down")) };
        let call = call.clone();
        // Seen by HEADs of this upload while the body streams (see `head.rs`). A request that
        // goes away (its client gone, an HTTP/2 reset) marks it ended, whatever bytes are still
        // on their way: nobody waits for that append's answer, so a HEAD stops it.
        let progress = Arc::new(Progress::new());
        let _awaited = EndsOnDrop(progress.clone());
        let body = IncomingBody { stream: body, progress };
        tokio::spawn(async move { me.append_locked(info, claim, framing, body, lock, &call).await })
            .await
            .unwrap_or(Err(TusError::Internal("append failed")))
    }

    async fn append_locked(
        &self,
        mut info: UploadInfo,
        claim: LengthClaim,
        framing: BodyFraming,
        body: IncomingBody,
        lock: Box<dyn UploadLock>,
        call: &Call,
    ) -> Result<(UploadInfo, HookHttpResponse), TusError> {
        let was_complete = info.is_complete();
        let received = match claim.declared {
            Some(told) => self.accept_length(&mut info, told).await,
            None => Ok(()),
        };
        let received = match received {
            Ok(()) => self.receive_locked(&info, framing, body, lock.as_ref(), call).await,
            Err(e) => Err(e),
        };
        let (mut written, body_error) = match received {
            Ok(received) => received,
            Err(e) => {
                // Whatever failed, what is stored may have completed the upload: a length
                // just declared equal to the offset, or a store failing after the last byte.
                // Checked before the lock goes, so no other request can complete it meanwhile
                // and have it completed (and its quota released) twice.
                if !was_complete {
                    self.complete_if_reached(&info.id, call).await;
                }
                drop(lock);
                return Err(e);
            }
        };
        if body_error.is_none() && claim.ends_upload && written.length.is_none() {
            let end = written.offset;
            self.accept_length(&mut written, end).await?;
        }
        drop(lock);
        let mut changes = HookHttpResponse::default();
        if written.is_complete() && !was_complete {
            self.release_upload(&written).await;
            let finished = self.on_complete(&written, call).await;
            match (&body_error, finished) {
                (None, finished) => changes = finished?,
                // The request failed anyway; its error is what the client hears.
                (Some(_), Err(e)) => {
                    tracing::warn!(upload = %info.id, error = %e, "completion after a failed request failed");
                }
                (Some(_), Ok(_)) => {}
            }
        }
        match body_error {
            Some(error) => Err(error),
            None => Ok((written, changes)),
        }
    }

    /// Streams a request body into the upload at its current offset; the caller holds `lock`.
    /// Returns the upload's info afterwards, and why the body ended early if it did (its bytes
    /// up to there are stored, unless the body was rejected).
    async fn receive_locked(
        &self,
        info: &UploadInfo,
        framing: BodyFraming,
        body: IncomingBody,
        lock: &dyn UploadLock,
        call: &Call,
    ) -> Result<(UploadInfo, Option<TusError>), TusError> {
        let content_length = framing.content_length;
        // A digest of the wrong size for its algorithm can match no body: refuse it unread.
        if framing.checksum.as_ref().is_some_and(|c| c.digest.len() != c.algorithm.digest_len()) {
            return Err(TusError::ChecksumMismatch);
        }
        let limit = self.body_limit(info);
        // Refuse before reading anything if the client already told us it sends too much.
        if content_length.is_some_and(|n| n > limit) {
            return Err(TusError::SizeExceeded);
        }
        if body.stream.is_end_stream() {
            return Ok((info.clone(), None));
        }
        let (allowed, held) = self.hold_for_body(info, limit, content_length).await?;
        let received = self.stream_body(info, allowed, framing, body, lock, call).await;
        // (A post-receive stop terminated the upload and gave back all it held.)
        if held && !matches!(received, Ok((_, Some(TusError::UploadStopped)))) {
            self.settle_body_hold(info, received.as_ref().ok().map(|(at, _)| at.offset)).await;
        }
        match received {
            // Past what is left of the owner's bytes, not past the upload's own limit.
            Ok((at, Some(TusError::SizeExceeded))) if allowed < limit => {
                let limit = self.config.quota.bytes.unwrap_or(0);
                let quota = crate::quota::QuotaExceeded { quota: crate::quota::Quota::Bytes, limit, left: 0 };
                Ok((at, Some(TusError::QuotaExceeded(quota))))
            }
            other => other,
        }
    }

    /// Streams `body` (at most `limit` bytes) into the store at the upload's offset, with
    /// progress for `post-receive`; see [`Self::receive_locked`].
    async fn stream_body(
        &self,
        info: &UploadInfo,
        limit: u64,
        framing: BodyFraming,
        body: IncomingBody,
        lock: &dyn UploadLock,
        call: &Call,
    ) -> Result<(UploadInfo, Option<TusError>), TusError> {
        let IncomingBody { stream, progress } = body;
        let BodyFraming { checksum, checksum_trailer, .. } = framing;
        let outcome = BodyOutcome::default();
        let _live = self.live_append(&info.id, progress.clone());
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
        let stream = chunk_stream(stream, rules, &outcome);
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
                        at.offset = info.offset + progress.bytes();
                        self.notify_progress(&at, call, Some(stop_upload.clone()));
                    }
                }
            }
        } else {
            append.await
        }?;
        at.offset = offset;
        self.notify_progress(&at, call, Some(stop_upload.clone()));
        if let Some(error) = outcome.take() {
            tracing::debug!(upload = %info.id, offset, error = %error, "body ended early");
            if matches!(error, TusError::UploadStopped)
                && let Some(terminater) = self.store.capabilities().terminate
            {
                terminater.terminate(&info.id).await?;
                self.release_upload(info).await;
                tracing::info!(upload = %info.id, "upload stopped by a post-receive hook and terminated");
                // Gone: nothing left to complete.
                at.length = None;
            }
            return Ok((at, Some(error)));
        }
        Ok((at, None))
    }
}

/// What an append request says about the upload's length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LengthClaim {
    /// The length it declares: tus `Upload-Length` on a PATCH; on the IETF draft
    /// `Upload-Length`, or the end that `Upload-Complete: ?1` with a `Content-Length` implies.
    pub(super) declared: Option<u64>,
    /// The body is the upload's last (IETF `Upload-Complete: ?1`): a deferred length becomes
    /// the received end, if the body arrives whole.
    pub(super) ends_upload: bool,
}

/// What the headers say about an append's body, read before the request's headers are left
/// behind: its checksum (header or announced trailer) and its declared size.
struct BodyFraming {
    checksum: Option<UploadChecksum>,
    checksum_trailer: bool,
    content_length: Option<u64>,
}

impl BodyFraming {
    fn parse(headers: &HeaderMap) -> Result<Self, TusError> {
        Ok(BodyFraming {
            checksum: match headers::get::<UploadChecksum>(headers)? {
                Some(checksum) => Some(checksum),
                None => content_digest(headers)?,
            },
            checksum_trailer: announces_checksum_trailer(headers),
            content_length: content_length(headers),
        })
    }
}

/// `Content-Digest` (RFC 9530) of a request body, checked like `Upload-Checksum` (a mismatch
/// keeps none of the body): the strongest known algorithm it names, if any. Unknown algorithms
/// alone mean no check; a malformed field is `400`.
fn content_digest(headers: &HeaderMap) -> Result<Option<UploadChecksum>, TusError> {
    let lines = headers.get_all(headers::names::CONTENT_DIGEST);
    if lines.iter().next().is_none() {
        return Ok(None);
    }
    let digests = crate::digest::parse_digest_field(lines.iter()).map_err(TusError::InvalidDigest)?;
    let strongest = digests.into_iter().max_by_key(|d| d.algorithm.digest_len());
    Ok(strongest.map(|d| UploadChecksum { algorithm: d.algorithm, digest: d.value }))
}

/// A request body on its way into an upload, and how far it has come.
struct IncomingBody {
    stream: RequestBody,
    progress: Arc<Progress>,
}

/// Marks an append's [`Progress`] ended when the request waiting for it goes away.
struct EndsOnDrop(Arc<Progress>);

impl Drop for EndsOnDrop {
    fn drop(&mut self) {
        self.0.end();
    }
}
