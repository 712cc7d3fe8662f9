//! Tolerance for S3-compatible servers that answer ListParts with the wrong XML root.
//!
//! AWS documents `<ListPartsResult>` as the root of a ListParts answer; moto (5.x) sends
//! `<ListPartsResponse>`, which the SDK's strict parser refuses. This interceptor, attached to
//! ListParts calls only, renames that root before the SDK parses the body. Answers that already
//! follow the documentation pass through unchanged.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};

/// A ListParts answer is at most 1 000 parts of well under 1 KiB each.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Renames a `ListPartsResponse` XML root to `ListPartsResult`.
#[derive(Debug)]
pub(crate) struct ListPartsRoot;

impl Intercept for ListPartsRoot {
    fn name(&self) -> &'static str {
        "ListPartsRoot"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.response_mut().body_mut();
        let inner = std::mem::replace(body, SdkBody::taken());
        *body = SdkBody::from_body_1_x(Renamed { inner, buf: BytesMut::new(), done: false });
        Ok(())
    }
}

/// Buffers the (small) body and renames the root when it ends.
struct Renamed {
    inner: SdkBody,
    buf: BytesMut,
    done: bool,
}

impl Body for Renamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.buf.extend_from_slice(&data);
                        if this.buf.len() > MAX_BODY {
                            return Poll::Ready(Some(Err("ListParts answer too large".into())));
                        }
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.done = true;
                    let body = std::mem::take(&mut this.buf).freeze();
                    return Poll::Ready(Some(Ok(Frame::data(rename_root(body)))));
                }
            }
        }
    }
}

fn rename_root(body: Bytes) -> Bytes {
    let head = &body[..body.len().min(256)];
    if !head.windows(18).any(|w| w == b"<ListPartsResponse") {
        return body;
    }
    let text = String::from_utf8_lossy(&body).replacen("<ListPartsResponse", "<ListPartsResult", 1).replacen(
        "</ListPartsResponse>",
        "</ListPartsResult>",
        1,
    );
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_only_the_wrong_root() {
        let wrong =
            Bytes::from_static(b"<?xml version=\"1.0\"?>\n<ListPartsResponse xmlns=\"x\"><Part/></ListPartsResponse>");
        assert_eq!(
            &rename_root(wrong)[..],
            b"<?xml version=\"1.0\"?>\n<ListPartsResult xmlns=\"x\"><Part/></ListPartsResult>"
        );
        let right = Bytes::from_static(b"<ListPartsResult><Part/></ListPartsResult>");
        assert_eq!(rename_root(right.clone()), right);
    }
}
