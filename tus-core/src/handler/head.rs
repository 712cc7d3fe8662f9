//! HEAD: where an upload stands (tus 1.0 core, with `Upload-Concat`, `Upload-Expires` and our
//! `Upload-State`).

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::Progress;
use super::hooks::Call;
use super::response::{ResponseBody, set_result_headers, tus_response};
use super::{Inner, UPLOAD_STATE};
use crate::error::TusError;
use crate::headers::{self, names};
use crate::id::UploadId;

impl Inner {
    /// HEAD: where an upload stands.
    pub(super) async fn head(
        &self,
        id: &UploadId,
        host: Option<&str>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        // Read before any lock (so nobody but the owner can interrupt an upload), and again
        // only if a lock was taken: what it waited for may have moved the offset.
        let info = self.upload_info(id, call).await?;
        let info = if self.stop_stalled_append(id).await {
            self.load_info(id, call).await?
        } else {
            self.settle_info(info, call).await?
        };
        let mut res = tus_response(StatusCode::OK);
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // A final upload's offset is undefined until its partials are concatenated.
        if !info.is_final() || info.is_complete() {
            h.insert(names::UPLOAD_OFFSET, HeaderValue::from(info.offset));
        }
        match info.length {
            Some(len) => h.insert(names::UPLOAD_LENGTH, HeaderValue::from(len)),
            None => h.insert(names::UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1")),
        };
        if !info.metadata.is_empty() {
            headers::set(h, &info.metadata);
        }
        self.set_concat_header(h, &info, host);
        self.set_expires_header(h, &info);
        if let Some(state) = info.state {
            h.insert(UPLOAD_STATE, HeaderValue::from_static(state.name()));
        }
        set_result_headers(h, &info);
        Ok(res)
    }
}

/// A PATCH that received bytes this recently is alive: a `HEAD` leaves it alone.
const LIVE_APPEND_GRACE: Duration = Duration::from_secs(1);

impl Inner {
    /// What a `HEAD` does before it reports the offset (both dialects). A HEAD usually means
    /// the client lost its connection and is about to resume: a stale request still holding
    /// the upload is stopped (by taking its lock), so the offset reported is final. But a PATCH
    /// of this process whose bytes still flow, and whose request is still waiting for its
    /// answer (see `append_body`), is left alone: a status poll or a second tab must not cut a
    /// live upload, and the HEAD answers with the offset so far. A client that cut its own
    /// connection a moment ago may be told an offset its old request then moves past while it
    /// drains; its next PATCH gets `409` and it asks again, as tus clients do. When the locker
    /// can tell that nobody holds the upload, no lock is taken, so HEADs of one upload never
    /// queue on it. Returns whether it took the lock.
    pub(super) async fn stop_stalled_append(&self, id: &UploadId) -> bool {
        let live = self.live_appends.lock().ok().and_then(|appends| appends.get(id).cloned());
        if live.is_some_and(|progress| progress.flowing(LIVE_APPEND_GRACE)) {
            return false;
        }
        if self.locker.is_held(id) == Some(false) {
            return false;
        }
        drop(self.lock(id).await);
        true
    }

    /// Registers the body streaming into `id` for [`Self::stop_stalled_append`] until the
    /// returned guard drops.
    pub(super) fn live_append(&self, id: &UploadId, progress: Arc<Progress>) -> LiveAppend<'_> {
        if let Ok(mut appends) = self.live_appends.lock() {
            appends.insert(id.clone(), progress.clone());
        }
        LiveAppend { inner: self, id: id.clone(), progress }
    }
}

/// An append registered with [`Inner::live_append`]; unregisters on drop.
pub(super) struct LiveAppend<'a> {
    inner: &'a Inner,
    id: UploadId,
    progress: Arc<Progress>,
}

impl Drop for LiveAppend<'_> {
    fn drop(&mut self) {
        if let Ok(mut appends) = self.inner.live_appends.lock()
            && appends.get(&self.id).is_some_and(|p| Arc::ptr_eq(p, &self.progress))
        {
            appends.remove(&self.id);
        }
    }
}
