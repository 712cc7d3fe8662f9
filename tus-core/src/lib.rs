//! The tus 1.0 resumable-upload protocol as a [`tower_service::Service`], independent of any
//! socket, runtime or storage.
//!
//! - [`headers`]: every tus header, typed, parsed and encoded in one place.
//! - [`store`]: the small [`Store`] trait and its optional capabilities.
//! - [`locker`]: per-upload locks that ask a stale holder to let go.
//! - [`TusService`]: the HTTP handler, for any request body type; mount it in hyper, axum or
//!   anything else that speaks `tower`.
//!
//! ```
//! use tus_core::{MemoryStore, TusService};
//! use tower_service::Service as _;
//!
//! # async fn demo() {
//! let mut tus = TusService::builder(MemoryStore::new()).base_path("/files/").max_size(1 << 30).build();
//! let req = http::Request::post("http://localhost/files/")
//!     .header("Tus-Resumable", "1.0.0")
//!     .header("Upload-Length", "11")
//!     .body(http_body_util::Empty::<bytes::Bytes>::new())
//!     .unwrap();
//! let res = tus.call(req).await.unwrap();
//! assert_eq!(res.status(), 201);
//! assert!(res.headers()["location"].to_str().unwrap().starts_with("http://localhost/files/"));
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo());
//! ```

pub mod auth;
pub mod checksum;
pub mod derivative;
pub mod digest;
pub mod error;
pub mod handler;
pub mod headers;
pub mod hooks;
pub mod id;
pub mod inspect;
pub mod locker;
pub mod memory;
pub mod quota;
pub mod signing;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::TusError;
pub use handler::{CorsConfig, CorsOrigins, LocationStyle, ResponseBody, TusConfig, TusService, TusServiceBuilder};
pub use hooks::{HookEvent, HookResponse, HookType, Hooks};
pub use id::UploadId;
pub use inspect::{Inspect, Verdict};
pub use locker::{Locker, MemoryLocker, UploadLock};
pub use memory::MemoryStore;
pub use signing::UrlSigner;
pub use store::{Capabilities, Store, StoreError, UploadInfo, UploadState};
