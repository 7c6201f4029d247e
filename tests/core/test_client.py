"""The client's own logic, through a real installed plugin (tinyplug) — sync and async alike."""

import time

import pytest

from imagegen import (
    AllProvidersFailedError,
    AsyncClient,
    Client,
    ContentPolicyError,
    InvalidRequestError,
    InvalidResponseError,
    JobNotFoundError,
    JobTimeoutError,
    RateLimitError,
    UnknownProviderError,
    UnsupportedFeatureError,
)

MEMORY = {"jobs": {"backend": "memory"}, "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05}}


@pytest.fixture
def client(tinyplug):
    with Client(MEMORY) as c:
        yield c


def test_n_is_split_into_calls_the_model_accepts(client):
    result = client.generate("five", provider="tinyplug", n=5)
    assert len(result.images) == 5
    assert len(result.metadata["job_ids"]) == 3  # 2 + 2 + 1
    assert result.cost.usd == pytest.approx(0.075) and result.cost.estimated is False


def test_estimate_uses_the_price_book_without_calling(client):
    cost = client.estimate("x", provider="tinyplug", size="M", n=3)
    assert cost.usd == pytest.approx(0.06) and cost.estimated is True


@pytest.mark.parametrize("kwargs,error,match", [
    ({"size": "XL"}, UnsupportedFeatureError, "use one of S, M"),
    ({"aspect_ratio": "16:9"}, UnsupportedFeatureError, "use one of 1:1, 2:1"),
    ({"output_format": "gif"}, UnsupportedFeatureError, "output format"),
    ({"options": {"sharpness": 3}}, UnsupportedFeatureError, "accepts: shade"),
    ({"webhook_url": "https://example.com/h"}, UnsupportedFeatureError, "poll with status"),
])
def test_unsupported_settings_name_what_is_supported(client, kwargs, error, match):
    with pytest.raises(error, match=match):
        client.generate("x", provider="tinyplug", **kwargs)


def test_edit_checks_reference_count_and_mask(client, tmp_path):
    image = client.generate("src", provider="tinyplug").images[0]
    path = image.save(tmp_path / "src.png")
    with pytest.raises(UnsupportedFeatureError, match="at most 2"):
        client.edit("x", images=[path, path, path], provider="tinyplug")
    with pytest.raises(UnsupportedFeatureError, match="describe the region"):
        client.edit("x", images=[path], mask=path, provider="tinyplug")
    assert len(client.edit("x", images=[path], provider="tinyplug").images) == 1


def test_provider_model_id_and_unknown_names(client):
    assert client.generate("x", provider="tinyplug/tiny-1").model == "tiny-1"
    with pytest.raises(UnknownProviderError, match="known models: tiny-1"):
        client.generate("x", provider="tinyplug/tiny-9")
    with pytest.raises(UnknownProviderError, match="not a configured provider"):
        client.generate("x", provider="ghost")


def test_no_provider_and_no_default(client):
    with pytest.raises(UnknownProviderError, match="no default configured"):
        client.generate("x")


def test_an_unreadable_answer_read_in_parsing_is_invalid_response(client):
    with pytest.raises(InvalidResponseError, match="tinyplug answer") as info:
        client.generate("[[unreadable]]", provider="tinyplug")
    assert isinstance(info.value.__cause__, KeyError) and info.value.retryable


def test_submit_status_wait_through_the_job_store(tinyplug, tmp_path):
    store = {"jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.db")}}
    with Client(store) as first:
        job = first.submit("later", provider="tinyplug")
        assert job.id.startswith("tinyplug:") and job.status == "succeeded"
    with Client(store) as second:  # another client, same store: no provider call needed
        again = second.status(job.id)
        assert again.status == "succeeded" and again.request.prompt == "later"
        assert again.result.images[0].data == job.result.images[0].data
        assert second.wait(job.id).images[0].width == 32
        assert [j.id for j in second.jobs.recent()] == [job.id]


def test_polled_job_finishes_through_status_and_wait(client):
    job = client.submit("[[slow]]", provider="tinyplug")
    assert job.status == "running"
    assert client.status(job.id).status == "running"  # first poll: still running
    result = client.wait(job.id, timeout=5)
    assert result.images and client.status(job.id).status == "succeeded"


def test_generate_polls_a_running_job_to_the_end(client):
    assert client.generate("[[slow]]", provider="tinyplug").images


def test_a_job_that_never_ends_hits_the_deadline(client):
    with pytest.raises(JobTimeoutError) as info:
        client.generate("[[never]]", provider="tinyplug", timeout=0.3)
    assert info.value.job_id.startswith("tinyplug:")
    assert client.status(info.value.job_id).status == "running"  # recorded: it can be resumed


def test_status_of_unknown_jobs(client):
    with pytest.raises(JobNotFoundError):
        client.status("tinyplug:nope")
    with pytest.raises(JobNotFoundError, match="no provider 'ghost'"):
        client.status("ghost:1")
    with pytest.raises(InvalidRequestError, match="<provider>:<native id>"):
        client.status("no-colon")


def test_submit_refuses_n_above_one_call(client):
    with pytest.raises(InvalidRequestError, match="use generate"):
        client.submit("x", provider="tinyplug", n=3)


def test_generate_records_the_job(client):
    result = client.generate("recorded", provider="tinyplug")
    job = client.status(result.job_id)
    assert job.status == "succeeded" and job.request.prompt == "recorded"


ROUTE = {**MEMORY, "providers": {"primary": {"plugin": "tinyplug"}, "backup": {"plugin": "tinyplug"}},
         "routes": {"safe": {"chain": ["primary", "backup"]}, "strict": {"chain": ["primary", "backup"],
                                                                          "fallback_on": []}},
         "default": "safe"}


def test_route_falls_back_and_records_attempts(tinyplug):
    with Client(ROUTE) as client:
        ok = client.generate("plain")
        assert [a.outcome for a in ok.attempts] == ["succeeded"] and ok.provider == "primary"
        # Both share one plugin, so both refuse: every attempt is on the error.
        with pytest.raises(AllProvidersFailedError) as info:
            client.generate("[[unavailable]]")
        # Each provider is retried (3 tries by default) before the route moves on.
        assert [(a.provider, a.error_type) for a in info.value.attempts] == [
            ("primary", "ProviderUnavailableError")] * 3 + [("backup", "ProviderUnavailableError")] * 3
        assert [a.wait_s > 0 for a in info.value.attempts] == [True, True, False] * 2
        assert info.value.retryable


def test_route_skips_a_provider_that_cannot_serve(tinyplug):
    config = {**ROUTE, "providers": {"primary": {"plugin": "tinyplug"}, "backup": {"plugin": "tinyplug"}}}
    with Client(config) as client:
        with pytest.raises(AllProvidersFailedError) as info:
            client.generate("x", size="XL")
        assert {a.outcome for a in info.value.attempts} == {"skipped"}


def test_route_fallback_on_is_configurable(tinyplug):
    with Client(ROUTE) as client:
        with pytest.raises(AllProvidersFailedError):
            client.generate("[[refuse]]")  # content policy falls through by default
        with pytest.raises(ContentPolicyError) as info:
            client.generate("[[refuse]]", provider="strict")
        assert [a.provider for a in info.value.attempts] == ["primary"]


def test_rate_limit_keeps_the_hint(client):
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:  # a 2 s hint past the 1 s deadline: no wait, no retry
        client.generate("[[rate_limit]]", provider="tinyplug", timeout=1)
    assert time.monotonic() - started < 2.0  # the hint was not waited out
    assert info.value.retry_after == 2.0 and info.value.retryable
    assert info.value.to_dict()["retry_after"] == 2.0


async def test_async_client_has_the_same_behaviour(tinyplug):
    async with AsyncClient(MEMORY) as client:
        result = await client.generate("async", provider="tinyplug", n=3, seed=4)
        assert len(result.images) == 3
        assert (await client.estimate("x", provider="tinyplug")).usd == pytest.approx(0.01)
        job = await client.submit("x", provider="tinyplug")
        assert (await client.status(job.id)).status == "succeeded"
        with pytest.raises(UnsupportedFeatureError):
            await client.generate("x", provider="tinyplug", size="XL")


async def test_sync_client_works_inside_a_running_loop(tinyplug):
    with Client(MEMORY) as client:  # a blocking call from async code must not deadlock
        assert client.generate("x", provider="tinyplug").images


async def test_generate_many_runs_at_most_concurrency_at_once_in_input_order(tinyplug):
    # The batch's scheduling alone (the calls themselves are stood in for): ``concurrency``
    # in flight at most and at least while items remain, started in input order, every
    # outcome in its input slot, a failure kept in its slot, ``on_result`` told of each.
    import asyncio

    async with AsyncClient(MEMORY) as client:
        live, peak, started = [0], [0], []

        async def run(request):
            started.append(request.prompt)
            live[0] += 1
            peak[0] = max(peak[0], live[0])
            for _ in range(int(request.prompt[1:]) % 4):
                await asyncio.sleep(0)
            live[0] -= 1
            if request.prompt == "p3":
                raise InvalidRequestError("p3 refused")
            return request.prompt

        client._run = run
        told = []
        outcomes = await client.generate_many([f"p{i}" for i in range(11)], concurrency=3,
                                              on_result=lambda i, o: told.append(i))
    assert peak == [3] and started == [f"p{i}" for i in range(11)]
    assert [o if isinstance(o, str) else type(o).__name__ for o in outcomes] == \
        [f"p{i}" if i != 3 else "InvalidRequestError" for i in range(11)]
    assert sorted(told) == list(range(11))
