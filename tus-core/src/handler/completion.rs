//! Completion: what happens once an upload's last byte is stored (or a final is assembled),
//! wherever that happened: `processing`, `pre-finish`, waiting finals, and the post-upload
//! inspection that ends in a verdict and `post-finish`.

use std::time::Duration;

use super::Inner;
use super::hooks::Call;
use super::verify::HashingStore;
use crate::error::TusError;
use crate::hooks::{HookHttpResponse, HookType};
use crate::id::UploadId;
use crate::inspect::Verdict;
use crate::store::{StoreError, UploadInfo, UploadState};

/// Longest wait between two attempts to inspect an upload or record its state.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

impl Inner {
    /// Runs [`Inner::on_complete`] on a task of its own and waits for it: a client that goes
    /// away while hooks run or states are recorded cannot cut completion short.
    pub(crate) async fn complete(&self, info: &UploadInfo, call: &Call) -> Result<HookHttpResponse, TusError> {
        let Some(me) = self.me.upgrade() else { return self.on_complete(info, call).await };
        let (info, call) = (info.clone(), call.clone());
        tokio::spawn(async move { me.on_complete(&info, &call).await })
            .await
            .unwrap_or(Err(TusError::Internal("upload completion failed")))
    }

    /// Completes `id` if its stored offset reached its length: after an append that failed
    /// (its store call, or a length it declared) but may have stored the last byte all the same.
    pub(crate) async fn complete_if_reached(&self, id: &UploadId, call: &Call) {
        match self.store.info(id).await {
            Ok(info) if info.is_complete() => {
                tracing::info!(upload = %id, "upload completed by a request that did not end cleanly");
                self.release_upload(&info).await;
                if let Err(e) = self.on_complete(&info, call).await {
                    tracing::warn!(upload = %id, error = %e, "completing the upload failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(upload = %id, error = %e, "cannot check whether the upload completed"),
        }
    }

    /// Whether finished uploads like `info` are inspected before they may be served: with an
    /// inspector configured, or a digest declared to prove.
    pub(crate) fn inspects(&self, info: &UploadInfo) -> bool {
        let checks = self.inspector.is_some() || !info.declared_digests.is_empty();
        !info.is_partial() && checks && self.store.capabilities().record_state.is_some()
    }

    /// Called once an upload's last byte arrived (or a final upload was assembled). Starts
    /// processing, settles waiting finals, runs `pre-finish`, and returns the response
    /// changes `pre-finish` asked for.
    pub(crate) async fn on_complete(&self, info: &UploadInfo, call: &Call) -> Result<HookHttpResponse, TusError> {
        tracing::info!(upload = %info.id, length = ?info.length, "upload finished");
        let mut info = info.clone();
        let processed = self.inspects(&info);
        if processed {
            // Recorded before the client hears of completion, so no download can slip through
            // before the verdict.
            if let Some(recorder) = self.store.capabilities().record_state {
                recorder.set_state(&info.id, UploadState::Processing, &[]).await?;
            }
            info.state = Some(UploadState::Processing);
        }
        // A small upload's declared digest is proven before the client hears of completion:
        // a mismatch is the answer to the request that completed it.
        let mut mismatch = None;
        let proves = processed && !info.declared_digests.is_empty();
        if (proves || call.want_repr_digest) && !info.is_partial() && info.offset <= self.config.sync_verify_max {
            match self.hash_stored(&info).await {
                Ok(digests) => info.digests = digests,
                // Not lost: processing hashes it again, retrying.
                Err(e) => tracing::warn!(upload = %info.id, error = %e, "could not hash the upload before answering"),
            }
            if proves
                && !info.digests.is_empty()
                && let Some(bad) = crate::digest::mismatch(&info.declared_digests, &info.digests)
            {
                let algorithm = bad.algorithm;
                tracing::warn!(upload = %info.id, %algorithm, "stored file does not match its declared digest");
                let recorded = match self.store.capabilities().record_state {
                    Some(recorder) => recorder.set_state(&info.id, UploadState::Rejected, &info.digests).await,
                    None => Ok(()),
                };
                match recorded {
                    Ok(()) => info.state = Some(UploadState::Rejected),
                    // Still `processing`: its processing finds the mismatch again and records it.
                    Err(e) => tracing::warn!(upload = %info.id, error = %e, "could not record the rejection yet"),
                }
                let stored = crate::digest::repr_digest(&info.digests);
                mismatch = Some(TusError::DigestMismatch { algorithm, stored });
            }
        }
        if info.is_partial()
            && let Some(me) = self.me.upgrade()
        {
            // In the background: assembling the finals that wait for this partial (up to a
            // thousand parts each) is not this request's work to wait for; a HEAD of a final
            // waits for its assembly under the final's lock.
            let (id, call) = (info.id.clone(), call.clone());
            tokio::spawn(async move { me.settle_waiting_finals(&id, &call).await });
        }
        let pre_finish = self.blocking_hook(HookType::PreFinish, &info, call).await;
        let mut changes = pre_finish.map(|hook| hook.http_response);
        // The completing response tells the stored file's digest once it is known.
        if let (Ok(changes), Some(value)) = (&mut changes, crate::digest::repr_digest(&info.digests))
            && let Ok(value) = value.to_str()
        {
            changes.header.insert(crate::headers::names::REPR_DIGEST.to_string(), value.to_owned());
        }
        if let Some(mismatch) = mismatch {
            if info.state == Some(UploadState::Rejected) {
                // The verdict is in: nothing left to process.
                self.notify(HookType::PostFinish, &info, call);
            } else {
                self.spawn_processing(info, call.clone());
            }
            return Err(mismatch);
        }
        if processed {
            self.spawn_processing(info, call.clone());
        } else {
            self.notify_finished(info, call.clone());
        }
        changes
    }

    fn spawn_processing(&self, info: UploadInfo, call: Call) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move { me.process(info, call).await });
    }

    /// Inspects a finished upload until a verdict exists, records it, then fires `post-finish`.
    async fn process(&self, mut info: UploadInfo, call: Call) {
        let (Some(recorder), hashing) =
            (self.store.capabilities().record_state, HashingStore::new(self.store.clone(), &info))
        else {
            return;
        };
        let verdict = match self.inspector.as_ref() {
            Some(inspector) => match self.retry("inspect", &info.id, || inspector.inspect(&hashing, &info)).await {
                Some(verdict) => verdict,
                None => return,
            },
            None => Verdict::Clean,
        };
        // Hashed already: before the response (small uploads), or in the inspectors' read.
        if info.digests.is_empty() {
            info.digests = match hashing.digests() {
                Some(digests) => digests,
                None => match self.retry("hash", &info.id, || self.hash_stored(&info)).await {
                    Some(digests) => digests,
                    None => return,
                },
            };
        }
        let verdict = match crate::digest::mismatch(&info.declared_digests, &info.digests) {
            Some(bad) if verdict == Verdict::Clean => {
                Verdict::Rejected(format!("the stored file does not match its declared {} digest", bad.algorithm))
            }
            _ => verdict,
        };
        let state = match &verdict {
            Verdict::Clean => UploadState::Clean,
            Verdict::Rejected(reason) => {
                tracing::warn!(upload = %info.id, %reason, "upload rejected");
                UploadState::Rejected
            }
            Verdict::Infected(signature) => {
                tracing::warn!(upload = %info.id, %signature, "malware found; quarantining upload");
                UploadState::Quarantined
            }
        };
        if self
            .retry("record state of", &info.id, || recorder.set_state(&info.id, state, &info.digests))
            .await
            .is_none()
        {
            return;
        }
        tracing::info!(upload = %info.id, state = state.name(), "upload processed");
        info.state = Some(state);
        // What the inspectors derived (thumbnails, ...) is in the stored info, not in this copy.
        if state == UploadState::Clean
            && self.hook_enabled(HookType::PostFinish)
            && self.store.capabilities().derivatives.is_some()
        {
            match self.store.info(&info.id).await {
                Ok(stored) => info.derivatives = stored.derivatives,
                Err(e) => tracing::warn!(upload = %info.id, error = %e, "could not read the derivatives made"),
            }
        }
        self.notify(HookType::PostFinish, &info, &call);
    }

    /// `post-finish` of an upload that is not processed: with the sha-256 of its bytes when
    /// a hook reads payloads (hashed first, in the background).
    fn notify_finished(&self, mut info: UploadInfo, call: Call) {
        if !self.hook_enabled(HookType::PostFinish) {
            return;
        }
        // A receiver that looks only at the event type (metrics) is not worth a whole read of
        // every upload; one that reads payloads gets the digest.
        if !self.hooks.as_ref().is_some_and(|h| h.wants_http_request()) {
            return self.notify(HookType::PostFinish, &info, &call);
        }
        // A partial is proven as part of its final.
        if info.is_partial() {
            return self.notify(HookType::PostFinish, &info, &call);
        }
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            if info.digests.is_empty() {
                match me.hash_stored(&info).await {
                    Ok(digests) => info.digests = digests,
                    Err(e) => tracing::warn!(upload = %info.id, error = %e, "could not hash the finished upload"),
                }
            }
            me.notify(HookType::PostFinish, &info, &call);
        });
    }

    /// Restarts processing of uploads a restart interrupted: those whose checks had begun,
    /// and those complete but never inspected (the process stopped between storing the last
    /// byte and recording `processing`), which get their whole completion (hooks included).
    /// Returns how many it picked up.
    pub(crate) async fn resume_processing(&self) -> Result<usize, TusError> {
        let Some(recorder) = self.store.capabilities().record_state else { return Ok(0) };
        let mut picked = 0;
        for id in recorder.list_processing().await? {
            match self.store.info(&id).await {
                Ok(info) if !self.inspects(&info) || !info.is_complete() => {}
                Ok(info) if info.state.is_none() => {
                    picked += 1;
                    let Some(me) = self.me.upgrade() else { break };
                    tokio::spawn(async move {
                        if let Err(e) = me.on_complete(&info, &Call::default()).await {
                            tracing::warn!(upload = %info.id, error = %e, "completing an uninspected upload failed");
                        }
                    });
                }
                Ok(info) if info.state == Some(UploadState::Processing) => {
                    picked += 1;
                    self.spawn_processing(info, Call::default());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(upload = %id, error = %e, "cannot resume processing"),
            }
        }
        Ok(picked)
    }
}

impl Inner {
    /// Retries `attempt` with exponential backoff (1 s doubling, at most a minute apart) until it
    /// succeeds, or until the upload no longer exists (terminated meanwhile: `None`, nothing
    /// left to process). Used only in background tasks, where giving up on an upload that
    /// exists would leave it in limbo.
    async fn retry<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
        &self,
        what: &str,
        id: &UploadId,
        mut attempt: impl FnMut() -> F,
    ) -> Option<T> {
        let mut delay = Duration::from_secs(1);
        loop {
            match attempt().await {
                Ok(v) => return Some(v),
                Err(e) => {
                    if let Err(StoreError::Gone | StoreError::NotFound) = self.store.info(id).await {
                        tracing::info!(upload = %id, "upload removed while it was processed; processing stops");
                        return None;
                    }
                    tracing::warn!(upload = %id, error = %e, retry_in = ?delay, "could not {what} upload; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
}
