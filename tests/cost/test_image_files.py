"""Image files kept by the disk cache and the SQLite job store: written once, linked, each store
deleting only its own name; small images stay in the job store's rows; older job stores (images
as SQLite blobs) still read.

The test images are small, so tests of files set the inline limit to 0."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC

import pytest

from imagegen import AsyncClient, Image, ImageResult, Job, _cache, _jobstore
from imagegen._blobs import BlobDir
from imagegen._jobstore import SqliteJobStore
from imagegen.testing import synth_image

from .conftest import provider


def result(seed: int = 1) -> ImageResult:
    return ImageResult(images=[Image.from_bytes(synth_image(40, 30, "png", seed=seed)),
                               Image.from_bytes(synth_image(20, 10, "jpeg", seed=seed))],
                       provider="p", model="m", job_id=f"p:job{seed}")


def job(res: ImageResult) -> Job:
    return Job(id=res.job_id, provider="p", native_id=res.job_id.split(":")[1], status="succeeded", result=res)


def test_a_file_another_store_holds_is_linked_not_written(tmp_path):
    first, second = BlobDir(tmp_path / "a"), BlobDir(tmp_path / "b")
    second.siblings.append(first)
    data = synth_image(16, 16, "png", seed=2)
    sha = Image.from_bytes(data).sha256
    first.put(sha, data)
    second.put(sha, data)
    assert os.path.samefile(first.path(sha), second.path(sha))
    first.path(sha).unlink()
    assert second.read(sha) == data  # the other name keeps the bytes


def test_without_the_file_in_a_sibling_it_is_written(tmp_path):
    lonely = BlobDir(tmp_path / "b")
    lonely.siblings.append(BlobDir(tmp_path / "a"))
    data = synth_image(16, 16, "png", seed=3)
    sha = Image.from_bytes(data).sha256
    lonely.put(sha, data)
    lonely.put(sha, b"not written again")
    assert lonely.read(sha) == data and not list((tmp_path / "a").glob("*/*"))


@pytest.fixture
def files_only(monkeypatch):
    monkeypatch.setattr(_jobstore, "INLINE_MAX_BYTES", 0)
    monkeypatch.setattr(_cache, "INLINE_MAX_BYTES", 0)


def test_job_store_round_trips_images_as_files(tmp_path, files_only):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    res = result()
    store.put(job(res))
    store.put(job(res))  # put again as a job moves on: still one file per image
    loaded = store.get(res.job_id)
    assert [i.data for i in loaded.result.images] == [i.data for i in res.images]
    assert [(i.width, i.mime_type) for i in loaded.result.images] == [(40, "image/png"), (20, "image/jpeg")]
    assert len(list((tmp_path / "jobs-images").glob("*/*"))) == 2
    assert SqliteJobStore(tmp_path / "jobs.sqlite3").get(res.job_id).result.images[0].data == res.images[0].data


def test_small_images_stay_in_the_row(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    res = result()
    assert all(len(i.data) <= _jobstore.INLINE_MAX_BYTES for i in res.images)
    store.put(job(res))
    assert not list((tmp_path / "jobs-images").glob("*/*"))
    assert [i.data for i in store.get(res.job_id).result.images] == [i.data for i in res.images]


def test_a_missing_image_file_is_a_clear_error(tmp_path, files_only):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    res = result()
    store.put(job(res))
    store.blobs.path(res.images[1].sha256).unlink()
    with pytest.raises(ValueError, match="image file is missing"):
        store.get(res.job_id)


def test_a_store_written_with_sqlite_blobs_is_still_read(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    res = result()
    body = job(res).model_dump_json(exclude={"result": {"images": {"__all__": {"data"}}}})
    with sqlite3.connect(path) as conn:  # the layout before image files
        conn.executescript("""
            CREATE TABLE jobs (id TEXT PRIMARY KEY, provider TEXT NOT NULL, native_id TEXT NOT NULL,
                status TEXT NOT NULL, idem_key TEXT, body TEXT NOT NULL, updated_at TEXT NOT NULL);
            CREATE TABLE job_images (job_id TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
                PRIMARY KEY (job_id, idx));""")
        conn.execute("INSERT INTO jobs VALUES (?, 'p', 'job1', 'succeeded', NULL, ?, '2026-01-01')",
                     (res.job_id, body))
        conn.executemany("INSERT INTO job_images VALUES (?, ?, ?)",
                         [(res.job_id, i, img.data) for i, img in enumerate(res.images)])
    loaded = SqliteJobStore(path).get(res.job_id)
    assert [i.data for i in loaded.result.images] == [i.data for i in res.images]


async def test_a_generated_image_is_on_disk_once(gemini, tmp_path, files_only):
    config = {"providers": {"gemini": provider(gemini, "gemini")},
              "jobs": {"backend": "sqlite", "path": str(tmp_path / "data" / "jobs.sqlite3")},
              "cache": {"backend": "disk", "path": str(tmp_path / "cache")}}
    async with AsyncClient(config) as client:
        res = await client.generate("a lighthouse", provider="gemini")
        await client.flush()
        sha = res.images[0].sha256
        in_jobs = tmp_path / "data" / "jobs-images" / sha[:2] / sha
        in_cache = tmp_path / "cache" / "blobs" / sha[:2] / sha
        assert os.path.samefile(in_jobs, in_cache) and in_jobs.stat().st_nlink == 2
        assert in_jobs.read_bytes() == res.images[0].data
        # Clearing the cache leaves the job's image: status() from anywhere still has it.
        client.cache.clear()
        assert not in_cache.exists()
        assert (await client.status(res.job_id)).result.images[0].data == res.images[0].data


def test_the_content_hash_follows_the_bytes():
    image = Image.from_bytes(synth_image(8, 8, "png", seed=4))
    other = synth_image(8, 8, "png", seed=5)
    assert image.sha256 == __import__("hashlib").sha256(image.data).hexdigest()
    copy = image.model_copy(update={"data": other})
    assert copy.sha256 == __import__("hashlib").sha256(other).hexdigest() != image.sha256
    assert image == Image.model_validate_json(image.model_dump_json())  # the memo is not compared


def _aged(job_: Job, days: float, status: str = "succeeded") -> Job:
    from datetime import datetime, timedelta

    return job_.model_copy(update={"status": status,
                                   "updated_at": datetime.now(UTC) - timedelta(days=days)})


@pytest.mark.parametrize("backend", ["sqlite", "memory", "redis"])
def test_prune_forgets_old_finished_jobs_only(tmp_path, backend, redis_url, files_only):
    from imagegen._jobstore import MemoryJobStore, RedisJobStore

    store = {"sqlite": lambda: SqliteJobStore(tmp_path / "jobs.sqlite3"), "memory": MemoryJobStore,
             "redis": lambda: RedisJobStore(redis_url, prefix=f"prune-{tmp_path.name}:")}[backend]()
    old, fresh, pending = result(1), result(2), result(3)
    store.put(_aged(job(old), 40))
    store.put(_aged(job(fresh), 1))
    store.put(_aged(job(pending), 40, status="running"))
    assert store.prune(30 * 86400) == 1
    assert store.get(old.job_id) is None
    assert store.get(fresh.job_id).result.images[0].data == fresh.images[0].data
    assert store.get(pending.job_id).status == "running"  # may still be resumed
    assert store.prune(30 * 86400) == 0
    if backend == "sqlite":
        left = {p.name for p in (tmp_path / "jobs-images").glob("*/*")}
        assert left == {i.sha256 for i in fresh.images} | {i.sha256 for i in pending.images}


def test_prune_keeps_a_file_another_job_still_names(tmp_path, files_only):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    shared = result(1)
    twin = shared.model_copy(update={"job_id": "p:twin"})
    store.put(_aged(job(shared), 40))
    store.put(_aged(job(twin), 1))
    assert store.prune(30 * 86400) == 1
    assert store.get("p:twin").result.images[1].data == shared.images[1].data


def test_a_put_writes_its_files_holding_the_write_lock_a_prune_needs(tmp_path, files_only, monkeypatch):
    """A prune in another process deletes files only holding the database's write lock; a put
    writes its files holding that same lock, so no prune can remove one before the row naming
    it commits."""
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    res = result(5)
    real_put = store.blobs.put
    locked = []

    def put_and_probe(sha: str, data: bytes) -> None:
        real_put(sha, data)
        other = sqlite3.connect(tmp_path / "jobs.sqlite3", timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # what prune() starts with
            other.execute("ROLLBACK")
            locked.append(False)
        except sqlite3.OperationalError:
            locked.append(True)
        finally:
            other.close()

    monkeypatch.setattr(store.blobs, "put", put_and_probe)
    store.put(job(res))
    assert locked == [True, True]
    assert [i.data for i in store.get(res.job_id).result.images] == [i.data for i in res.images]
