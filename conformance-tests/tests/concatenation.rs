//! Extensions `concatenation` and `concatenation-unfinished` (N).

use conformance_tests::{
    OFFSET_OCTET_STREAM, Request, Response, TestServer, Url, expect_complete, extension_listed, get, head,
    last_segment, metadata_map, offset, patch, response_metadata,
};

fn final_header(urls: &[&str]) -> String {
    format!("final;{}", urls.join(" "))
}

/// Creates a final upload over `urls` and returns its URL.
#[track_caller]
fn create_final(s: &TestServer, urls: &[&str]) -> String {
    s.create_with(&[("Upload-Concat", &final_header(urls))])
}

/// A server with two completed partial uploads, `hello` and ` world` (in that order).
#[track_caller]
fn hello_and_world() -> (TestServer, String, String) {
    let s = TestServer::start();
    let a = s.upload_partial(b"hello");
    let b = s.upload_partial(b" world");
    (s, a, b)
}

/// The partial URLs listed in a final upload's `Upload-Concat`.
#[track_caller]
fn concat_urls(resp: &Response) -> Vec<String> {
    let raw = resp.header("Upload-Concat").unwrap_or_else(|| panic!("no Upload-Concat:\n{resp}"));
    let list = raw.strip_prefix("final;").unwrap_or_else(|| panic!("Upload-Concat {raw:?} does not start with final;"));
    list.split_whitespace().map(str::to_owned).collect()
}

extension_listed!(n1_concatenation_listed, "concatenation");

#[test]
fn n2_partial_creation_201() {
    let s = TestServer::start();
    let resp = s.post().header("Upload-Concat", "partial").header("Upload-Length", "5").body(b"").send();
    resp.expect_status(201);
    head(&s.resolve(resp.location())).expect_status(200);
    // Deferred-length partials and partials with creation-with-upload work too.
    s.create_with(&[("Upload-Concat", "partial"), ("Upload-Defer-Length", "1")]);
    let resp = s
        .post()
        .header("Upload-Concat", "partial")
        .header("Upload-Length", "5")
        .header("Content-Type", OFFSET_OCTET_STREAM)
        .body(b"hello")
        .send();
    assert_eq!(resp.expect_status(201).offset(), 5);
}

#[test]
fn n3_partial_head_has_offset() {
    let s = TestServer::start();
    let a = s.create_partial(5);
    assert_eq!(head(&a).expect_status(200).offset(), 0);
    patch(&a, 0, b"he").expect_status(204);
    assert_eq!(offset(&a), 2);
}

#[test]
fn n4_partial_head_has_upload_concat_partial() {
    let s = TestServer::start();
    let a = s.create_partial(5);
    assert_eq!(head(&a).header("Upload-Concat"), Some("partial"));
    patch(&a, 0, b"hello").expect_status(204);
    assert_eq!(head(&a).header("Upload-Concat"), Some("partial"));
    let normal = s.create(5);
    assert!(!head(&normal).has_header("Upload-Concat"), "Upload-Concat on a normal upload");
}

#[test]
fn n5_partials_accept_patch() {
    let s = TestServer::start();
    let a = s.create_partial(5);
    let b = s.create_partial(6);
    assert_eq!(patch(&a, 0, b"hel").expect_status(204).offset(), 3);
    assert_eq!(patch(&a, 3, b"lo").expect_status(204).offset(), 5);
    assert_eq!(patch(&b, 0, b" world").expect_status(204).offset(), 6);
    assert_eq!(get(&a).body, b"hello");
}

#[test]
fn n6_final_creation_201_absolute_urls() {
    let (s, a, b) = hello_and_world();
    let resp = s.post().header("Upload-Concat", final_header(&[&a, &b])).body(b"").send();
    resp.expect_status(201).expect_tus_resumable();
    let f = s.resolve(resp.location());
    assert_ne!(f, a);
    assert_ne!(f, b);
    head(&f).expect_status(200);
}

#[test]
fn n6_final_with_relative_urls() {
    let (s, a, b) = hello_and_world();
    let rel_a = Url::parse(&a).path;
    let rel_b = Url::parse(&b).path;
    let f = create_final(&s, &[&rel_a, &rel_b]);
    let h = head(&f);
    assert_eq!(concat_urls(&h), vec![a, b], "relative partial URLs must be echoed as absolute");
    assert_eq!(get(&f).body, b"hello world");
}

#[test]
fn n7_final_length_is_sum() {
    let (s, a, b) = hello_and_world();
    let f = create_final(&s, &[&a, &b]);
    assert_eq!(head(&f).length(), Some(11));
}

#[test]
fn n7_final_length_over_max_size_413() {
    let s = TestServer::spawn(&["--max-size", "10"]);
    let a = s.upload_partial(b"hello!");
    let b = s.upload_partial(b"world!");
    let resp = s.post().header("Upload-Concat", final_header(&[&a, &b])).body(b"").send();
    resp.expect_refused_creation(413, "a final over --max-size");
    let f = create_final(&s, &[&a]);
    assert_eq!(head(&f).length(), Some(6));
}

#[test]
fn n8_final_offset_equals_length() {
    let (s, a, b) = hello_and_world();
    let f = create_final(&s, &[&a, &b]);
    let h = head(&f);
    h.expect_status(200);
    assert_eq!((h.offset(), h.length()), (11, Some(11)));
    assert!(!h.has_header("Upload-Defer-Length"));
}

#[test]
fn n9_final_head_upload_concat_echoes_urls() {
    let (s, a, b) = hello_and_world();
    let f = create_final(&s, &[&a, &b]);
    let h = head(&f);
    assert_eq!(concat_urls(&h), vec![a.clone(), b.clone()]);
    // The partials still say "partial".
    assert_eq!(head(&a).header("Upload-Concat"), Some("partial"));
}

#[test]
fn n10_partials_concatenated_in_order() {
    let (s, a, b) = hello_and_world();
    let f = create_final(&s, &[&a, &b]);
    assert_eq!(get(&f).expect_status(200).body, b"hello world");
    let swapped = create_final(&s, &[&b, &a]);
    assert_eq!(get(&swapped).body, b" worldhello");
}

#[test]
fn n10_empty_partial_in_the_middle() {
    let s = TestServer::start();
    let a = s.upload_partial(b"ab");
    let empty = s.upload_partial(b"");
    let c = s.upload_partial(b"cd");
    let f = create_final(&s, &[&a, &empty, &c]);
    expect_complete(&f, b"abcd");
}

#[test]
fn n11_patch_final_403_nothing_changes() {
    let (s, a, b) = hello_and_world();
    let f = create_final(&s, &[&a, &b]);
    for off in [11u64, 0] {
        patch(&f, off, b"x").expect_refused_patch(403, &f, 11, &format!("PATCH final at offset {off}"));
    }
    patch(&f, 11, b"").expect_status(403);
    expect_complete(&f, b"hello world");
    expect_complete(&a, b"hello");
    expect_complete(&b, b" world");
}

#[test]
fn n11_patch_unfinished_final_403() {
    let s = TestServer::start();
    let a = s.create_partial(5);
    let f = create_final(&s, &[&a]);
    patch(&f, 0, b"hello").expect_status(403);
    assert!(!head(&f).has_header("Upload-Offset"));
    assert_eq!(offset(&a), 0);
}

#[test]
fn n12_partial_metadata_not_transferred() {
    let s = TestServer::start();
    let a = s.create_with(&[
        ("Upload-Concat", "partial"),
        ("Upload-Length", "5"),
        ("Upload-Metadata", "p cA==,filename YS50eHQ="),
    ]);
    patch(&a, 0, b"hello").expect_status(204);
    let f = s.create_with(&[("Upload-Concat", &final_header(&[&a])), ("Upload-Metadata", "f Zg==")]);
    assert_eq!(response_metadata(&head(&f)), metadata_map(&[("f", b"f")]));
    let bare = create_final(&s, &[&a]);
    assert_eq!(response_metadata(&head(&bare)), metadata_map(&[]));
    assert_eq!(
        response_metadata(&head(&a)),
        metadata_map(&[("p", b"p"), ("filename", b"a.txt")]),
        "the partial keeps its own metadata"
    );
}

#[test]
fn n13_same_partial_repeated_and_reused() {
    let s = TestServer::start();
    let a = s.upload_partial(b"hello");
    let f = create_final(&s, &[&a, &a]);
    expect_complete(&f, b"hellohello");
    let g = create_final(&s, &[&a]);
    assert_eq!(get(&g).body, b"hello");
    assert_eq!(get(&f).body, b"hellohello");
}

#[test]
fn n14_final_over_unfinished_partials_accepted() {
    let s = TestServer::start();
    let a = s.create_partial(5);
    let b = s.create_partial(6);
    let resp = s.post().header("Upload-Concat", final_header(&[&a, &b])).body(b"").send();
    resp.expect_status(201);
    assert!(!resp.has_header("Upload-Offset"), "Upload-Offset for an unfinished final:\n{resp}");
}

#[test]
fn n15_concatenation_unfinished_listed() {
    let s = TestServer::start();
    s.expect_extension("concatenation-unfinished");
    s.expect_extension("concatenation");
}

#[test]
fn n16_unfinished_final_head_has_no_offset() {
    let s = TestServer::start();
    let a = s.create_partial(5);
    let b = s.create_partial(6);
    let f = create_final(&s, &[&a, &b]);
    let h = head(&f);
    h.expect_status(200);
    assert!(!h.has_header("Upload-Offset"), "{h}");
    assert_eq!(concat_urls(&h), vec![a.clone(), b.clone()]);
    patch(&a, 0, b"hello").expect_status(204);
    patch(&b, 0, b" wor").expect_status(204);
    assert!(!head(&f).has_header("Upload-Offset"), "offset shown while a partial is unfinished");
    assert_eq!(get(&f).status, 409, "download of an unfinished final");
    patch(&b, 4, b"ld").expect_status(204);
    expect_complete(&f, b"hello world");
}

#[test]
fn n17_unfinished_final_head_has_length_when_known() {
    let s = TestServer::start();
    let a = s.create_partial(5);
    let b = s.upload_partial(b" world");
    let resp = s.post().header("Upload-Concat", final_header(&[&a, &b])).body(b"").send();
    resp.expect_status(201);
    let f = s.resolve(resp.location());
    assert_eq!(head(&f).length(), Some(11));
    patch(&a, 0, b"hello").expect_status(204);
    expect_complete(&f, b"hello world");
}

#[test]
fn n17_unfinished_final_with_deferred_partial_defers_length() {
    let s = TestServer::start();
    let a = s.upload_partial(b"hello");
    let d = s.create_with(&[("Upload-Concat", "partial"), ("Upload-Defer-Length", "1")]);
    let f = create_final(&s, &[&a, &d]);
    let h = head(&f);
    h.expect_status(200);
    assert!(!h.has_header("Upload-Offset"), "{h}");
    assert!(!h.has_header("Upload-Length"), "length of the final is not known yet:\n{h}");
    assert_eq!(h.header("Upload-Defer-Length"), Some("1"), "{h}");
    Request::patch(&d, 0, b" world").header("Upload-Length", "6").send().expect_status(204);
    expect_complete(&f, b"hello world");
    assert!(!head(&f).has_header("Upload-Defer-Length"));
}

#[test]
fn n19_invalid_upload_concat_400() {
    let s = TestServer::start();
    let partial = s.upload_partial(b"abc");
    let normal = s.upload(b"abc");
    let other_host = format!("http://example.invalid/files/{}", last_segment(&partial));
    let other_port = format!("http://127.0.0.1:1{}", Url::parse(&partial).path);
    let cases = [
        "foo".to_owned(),
        "final".to_owned(),
        "final;".to_owned(),
        "final; ".to_owned(),
        "partial;x".to_owned(),
        final_header(&[&s.unknown_url()]),
        final_header(&[&partial, &s.unknown_url()]),
        final_header(&[&normal]),
        final_header(&[&partial, &normal]),
        final_header(&[&other_host]),
        final_header(&[&other_port]),
    ];
    for value in cases {
        let resp = s.post().header("Upload-Concat", value.as_str()).body(b"").send();
        resp.expect_refused_creation(400, &format!("Upload-Concat {value:?}"));
    }
    // A final upload can't be used as a partial.
    let f = create_final(&s, &[&partial]);
    let resp = s.post().header("Upload-Concat", final_header(&[&f])).body(b"").send();
    resp.expect_refused_creation(400, "final over a final");
}

#[test]
fn n20_final_with_upload_length_400() {
    let s = TestServer::start();
    let a = s.upload_partial(b"hello");
    for len in ["5", "99"] {
        let resp = s.post().header("Upload-Concat", final_header(&[&a])).header("Upload-Length", len).body(b"").send();
        resp.expect_refused_creation(400, &format!("final with Upload-Length {len}"));
    }
}

#[test]
fn n21_final_post_with_body_403() {
    let s = TestServer::start();
    let a = s.upload_partial(b"hello");
    let resp = s
        .post()
        .header("Upload-Concat", final_header(&[&a]))
        .header("Content-Type", OFFSET_OCTET_STREAM)
        .body(b"x")
        .send();
    resp.expect_refused_creation(403, "a final with a body").expect_tus_resumable();
    assert_eq!(offset(&a), 5);
    let resp = Request::tus("POST", s.url())
        .header("Upload-Concat", final_header(&[&a]))
        .header("Content-Type", OFFSET_OCTET_STREAM)
        .chunked(&[b"x"], &[])
        .send();
    resp.expect_status(403);
}
