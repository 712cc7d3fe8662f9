//! OPTIONS: what this server supports (tus 1.0 §OPTIONS).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::Inner;
use super::response::{ResponseBody, tus_response};
use crate::checksum::ChecksumAlgorithm;
use crate::headers::{TUS_VERSION, names};

impl Inner {
    /// OPTIONS: what this server supports.
    pub(super) fn options(&self) -> Response<ResponseBody> {
        // 200, as tusd answers: the spec allows 200 or 204, and some clients accept only 200.
        let mut res = tus_response(StatusCode::OK);
        let h = res.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        h.insert(names::TUS_VERSION, HeaderValue::from_static(TUS_VERSION));
        if let Ok(v) = HeaderValue::from_str(&self.extensions().join(",")) {
            h.insert(names::TUS_EXTENSION, v);
        }
        if let Some(max) = self.config.max_size {
            h.insert(names::TUS_MAX_SIZE, HeaderValue::from(max));
        }
        if let Ok(v) = HeaderValue::from_str(&ChecksumAlgorithm::header_list()) {
            h.insert(names::TUS_CHECKSUM_ALGORITHM, v);
        }
        res
    }
}
