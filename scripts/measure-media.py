#!/usr/bin/env python3
"""Media step throughput and memory: uploads N 12-megapixel JPEGs (4000 x 3000, EXIF with
orientation 6 and GPS) to a release tus-server with `--thumbnails 256,1024 --strip-metadata`,
waits until every one is `clean`, and reports images per second, the time per step from
`/metrics`, and the server's peak RSS (VmHWM); then uploads PNG "bombs" (50 000 x 50 000 in a
few KiB) and reports what they did to the peak.

Run with the clients' venv (it has Pillow and requests), after `cargo build --release -p tus-server`:
    conformance-tests/clients/.venv/bin/python scripts/measure-media.py [N] [extra tus-server flags...]
Everything listens on 127.0.0.1; the upload directory is a temporary one, removed at the end.
"""

import io
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 200
EXTRA = sys.argv[2:]


def photo():
    """A 4000 x 3000 JPEG with noise over gradients (about what a phone photo weighs)."""
    w, h = 4000, 3000
    noise = Image.effect_noise((w, h), 24)
    grad_x = Image.linear_gradient("L").resize((w, h))
    grad_y = grad_x.rotate(90, expand=False).resize((w, h))
    img = Image.merge("RGB", (Image.blend(noise, grad_x, 0.6), Image.blend(noise, grad_y, 0.6), noise))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def png_bomb(side=50_000, rows=64):
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(b"\0" * (side + 1)) for _ in range(rows)) + deflate.flush()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def create_with_upload(endpoint, data, filetype):
    res = requests.post(
        endpoint,
        data=data,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Metadata": "filetype " + __import__("base64").b64encode(filetype.encode()).decode(),
        },
        timeout=120,
    )
    assert res.status_code == 201, res.text
    return res.headers["Location"]


def state(url):
    return requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=30).headers.get("Upload-State")


def wait_all(urls, timeout=1800):
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending:
        pending = [u for u in pending if state(u) in (None, "processing")]
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} uploads still processing")
        time.sleep(0.2)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])


def step_seconds(metrics):
    out = {}
    for step in ("thumbnails", "strip", "store"):
        total = re.search(rf'tus_media_step_seconds_sum{{step="{step}"}} ([0-9.e+-]+)', metrics)
        count = re.search(rf'tus_media_step_seconds_count{{step="{step}"}} ([0-9]+)', metrics)
        if total and count and int(count.group(1)):
            out[step] = float(total.group(1)) / int(count.group(1))
    return out


def main():
    binary = REPO / "target/release/tus-server"
    if not binary.is_file():
        raise SystemExit("build it first: cargo build --release -p tus-server")
    work = tempfile.mkdtemp(prefix="measure-media-")
    args = [str(binary), "--host", "127.0.0.1", "--port", "0", "--upload-dir", work + "/data"]
    args += ["--thumbnails", "256,1024", "--strip-metadata"] + EXTRA
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        endpoint = line.rsplit(" ", 1)[1].strip()
        origin = endpoint.split("/files")[0]
        data = photo()
        print(f"{COUNT} JPEGs of {len(data) / 2**20:.1f} MiB, 4000x3000 (12 MP), orientation 6; flags {' '.join(args[7:])}")
        idle = status_kib(proc.pid, "VmRSS")
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            urls = list(pool.map(lambda _: create_with_upload(endpoint, data, "image/jpeg"), range(COUNT)))
        uploaded = time.monotonic()
        wait_all(urls)
        done = time.monotonic()
        metrics = requests.get(origin + "/metrics", timeout=30).text
        processed = re.search(r"tus_media_images_total (\d+)", metrics)
        peak = status_kib(proc.pid, "VmHWM")
        print(f"uploaded in {uploaded - started:.1f} s; all clean after {done - started:.1f} s: "
              f"{COUNT / (done - started):.2f} images/s ({processed.group(1) if processed else '?'} processed)")
        print("per image: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in step_seconds(metrics).items()))
        print(f"RSS idle {idle / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB")

        before = status_kib(proc.pid, "VmHWM")
        bomb = png_bomb()
        t = time.monotonic()
        bombs = [create_with_upload(endpoint, bomb, "image/png") for _ in range(10)]
        wait_all(bombs)
        after = status_kib(proc.pid, "VmHWM")
        skipped = re.findall(r'tus_media_skipped_total{reason="([a-z_]+)"} (\d+)', requests.get(origin + "/metrics").text)
        states = {state(u) for u in bombs}
        print(f"10 PNG bombs of {len(bomb) / 1024:.0f} KiB claiming 50000x50000: states {states}, "
              f"all done in {time.monotonic() - t:.2f} s, skipped {skipped}, "
              f"peak RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB, now {status_kib(proc.pid, 'VmRSS') / 1024:.0f} MiB")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    threading.stack_size(1 << 20)
    main()
