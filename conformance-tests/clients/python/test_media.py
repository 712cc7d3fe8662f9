"""The media step (`--thumbnails`, `--strip-metadata`) against a spawned tus-server, with real
images made here by Pillow and uploaded with tuspy; checked over HTTP (HEAD, GET) and, for the
images, with Pillow's decoders and EXIF reader.

Runs on whichever store TUS_SERVER_ARGS selects (the filesystem, or S3 on moto in CI's second
pass); see test_tuspy.py for the server fixture.
"""

import io
import os
import re
import socket
import struct
import time
import zlib

import pytest
import requests
from PIL import Image, ImageOps, PngImagePlugin
from tusclient import client

# `bounded` is test_tuspy's autouse time limit: imported, it applies to these tests too.
from test_tuspy import HTTP_TIMEOUT, SERVER_PIDS, bounded, head, tus_server, wait_for_verdict  # noqa: F401

SIZES = (256, 1024)
MEDIA_FLAGS = ["--thumbnails", ",".join(map(str, SIZES)), "--strip-metadata"]
ON_S3 = "--s3-bucket" in os.environ.get("TUS_SERVER_ARGS", "")
GPS_IFD, EXIF_IFD, ORIENTATION, BODY_SERIAL = 0x8825, 0x8769, 0x0112, 0xA431


@pytest.fixture(scope="module")
def media():
    """A tus-server with the media step (thumbnails 256 and 1024, JPEG; stripped copies)."""
    with tus_server("media", MEDIA_FLAGS) as url:
        yield url


# ---- images made here -------------------------------------------------------------------------


def quadrants(width, height, mode="RGB"):
    """An image whose four quadrants are red, green, blue and white (in stored orientation), so
    any rotation or flip is visible in a thumbnail."""
    img = Image.new(mode, (width, height))
    colours = {"RGB": [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]}
    colours["RGBA"] = [c + (255,) for c in colours["RGB"]]
    w, h = width // 2, height // 2
    for (x, y), colour in zip([(0, 0), (w, 0), (0, h), (w, h)], colours[mode]):
        img.paste(colour, (x, y, x + w if x == 0 else width, y + h if y == 0 else height))
    return img


def camera_exif(orientation):
    """EXIF as a phone writes it: orientation, make, a body serial number and a GPS position."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "TestCam"
    exif.get_ifd(EXIF_IFD)[BODY_SERIAL] = "SN-123456"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    return exif


def encode(img, fmt, **params):
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg_with_gps(width=1600, height=1200, orientation=6):
    return encode(quadrants(width, height), "JPEG", quality=92, exif=camera_exif(orientation))


def png_with_text(width=640, height=480):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_text("Comment", "taken at home", zip=True)
    info.add_itxt("Description", "GPS 52.5, 13.4", lang="en")
    return encode(quadrants(width, height, "RGBA"), "PNG", pnginfo=info)


def webp_with_exif(width=800, height=600):
    return encode(quadrants(width, height), "WEBP", lossless=True, exif=camera_exif(1))


def gif_with_comment(width=300, height=200):
    img = quadrants(width, height).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return encode(img, "GIF", comment=b"secret location: 52.5N 13.4E")


def png_bomb(side=50_000, rows=64):
    """A PNG whose header claims side × side pixels (2.5 gigapixels for 50 000), with the first
    rows of zeros: a few kilobytes that would decode into gigabytes."""
    deflate = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    idat = b"".join(deflate.compress(row) for _ in range(rows)) + deflate.flush()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ---- helpers ------------------------------------------------------------------------------------


def upload(endpoint, data, filetype, filename="image"):
    """Uploads `data` with tuspy (256 KiB chunks) and returns the upload's URL."""
    uploader = client.TusClient(endpoint).uploader(
        file_stream=io.BytesIO(data),
        chunk_size=256 * 1024,
        metadata={"filename": filename, "filetype": filetype},
    )
    uploader.upload()
    return uploader.url


def derivatives_of(res):
    return [d.strip() for d in res.headers.get("Upload-Derivatives", "").split(",") if d.strip()]


def get(url):
    """GET, following a redirect to S3 (signed downloads on the S3 store)."""
    return requests.get(url, timeout=HTTP_TIMEOUT)


def decoded(data):
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_same_pixels(a, b):
    """The two files decode to identical pixels (so the copy was not re-encoded)."""
    x, y = decoded(a), decoded(b)
    assert (x.size, x.mode) == (y.size, y.mode)
    assert x.tobytes() == y.tobytes(), "pixels differ"


def colour_at(img, fx, fy):
    return img.convert("RGB").getpixel((int(img.width * fx), int(img.height * fy)))


def assert_looks_like(thumb, original):
    """Each quadrant of `thumb` has the colour of the same quadrant of `original` as displayed
    (its EXIF orientation applied)."""
    shown = ImageOps.exif_transpose(decoded(original))
    for fx, fy in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]:
        want, got = colour_at(shown, fx, fy), colour_at(thumb, fx, fy)
        assert all(abs(w - g) < 40 for w, g in zip(want, got)), f"at {fx},{fy}: {got} != {want}"


def expected_size(width, height, side):
    scale = min(1.0, side / max(width, height))
    return round(width * scale), round(height * scale)


def peak_rss_kib(endpoint):
    with open(f"/proc/{SERVER_PIDS[endpoint]}/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])


# ---- thumbnails and stripped copies --------------------------------------------------------------


def test_jpeg_with_gps_and_orientation(media):
    original = jpeg_with_gps(1600, 1200, orientation=6)
    url = upload(media, original, "image/jpeg", "phone.jpg")
    res = wait_for_verdict(url)
    assert res.headers["Upload-State"] == "clean"
    assert derivatives_of(res) == ["thumbnails/256", "thumbnails/1024", "stripped"]

    # The original is served untouched, EXIF and all.
    got = get(url)
    assert got.status_code == 200 and got.content == original

    # Orientation 6: stored 1600 × 1200, shown 1200 × 1600; thumbnails keep the shown aspect.
    for side in SIZES:
        thumb = get(f"{url}/thumbnails/{side}")
        assert thumb.status_code == 200, thumb.text
        assert thumb.headers["Content-Type"] == "image/jpeg"
        img = decoded(thumb.content)
        assert img.format == "JPEG"
        assert img.size == expected_size(1200, 1600, side)
        # The rotation is in the pixels, and no EXIF is left to rotate them again.
        assert img.getexif().get(ORIENTATION, 1) == 1
        assert_looks_like(img, original)

    stripped = get(f"{url}/stripped")
    assert stripped.status_code == 200 and stripped.headers["Content-Type"] == "image/jpeg"
    exif = decoded(stripped.content).getexif()
    assert GPS_IFD not in exif and not exif.get_ifd(GPS_IFD), "GPS position survived"
    assert BODY_SERIAL not in exif.get_ifd(EXIF_IFD), "camera serial survived"
    assert 0x010F not in exif, "camera make survived"
    assert exif.get(ORIENTATION) == 6, "orientation lost: the stripped copy would show sideways"
    assert_same_pixels(stripped.content, original)
    assert len(stripped.content) < len(original)


def test_png_text_chunks_are_stripped(media):
    original = png_with_text(640, 480)
    assert decoded(original).text, "the test image has no text chunks"
    url = upload(media, original, "image/png", "drawing.png")
    res = wait_for_verdict(url)
    assert res.headers["Upload-State"] == "clean"
    stripped = get(f"{url}/stripped")
    assert stripped.status_code == 200 and stripped.headers["Content-Type"] == "image/png"
    img = decoded(stripped.content)
    assert img.text == {}, f"text chunks survived: {img.text}"
    assert_same_pixels(stripped.content, original)
    thumb = decoded(get(f"{url}/thumbnails/256").content)
    assert thumb.size == (256, 192)
    assert_looks_like(thumb, original)
    # Never upscaled: the 1024 thumbnail of a 640 × 480 image is 640 × 480.
    assert decoded(get(f"{url}/thumbnails/1024").content).size == (640, 480)
    assert get(url).content == original


def test_webp_exif_is_stripped(media):
    original = webp_with_exif(800, 600)
    assert GPS_IFD in decoded(original).getexif(), "the test image has no GPS"
    url = upload(media, original, "image/webp", "photo.webp")
    assert wait_for_verdict(url).headers["Upload-State"] == "clean"
    stripped = get(f"{url}/stripped")
    assert stripped.status_code == 200 and stripped.headers["Content-Type"] == "image/webp"
    assert not decoded(stripped.content).getexif(), "EXIF survived"
    assert_same_pixels(stripped.content, original)
    assert decoded(get(f"{url}/thumbnails/256").content).size == (256, 192)


def test_gif_comment_is_stripped(media):
    original = gif_with_comment(300, 200)
    assert decoded(original).info.get("comment"), "the test image has no comment"
    url = upload(media, original, "image/gif", "anim.gif")
    assert wait_for_verdict(url).headers["Upload-State"] == "clean"
    stripped = get(f"{url}/stripped")
    assert stripped.status_code == 200 and stripped.headers["Content-Type"] == "image/gif"
    assert "comment" not in decoded(stripped.content).info, "comment survived"
    assert_same_pixels(stripped.content, original)
    thumb = decoded(get(f"{url}/thumbnails/256").content)
    assert thumb.size == (256, 171)
    assert_looks_like(thumb, original)


def test_webp_thumbnails():
    with tus_server("media-webp", ["--thumbnails", "128", "--thumbnail-format", "webp"]) as endpoint:
        original = png_with_text(400, 300)
        url = upload(endpoint, original, "image/png")
        res = wait_for_verdict(url)
        assert derivatives_of(res) == ["thumbnails/128"], "only what was asked for"
        thumb = get(f"{url}/thumbnails/128")
        assert thumb.headers["Content-Type"] == "image/webp"
        img = decoded(thumb.content)
        assert (img.format, img.size, img.mode) == ("WEBP", (128, 96), "RGBA")
        assert get(f"{url}/stripped").status_code == 404


def test_not_an_image_gets_no_derivatives(media):
    url = upload(media, b"just some text, nothing to see\n" * 100, "text/plain", "notes.txt")
    res = wait_for_verdict(url)
    assert res.headers["Upload-State"] == "clean"
    assert "Upload-Derivatives" not in res.headers
    assert get(f"{url}/thumbnails/256").status_code == 404


# ---- hostile images: the server stays up, its memory bounded, the verdict untouched -------------


def test_bomb_truncated_and_fake_images_leave_the_server_standing(media):
    baseline = peak_rss_kib(media)
    bomb = png_bomb(50_000)
    assert len(bomb) < 1 << 20
    truncated = jpeg_with_gps(1600, 1200)[:20_000]
    cases = [
        # Clean, but no derivatives: the header alone is over the pixel limit.
        ("bomb.png", bomb, "image/png", "clean"),
        # Clean (its type is right), no derivatives: it does not decode.
        ("cut.jpg", truncated, "image/jpeg", "clean"),
        # Rejected by the content check before the media step sees it.
        ("fake.png", b"<html><script>alert(1)</script></html>" * 50, "image/png", "rejected"),
    ]
    for name, data, filetype, state in cases:
        url = upload(media, data, filetype, name)
        res = wait_for_verdict(url)
        assert res.headers["Upload-State"] == state, name
        assert "Upload-Derivatives" not in res.headers, name
        assert get(f"{url}/thumbnails/256").status_code in (403, 404), name
    # Still serving, and the bomb never became gigabytes.
    assert head(url).status_code == 200
    peak = peak_rss_kib(media)
    assert peak < 256 * 1024, f"peak RSS {peak} KiB"
    assert peak - baseline < 128 * 1024, f"peak RSS grew from {baseline} to {peak} KiB"


# ---- lifecycle -----------------------------------------------------------------------------------


def test_termination_removes_derivatives(media):
    url = upload(media, png_with_text(300, 300), "image/png")
    assert derivatives_of(wait_for_verdict(url)) == ["thumbnails/256", "thumbnails/1024", "stripped"]
    assert get(f"{url}/stripped").status_code == 200
    res = requests.delete(url, headers={"Tus-Resumable": "1.0.0"}, timeout=HTTP_TIMEOUT)
    assert res.status_code == 204
    for name in ["stripped", "thumbnails/256"]:
        assert get(f"{url}/{name}").status_code in (404, 410)


def stored_derivatives(upload_dir, upload_id):
    """The names of the derivative files the store holds for `upload_id`: the files in
    `<upload dir>/<id>.derived/`, or on S3 (moto, which takes unsigned requests) the objects
    under `<prefix><id>.derived/`."""
    if not ON_S3:
        derived = upload_dir / f"{upload_id}.derived"
        return sorted(p.name for p in derived.iterdir()) if derived.exists() else []
    args = os.environ["TUS_SERVER_ARGS"].split()
    endpoint, bucket = args[args.index("--s3-endpoint") + 1], args[args.index("--s3-bucket") + 1]
    res = requests.get(f"{endpoint}/{bucket}", params={"list-type": "2", "prefix": ""}, timeout=HTTP_TIMEOUT)
    res.raise_for_status()
    marker = f"{upload_id}.derived/"
    keys = re.findall(r"<Key>([^<]*)</Key>", res.text)
    return sorted(k.split(marker, 1)[1] for k in keys if marker in k)


def test_termination_removes_the_stored_derivatives(tmp_path):
    with tus_server("media-stored", MEDIA_FLAGS, upload_dir=str(tmp_path)) as endpoint:
        url = upload(endpoint, png_with_text(200, 100), "image/png")
        wait_for_verdict(url)
        upload_id = url.rstrip("/").rsplit("/", 1)[1]
        assert stored_derivatives(tmp_path, upload_id) == ["stripped", "thumbnail-1024", "thumbnail-256"]
        requests.delete(url, headers={"Tus-Resumable": "1.0.0"}, timeout=HTTP_TIMEOUT)
        assert stored_derivatives(tmp_path, upload_id) == []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_restart_finishes_the_media_step(tmp_path):
    """An upload still `processing` when the server stops (here: its scanner is down, so the
    verdict never comes) gets its derivatives from the next server."""
    dead_clamd = f"tcp://127.0.0.1:{free_port()}"
    original = jpeg_with_gps(800, 600, orientation=1)
    with tus_server("media-restart-1", MEDIA_FLAGS + ["--clamd-address", dead_clamd], str(tmp_path)) as endpoint:
        url = upload(endpoint, original, "image/jpeg")
        time.sleep(0.5)
        res = head(url)
        assert res.headers["Upload-State"] == "processing"
        assert "Upload-Derivatives" not in res.headers
        path = url.split("/", 3)[3]
    with tus_server("media-restart-2", MEDIA_FLAGS, str(tmp_path)) as endpoint:
        url = f"{endpoint.split('/files')[0]}/{path}"
        res = wait_for_verdict(url)
        assert res.headers["Upload-State"] == "clean"
        assert derivatives_of(res) == ["thumbnails/256", "thumbnails/1024", "stripped"]
        assert decoded(get(f"{url}/thumbnails/256").content).size == (256, 192)
        assert get(url).content == original
