//! S3 servers for the tests: s3s-fs in-process, moto from `TUS_TEST_MOTO_ENDPOINT`.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use tus_store_s3::{S3Store, S3StoreBuilder};

/// Access key and secret every test server accepts.
pub const KEY: &str = "test";
pub const SECRET: &str = "test";

/// A running S3 server and a fresh bucket in it.
pub struct Server {
    pub endpoint: String,
    pub bucket: String,
    _dir: Option<tempfile::TempDir>,
    _task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// s3s-fs 0.14.1 (verifies SigV4 and Content-MD5), served in-process on 127.0.0.1:0.
    pub async fn s3s_fs() -> Server {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let dir = tempfile::tempdir().expect("temp dir");
        let bucket = bucket_name();
        std::fs::create_dir(dir.path().join(&bucket)).expect("bucket directory");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(KEY, SECRET));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Server { endpoint, bucket, _dir: Some(dir), _task: Some(task) }
    }

    /// moto (enforces S3's 5 MiB minimum part size), started by `scripts/test-all.sh`; its URL
    /// comes from `TUS_TEST_MOTO_ENDPOINT`. A fresh bucket per test.
    pub async fn moto() -> Server {
        let endpoint = std::env::var("TUS_TEST_MOTO_ENDPOINT").unwrap_or_else(|_| {
            panic!(
                "TUS_TEST_MOTO_ENDPOINT is not set: these tests need a moto S3 server. Run \
                 `bash scripts/test-all.sh`, or start one yourself: `python3 -m venv target/moto-venv && \
                 target/moto-venv/bin/pip install 'moto[server]' && target/moto-venv/bin/moto_server -H 127.0.0.1 \
                 -p 5055 &` then `TUS_TEST_MOTO_ENDPOINT=http://127.0.0.1:5055 cargo nextest run -p tus-store-s3`"
            )
        });
        let server = Server { endpoint, bucket: bucket_name(), _dir: None, _task: None };
        let store = server.builder().build().expect("store");
        store
            .client()
            .create_bucket()
            .bucket(&server.bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot create a bucket on moto at {}: {e:?}", server.endpoint));
        server
    }

    /// A store builder for this server's bucket, with 5 MiB parts, 2 in flight.
    pub fn builder(&self) -> S3StoreBuilder {
        S3Store::builder(&self.bucket)
            .endpoint(&self.endpoint)
            .region("us-east-1")
            .force_path_style(true)
            .credentials(KEY, SECRET)
            .part_size(5 * 1024 * 1024)
            .max_parts_in_flight(2)
            .request_timeout(Duration::from_secs(30))
    }

    /// A store on this server.
    pub fn store(&self) -> S3Store {
        self.builder().build().expect("store")
    }
}

fn bucket_name() -> String {
    format!("tus-test-{}", tus_core::UploadId::random().as_str().to_ascii_lowercase().replace('_', "-"))
        .chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// Deterministic bytes: `len` bytes starting at stream position `start`.
pub fn pattern(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|i| (i * 31 % 251) as u8 ^ (i >> 16) as u8).collect()
}
