"""tuspy against a spawned tus-server, checked over HTTP only (HEAD, GET).

Run in the venv that scripts/test-all.sh makes: `.venv/bin/python -m pytest python/`.
The server binary is `TUS_SERVER_BIN` or `<repo>/target/debug/tus-server`; `TUS_SERVER_ARGS`
(whitespace-separated) adds flags, e.g. to select the S3 store.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
import tusclient.request
from tusclient import client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024
TEST_TIMEOUT = 120  # seconds, per test (SIGALRM)
HTTP_TIMEOUT = 30


@pytest.fixture(autouse=True)
def bounded():
    """Fails a test that runs longer than TEST_TIMEOUT instead of hanging."""

    def expire(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# The process ID of each running server, by endpoint URL (to read its memory from /proc).
SERVER_PIDS = {}


@contextlib.contextmanager
def tus_server(name, extra_args=(), upload_dir=None):
    """A tus-server on 127.0.0.1 with `upload_dir` or a fresh one (plus TUS_SERVER_ARGS and
    extra_args); yields its endpoint URL. stderr goes to conformance-tests/artifacts/logs/<name>.log."""
    binary = Path(os.environ.get("TUS_SERVER_BIN") or REPO / "target/debug/tus-server")
    if not binary.is_file():
        pytest.fail(f"missing tus-server binary {binary}: run `cargo build -p tus-server` or set TUS_SERVER_BIN")
    own_dir = upload_dir is None
    upload_dir = upload_dir or tempfile.mkdtemp(prefix="tuspy-")
    logs = REPO / "conformance-tests/artifacts/logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"{name}.log", "wb")
    args = [str(binary), "--host", "127.0.0.1", "--port", "0", "--upload-dir", upload_dir]
    args += os.environ.get("TUS_SERVER_ARGS", "").split()
    args += list(extra_args)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(20)
    try:
        prefix = "tus-server listening on "
        if not lines or not lines[0].startswith(prefix):
            pytest.fail(f"tus-server did not start (stdout {lines!r}, log {logs / f'{name}.log'})")
        url = lines[0][len(prefix):].strip()
        assert url.startswith("http://127.0.0.1:"), url
        SERVER_PIDS[url] = proc.pid
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        if own_dir:
            shutil.rmtree(upload_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def endpoint():
    """A tus-server without authentication; yields its endpoint URL."""
    with tus_server("tuspy") as url:
        yield url


@pytest.fixture(scope="module")
def secret():
    """The HS256 secret of the `auth_endpoint` server (64 hex characters; the text is the key)."""
    return secrets.token_hex(32).encode()


@pytest.fixture(scope="module")
def auth_endpoint(secret):
    """A tus-server with JWT authentication (`--auth-jwt-key-file`, an HS256 secret in a temp file
    ending with a newline, which the server ignores); yields its endpoint URL."""
    key_dir = tempfile.mkdtemp(prefix="tuspy-keys-")
    try:
        key_file = Path(key_dir) / "hs256.key"
        key_file.write_bytes(secret + b"\n")
        key_file.chmod(0o600)
        with tus_server("tuspy-auth", ["--auth-jwt-key-file", str(key_file)]) as url:
            yield url
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(secret, sub, **claims):
    """An HS256 JWT for `sub` (`exp` an hour from now unless given), signed with hmac/sha256."""
    body = {"sub": sub, "exp": int(time.time()) + 3600, **claims}
    signing_input = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64url(json.dumps(body).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def patches(monkeypatch):
    """Records the headers of every PATCH tuspy sends (it calls requests.patch)."""
    sent = []
    original = requests.patch

    def recording_patch(url, *args, **kwargs):
        sent.append(dict(kwargs.get("headers") or {}))
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return original(url, *args, **kwargs)

    monkeypatch.setattr(tusclient.request.requests, "patch", recording_patch)
    return sent


def head(url, headers=None):
    return requests.head(url, headers={"Tus-Resumable": "1.0.0", **(headers or {})}, timeout=HTTP_TIMEOUT)


def get_when_ready(url, headers=None):
    """GET, retrying a 409 (still `processing`: with authentication on, every finished upload goes
    through the content check first) for up to 15 s."""
    deadline = time.monotonic() + 15
    while True:
        res = requests.get(url, headers=headers or {}, timeout=HTTP_TIMEOUT)
        if res.status_code != 409 or time.monotonic() > deadline:
            return res
        time.sleep(0.1)


def assert_stored(url, data, headers=None):
    res = head(url, headers)
    assert res.status_code == 200
    assert res.headers["Upload-Offset"] == str(len(data))
    assert res.headers["Upload-Length"] == str(len(data))
    got = get_when_ready(url, headers)
    assert got.status_code == 200, f"GET {url}: {got.status_code} {got.text}"
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest(), "GET bytes differ"
    return res


def metadata_of(res):
    out = {}
    for pair in res.headers.get("Upload-Metadata", "").split(","):
        parts = pair.strip().split(" ")
        if parts[0]:
            out[parts[0]] = base64.b64decode(parts[1]).decode() if len(parts) > 1 else ""
    return out


def sha1_header(chunk):
    return "sha1 " + base64.b64encode(hashlib.sha1(chunk).digest()).decode()


def test_upload_checksum_sha1(endpoint, patches, tmp_path):
    data = os.urandom(5 * MIB + 17)
    path = tmp_path / "słońce.bin"
    path.write_bytes(data)
    uploader = client.TusClient(endpoint).uploader(
        str(path), chunk_size=MIB, upload_checksum=True, metadata={"filename": "słońce.bin"}
    )
    uploader.upload()

    assert len(patches) == 6, "one PATCH per 1 MiB chunk"
    for i, headers in enumerate(patches):
        chunk = data[i * MIB : (i + 1) * MIB]
        assert headers["upload-checksum"] == sha1_header(chunk), f"PATCH {i} checksum header"
        assert headers["upload-offset"] == str(i * MIB)
    res = assert_stored(uploader.url, data)
    assert metadata_of(res) == {"filename": "słońce.bin"}


def test_checksum_mismatch_is_refused_then_resumed(endpoint, patches, tmp_path, monkeypatch):
    """A PATCH whose sha1 does not match gets 460 and keeps nothing; tuspy then resumes."""
    data = os.urandom(3 * MIB)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    uploader = client.TusClient(endpoint).uploader(str(path), chunk_size=MIB, upload_checksum=True)

    original = tusclient.request.BaseTusRequest.add_checksum

    def corrupt_second_chunk(self, chunk):
        original(self, chunk)
        if self._request_headers["upload-offset"] == str(MIB):
            self._request_headers["upload-checksum"] = sha1_header(chunk + b"x")

    monkeypatch.setattr(tusclient.request.BaseTusRequest, "add_checksum", corrupt_second_chunk)
    with pytest.raises(TusUploadFailed) as failed:
        uploader.upload()
    assert failed.value.status_code == 460, f"checksum mismatch status {failed.value.status_code}"
    res = head(uploader.url)
    assert res.headers["Upload-Offset"] == str(MIB), "nothing of the refused PATCH was kept"

    monkeypatch.setattr(tusclient.request.BaseTusRequest, "add_checksum", original)
    uploader.upload()
    assert [h["upload-offset"] for h in patches] == [str(0), str(MIB), str(MIB), str(2 * MIB)]
    assert_stored(uploader.url, data)


def test_async_uploader_with_checksum(endpoint, tmp_path):
    import asyncio

    data = os.urandom(2 * MIB + 1)
    path = tmp_path / "async.bin"
    path.write_bytes(data)
    uploader = client.TusClient(endpoint).async_uploader(str(path), chunk_size=512 * 1024, upload_checksum=True)
    asyncio.run(asyncio.wait_for(uploader.upload(), TEST_TIMEOUT - 10))
    assert_stored(uploader.url, data)


# ---- whole-file digests: the `checksum` metadata key, `<alg> <base64>` -------------------------


def wait_for_verdict(url):
    """HEAD once the upload's state is no longer `processing` (at most 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        res = head(url)
        state = res.headers.get("Upload-State")
        if (state and state != "processing") or time.monotonic() > deadline:
            return res
        time.sleep(0.05)


@pytest.mark.parametrize("alg", ["sha256", "md5"])
def test_declared_digest_in_metadata_is_proven(endpoint, tmp_path, alg):
    data = os.urandom(3 * MIB + 5)
    path = tmp_path / "declared.bin"
    path.write_bytes(data)
    declared = f"{alg} " + base64.b64encode(hashlib.new(alg, data).digest()).decode()
    uploader = client.TusClient(endpoint).uploader(str(path), chunk_size=MIB, metadata={"checksum": declared})
    uploader.upload()
    res = wait_for_verdict(uploader.url)
    assert res.headers.get("Upload-State") == "clean"
    sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert res.headers.get("Repr-Digest") == f"sha-256=:{sha256}:"
    assert_stored(uploader.url, data)


def test_wrong_declared_digest_in_metadata_fails_the_upload(endpoint, tmp_path):
    data = os.urandom(2 * MIB)
    path = tmp_path / "wrong.bin"
    path.write_bytes(data)
    declared = "sha256 " + base64.b64encode(hashlib.sha256(b"another file").digest()).decode()
    uploader = client.TusClient(endpoint).uploader(str(path), chunk_size=MIB, metadata={"checksum": declared})
    with pytest.raises(TusUploadFailed) as failed:
        uploader.upload()
    assert failed.value.status_code == 460, f"status {failed.value.status_code}"
    assert head(uploader.url).headers.get("Upload-State") == "rejected"
    assert requests.get(uploader.url, timeout=HTTP_TIMEOUT).status_code == 403, "a rejected upload was served"


# ---- JWT authentication: TusClient(url, headers={"Authorization": "Bearer ..."}) ----------------


def test_upload_with_bearer_token(auth_endpoint, secret, patches, tmp_path):
    data = os.urandom(3 * MIB + 7)
    path = tmp_path / "token.bin"
    path.write_bytes(data)
    alice = bearer(mint_token(secret, "alice"))
    tus = client.TusClient(auth_endpoint, headers=alice)
    uploader = tus.uploader(str(path), chunk_size=MIB, metadata={"filename": "token.bin"})
    uploader.upload()

    assert len(patches) == 4
    assert all(h.get("Authorization") == alice["Authorization"] for h in patches), "every PATCH carried the token"
    assert_stored(uploader.url, data, alice)
    assert head(uploader.url).status_code == 401, "HEAD without a token"
    assert get_when_ready(uploader.url).status_code == 401, "GET without a token"
    bob = bearer(mint_token(secret, "bob"))
    assert head(uploader.url, bob).status_code == 404, "HEAD with another subject's token"
    assert get_when_ready(uploader.url, bob).status_code == 404, "GET with another subject's token"


@pytest.mark.parametrize(
    "what, headers, reason",
    [
        ("no token", None, None),
        ("expired token", "expired", "expired"),
        ("token signed with another secret", "forged", "bad_signature"),
    ],
)
def test_upload_without_valid_token_fails_with_401(auth_endpoint, secret, tmp_path, what, headers, reason):
    path = tmp_path / "denied.bin"
    path.write_bytes(os.urandom(1000))
    if headers == "expired":
        headers = bearer(mint_token(secret, "alice", exp=int(time.time()) - 3600))
    elif headers == "forged":
        headers = bearer(mint_token(secrets.token_hex(32).encode(), "alice"))
    tus = client.TusClient(auth_endpoint, headers=headers)
    uploader = tus.uploader(str(path), chunk_size=MIB)
    with pytest.raises(TusCommunicationError) as failed:
        uploader.upload()
    assert failed.value.status_code == 401, f"{what}: {failed.value}"
    assert uploader.url is None, f"{what}: no upload was created"
    if reason:
        assert reason.encode() in failed.value.response_content, f"{what}: body {failed.value.response_content!r}"


def test_other_subject_cannot_resume(auth_endpoint, secret, tmp_path):
    """bob's token on alice's upload URL: tuspy's offset request gets 404; alice then resumes."""
    data = os.urandom(3 * MIB)
    path = tmp_path / "owned.bin"
    path.write_bytes(data)
    alice = bearer(mint_token(secret, "alice"))
    first = client.TusClient(auth_endpoint, headers=alice).uploader(str(path), chunk_size=MIB)
    first.upload_chunk()
    assert first.offset == MIB
    url = first.url

    bob = client.TusClient(auth_endpoint, headers=bearer(mint_token(secret, "bob")))
    with pytest.raises(TusCommunicationError) as failed:
        bob.uploader(str(path), url=url, chunk_size=MIB)
    assert failed.value.status_code == 404, str(failed.value)
    assert head(url, alice).headers["Upload-Offset"] == str(MIB), "alice's upload is untouched"

    resumed = client.TusClient(auth_endpoint, headers=alice).uploader(str(path), url=url, chunk_size=MIB)
    assert resumed.offset == MIB, "tuspy resumed at the server's offset"
    resumed.upload()
    assert_stored(url, data, alice)


def test_async_uploader_with_bearer_token(auth_endpoint, secret, tmp_path):
    import asyncio

    data = os.urandom(MIB + 3)
    path = tmp_path / "async-token.bin"
    path.write_bytes(data)
    alice = bearer(mint_token(secret, "alice"))
    uploader = client.TusClient(auth_endpoint, headers=alice).async_uploader(str(path), chunk_size=512 * 1024)
    asyncio.run(asyncio.wait_for(uploader.upload(), TEST_TIMEOUT - 10))
    assert_stored(uploader.url, data, alice)

    denied = client.TusClient(auth_endpoint).async_uploader(str(path), chunk_size=512 * 1024)
    with pytest.raises(TusCommunicationError) as failed:
        asyncio.run(asyncio.wait_for(denied.upload(), TEST_TIMEOUT - 10))
    assert failed.value.status_code == 401
