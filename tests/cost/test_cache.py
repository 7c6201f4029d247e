"""The result cache: keys, every backend (Redis against a real server), TTL, eviction, coalescing."""

import asyncio
import json
import subprocess
import sys
import time

import pytest

from imagegen import AsyncClient, Client, ImageRequest, _cache
from imagegen._cache import DiskCache, MemoryCache, RedisCache, cache_key

from .conftest import provider

GENERATE = "POST /{version}/models/{model}:generateContent"


def calls(server) -> int:
    return sum(v for k, v in server.emulator.counters.calls.items() if k.endswith(":generateContent"))


def test_key_covers_everything_that_changes_the_output(tmp_path):
    base = ImageRequest.build(prompt="a fox", size="1K", aspect_ratio="16:9")
    key = cache_key(base, provider="gemini", model="m")
    assert key == cache_key(base.model_copy(update={"timeout": 5, "cache": False, "idempotency_key": "x"}),
                            provider="gemini", model="m")
    for other in (base.model_copy(update={"prompt": "a fox!"}), base.model_copy(update={"size": "2K"}),
                  base.model_copy(update={"seed": 1}), base.model_copy(update={"options": {"a": 1}}),
                  base.model_copy(update={"n": 2})):
        assert cache_key(other, provider="gemini", model="m") != key
    assert cache_key(base, provider="gemini", model="m2") != key
    assert cache_key(base, provider="nb2", model="m") != key


def test_key_uses_input_image_content_not_path(tmp_path):
    from imagegen.testing import synth_image

    one, two = tmp_path / "a.png", tmp_path / "b.png"
    one.write_bytes(synth_image(32, 32, seed=1))
    two.write_bytes(synth_image(32, 32, seed=1))
    different = tmp_path / "c.png"
    different.write_bytes(synth_image(32, 32, seed=2))
    keys = {cache_key(ImageRequest.build(prompt="x", operation="edit", images=[p]), provider="g", model="m")
            for p in (one, two)}
    assert len(keys) == 1
    assert cache_key(ImageRequest.build(prompt="x", operation="edit", images=[different]),
                     provider="g", model="m") not in keys


@pytest.mark.parametrize("backend", ["memory", "disk", "redis"])
def test_hits_skip_the_provider_and_cost_nothing(gemini, backend, redis_url, tmp_path):
    cache = {"backend": backend, "path": str(tmp_path / "cache"), "url": redis_url if backend == "redis" else None}
    if backend == "redis":
        Client({"cache": cache, "jobs": {"backend": "memory"}}).cache.clear()
    config = {"providers": {"gemini": provider(gemini, "gemini")}, "cache": cache, "jobs": {"backend": "memory"}}
    with Client(config) as client:
        first = client.generate("a cached fox", provider="gemini")
        second = client.generate("a cached fox", provider="gemini")
        fresh = client.generate("a cached fox", provider="gemini", cache=False)
        client.flush()  # the first result went into the backend in the background
        third = client.generate("a cached fox", provider="gemini")
        stats = client.cache.stats()
    assert calls(gemini) == 2
    assert not first.cached and first.cost.usd > 0
    assert second.cached and second.cost.usd == 0.0 and second.cost.estimated is False
    assert [i.data for i in second.images] == [i.data for i in first.images]
    assert (second.images[0].width, second.images[0].mime_type) == (first.images[0].width, first.images[0].mime_type)
    assert not fresh.cached and third.cached
    assert stats["hits"] >= 1 and stats["entries"] >= 1


def test_config_rule_bypasses_the_cache(gemini, tmp_path):
    config = {"providers": {"gemini": provider(gemini, "gemini")}, "jobs": {"backend": "memory"},
              "cache": {"backend": "memory", "bypass": ["gemini"]}}
    with Client(config) as client:
        client.generate("fresh every time", provider="gemini")
        assert not client.generate("fresh every time", provider="gemini").cached
    assert calls(gemini) == 2


def result_of_size(nbytes: int, seed: int):
    from imagegen import Image, ImageResult
    from imagegen.testing import synth_image

    data = synth_image(64, 64, "png", seed=seed)
    image = Image.from_bytes(data)
    return ImageResult(images=[image], provider="p", model="m"), len(data)


@pytest.mark.parametrize("make", [
    lambda tmp, ttl, cap: MemoryCache(ttl_s=ttl, max_bytes=cap),
    lambda tmp, ttl, cap: DiskCache(tmp / "c", ttl_s=ttl, max_bytes=cap),
], ids=["memory", "disk"])
def test_ttl_expires_entries(tmp_path, make):
    cache = make(tmp_path, 0.2, None)
    result, _ = result_of_size(0, 1)
    cache.put("k", result)
    cache.put("gone", result)
    assert cache.get("k") is not None
    time.sleep(0.3)
    assert cache.prune() == 2
    assert cache.get("k") is None and cache.stats()["entries"] == 0


@pytest.mark.parametrize("make", [
    lambda tmp, cap: MemoryCache(max_bytes=cap),
    lambda tmp, cap: DiskCache(tmp / "c", max_bytes=cap),
], ids=["memory", "disk"])
def test_size_cap_evicts_least_recently_used(tmp_path, make):
    results = [result_of_size(0, seed) for seed in range(3)]
    cap = results[0][1] + results[1][1] + results[2][1] - 1  # room for two of the three
    cache = make(tmp_path, cap)
    cache.put("a", results[0][0])
    cache.put("b", results[1][0])
    assert cache.get("a") is not None  # a is now more recently used than b
    time.sleep(0.01)
    cache.put("c", results[2][0])
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_disk_cache_blobs_are_content_addressed_and_cleared(tmp_path, monkeypatch):
    monkeypatch.setattr(_cache, "INLINE_MAX_BYTES", 0)  # (a test image is small enough for the index)
    cache = DiskCache(tmp_path / "c")
    result, _ = result_of_size(0, 7)
    cache.put("k1", result)
    cache.put("k2", result)
    assert len(list((tmp_path / "c" / "blobs").glob("*/*"))) == 1
    assert cache.clear() == 2
    assert not list((tmp_path / "c" / "blobs").glob("*/*"))


WRITER = """
import sys
from imagegen._cache import DiskCache
from imagegen import Image, ImageResult
from imagegen.testing import synth_image
cache = DiskCache(sys.argv[1])
for i in range(40):
    image = Image.from_bytes(synth_image(32, 32, seed=int(sys.argv[2]) * 100 + i))
    cache.put(f"{sys.argv[2]}-{i}", ImageResult(images=[image], provider="p", model="m"))
    assert cache.get(f"{sys.argv[2]}-{i}") is not None
"""


def test_disk_cache_is_safe_with_several_processes(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "c"), str(n)]) for n in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert DiskCache(tmp_path / "c").stats()["entries"] == 120


def test_redis_stores_each_image_once(redis_url):
    cache = RedisCache(redis_url, ttl_s=60, prefix=f"t{time.time_ns()}:")
    result, _ = result_of_size(0, 3)
    cache.put("one", result)
    cache.put("two", result)
    images = list(cache._redis.scan_iter(cache.prefix + "img:*"))
    assert len(images) == 1 and 0 < cache._redis.ttl(images[0]) <= 60
    assert cache.get("two").images[0].data == result.images[0].data
    assert cache.clear() == 2


async def test_ten_concurrent_identical_calls_make_one_upstream_call(gemini):
    config = {"providers": {"gemini": provider(gemini, "gemini")}, "cache": {"backend": "memory"},
              "jobs": {"backend": "memory"}}
    async with AsyncClient(config) as client:
        results = await asyncio.gather(*(client.generate("the same fox", provider="gemini") for _ in range(10)))
    assert calls(gemini) == 1
    assert sum(not r.cached for r in results) == 1
    assert len({r.images[0].sha256 for r in results}) == 1
    assert len(gemini.emulator.counters.charges) == 1


def test_cache_cli(gemini, tmp_path):
    cfg = tmp_path / "imagegen.toml"
    cfg.write_text(f'[providers.gemini]\nbase_url = "{gemini.base_url}"\napi_key = "env:GEMINI_API_KEY"\n'
                   f'[cache]\npath = "{tmp_path / "cache"}"\n[jobs]\nbackend = "memory"\n')
    env = {**__import__("os").environ, "GEMINI_API_KEY": "k"}

    def run(*args):
        out = subprocess.run([sys.executable, "-m", "imagegen", *args, "--json", "--config", str(cfg)],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr + out.stdout
        return json.loads(out.stdout)

    run("generate", "a fox", "--provider", "gemini", "--out", str(tmp_path / "o"))
    assert run("generate", "a fox", "--provider", "gemini", "--out", str(tmp_path / "o"))["cached"] is True
    assert run("cache", "stats")["entries"] == 1
    assert run("cache", "prune") == {"pruned": 0}
    assert run("cache", "clear") == {"cleared": 1}
    assert run("cache", "stats")["entries"] == 0


def test_small_images_are_kept_in_the_index_not_as_files(tmp_path):
    cache = DiskCache(tmp_path / "c")
    result, _ = result_of_size(0, 8)
    assert len(result.images[0].data) <= _cache.INLINE_MAX_BYTES
    cache.put("k1", result)
    cache.put("k2", result)
    assert not list((tmp_path / "c" / "blobs").glob("*/*"))
    assert DiskCache(tmp_path / "c").get("k1").images[0].data == result.images[0].data
    assert cache.clear() == 2
    assert cache._db().execute("SELECT COUNT(*) FROM inline_images").fetchone() == (0,)


def test_a_small_image_that_no_longer_matches_its_hash_is_a_miss(tmp_path):
    cache = DiskCache(tmp_path / "c")
    result, _ = result_of_size(0, 9)
    cache.put("k", result)
    cache._writer.call(lambda db: db.execute("UPDATE inline_images SET data = ?", (b"not that image",)))
    assert cache.get("k") is None


def test_a_cache_written_before_images_went_into_the_index_still_hits(tmp_path, monkeypatch):
    old_image, _ = result_of_size(0, 10)
    with monkeypatch.context() as old_version:
        old_version.setattr(_cache, "INLINE_MAX_BYTES", 0)  # every image a file, as before
        old = DiskCache(tmp_path / "c")
        old.put("old", old_image)
        old.close()
    db = __import__("sqlite3").connect(tmp_path / "c" / "index.sqlite3")
    db.execute("DROP TABLE inline_images")  # the layout before it
    db.commit()
    db.close()
    cache = DiskCache(tmp_path / "c")
    assert cache.get("old").images[0].data == old_image.images[0].data
    new_image, _ = result_of_size(0, 11)
    cache.put("new", new_image)
    assert cache.get("new").images[0].data == new_image.images[0].data
    assert cache.prune() == 0 and cache.get("old") is not None  # its file is still named: kept
    assert cache.clear() == 2 and not list((tmp_path / "c" / "blobs").glob("*/*"))
