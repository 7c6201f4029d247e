"""The per-call path made cheaper keeps its meaning: image facts read from headers, cookies
kept by the cheaper jar, writes awaited through the writer's own asyncio futures."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import threading
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage

from imagegen import InvalidImageError
from imagegen._http import keep_cookies_cheaply
from imagegen._imaging import MAX_PIXELS, _read_header, probe_image
from imagegen._sqlite import Writer, connect

# -- image facts from the header ----------------------------------------------------------


def encoded(fmt: str, mode: str, size: tuple[int, int], **options: object) -> bytes:
    out = io.BytesIO()
    PILImage.new(mode, size).save(out, fmt, **options)
    return out.getvalue()


CASES = [("PNG", "RGB", {}), ("PNG", "RGBA", {}), ("PNG", "P", {}), ("PNG", "L", {}),
         ("JPEG", "RGB", {}), ("JPEG", "L", {}), ("JPEG", "RGB", {"progressive": True}),
         ("JPEG", "RGB", {"exif": b"Exif\x00\x00" + bytes(300)})]


@pytest.mark.parametrize(("fmt", "mode", "options"), CASES)
@pytest.mark.parametrize("size", [(1, 1), (17, 33), (1024, 768), (300, 4000)])
def test_the_header_gives_what_pillow_reads(fmt, mode, options, size):
    data = encoded(fmt, mode, size, **options)
    fast = _read_header(data)
    assert fast is not None  # read from the header, not by Pillow
    with PILImage.open(io.BytesIO(data)) as image:
        assert (fast.width, fast.height) == image.size
    assert fast.mime_type == f"image/{fmt.lower()}"


@pytest.mark.parametrize("data", [b"\xff\xd8\xff" + bytes(40), b"\x89PNG\r\n\x1a\n" + bytes(8), b"GIF89a" + bytes(20)])
def test_anything_unusual_is_left_to_pillow(data):
    assert _read_header(data) is None
    with pytest.raises(InvalidImageError):
        probe_image(data)


def test_every_cut_of_a_jpeg_is_read_or_left_to_pillow():
    data = encoded("JPEG", "RGB", (64, 48), exif=b"Exif\x00\x00" + bytes(100))
    for cut in range(len(data)):
        info = _read_header(data[:cut])
        assert info is None or (info.width, info.height) == (64, 48)


def test_a_header_claiming_too_many_pixels_is_refused():
    data = bytearray(encoded("PNG", "RGB", (1, 1)))
    data[16:24] = (MAX_PIXELS + 1).to_bytes(4, "big") + (1).to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR's checksum, kept valid
    with pytest.raises(InvalidImageError, match="decompression bomb|pixels"):
        probe_image(bytes(data))


# -- cookies -------------------------------------------------------------------------------


async def cookie_app(scope, receive, send):
    await receive()
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/set":
        headers.append((b"set-cookie", b"session=abc; Path=/"))
    sent = dict(scope["headers"]).get(b"cookie", b"")
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": sent})


async def test_the_cheaper_jar_still_keeps_and_sends_cookies():
    async with keep_cookies_cheaply(httpx.AsyncClient(transport=httpx.ASGITransport(cookie_app),
                                                      base_url="http://api.test")) as client:
        assert (await client.get("/plain")).content == b""
        assert (await client.get("/set")).content == b""
        assert (await client.get("/later")).content == b"session=abc"
        assert client.cookies["session"] == "abc"


# -- the writer's asyncio futures ---------------------------------------------------------


def make_writer(path: Path) -> Writer:
    db = connect(path)
    db.execute("CREATE TABLE t (n INTEGER UNIQUE)")
    db.close()
    return Writer(lambda: connect(path), name="test")


async def test_asubmit_resolves_on_the_loop_after_the_commit(tmp_path):
    writer = make_writer(tmp_path / "w.sqlite3")
    gate = threading.Event()
    writer.submit(lambda db: gate.wait(5))  # the next ones share one commit
    futures = [writer.asubmit(lambda db, n=n: db.execute("INSERT INTO t VALUES (?)", (n,)).rowcount)
               for n in (1, 2, 2)]
    gate.set()
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert outcomes[:2] == [1, 1]
    assert type(outcomes[2]).__name__ == "IntegrityError"
    db = connect(tmp_path / "w.sqlite3")
    assert db.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (2,)]
    db.close()
    writer.close()


async def test_a_given_up_asubmit_is_still_written(tmp_path):
    writer = make_writer(tmp_path / "w.sqlite3")
    gate = threading.Event()
    writer.submit(lambda db: gate.wait(5))
    future = writer.asubmit(lambda db: db.execute("INSERT INTO t VALUES (9)"))
    future.cancel()
    gate.set()
    writer.flush()
    db = connect(tmp_path / "w.sqlite3")
    assert db.execute("SELECT n FROM t").fetchall() == [(9,)]
    db.close()
    writer.close()


# -- a reservation whose caller was cancelled ------------------------------------------------


async def test_a_call_cancelled_while_its_budget_is_reserved_leaves_no_reservation(tmp_path):
    """The reservation is queued on the ledger's writer and made even after its caller is
    cancelled; it is then released, so it never counts against the budget."""
    from imagegen import AsyncClient

    path = tmp_path / "ledger.sqlite3"
    config = {"providers": {"gemini": {"api_key": "k", "base_url": "http://127.0.0.1:9"}},
              "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
              "ledger": {"backend": "sqlite", "path": str(path)}, "budget": {"daily_usd": 100.0}}
    async with AsyncClient(config) as client:
        assert client.ledger is not None
        client.ledger.period_totals()  # the file and its tables exist
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        call = asyncio.ensure_future(client.generate("a fox", provider="gemini"))
        for _ in range(50):  # the call runs up to its reservation, queued on the writer
            await asyncio.sleep(0)
        assert client._background
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        holder.execute("COMMIT")
        holder.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT state FROM ledger").fetchall() == []
    assert [usd for (usd,) in db.execute("SELECT usd FROM ledger_totals")] in ([], [0.0, 0.0, 0.0])
    db.close()
