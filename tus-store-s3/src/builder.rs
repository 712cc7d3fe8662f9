//! Building an [`S3Store`]: the settings, their defaults and checks, the SDK client and its
//! credentials.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, ProvideCredentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider, StalledStreamProtectionConfig,
};
use tus_core::store::StoreError;

use crate::S3Store;
use crate::error::Error;
use crate::layout::{Inner, Promotion};
use crate::limits::{MAX_OBJECT_SIZE, MAX_PART_SIZE, MIB, MIN_PART_SIZE};
use crate::ops::Bucket;
use crate::upload;

/// Default part size.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// Default number of parts uploading concurrently per upload.
pub const DEFAULT_MAX_PARTS_IN_FLIGHT: usize = 4;
/// Default memory for part buffers across all uploads of a store.
pub const DEFAULT_PART_MEMORY: u64 = 256 * MIB;
/// Default time limit of small S3 requests.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds an [`S3Store`].
#[derive(Clone)]
pub struct S3StoreBuilder {
    bucket: String,
    endpoint: Option<String>,
    region: Option<String>,
    prefix: String,
    force_path_style: bool,
    part_size: u64,
    max_parts_in_flight: usize,
    max_object_size: u64,
    request_timeout: Duration,
    credentials: Option<Credentials>,
    staging_dir: Option<PathBuf>,
    part_memory: u64,
    promote: Option<(Option<String>, String)>,
}

impl fmt::Debug for S3StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3StoreBuilder")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("max_parts_in_flight", &self.max_parts_in_flight)
            .finish_non_exhaustive()
    }
}

impl S3StoreBuilder {
    /// A custom endpoint URL (MinIO, R2, a test server). Default: AWS for the region.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A prefix put before every key (for example `tus/`). Default: none.
    pub fn object_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted ones; most
    /// S3-compatible servers need this. Default `false`.
    pub fn force_path_style(mut self, yes: bool) -> Self {
        self.force_path_style = yes;
        self
    }

    /// The preferred part size in bytes, 5 MiB to 5 GiB (default 8 MiB); grown per upload
    /// when 10 000 parts of it would not hold the upload.
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Parts uploading concurrently per upload, at least 1 (default 4).
    pub fn max_parts_in_flight(mut self, n: usize) -> Self {
        self.max_parts_in_flight = n;
        self
    }

    /// The largest upload to plan parts for when the length is deferred (default and at most
    /// 5 TiB). Set it to the server's maximum upload size to keep those parts small.
    pub fn max_object_size(mut self, bytes: u64) -> Self {
        self.max_object_size = bytes;
        self
    }

    /// Time limit of small S3 requests (default 30 s); data transfers get one more second per
    /// MiB.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Static credentials instead of the standard AWS environment variables / profile chain.
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.credentials =
            Some(Credentials::new(access_key_id.into(), secret_access_key.into(), None, None, "tus-store-s3"));
        self
    }

    /// Memory for part buffers across all uploads of this store (default 256 MiB). Uploads
    /// beyond it wait, slowed down by TCP flow control, instead of the server growing by a part
    /// per concurrent upload. A part larger than the whole budget still proceeds, alone.
    pub fn part_memory(mut self, bytes: u64) -> Self {
        self.part_memory = bytes;
        self
    }

    /// Promotes every upload found clean out of the object prefix (the temporary area) to
    /// `<prefix><id>`, in `bucket` (`None`: the store's own bucket): copied, recorded, then
    /// deleted from the temporary area. From then on it is read and presigned only there.
    /// Needs an inspector on the service (only inspected uploads are found clean). Default: off.
    pub fn promote_to(mut self, bucket: Option<String>, prefix: impl Into<String>) -> Self {
        self.promote = Some((bucket, prefix.into()));
        self
    }

    /// Where checksummed bodies over 1 MiB are staged (default: the system temp directory).
    pub fn staging_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.staging_dir = Some(dir.into());
        self
    }

    /// Checks the settings and returns the store. Makes no request: a wrong bucket or
    /// credentials show up on the first upload.
    pub fn build(self) -> Result<S3Store, StoreError> {
        Ok(self.try_build()?)
    }

    fn try_build(self) -> Result<S3Store, Error> {
        if self.bucket.is_empty() {
            return Err(Error::Config("the bucket name is empty".into()));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(Error::Config(format!(
                "part size {} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE})",
                self.part_size
            )));
        }
        if self.max_parts_in_flight == 0 {
            return Err(Error::Config("at least one part must be allowed in flight".into()));
        }
        if self.max_object_size == 0 || self.max_object_size > MAX_OBJECT_SIZE {
            return Err(Error::Config(format!("maximum object size must be 1..={MAX_OBJECT_SIZE}")));
        }
        let region = self
            .region
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let credentials = match self.credentials {
            Some(c) => SharedCredentialsProvider::new(c),
            None => SharedCredentialsProvider::new(DefaultChain::default()),
        };
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .credentials_provider(credentials.clone())
            .force_path_style(self.force_path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(10)).build())
            // A transfer that moves no byte for this long is cut (then retried).
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled().grace_period(self.request_timeout).build(),
            )
            // Plain Content-MD5 (on every object; parts are covered by the signed payload hash)
            // is what S3-compatible servers understand; the SDK's newer default trailing
            // checksums are not.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = aws_sdk_s3::Client::from_conf(config.build());
        let promotion = match self.promote {
            None => None,
            Some((bucket, prefix)) => {
                let bucket = bucket.unwrap_or_else(|| self.bucket.clone());
                // The temporary area is listed by prefix: a production area inside it would
                // be listed (and expired) with it, and one equal to it promotes nothing.
                if bucket == self.bucket && prefix.starts_with(&self.prefix) {
                    return Err(Error::Config(format!(
                        "the promotion prefix {prefix:?} must lie outside the object prefix {:?} in the same bucket",
                        self.prefix
                    )));
                }
                Some(Promotion {
                    bucket: Bucket { client: client.clone(), name: bucket, timeout: self.request_timeout },
                    prefix,
                })
            }
        };
        let staging_dir = self.staging_dir.unwrap_or_else(std::env::temp_dir);
        Ok(S3Store {
            inner: Arc::new(Inner {
                bucket: Bucket { client, name: self.bucket, timeout: self.request_timeout },
                prefix: self.prefix,
                part_size: self.part_size,
                max_parts_in_flight: self.max_parts_in_flight,
                max_object_size: self.max_object_size,
                staging_dir,
                part_memory: upload::PartMemory::new(self.part_memory),
                credentials,
                region,
                promotion,
            }),
        })
    }
}

/// The standard AWS credential chain (environment, profile, web identity, container, IMDS),
/// built on first use so that building the store needs no runtime.
#[derive(Debug, Default)]
struct DefaultChain(tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>);

impl ProvideCredentials for DefaultChain {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let chain = self
                .0
                .get_or_init(|| aws_config::default_provider::credentials::DefaultCredentialsChain::builder().build())
                .await;
            chain.provide_credentials().await
        })
    }
}

impl S3Store {
    /// A builder for a store in `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3StoreBuilder {
        S3StoreBuilder {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            prefix: String::new(),
            force_path_style: false,
            part_size: DEFAULT_PART_SIZE,
            max_parts_in_flight: DEFAULT_MAX_PARTS_IN_FLIGHT,
            max_object_size: MAX_OBJECT_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            credentials: None,
            staging_dir: None,
            part_memory: DEFAULT_PART_MEMORY,
            promote: None,
        }
    }
}
