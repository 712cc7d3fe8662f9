//! The shared store suite and S3-specific cases, each against s3s-fs (in-process; verifies
//! SigV4 and Content-MD5) and moto (from `TUS_TEST_MOTO_ENDPOINT`; enforces the 5 MiB minimum
//! part size at CompleteMultipartUpload).

mod support;

use std::time::Duration;

use bytes::Bytes;
use tus_core::UploadId;
use tus_core::store::{AppendOptions, BodyError, ChunkStream, ConcatRole, NewUpload, Store, StoreError};
use tus_core::testing::read_all;
use tus_store_s3::S3Store;

use support::{Server, pattern};

const MIB: usize = 1024 * 1024;

/// One test per server: `$name::s3s_fs` and `$name::moto`.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3s_fs() {
                super::$body(super::Server::s3s_fs().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                super::$body(super::Server::moto().await).await;
            }
        }
    };
}

on_both!(store_suite, store_suite_passes);
on_both!(one_kib_in_uneven_appends, one_kib);
on_both!(four_plus_four_mib_plus_one_byte, four_four_one);
on_both!(seventeen_mib_in_uneven_appends, seventeen_mib);
on_both!(zero_byte_upload, zero_bytes);
on_both!(deferred_length, deferred);
on_both!(deferred_tail_larger_than_final_part_size, deferred_tail_outgrows_parts);
on_both!(concatenation_of_small_partials, concat_small);
on_both!(concatenation_with_part_copy, concat_copy);
on_both!(resume_after_interrupted_append, resume_after_interrupt);
on_both!(second_instance_reads_what_the_first_wrote, second_instance);
on_both!(checksummed_append_is_staged, staged_append);
on_both!(parts_beyond_the_commit_are_ignored, orphan_parts);
on_both!(termination_removes_everything, terminate);
on_both!(presigned_url_serves_the_upload, presigned);
on_both!(uploads_share_a_part_memory_of_one_part, shared_part_memory);
on_both!(derivatives_are_stored_with_their_content_type, typed_derivatives);

async fn store_suite_passes(server: Server) {
    tus_core::store_suite!(server.store());
}

/// A stream of owned chunks.
fn owned(parts: Vec<Vec<u8>>, end: Option<BodyError>) -> ChunkStream<'static> {
    let mut items: Vec<Result<Bytes, BodyError>> = parts.into_iter().map(|p| Ok(Bytes::from(p))).collect();
    items.extend(end.map(Err));
    Box::pin(futures_util::stream::iter(items))
}

/// Uploads `len` bytes of `pattern` in appends of the given sizes (each split into 64 KiB
/// chunks), checking the offset after each, and returns the ID.
async fn upload_in(store: &S3Store, len: usize, appends: &[usize]) -> UploadId {
    assert_eq!(appends.iter().sum::<usize>(), len, "test bug: appends do not add up");
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(len as u64))).await.expect("create");
    let mut offset = 0;
    for &n in appends {
        let data = pattern(offset, n);
        let parts = data.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
        let got = store.append(&id, offset as u64, owned(parts, None), AppendOptions::default()).await.expect("append");
        offset += n;
        assert_eq!(got, offset as u64);
        assert_eq!(store.info(&id).await.expect("info").offset, offset as u64);
    }
    id
}

/// The finished upload is one object of the right size, holding the right bytes, and no tail
/// object is left.
async fn assert_finished(server: &Server, store: &S3Store, id: &UploadId, len: usize) {
    let info = store.info(id).await.expect("info");
    assert!(info.is_complete(), "{info:?}");
    let head = store.client().head_object().bucket(&server.bucket).key(id.as_str()).send().await.expect("data object");
    assert_eq!(head.content_length(), Some(len as i64));
    let tail = store.client().head_object().bucket(&server.bucket).key(format!("{id}.part")).send().await;
    assert!(tail.is_err(), "tail object left behind");
    let back = read_all(store, id, 0..len as u64).await;
    assert!(back == pattern(0, len), "bytes differ");
    if len > 10 {
        let (a, b) = (len / 3, len / 3 + 7);
        assert_eq!(read_all(store, id, a as u64..b as u64).await, pattern(a, b - a), "range read");
    }
}

async fn one_kib(server: Server) {
    let store = server.store();
    let id = upload_in(&store, 1024, &[100, 1, 300, 623]).await;
    assert_finished(&server, &store, &id, 1024).await;
}

async fn four_four_one(server: Server) {
    let store = server.store();
    let len = 8 * MIB + 1;
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(len as u64))).await.expect("create");
    let mut offset = 0;
    for (n, tail_after) in [(4 * MIB, 4 * MIB), (4 * MIB, 3 * MIB)] {
        offset = store
            .append(&id, offset, owned(vec![pattern(offset as usize, n)], None), AppendOptions::default())
            .await
            .expect("append");
        // The bytes that do not fill a 5 MiB part wait in the tail object.
        let tail = store.client().head_object().bucket(&server.bucket).key(format!("{id}.part")).send().await;
        assert_eq!(tail.expect("tail").content_length(), Some(tail_after as i64));
    }
    assert_eq!(offset, 8 * MIB as u64);
    let end = store.append(&id, offset, owned(vec![pattern(8 * MIB, 1)], None), AppendOptions::default()).await;
    assert_eq!(end.expect("append"), len as u64);
    assert_finished(&server, &store, &id, len).await;
}

async fn seventeen_mib(server: Server) {
    let store = server.store();
    let len = 17 * MIB;
    let appends =
        [3 * MIB + 5, 7 * MIB + 123, 1, MIB + MIB / 2, len - (3 * MIB + 5) - (7 * MIB + 123) - 1 - (MIB + MIB / 2)];
    let id = upload_in(&store, len, &appends).await;
    assert_finished(&server, &store, &id, len).await;
}

/// Four uploads of 12 MiB at once through room for a single 5 MiB part: they take turns (a
/// part upload in flight frees its room when done) and all finish intact.
async fn shared_part_memory(server: Server) {
    let store = server.builder().part_memory(5 * MIB as u64).build().expect("store");
    let len = 12 * MIB;
    let uploads = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { upload_in(&store, len, &[len]).await })
    });
    let ids = tokio::time::timeout(Duration::from_secs(120), futures_util::future::try_join_all(uploads))
        .await
        .expect("uploads sharing the part memory stalled")
        .expect("upload task");
    for id in &ids {
        assert_finished(&server, &store, id, len).await;
    }
}

async fn zero_bytes(server: Server) {
    let store = server.store();
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(0))).await.expect("create");
    assert_finished(&server, &store, &id, 0).await;
    assert!(read_all(&store, &id, 0..0).await.is_empty());
}

async fn deferred(server: Server) {
    let store = server.store();
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), None)).await.expect("create");
    let len = 6 * MIB + 3;
    let got = store.append(&id, 0, owned(vec![pattern(0, len)], None), AppendOptions::default()).await;
    assert_eq!(got.expect("append"), len as u64);
    let info = store.info(&id).await.expect("info");
    assert_eq!((info.offset, info.length), (len as u64, None));
    // Declaring the length the upload already has finishes it.
    store.capabilities().defer_length.expect("capability").declare_length(&id, len as u64).await.expect("declare");
    assert_finished(&server, &store, &id, len).await;

    // With a known maximum, deferred uploads use small parts: 12 MiB become two 5 MiB parts.
    let store = server.builder().max_object_size(1 << 30).build().expect("store");
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), None)).await.expect("create");
    let len = 12 * MIB;
    let got = store.append(&id, 0, owned(vec![pattern(0, len)], None), AppendOptions::default()).await;
    assert_eq!(got.expect("append"), len as u64);
    let tail = store.client().head_object().bucket(&server.bucket).key(format!("{id}.part")).send().await;
    assert_eq!(tail.expect("tail").content_length(), Some(2 * MIB as i64));
    store.capabilities().defer_length.expect("capability").declare_length(&id, len as u64 + 1).await.expect("declare");
    let got = store.append(&id, len as u64, owned(vec![pattern(len, 1)], None), AppendOptions::default()).await;
    assert_eq!(got.expect("append"), len as u64 + 1);
    assert_finished(&server, &store, &id, len + 1).await;
}

/// A deferred upload collects a tail for parts planned at the maximum size; when its length is
/// declared the parts shrink below that tail, which must then be cut into several parts
/// (tus-js-client's deferred Node-stream upload hit this: 10 MiB tail, 8 MiB parts).
async fn deferred_tail_outgrows_parts(server: Server) {
    let store = server.store();
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), None)).await.expect("create");
    let first = 10 * MIB;
    let got = store.append(&id, 0, owned(vec![pattern(0, first)], None), AppendOptions::default()).await;
    assert_eq!(got.expect("append"), first as u64);
    let len = 17 * MIB + 12345;
    store.capabilities().defer_length.expect("capability").declare_length(&id, len as u64).await.expect("declare");
    let rest = owned(vec![pattern(first, len - first)], None);
    let got = store.append(&id, first as u64, rest, AppendOptions::default()).await;
    assert_eq!(got.expect("append"), len as u64);
    assert_finished(&server, &store, &id, len).await;
}

async fn concatenate(store: &S3Store, sizes: &[usize]) -> (UploadId, Vec<u8>) {
    let mut partials = Vec::new();
    let mut expected = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let id = UploadId::random();
        store
            .create(NewUpload::new(id.clone(), Some(n as u64)).with_concat(ConcatRole::Partial))
            .await
            .expect("create partial");
        let data = pattern(i * 1000, n);
        store.append(&id, 0, owned(vec![data.clone()], None), AppendOptions::default()).await.expect("append");
        expected.extend_from_slice(&data);
        partials.push(store.info(&id).await.expect("info"));
    }
    let final_id = UploadId::random();
    let role = ConcatRole::Final { partials: partials.iter().map(|p| p.id.clone()).collect() };
    store.create(NewUpload::new(final_id.clone(), None).with_concat(role)).await.expect("create final");
    store.capabilities().concatenate.expect("capability").concatenate(&final_id, &partials).await.expect("concatenate");
    let info = store.info(&final_id).await.expect("info");
    assert_eq!((info.offset, info.length), (expected.len() as u64, Some(expected.len() as u64)));
    assert!(read_all(store, &final_id, 0..expected.len() as u64).await == expected, "final bytes differ");
    (final_id, expected)
}

async fn concat_small(server: Server) {
    let store = server.store();
    // Partials under 5 MiB cannot be copied as parts: streamed through the part pipeline.
    concatenate(&store, &[3, MIB, 0, 4 * MIB + 17, 5]).await;
    concatenate(&store, &[0, 0]).await;
}

async fn concat_copy(server: Server) {
    let store = server.store();
    // Every partial but the last is at least 5 MiB: assembled with UploadPartCopy.
    let (id, expected) = concatenate(&store, &[5 * MIB, 6 * MIB + 1, 10]).await;
    let head = store.client().head_object().bucket(&server.bucket).key(id.as_str()).send().await.expect("head");
    assert_eq!(head.content_length(), Some(expected.len() as i64));
}

async fn resume_after_interrupt(server: Server) {
    let store = server.store();
    let len = 12 * MIB;
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(len as u64))).await.expect("create");
    // The connection dies after 7 MiB + 5 bytes: one part and a tail reached S3.
    let sent = 7 * MIB + 5;
    let parts = vec![pattern(0, 3 * MIB), pattern(3 * MIB, sent - 3 * MIB)];
    let got = store.append(&id, 0, owned(parts, Some(BodyError::Interrupted)), AppendOptions::default()).await;
    assert_eq!(got.expect("append"), sent as u64);
    // What HEAD reports comes from S3, also for a fresh instance.
    assert_eq!(server.store().info(&id).await.expect("info").offset, sent as u64);
    let got = store.append(&id, sent as u64, owned(vec![pattern(sent, len - sent)], None), AppendOptions::default());
    assert_eq!(got.await.expect("append"), len as u64);
    assert_finished(&server, &store, &id, len).await;
}

async fn second_instance(server: Server) {
    let (first, second) = (server.store(), server.store());
    let len = 11 * MIB;
    let id = UploadId::random();
    first.create(NewUpload::new(id.clone(), Some(len as u64))).await.expect("create");
    let half = 6 * MIB + 1;
    first.append(&id, 0, owned(vec![pattern(0, half)], None), AppendOptions::default()).await.expect("append");
    assert_eq!(second.info(&id).await.expect("info").offset, half as u64);
    let got = second.append(&id, half as u64, owned(vec![pattern(half, len - half)], None), AppendOptions::default());
    assert_eq!(got.await.expect("append"), len as u64);
    assert_finished(&server, &first, &id, len).await;
    assert_finished(&server, &second, &id, len).await;
}

async fn staged_append(server: Server) {
    let store = server.store().clone();
    let len = 7 * MIB;
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(len as u64))).await.expect("create");
    let opts = AppendOptions::default().with_all_or_nothing(true);
    // A rejected (checksum mismatch) body of 6 MiB leaves nothing, not even a part.
    let bad = vec![pattern(0, 3 * MIB), pattern(3 * MIB, 3 * MIB)];
    assert_eq!(store.append(&id, 0, owned(bad, Some(BodyError::Rejected)), opts).await.expect("append"), 0);
    let bad = vec![pattern(0, 6 * MIB)];
    assert_eq!(store.append(&id, 0, owned(bad, Some(BodyError::Interrupted)), opts).await.expect("append"), 0);
    assert_eq!(store.info(&id).await.expect("info").offset, 0);
    let info = store.info(&id).await.expect("info");
    assert_eq!(info.offset, 0);
    // A verified body larger than the in-memory stage goes through a temp file.
    let good = vec![pattern(0, 2 * MIB), pattern(2 * MIB, len - 2 * MIB)];
    assert_eq!(store.append(&id, 0, owned(good, None), opts).await.expect("append"), len as u64);
    assert_finished(&server, &store, &id, len).await;
}

async fn orphan_parts(server: Server) {
    let store = server.store();
    let len = 16 * MIB;
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(len as u64))).await.expect("create");
    let first = 6 * MIB;
    store.append(&id, 0, owned(vec![pattern(0, first)], None), AppendOptions::default()).await.expect("append");
    // A crashed append left junk parts 2 and 3 behind, never committed to the tail marker.
    let info: serde_json::Value = {
        let out = store.client().get_object().bucket(&server.bucket).key(format!("{id}.info")).send().await;
        serde_json::from_slice(&out.expect("info object").body.collect().await.expect("body").into_bytes())
            .expect("json")
    };
    let upload_id = info["multipart_upload_id"].as_str().expect("upload id").to_owned();
    for number in [2, 3] {
        store
            .client()
            .upload_part()
            .bucket(&server.bucket)
            .key(id.as_str())
            .upload_id(&upload_id)
            .part_number(number)
            .body(vec![0xEE; 5 * MIB].into())
            .send()
            .await
            .expect("junk part");
    }
    assert_eq!(store.info(&id).await.expect("info").offset, first as u64, "junk parts counted");
    // The next append overwrites part 2 and stops before 3; completion ignores the junk part 3.
    let second = 4 * MIB;
    let got = store.append(&id, first as u64, owned(vec![pattern(first, second)], None), AppendOptions::default());
    assert_eq!(got.await.expect("append"), (first + second) as u64);
    assert_eq!(store.info(&id).await.expect("info").offset, (first + second) as u64, "junk parts counted");
    let rest = len - first - second;
    let got = store.append(
        &id,
        (first + second) as u64,
        owned(vec![pattern(first + second, rest)], None),
        AppendOptions::default(),
    );
    assert_eq!(got.await.expect("append"), len as u64);
    assert_finished(&server, &store, &id, len).await;
}

async fn terminate(server: Server) {
    let store = server.store();
    let id = UploadId::random();
    store.create(NewUpload::new(id.clone(), Some(20 * MIB as u64))).await.expect("create");
    store.append(&id, 0, owned(vec![pattern(0, 6 * MIB)], None), AppendOptions::default()).await.expect("append");
    store.capabilities().terminate.expect("capability").terminate(&id).await.expect("terminate");
    assert!(matches!(store.info(&id).await, Err(StoreError::Gone)));
    assert!(matches!(server.store().info(&id).await, Err(StoreError::Gone)), "second instance");
    for key in [id.to_string(), format!("{id}.part")] {
        let head = store.client().head_object().bucket(&server.bucket).key(&key).send().await;
        assert!(head.is_err(), "{key} left behind");
    }
    // The reaper's listing drops tombstones older than its cutoff.
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    store.capabilities().list_expired.expect("capability").list_expired(later).await.expect("list");
    assert!(matches!(store.info(&id).await, Err(StoreError::NotFound)));
}

/// A derivative's object carries its Content-Type, so a public bucket or a CDN in front of
/// it serves it as what it is.
async fn typed_derivatives(server: Server) {
    use tus_core::derivative::{Derivative, DerivativeName};
    let store = server.store();
    let id = upload_in(&store, 10, &[10]).await;
    let derived = store.capabilities().derivatives.expect("capability");
    for (name, content_type) in [(DerivativeName::Thumbnail(64), "image/jpeg"), (DerivativeName::Stripped, "image/png")]
    {
        let derivative = Derivative { name, content_type: content_type.into(), size: 0 };
        derived.put_derivative(&id, derivative, Bytes::from_static(b"pixels")).await.expect("put");
        let key = format!("{id}.derived/{}", name.file_name());
        let head = store.client().head_object().bucket(&server.bucket).key(&key).send().await.expect(&key);
        assert_eq!(head.content_type(), Some(content_type), "{key}");
    }
}

/// GET over a plain TCP connection; returns status and body.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let mut conn = tokio::net::TcpStream::connect(authority).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw)).await.expect("timeout").expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head[9..12].parse().expect("status");
    let mut body = raw[split..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).expect("utf8").trim(), 16).expect("hex");
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 4 + size..];
        }
        body = out;
    }
    (status, body)
}

async fn presigned(server: Server) {
    let store = server.store();
    let id = upload_in(&store, 3000, &[3000]).await;
    let url = store.presigned_get_url(&id, Duration::from_secs(300)).await.expect("presign");
    let (status, body) = http_get(&url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body == pattern(0, 3000), "presigned bytes differ");
    assert!(store.presigned_get_url(&id, Duration::from_secs(8 * 24 * 3600)).await.is_err(), "lifetime unbounded");
    let unfinished = UploadId::random();
    store.create(NewUpload::new(unfinished.clone(), Some(5))).await.expect("create");
    assert!(matches!(
        store.presigned_get_url(&unfinished, Duration::from_secs(60)).await,
        Err(StoreError::Conflict(_))
    ));
}

/// s3s-fs checks signatures: a tampered presigned URL is refused (moto does not check them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_presigned_url_is_refused_by_s3s_fs() {
    let server = Server::s3s_fs().await;
    let store = server.store();
    let id = upload_in(&store, 10, &[10]).await;
    let url = store.presigned_get_url(&id, Duration::from_secs(300)).await.expect("presign");
    let tampered = url.replace("X-Amz-Expires=300", "X-Amz-Expires=301");
    assert_ne!(tampered, url, "test bug: URL format changed: {url}");
    let (status, _) = http_get(&tampered).await;
    assert_eq!(status, 403);
}

/// Wrong credentials fail against s3s-fs (it verifies SigV4) with an error, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_an_error() {
    let server = Server::s3s_fs().await;
    let store = server.builder().credentials(support::KEY, "wrong").build().expect("store");
    let got = store.create(NewUpload::new(UploadId::random(), Some(1))).await;
    assert!(matches!(got, Err(StoreError::Generic { store: "s3", .. })), "{got:?}");
}

#[test]
fn builder_refuses_part_sizes_s3_does_not_allow() {
    for size in [MIB as u64, 6 << 30] {
        assert!(S3Store::builder("b").part_size(size).build().is_err(), "{size}");
    }
    assert!(S3Store::builder("b").max_parts_in_flight(0).build().is_err());
    assert!(S3Store::builder("").build().is_err());
    assert!(S3Store::builder("b").build().is_ok());
}
