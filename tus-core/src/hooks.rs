//! Hooks: telling the embedding application what happens to uploads, and letting it decide.
//!
//! Blocking hooks (`pre-create`, `pre-finish`, `pre-terminate`) are awaited and can reject the
//! request, change its response, or (pre-create) change the upload's ID and metadata. The other
//! hooks are notifications, run in the background. A blocking hook that fails answers the
//! client with `500` and changes nothing.
//!
//! The event and response types serialize to exactly the JSON tusd's hook system uses
//! (`Type`, `Event.Upload`, `Event.HTTPRequest`; `HTTPResponse`, `RejectUpload`,
//! `RejectTermination`, `StopUpload`, `ChangeFileInfo`), so `tus-server`'s HTTP and exec hook
//! transports work with existing tusd hook receivers unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::{ConcatRole, UploadInfo};

/// When a hook fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookType {
    /// Before an upload is created (blocking).
    PreCreate,
    /// After an upload was created.
    PostCreate,
    /// Progress while bytes arrive (at most about once a second per request, and at its end).
    PostReceive,
    /// Before the response to the request that completed an upload (blocking).
    PreFinish,
    /// After an upload is complete and (if configured) checked and scanned.
    PostFinish,
    /// Before an upload is terminated (blocking).
    PreTerminate,
    /// After an upload was terminated.
    PostTerminate,
}

impl HookType {
    /// Every hook type.
    pub const ALL: [HookType; 7] = [
        HookType::PreCreate,
        HookType::PostCreate,
        HookType::PostReceive,
        HookType::PreFinish,
        HookType::PostFinish,
        HookType::PreTerminate,
        HookType::PostTerminate,
    ];

    /// The hook's name (`pre-create`, ...), also the exec hook's file name.
    pub fn name(self) -> &'static str {
        match self {
            HookType::PreCreate => "pre-create",
            HookType::PostCreate => "post-create",
            HookType::PostReceive => "post-receive",
            HookType::PreFinish => "pre-finish",
            HookType::PostFinish => "post-finish",
            HookType::PreTerminate => "pre-terminate",
            HookType::PostTerminate => "post-terminate",
        }
    }

    /// Whether the request waits for this hook's answer.
    pub fn is_blocking(self) -> bool {
        matches!(self, HookType::PreCreate | HookType::PreFinish | HookType::PreTerminate)
    }
}

impl fmt::Display for HookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Not a hook name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook type {0:?}")]
pub struct UnknownHookType(pub String);

impl FromStr for HookType {
    type Err = UnknownHookType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HookType::ALL.into_iter().find(|h| h.name() == s).ok_or_else(|| UnknownHookType(s.to_owned()))
    }
}

/// One hook invocation (tusd's `HookRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEvent {
    /// Which hook.
    #[serde(rename = "Type")]
    pub hook: HookType,
    /// What it is about.
    #[serde(rename = "Event")]
    pub event: EventDetails,
}

/// The upload and the request a hook is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDetails {
    /// The upload, as it is at this moment.
    pub upload: HookUpload,
    /// The request that triggered the hook.
    #[serde(rename = "HTTPRequest")]
    pub http_request: HookHttpRequest,
}

/// tusd's `FileInfo`, plus the post-upload processing state and a download URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookUpload {
    /// Upload ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Total size (0 while deferred).
    pub size: u64,
    /// Whether the size is not known yet.
    pub size_is_deferred: bool,
    /// Bytes received so far.
    pub offset: u64,
    /// Metadata, values decoded (invalid UTF-8 replaced).
    #[serde(rename = "MetaData")]
    pub meta_data: BTreeMap<String, String>,
    /// A partial upload of a concatenation.
    pub is_partial: bool,
    /// A final upload of a concatenation.
    pub is_final: bool,
    /// A final upload's partials, in order.
    pub partial_uploads: Option<Vec<String>>,
    /// Where the store keeps it (`Type`, and e.g. `Path` or `Bucket`/`Key`).
    pub storage: BTreeMap<String, String>,
    /// Post-upload processing state (`processing`, `clean`, `quarantined`, `rejected`), if
    /// processing is configured. Not in tusd.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<String>,
    /// The principal that created the upload (a JWT's `sub`), when an authorizer is
    /// configured. Not in tusd.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub owner: Option<String>,
    /// A signed download URL, in `post-finish` of clean uploads when signing is on. Not in tusd.
    #[serde(rename = "DownloadURL", skip_serializing_if = "Option::is_none", default)]
    pub download_url: Option<String>,
    /// The sha-256 of the stored file in hex, in `post-finish` (to deduplicate by), and in
    /// `pre-finish` when a declared digest was proven before it. Not in tusd.
    #[serde(rename = "SHA256", skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// The whole-file digests the client declared at creation, `<alg> <base64>` (see
    /// [`crate::digest`]). Not in tusd.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub declared_digests: Vec<String>,
    /// With a declared digest, once the stored file was hashed: whether it matched (a
    /// mismatch also makes the state `rejected`). Not in tusd.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub digest_verified: Option<bool>,
    /// Files derived from the upload (thumbnails, a copy without metadata), in `post-finish`
    /// of clean uploads that have any. Not in tusd.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub derivatives: Vec<HookDerivative>,
}

/// One derived file in a hook payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookDerivative {
    /// Its path under the upload's URL: `thumbnails/256` or `stripped`.
    pub name: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where to download it: the upload's URL plus the name, signed like
    /// [`HookUpload::download_url`] when signing is on.
    #[serde(rename = "URL")]
    pub url: String,
}

impl HookUpload {
    /// The hook view of `info`.
    pub fn from_info(info: &UploadInfo) -> Self {
        let partial_uploads = match &info.concat {
            Some(ConcatRole::Final { partials }) => Some(partials.iter().map(|p| p.to_string()).collect()),
            _ => None,
        };
        HookUpload {
            id: info.id.to_string(),
            size: info.length.unwrap_or(0),
            size_is_deferred: info.length.is_none(),
            offset: info.offset,
            meta_data: info
                .metadata
                .iter()
                .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            is_partial: info.is_partial(),
            is_final: info.is_final(),
            partial_uploads,
            storage: BTreeMap::new(),
            state: info.state.map(|s| s.name().to_owned()),
            owner: info.owner.as_ref().map(|p| p.subject.clone()),
            download_url: None,
            sha256: crate::digest::sha256_hex(&info.digests),
            declared_digests: info.declared_digests.iter().map(|d| format!("{} {}", d.algorithm, d.base64())).collect(),
            digest_verified: (!info.declared_digests.is_empty() && !info.digests.is_empty())
                .then(|| crate::digest::mismatch(&info.declared_digests, &info.digests).is_none()),
            derivatives: Vec::new(),
        }
    }
}

/// The triggering request (tusd's `HTTPRequest`). Empty (every field empty) when the hook
/// receiver does not want it ([`Hooks::wants_http_request`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookHttpRequest {
    /// Method (after `X-HTTP-Method-Override`).
    pub method: String,
    /// Request target.
    #[serde(rename = "URI")]
    pub uri: String,
    /// The client's address, if the server provided [`RemoteAddr`].
    pub remote_addr: String,
    /// Request headers, names as Go spells them (`Upload-Length`). When the service has an
    /// authorizer, `Authorization` and `Cookie` are left out: hooks then get the owner in
    /// [`HookUpload::owner`] and have no need of the credential, which would otherwise reach
    /// every hook receiver (and its logs). Without one, every header is forwarded, so tusd-style
    /// `pre-create` hooks can authenticate.
    pub header: BTreeMap<String, Vec<String>>,
}

/// A request extension with the client's address; servers insert it so hooks can see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// A hook's answer (tusd's `HookResponse`). Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HookResponse {
    /// Changes to the response the client gets.
    #[serde(rename = "HTTPResponse")]
    pub http_response: HookHttpResponse,
    /// `pre-create`: refuse to create the upload.
    pub reject_upload: bool,
    /// `pre-terminate`: refuse to terminate the upload.
    pub reject_termination: bool,
    /// `post-receive`: stop the upload (the running request ends, the upload is terminated).
    pub stop_upload: bool,
    /// `pre-create`: change the new upload's ID or metadata.
    pub change_file_info: FileInfoChanges,
}

/// A response status, body and headers a hook wants the client to get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HookHttpResponse {
    /// Status (0 = keep the server's).
    pub status_code: u16,
    /// Body (empty = keep the server's).
    pub body: String,
    /// Extra headers.
    pub header: BTreeMap<String, String>,
}

/// What a `pre-create` hook may change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FileInfoChanges {
    /// A new upload ID (must be `[A-Za-z0-9_-]{1,128}`); empty keeps the generated one.
    #[serde(rename = "ID")]
    pub id: String,
    /// Replacement metadata (`None` keeps the client's).
    #[serde(rename = "MetaData")]
    pub meta_data: Option<BTreeMap<String, String>>,
}

/// A hook could not be run or did not answer sensibly.
#[derive(Debug, thiserror::Error)]
#[error("{hook} hook failed: {source}")]
pub struct HookError {
    /// Which hook.
    pub hook: HookType,
    /// Why.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Receives hook events.
#[async_trait]
pub trait Hooks: Send + Sync + fmt::Debug + 'static {
    /// Whether `hook` fires at all.
    fn enabled(&self, hook: HookType) -> bool {
        let _ = hook;
        true
    }

    /// Whether events should describe the triggering request ([`EventDetails::http_request`]:
    /// method, URI, client address, headers). Describing it copies every header of every
    /// request, so a receiver that looks only at the hook type and the upload (metrics, say)
    /// returns `false`: its events then carry an empty [`HookHttpRequest`], and `post-finish`'s
    /// [`HookUpload::download_url`] is a path without the origin. Default `true`.
    fn wants_http_request(&self) -> bool {
        true
    }

    /// Handles one event. For notification hooks the answer is ignored.
    async fn call(&self, event: &HookEvent) -> Result<HookResponse, HookError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_shaped_like_tusd() {
        let event = HookEvent {
            hook: HookType::PreCreate,
            event: EventDetails {
                upload: HookUpload { id: "abc".into(), size: 3, ..HookUpload::default() },
                http_request: HookHttpRequest { method: "POST".into(), uri: "/files/".into(), ..Default::default() },
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["Type"], "pre-create");
        assert_eq!(json["Event"]["Upload"]["ID"], "abc");
        assert_eq!(json["Event"]["Upload"]["SizeIsDeferred"], false);
        assert!(json["Event"]["Upload"]["MetaData"].is_object());
        assert_eq!(json["Event"]["HTTPRequest"]["Method"], "POST");
        assert_eq!(json["Event"]["HTTPRequest"]["URI"], "/files/");

        let res: HookResponse = serde_json::from_str(
            r#"{"RejectUpload":true,"HTTPResponse":{"StatusCode":401,"Body":"no"},"ChangeFileInfo":{"ID":"x1"}}"#,
        )
        .unwrap();
        assert!(res.reject_upload);
        assert_eq!(res.http_response.status_code, 401);
        assert_eq!(res.change_file_info.id, "x1");
        assert_eq!(serde_json::from_str::<HookResponse>("{}").unwrap(), HookResponse::default());
    }

    #[test]
    fn names_round_trip() {
        for h in HookType::ALL {
            assert_eq!(h.name().parse::<HookType>(), Ok(h));
            assert_eq!(serde_json::to_value(h).unwrap(), h.name());
        }
    }
}
