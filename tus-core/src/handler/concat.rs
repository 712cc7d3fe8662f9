//! The concatenation extension (and `concatenation-unfinished`): creating a final upload over
//! partials, assembling it once they are all complete, and describing it in `Upload-Concat`.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::Inner;
use super::hooks::Call;
use super::response::{ResponseBody, apply_hook_response, tus_response};
use crate::error::TusError;
use crate::headers::{self, UploadConcat};
use crate::id::UploadId;
use crate::store::{ConcatRole, NewUpload, StoreError, UploadInfo};

impl Inner {
    /// A final upload over the partials named by `urls`, concatenated now if they are all
    /// complete, or as soon as they are (`concatenation-unfinished`).
    pub(super) async fn create_final(
        &self,
        urls: &[String],
        metadata: crate::headers::Metadata,
        declared: Vec<crate::digest::Digest>,
        host: Option<&str>,
        call: &Call,
    ) -> Result<Response<ResponseBody>, TusError> {
        if self.store.capabilities().concatenate.is_none() {
            return Err(TusError::NotImplemented);
        }
        if urls.len() > self.config.max_concat_parts {
            return Err(TusError::InvalidConcat);
        }
        let mut partials: Vec<UploadInfo> = Vec::with_capacity(urls.len());
        // Each distinct partial is read once, however often it is listed.
        let mut read: HashMap<UploadId, UploadInfo> = HashMap::new();
        for url in urls {
            let id = self.partial_id(url, host).ok_or(TusError::InvalidConcat)?;
            if let Some(info) = read.get(&id) {
                partials.push(info.clone());
                continue;
            }
            // Another owner's partial is as unusable as one that does not exist.
            let info = match self.upload_info(&id, call).await {
                Ok(info) if !self.is_expired(&info) => info,
                Ok(_) | Err(TusError::NotFound | TusError::Gone) => return Err(TusError::InvalidConcat),
                Err(e) => return Err(e),
            };
            if !info.is_partial() {
                return Err(TusError::InvalidConcat);
            }
            read.insert(id, info.clone());
            partials.push(info);
        }
        let length = final_length(&partials)?;
        if let Some(n) = length {
            self.check_length(n, call.principal.as_ref())?;
        }
        let role = ConcatRole::Final { partials: partials.iter().map(|p| p.id.clone()).collect() };
        let upload = NewUpload::new(UploadId::random(), length)
            .with_metadata(metadata)
            .with_declared_digests(declared)
            .with_concat(role)
            .with_owner(call.principal.clone());
        let (info, pre_create) = self.create_with_hooks(upload, call).await?;

        if partials.iter().all(UploadInfo::is_complete) {
            self.settle_final(info.clone(), call).await?;
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

    /// The ID in a partial upload URL: absolute on this host, or a path under the base path.
    pub(super) fn partial_id(&self, url: &str, origin: Option<&str>) -> Option<UploadId> {
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

    /// Concatenates a final upload if all its partials are complete; otherwise returns it as is.
    ///
    /// Boxed as `Send` by its type: completing a final's last partial settles the final in
    /// turn, and the compiler cannot see through that cycle on its own.
    pub(super) fn settle_final<'a>(
        &'a self,
        info: UploadInfo,
        call: &'a Call,
    ) -> BoxFuture<'a, Result<UploadInfo, TusError>> {
        Box::pin(async move {
            let Some(ConcatRole::Final { partials }) = &info.concat else { return Ok(info) };
            if self.store.capabilities().concatenate.is_none() {
                return Err(TusError::NotImplemented);
            }
            // A partial may be listed many times: each is read once, so the work stays linear in
            // the list.
            let mut known: HashMap<&UploadId, UploadInfo> = HashMap::new();
            for id in partials {
                if known.contains_key(id) {
                    continue;
                }
                match self.store.info(id).await {
                    Ok(p) if p.is_complete() => known.insert(id, p),
                    // Unfinished, terminated or expired: nothing to settle (yet).
                    Ok(_) | Err(StoreError::NotFound | StoreError::Gone) => return Ok(info),
                    Err(e) => return Err(e.into()),
                };
            }
            let parts: Vec<UploadInfo> = partials.iter().filter_map(|id| known.get(id).cloned()).collect();
            // Partials of deferred length can add up past the maximum only now: checked before
            // a byte is copied.
            if let Some(length) = final_length(&parts)? {
                self.check_length(length, info.owner.as_deref())?;
            }
            // On a task of its own: a HEAD whose client leaves must not stop an assembly half-way
            // between the bytes and their completion.
            let Some(me) = self.me.upgrade() else { return Err(TusError::Internal("service is shutting down")) };
            let (id, call) = (info.id.clone(), call.clone());
            tokio::spawn(async move { me.assemble_final(&id, &parts, &call).await })
                .await
                .unwrap_or(Err(TusError::Internal("concatenation failed")))
        })
    }

    /// Fills final upload `id` with `parts` under its lock, once, and completes it.
    pub(super) async fn assemble_final(
        &self,
        id: &UploadId,
        parts: &[UploadInfo],
        call: &Call,
    ) -> Result<UploadInfo, TusError> {
        let concatenater = self.store.capabilities().concatenate.ok_or(TusError::NotImplemented)?;
        let _lock = self.lock(id).await?;
        let current = self.store.info(id).await?;
        if current.is_complete() {
            return Ok(current);
        }
        concatenater.concatenate(id, parts).await?;
        tracing::info!(upload = %id, parts = parts.len(), "final upload concatenated");
        let settled = self.store.info(id).await?;
        self.release_upload(&settled).await;
        if let Err(e) = self.on_complete(&settled, call).await {
            tracing::warn!(upload = %id, error = %e, "pre-finish hook of a final upload failed");
        }
        Ok(self.store.info(id).await?)
    }

    /// Settles the final uploads waiting for `partial`, which just completed.
    pub(super) async fn settle_waiting_finals(&self, partial: &UploadId, call: &Call) {
        let finals = self.waiting_finals.lock().ok().and_then(|mut w| w.remove(partial)).unwrap_or_default();
        for final_id in finals {
            match self.store.info(&final_id).await {
                Ok(f) => {
                    if let Err(e) = self.settle_final(f, call).await {
                        // Not lost: the next HEAD or GET of the final settles it.
                        tracing::warn!(upload = %final_id, error = %e, "could not settle final upload yet");
                    }
                }
                Err(e) => tracing::debug!(upload = %final_id, error = %e, "waiting final upload vanished"),
            }
        }
    }

    /// Forgets what waits on `info`, which was just removed: as a partial, finals wait on it
    /// no more; as a final, it waits on its partials no more.
    pub(super) fn forget_waiting(&self, info: &UploadInfo) {
        let Ok(mut waiting) = self.waiting_finals.lock() else { return };
        waiting.remove(&info.id);
        if let Some(ConcatRole::Final { partials }) = &info.concat {
            for partial in partials {
                if let Some(finals) = waiting.get_mut(partial) {
                    finals.remove(&info.id);
                    if finals.is_empty() {
                        waiting.remove(partial);
                    }
                }
            }
        }
    }

    /// Whether `info` is an unfinished final that can never be assembled (one of its partials
    /// was terminated or expired) and has been idle since before `cutoff`: what the reaper
    /// removes of finals, which have no bytes of their own to be idle with.
    pub(super) async fn is_abandoned_final(&self, info: &UploadInfo, cutoff: std::time::SystemTime) -> bool {
        let Some(ConcatRole::Final { partials }) = &info.concat else { return false };
        if info.is_complete() || info.updated_at >= cutoff {
            return false;
        }
        let mut seen = std::collections::HashSet::new();
        for partial in partials.iter().filter(|p| seen.insert(*p)) {
            if matches!(self.store.info(partial).await, Err(StoreError::NotFound | StoreError::Gone)) {
                return true;
            }
        }
        false
    }

    pub(super) fn set_concat_header(&self, headers: &mut HeaderMap, info: &UploadInfo, host: Option<&str>) {
        let value = match &info.concat {
            None => return,
            Some(ConcatRole::Partial) => UploadConcat::Partial,
            // Rebuilt from the client's origin for every listed partial: `valid_host` bounds
            // its length, so the header stays linear in the list, with a small factor.
            Some(ConcatRole::Final { partials }) => {
                UploadConcat::Final(partials.iter().map(|p| self.upload_url(host, p)).collect())
            }
        };
        headers::set(headers, &value);
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
