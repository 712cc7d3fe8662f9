"""tuspy against a spawned tus-server, checked over HTTP only (HEAD, GET).

Run in the venv that scripts/test-all.sh makes: `.venv/bin/python -m pytest python/`.
The server binary is `TUS_SERVER_BIN` or `<repo>/target/debug/tus-server`; `TUS_SERVER_ARGS`
(whitespace-separated) adds flags, e.g. to select the S3 store.
"""

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import requests
import tusclient.request
from tusclient import client
from tusclient.exceptions import TusUploadFailed

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


@pytest.fixture(scope="module")
def endpoint():
    """A tus-server on 127.0.0.1 with a fresh upload dir; yields its endpoint URL."""
    binary = Path(os.environ.get("TUS_SERVER_BIN") or REPO / "target/debug/tus-server")
    if not binary.is_file():
        pytest.fail(f"missing tus-server binary {binary}: run `cargo build -p tus-server` or set TUS_SERVER_BIN")
    upload_dir = tempfile.mkdtemp(prefix="tuspy-")
    logs = REPO / "conformance-tests/artifacts/logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / "tuspy.log", "wb")
    args = [str(binary), "--host", "127.0.0.1", "--port", "0", "--upload-dir", upload_dir]
    args += os.environ.get("TUS_SERVER_ARGS", "").split()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(20)
    try:
        prefix = "tus-server listening on "
        if not lines or not lines[0].startswith(prefix):
            pytest.fail(f"tus-server did not start (stdout {lines!r}, log {logs / 'tuspy.log'})")
        url = lines[0][len(prefix):].strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(upload_dir, ignore_errors=True)


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


def head(url):
    return requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=HTTP_TIMEOUT)


def assert_stored(url, data):
    res = head(url)
    assert res.status_code == 200
    assert res.headers["Upload-Offset"] == str(len(data))
    assert res.headers["Upload-Length"] == str(len(data))
    got = requests.get(url, timeout=HTTP_TIMEOUT)
    assert got.status_code == 200
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
