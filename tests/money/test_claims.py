"""The idempotency claim primitive, on every job-store backend (Redis is a real server)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from imagegen import IdempotencyConflictError, ImageRequest
from imagegen._claims import request_fingerprint
from imagegen._jobstore import MemoryJobStore, RedisJobStore, SqliteJobStore


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "memory":
        return MemoryJobStore()
    if request.param == "sqlite":
        return SqliteJobStore(tmp_path / "jobs.sqlite3")
    return RedisJobStore(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex}:")


def test_one_owner_holds_a_key_and_the_others_see_it_held(store):
    first = store.claim("k", "fp", "a", lease_s=30)
    again = store.claim("k", "fp", "a", lease_s=30)
    other = store.claim("k", "fp", "b", lease_s=30)
    assert first.acquired and again.acquired
    assert other.state == "held" and 0 < other.lease_left_s <= 30


def test_a_key_is_bound_to_its_fingerprint_even_after_completion(store):
    store.claim("k", "fp1", "a")
    with pytest.raises(IdempotencyConflictError) as info:
        store.claim("k", "fp2", "b")
    assert info.value.idempotency_key == "k"
    store.complete_claim("k", "a", ["p:1"])
    with pytest.raises(IdempotencyConflictError):
        store.claim("k", "fp2", "a")


def test_completion_frees_the_key_and_names_the_jobs(store):
    store.claim("k", "fp", "a")
    store.complete_claim("k", "a", ["p:1", "p:2"])
    later = store.claim("k", "fp", "b")
    assert later.acquired and later.job_ids == ("p:1", "p:2")


def test_release_frees_the_key_without_naming_jobs(store):
    store.claim("k", "fp", "a")
    store.release_claim("k", "a")
    later = store.claim("k", "fp", "b")
    assert later.acquired and later.job_ids == ()


def test_only_the_holder_renews_completes_or_releases(store):
    store.claim("k", "fp", "a")
    assert store.renew_claim("k", "a") is True
    assert store.renew_claim("k", "b") is False
    store.release_claim("k", "b")
    store.complete_claim("k", "b", ["x:1"])
    assert store.claim("k", "fp", "c").state == "held"


def test_a_crashed_holders_lease_runs_out(store):
    store.claim("k", "fp", "crashed", lease_s=0.05)
    time.sleep(0.1)  # the store's own clock (Redis: the server's) must pass the lease
    taken = store.claim("k", "fp", "b")
    assert taken.acquired
    assert store.renew_claim("k", "crashed") is False


def test_concurrent_claims_let_exactly_one_owner_in(store):
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        outcomes.append(store.claim("k", "fp", owner).state)

    threads = [threading.Thread(target=contend, args=(f"o{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["acquired"] + ["held"] * 7


def test_prune_forgets_old_finished_claims_but_not_held_ones(store):
    store.claim("done", "fp", "a")
    store.complete_claim("done", "a", ["p:1"])
    store.claim("live", "fp", "a", lease_s=60)
    time.sleep(0.02)
    store.prune(0)
    assert store.claim("done", "other-fp", "b").acquired  # forgotten: the key is free again
    assert store.claim("live", "fp", "b").state == "held"


def test_the_fingerprint_is_the_request_not_how_it_is_called():
    base = ImageRequest(prompt="a fox", size="1K")
    assert request_fingerprint(base) == request_fingerprint(
        base.model_copy(update={"timeout": 5, "cache": False, "idempotency_key": "x"}))
    for change in ({"prompt": "a cat"}, {"size": "2K"}, {"provider": "nb2"}, {"n": 2}, {"options": {"a": 1}}):
        assert request_fingerprint(base) != request_fingerprint(base.model_copy(update=change)), change


def test_a_dead_holder_is_taken_over_without_waiting_out_its_lease(store):
    import subprocess
    import sys

    from imagegen._claims import holder_is_dead, new_owner

    dead = subprocess.run([sys.executable, "-c", "from imagegen._claims import new_owner; print(new_owner())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    store.claim("k", "fp", dead, lease_s=600)
    held = store.claim("k", "fp", "b")
    assert held.state == "held" and held.holder == dead and holder_is_dead(held.holder)
    assert not holder_is_dead(new_owner())  # this very process
    assert not holder_is_dead("another-host/1/x")  # nothing can be known of another machine
    assert store.claim("k", "fp", "b", take_over="someone-else").state == "held"
    assert store.claim("k", "fp", "b", take_over=dead).acquired
