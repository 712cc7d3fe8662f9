//! The post-upload checks of the binary: content sniffing and ClamAV scanning.
//!
//! Both implement [`tus_core::Inspect`]; `tus-server` chains them (content first, it is cheap)
//! so each finished upload ends `clean`, `rejected` or `quarantined`.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tus_core::inspect::{Inspect, InspectError, Verdict};
use tus_core::{Store, UploadInfo};

/// Bytes read from the start of an upload to sniff its type.
const SNIFF_LEN: u64 = 8192;

fn inspect_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> InspectError {
    InspectError(e.into())
}

/// Sniffs the real type from the first bytes (magic numbers, via the `infer` crate), compares it
/// with the declared `filetype` metadata, and applies an allow-list of types.
///
/// - If the content has a recognisable type and `filetype` names a different one → rejected.
/// - If `filetype` names a type with known magic bytes but the content does not have them
///   (e.g. text claiming `image/png`) → rejected.
/// - With an allow-list, the type (sniffed, else declared, else `application/octet-stream`)
///   must match one pattern (`image/*`, `application/pdf`, ...).
#[derive(Debug, Clone, Default)]
pub struct ContentCheck {
    allowed: Vec<String>,
}

impl ContentCheck {
    /// A check with an allow-list of MIME patterns (empty: any type, but still no mismatch).
    pub fn new(allowed: Vec<String>) -> Self {
        ContentCheck { allowed: allowed.into_iter().map(|p| p.trim().to_ascii_lowercase()).collect() }
    }

    fn allows(&self, mime: &str) -> bool {
        self.allowed.is_empty() || matches_any(&self.allowed, mime)
    }

    /// The verdict for an upload whose first bytes are `head` and declared type `declared`.
    pub fn judge(&self, head: &[u8], declared: Option<&str>) -> Verdict {
        let sniffed = infer::get(head).map(|t| t.mime_type().to_owned());
        let declared = declared.map(|d| d.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match (&sniffed, &declared) {
            (Some(s), Some(d)) if s != d => {
                return Verdict::Rejected(format!("declared {d}, content is {s}"));
            }
            // `application/octet-stream` says nothing about the bytes (browsers declare it for
            // any unknown file), though infer lists a matcher (EOT fonts) under it.
            (None, Some(d)) if d != "application/octet-stream" && infer::is_mime_supported(d) => {
                return Verdict::Rejected(format!("declared {d}, content does not match"));
            }
            _ => {}
        }
        let effective = sniffed.or(declared).unwrap_or_else(|| "application/octet-stream".to_owned());
        if self.allows(&effective) {
            Verdict::Clean
        } else {
            Verdict::Rejected(format!("type {effective} not allowed"))
        }
    }

    /// [`ContentCheck::judge`], then the owner's own allow-list (a token's `allowed_types`,
    /// kept with the upload): both must allow the type.
    pub fn judge_for(&self, head: &[u8], declared: Option<&str>, owner_allowed: Option<&[String]>) -> Verdict {
        let verdict = self.judge(head, declared);
        let Some(patterns) = owner_allowed.filter(|_| verdict == Verdict::Clean) else { return verdict };
        let patterns: Vec<String> = patterns.iter().map(|p| p.trim().to_ascii_lowercase()).collect();
        let sniffed = infer::get(head).map(|t| t.mime_type().to_owned());
        let declared = declared.map(|d| d.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let effective = sniffed.or(declared).unwrap_or_else(|| "application/octet-stream".to_owned());
        if matches_any(&patterns, &effective) {
            Verdict::Clean
        } else {
            Verdict::Rejected(format!("type {effective} not allowed for this owner"))
        }
    }
}

use tus_core::inspect::mime_matches as matches_any;

#[async_trait]
impl Inspect for ContentCheck {
    async fn inspect(&self, store: &dyn Store, info: &UploadInfo) -> Result<Verdict, InspectError> {
        let len = info.length.unwrap_or(info.offset).min(SNIFF_LEN);
        let mut head = Vec::with_capacity(len as usize);
        let mut stream = store.read(&info.id, 0..len).await.map_err(inspect_error)?;
        while let Some(chunk) = stream.next().await {
            head.extend_from_slice(&chunk.map_err(inspect_error)?);
        }
        let owner_allowed = info.owner.as_ref().and_then(|o| o.allowed_types.as_deref());
        Ok(self.judge_for(&head, info.metadata.get_str("filetype"), owner_allowed))
    }
}

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    /// `tcp://host:port`
    Tcp(String),
    /// `unix:/path/to/clamd.sock`
    Unix(PathBuf),
}

impl std::str::FromStr for ClamdAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(addr) = s.strip_prefix("tcp://") {
            Ok(ClamdAddress::Tcp(addr.to_owned()))
        } else if let Some(path) = s.strip_prefix("unix:") {
            Ok(ClamdAddress::Unix(PathBuf::from(path)))
        } else {
            Err(format!("expected tcp://host:port or unix:/path, got {s:?}"))
        }
    }
}

/// Scans uploads with a ClamAV daemon over its INSTREAM protocol, streaming the stored bytes
/// in 64 KiB chunks.
///
/// clamd refuses streams above its `StreamMaxLength`; uploads larger than `max_stream` are
/// therefore **rejected** ("too large to scan") rather than scanned in part, so nothing is ever
/// reported clean without having been scanned whole. Set `max_stream` to clamd's
/// `StreamMaxLength`. An unreachable clamd is an error (the upload stays `processing` and the
/// scan is retried).
#[derive(Debug, Clone)]
pub struct ClamdScanner {
    address: ClamdAddress,
    max_stream: u64,
    timeout: Duration,
}

/// Bytes per INSTREAM chunk.
const CLAMD_CHUNK: usize = 64 * 1024;

impl ClamdScanner {
    /// A scanner for clamd at `address` accepting streams up to `max_stream` bytes.
    pub fn new(address: ClamdAddress, max_stream: u64, timeout: Duration) -> Self {
        ClamdScanner { address, max_stream, timeout }
    }

    async fn scan<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut conn: S,
        store: &dyn Store,
        info: &UploadInfo,
    ) -> Result<Verdict, InspectError> {
        conn.write_all(b"zINSTREAM\0").await.map_err(inspect_error)?;
        let mut stream = store.read(&info.id, 0..info.offset).await.map_err(inspect_error)?;
        let mut sent = Ok(());
        'send: while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(inspect_error)?;
            for piece in chunk.chunks(CLAMD_CHUNK) {
                let len = u32::try_from(piece.len()).map_err(inspect_error)?.to_be_bytes();
                if let Err(e) = async {
                    conn.write_all(&len).await?;
                    conn.write_all(piece).await
                }
                .await
                {
                    // clamd may close early (size limit); its reply, if any, says why.
                    sent = Err(e);
                    break 'send;
                }
            }
        }
        if sent.is_ok() {
            sent = conn.write_all(&[0, 0, 0, 0]).await;
        }
        let mut reply = Vec::new();
        let read = (&mut conn).take(4096).read_to_end(&mut reply).await;
        let reply = String::from_utf8_lossy(&reply).trim_end_matches(['\0', '\n']).to_owned();
        if reply.is_empty() {
            return Err(inspect_error(match (sent, read) {
                (Err(e), _) | (_, Err(e)) => format!("clamd connection failed: {e}"),
                _ => "clamd closed the connection without a reply".to_owned(),
            }));
        }
        parse_reply(&reply)
    }
}

/// Interprets clamd's answer to INSTREAM.
fn parse_reply(reply: &str) -> Result<Verdict, InspectError> {
    let body = reply.strip_prefix("stream: ").unwrap_or(reply);
    if body == "OK" {
        Ok(Verdict::Clean)
    } else if let Some(signature) = body.strip_suffix(" FOUND") {
        Ok(Verdict::Infected(signature.to_owned()))
    } else if body.contains("size limit exceeded") {
        Ok(Verdict::Rejected("too large to scan".to_owned()))
    } else {
        Err(inspect_error(format!("unexpected clamd reply: {reply}")))
    }
}

#[async_trait]
impl Inspect for ClamdScanner {
    async fn inspect(&self, store: &dyn Store, info: &UploadInfo) -> Result<Verdict, InspectError> {
        if info.offset > self.max_stream {
            return Ok(Verdict::Rejected(format!("too large to scan ({} > {} bytes)", info.offset, self.max_stream)));
        }
        let scan = async {
            match &self.address {
                ClamdAddress::Tcp(addr) => {
                    let conn = tokio::net::TcpStream::connect(addr).await.map_err(inspect_error)?;
                    self.scan(conn, store, info).await
                }
                #[cfg(unix)]
                ClamdAddress::Unix(path) => {
                    let conn = tokio::net::UnixStream::connect(path).await.map_err(inspect_error)?;
                    self.scan(conn, store, info).await
                }
                #[cfg(not(unix))]
                ClamdAddress::Unix(_) => Err(inspect_error("unix sockets are not supported here")),
            }
        };
        tokio::time::timeout(self.timeout, scan).await.unwrap_or_else(|_| Err(inspect_error("clamd scan timed out")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_check_catches_mismatches_and_disallowed_types() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
        let any = ContentCheck::new(vec![]);
        assert_eq!(any.judge(png, Some("image/png")), Verdict::Clean);
        assert!(matches!(any.judge(pdf, Some("image/png")), Verdict::Rejected(_)));
        assert!(matches!(any.judge(b"just text", Some("image/png")), Verdict::Rejected(_)));
        assert_eq!(any.judge(b"just text", Some("text/plain")), Verdict::Clean);
        assert_eq!(any.judge(b"just text", None), Verdict::Clean);
        assert_eq!(any.judge(b"any bytes", Some("application/octet-stream")), Verdict::Clean);
        let images = ContentCheck::new(vec!["image/*".into(), "application/pdf".into()]);
        assert_eq!(images.judge(png, None), Verdict::Clean);
        assert_eq!(images.judge(pdf, Some("application/pdf")), Verdict::Clean);
        assert!(matches!(images.judge(b"just text", None), Verdict::Rejected(_)));
        // An owner's own list narrows the server's: both must allow the type.
        let pngs_only = ["image/png".to_owned()];
        assert_eq!(images.judge_for(png, None, Some(&pngs_only)), Verdict::Clean);
        assert!(matches!(images.judge_for(pdf, None, Some(&pngs_only)), Verdict::Rejected(_)));
        assert!(matches!(any.judge_for(b"just text", None, Some(&pngs_only)), Verdict::Rejected(_)));
        assert_eq!(any.judge_for(b"just text", None, None), Verdict::Clean);
    }

    #[test]
    fn clamd_replies() {
        assert_eq!(parse_reply("stream: OK").unwrap(), Verdict::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Test-Signature FOUND").unwrap(),
            Verdict::Infected("Eicar-Test-Signature".into())
        );
        assert!(matches!(parse_reply("INSTREAM size limit exceeded. ERROR").unwrap(), Verdict::Rejected(_)));
        assert!(parse_reply("UNKNOWN COMMAND").is_err());
        assert_eq!("tcp://127.0.0.1:3310".parse(), Ok(ClamdAddress::Tcp("127.0.0.1:3310".into())));
        assert_eq!("unix:/run/c.sock".parse(), Ok(ClamdAddress::Unix("/run/c.sock".into())));
        assert!("127.0.0.1:3310".parse::<ClamdAddress>().is_err());
    }
}
