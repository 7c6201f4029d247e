"""A job's image files are written after its record: the call waits for the record (and the
charge), not for hashing and writing megabytes. Until the files land, this process's reads wait
for them, another process reads "not stored yet", and a large image is hashed and written once
even when the job store and the cache get it at the same moment."""

from __future__ import annotations

import asyncio
import functools
import os
import threading

import pytest

from imagegen import Image, ImageResult, Job, _blobs, _jobstore, _models
from imagegen._blobs import BlobDir
from imagegen._jobstore import SqliteJobStore
from imagegen.testing import synth_image

#: Long enough never to run out on a loaded machine; a test that needs it has already failed.
NEVER_S = 30


def job(seed: int = 1) -> Job:
    res = ImageResult(images=[Image.from_bytes(synth_image(40, 30, "png", seed=seed))],
                      provider="p", model="m", job_id=f"p:job{seed}")
    return Job(id=res.job_id, provider="p", native_id=f"job{seed}", status="succeeded", result=res)


@pytest.fixture
def files_only(monkeypatch):
    monkeypatch.setattr(_jobstore, "INLINE_MAX_BYTES", 0)


@pytest.fixture
def held_image_writes(monkeypatch):
    """Image files of job stores wait for the returned event before they are written."""
    go = threading.Event()
    real_put = BlobDir.put

    def put(self: BlobDir, sha: str, data: bytes) -> None:
        go.wait(NEVER_S)
        real_put(self, sha, data)

    monkeypatch.setattr(BlobDir, "put", put)
    yield go
    go.set()


async def test_the_record_is_committed_while_the_images_are_still_being_written(tmp_path, files_only,
                                                                                held_image_writes):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    stored = job()
    record = store.asubmit_put(stored)
    done, _ = await asyncio.wait([record], timeout=NEVER_S)
    assert record in done and record.result() is None
    elsewhere = SqliteJobStore(tmp_path / "jobs.sqlite3")  # another process's view: the record, no images yet
    assert elsewhere._connect().execute("SELECT status FROM jobs WHERE id = ?", (stored.id,)).fetchone() == (
        "succeeded",)
    with pytest.raises(ValueError, match="not stored"):
        elsewhere.get(stored.id)
    held_image_writes.set()
    await store.aflush()
    assert elsewhere.get(stored.id).result.images[0].data == stored.result.images[0].data
    store.close()


async def test_this_process_reads_a_job_whose_images_are_being_written_in_full(tmp_path, files_only,
                                                                               held_image_writes):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    stored = job(2)
    await store.asubmit_put(stored)
    threading.Timer(0.2, held_image_writes.set).start()
    loaded = await asyncio.to_thread(store.get, stored.id)  # waits for the files, does not say "not stored"
    assert loaded.result.images[0].data == stored.result.images[0].data
    store.close()


def test_a_record_whose_images_never_landed_is_a_clear_error(tmp_path, files_only):
    """The process that made the call ended between the record and its images."""
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    stored = job(3)
    store._writer.call(functools.partial(store._write_record, stored))
    with pytest.raises(ValueError, match="images are not stored"):
        SqliteJobStore(tmp_path / "jobs.sqlite3").get(stored.id)


def test_small_images_are_written_with_the_record(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    stored = job(4)
    assert len(stored.result.images[0].data) <= _jobstore.INLINE_MAX_BYTES

    async def put() -> None:
        await store.asubmit_put(stored)

    asyncio.run(put())
    assert SqliteJobStore(tmp_path / "jobs.sqlite3").get(stored.id).result.images[0].data == \
        stored.result.images[0].data


def test_a_large_image_is_hashed_once_when_two_threads_ask_together(monkeypatch):
    image = Image(data=os.urandom(_models._SHARED_HASH_BYTES), mime_type="image/png", width=1, height=1)
    started, go, hashed = threading.Event(), threading.Event(), []
    real_sha256 = _models.hashlib.sha256

    def slow_sha256(data: bytes):  # type: ignore[no-untyped-def]
        hashed.append(1)
        started.set()
        go.wait(NEVER_S)
        return real_sha256(data)

    monkeypatch.setattr(_models.hashlib, "sha256", slow_sha256)
    digests: list[str] = []
    first = threading.Thread(target=lambda: digests.append(image.sha256))
    first.start()
    started.wait(NEVER_S)
    second = threading.Thread(target=lambda: digests.append(image.sha256))
    second.start()
    go.set()
    first.join()
    second.join()
    assert hashed == [1]
    assert digests == [real_sha256(image.data).hexdigest()] * 2


def test_two_stores_given_the_same_image_at_once_write_it_once(tmp_path, monkeypatch):
    jobs, cache = BlobDir(tmp_path / "jobs"), BlobDir(tmp_path / "cache")
    jobs.siblings.append(cache)
    cache.siblings.append(jobs)
    data = synth_image(16, 16, "png", seed=6)
    sha = Image.from_bytes(data).sha256
    opened, arrived, go = threading.Event(), threading.Event(), threading.Event()
    writes: list[str] = []
    real_open = open

    def slow_open(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        writes.append(str(path))
        if len(writes) == 1:
            opened.set()
            go.wait(NEVER_S)
        else:
            arrived.set()  # the second store writes the bytes again
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(_blobs, "open", slow_open, raising=False)
    first = threading.Thread(target=jobs.put, args=(sha, data))
    first.start()
    opened.wait(NEVER_S)
    busy = _blobs._WRITING.get(sha)
    if busy is not None:  # the second store waits for the first's file
        real_wait = busy.wait
        busy.wait = lambda timeout=None: (arrived.set(), real_wait(timeout))[1]  # type: ignore[method-assign]
    second = threading.Thread(target=cache.put, args=(sha, data))
    second.start()
    arrived.wait(NEVER_S)
    go.set()
    first.join()
    second.join()
    assert len(writes) == 1
    assert os.path.samefile(jobs.path(sha), cache.path(sha))


async def test_a_claim_completes_only_once_the_jobs_images_are_stored(tmp_path, files_only, held_image_writes):
    """Whoever claims the key next finds the job whole, images included, not "not stored yet"."""
    from imagegen import ImageRequest

    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    assert store.claim("order-7", "fp", "me").acquired
    stored = job(7).model_copy(update={"request": ImageRequest.build(prompt="a fox", idempotency_key="order-7")})
    running, busy = threading.Event(), threading.Event()
    store._writer.submit(lambda conn: (running.set(), busy.wait(NEVER_S)))  # what follows lands in one batch
    running.wait(NEVER_S)
    queued, real_put = threading.Event(), store._writer._put

    def put(item):  # type: ignore[no-untyped-def]
        real_put(item)
        if store._writer._queue.qsize() >= 3:  # record, image files, claim
            queued.set()

    store._writer._put = put  # type: ignore[method-assign]
    record = store.asubmit_put(stored)  # the record, then (later) its image, which is held
    completing = asyncio.ensure_future(asyncio.to_thread(store.complete_claim, "order-7", "me", [stored.id]))
    await asyncio.to_thread(queued.wait, NEVER_S)
    busy.set()
    await record
    done, _ = await asyncio.wait([completing], timeout=0.5)
    assert not done  # the claim waits behind the job's image write
    held_image_writes.set()
    await completing
    other = SqliteJobStore(tmp_path / "jobs.sqlite3")
    assert other.claim("order-7", "fp", "next").acquired
    assert other.find("order-7").result.images[0].data == stored.result.images[0].data
    store.close()


async def test_a_read_waits_for_pending_images_a_bounded_while(tmp_path, files_only, held_image_writes, monkeypatch):
    """Reads run on the event loop: images stuck behind another process's lock read as "not
    stored (yet)" after a short wait, rather than holding the loop for the lock's whole timeout."""
    monkeypatch.setattr(_jobstore, "PENDING_IMAGES_WAIT_S", 0.05)
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    stored = job(8)
    await store.asubmit_put(stored)
    with pytest.raises(ValueError, match="not stored"):
        store.get(stored.id)
    held_image_writes.set()
    await store.aflush()
    assert store.get(stored.id).result.images[0].data == stored.result.images[0].data
    store.close()
