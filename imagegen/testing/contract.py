"""The provider contract, as tests: what every provider must do, checked against its emulator.

Subclass ``ProviderContract`` in your plugin's test suite, say which provider and how to
start its emulator, and pytest runs every check on it::

    from imagegen.testing.contract import ProviderContract

    from acme_imagegen import AcmeProvider
    from acme_imagegen.emulator import create_emulator


    class TestAcmeContract(ProviderContract):
        provider = AcmeProvider

        def make_emulator(self, *, faults, api_keys):
            return create_emulator(faults=faults, api_keys=api_keys)

Every built-in provider passes it (``tests/contract``), and so does the worked example in
``examples/imagegen-acme``. The checks, by group:

- declaration: name, settings, models with prices that name their source, entry point;
- requests: ``generate`` returns decoded images routed back to the instance, ``estimate`` and
  an unsupported setting send nothing;
- errors: the emulator's 429 (with a hint), 5xx and a wrong key become the typed errors the
  router acts on, and no error shows the key; an answer cut or unreadable after its 2xx status
  is paid once (``AnswerLostError``, or sent again for free where the vendor takes idempotency
  keys);
- job lifecycle: ``submit`` gives a job id that ``status``/``wait`` finish from, and a second
  client on the same job store finds the result.

The emulator must be built on ``imagegen.testing.Emulator`` (its fault plan drives the error
checks) and accept ``api_keys`` (keys it takes; others are refused as the vendor would).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .. import (
    AnswerLostError,
    AuthenticationError,
    Client,
    ImageResult,
    ProviderUnavailableError,
    RateLimitError,
    UnsupportedFeatureError,
)
from ..provider import Provider, ProviderSettings
from . import Emulator, Fault, FaultPlan, LoopbackServer, serve

__all__ = ["ProviderContract"]

#: The key the emulator accepts during the checks, and one it must refuse.
GOOD_KEY = "imagegen-contract-key"
WRONG_KEY = "imagegen-contract-wrong-key"


class ProviderContract:
    """Base class of one provider's contract tests; subclass it as ``Test<Name>Contract``."""

    #: The provider class under test (found through its entry point, like any plugin).
    provider: ClassVar[type[Provider]]
    #: More ``[providers.<name>]`` settings for the checks' client (``base_url`` and ``api_key``
    #: are set by the contract).
    settings: ClassVar[dict[str, Any]] = {}
    #: A prompt the emulator answers with an image.
    prompt: ClassVar[str] = "a red fox in the snow"

    def make_emulator(self, *, faults: FaultPlan, api_keys: list[str]) -> Emulator:
        """A fresh emulator of the provider's API with this fault plan, taking only ``api_keys``."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_emulator(faults=, api_keys=)")

    # -- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def emulator(self) -> Emulator:
        return self.make_emulator(faults=FaultPlan(), api_keys=[GOOD_KEY])

    @pytest.fixture
    def server(self, emulator: Emulator) -> Iterator[LoopbackServer]:
        with serve(emulator) as server:
            yield server

    def config(self, server: LoopbackServer, *, api_key: str = GOOD_KEY, jobs: Path | None = None,
               attempts: int = 2) -> dict[str, Any]:
        """The checks' client config: one provider instance named like the plugin, fast polls and
        retries, no cache, and a job store in memory (or the SQLite file ``jobs``)."""
        table = {"poll_schedule": [0.01, 1.5, 0.05], **self.settings, "base_url": server.base_url,
                 "api_key": api_key}
        store = {"backend": "sqlite", "path": str(jobs)} if jobs else {"backend": "memory"}
        return {"providers": {self.provider.name: table}, "jobs": store, "cache": {"backend": "off"},
                "retry": {"max_attempts": attempts, "initial_backoff_s": 0.001, "max_backoff_s": 0.01}}

    def generate(self, server: LoopbackServer, **config: Any) -> ImageResult:
        with Client(self.config(server, **config)) as client:
            return client.generate(self.prompt, provider=self.provider.name)

    # -- declaration ------------------------------------------------------------------------------

    def test_declares_a_name_settings_and_priced_models(self) -> None:
        cls = self.provider
        assert isinstance(cls.name, str) and cls.name and cls.name == cls.name.strip()
        assert issubclass(cls.Settings, ProviderSettings)
        specs = cls.models()
        assert specs, f"{cls.__name__}.models() is empty"
        assert len({s.id for s in specs}) == len(specs), "model ids repeat"
        assert cls.default_model() in {s.id for s in specs}
        for spec in specs:
            assert spec.max_images_per_call >= 1, spec.id
            if spec.price is not None:
                assert spec.price.source and spec.price.as_of, f"{spec.id}: a price names its source and date"

    def test_is_found_through_its_entry_point(self, server: LoopbackServer) -> None:
        with Client(self.config(server)) as client:
            assert client.providers()[self.provider.name] is self.provider
            assert isinstance(client.provider(self.provider.name), self.provider)

    # -- requests ---------------------------------------------------------------------------------

    def test_generate_returns_decoded_images_routed_to_the_instance(self, emulator: Emulator,
                                                                     server: LoopbackServer) -> None:
        result = self.generate(server)
        name = self.provider.name
        assert result.images, "a generate call returned no image"
        for image in result.images:
            assert image.mime_type.startswith("image/") and image.width > 0 and image.height > 0
            assert image.data[:4] and len(image.data) > 32
        assert result.provider == name and result.model in {s.id for s in self.provider.models()}
        assert result.job_id is not None and result.job_id.startswith(f"{name}:")
        assert result.cost.usd is None or result.cost.usd >= 0
        assert emulator.counters.calls.get("total", 0) >= 1

    def test_estimate_and_a_refused_setting_send_nothing(self, emulator: Emulator, server: LoopbackServer) -> None:
        with Client(self.config(server)) as client:
            cost = client.estimate(self.prompt, provider=self.provider.name)
            assert cost.estimated and (cost.usd is None or cost.usd >= 0)
            with pytest.raises(UnsupportedFeatureError):
                client.generate(self.prompt, provider=self.provider.name, options={"imagegen_contract_x": 1})
        assert emulator.counters.calls.get("total", 0) == 0

    # -- errors -----------------------------------------------------------------------------------

    def test_a_429_with_a_hint_is_retried_after_it(self, emulator: Emulator, server: LoopbackServer) -> None:
        emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=0.01))
        assert self.generate(server).images
        assert emulator.counters.faults == {"rate_limit": 1}

    def test_a_429_that_persists_is_a_rate_limit_error_with_the_hint(self, emulator: Emulator,
                                                                     server: LoopbackServer) -> None:
        emulator.faults = FaultPlan.random({"rate_limit": 1.0}, retry_after=0.01)
        with pytest.raises(RateLimitError) as info:
            self.generate(server, attempts=1)
        assert info.value.retryable and info.value.retry_after == pytest.approx(0.01, abs=1.0)

    def test_server_errors_are_unavailable(self, emulator: Emulator, server: LoopbackServer) -> None:
        emulator.faults = FaultPlan.random({"server_error": 1.0})
        with pytest.raises(ProviderUnavailableError) as info:
            self.generate(server, attempts=1)
        assert info.value.retryable and info.value.provider == self.provider.name

    def test_an_answer_lost_after_its_2xx_is_paid_once(self, emulator: Emulator, server: LoopbackServer,
                                                        tmp_path: Path) -> None:
        """A connection cut after the 2xx status line, or a body that cannot be read: the vendor
        made (and billed) the answer. A provider whose billed calls cannot be sent again for free
        (``bills_unreadable_answers``, the default) raises ``AnswerLostError`` with a job id and
        the charge is in the ledger once; one whose vendor takes idempotency keys sends it again,
        and is billed once."""
        for kind in ("drop", "malformed"):
            emulator.faults = FaultPlan.script(kind)
            emulator.counters.reset()
            ledger = {"backend": "sqlite", "path": str(tmp_path / f"ledger-{kind}.sqlite3")}
            with Client({**self.config(server), "ledger": ledger}) as client:
                try:
                    client.generate(self.prompt, provider=self.provider.name)
                except AnswerLostError as exc:
                    assert self.provider.bills_unreadable_answers, f"{kind}: resent for free, yet reported lost"
                    assert not exc.retryable and exc.job_id and exc.job_id in exc.message
                else:
                    assert not self.provider.bills_unreadable_answers, f"a {kind} after the 2xx was sent again"
                assert client.ledger is not None
                kept = client.ledger
            # Read once the client is closed: a charge write that outlived the call's short wait (a
            # loaded machine) is journalled with a warning and still lands, at the latest on close.
            recorded = [e for e in kept.entries() if not e.cached]
            assert len(emulator.counters.charges) == len(recorded) == 1, (kind, emulator.counters.charges, recorded)

    def test_a_wrong_key_is_an_authentication_error_that_does_not_show_it(self, emulator: Emulator,
                                                                         server: LoopbackServer) -> None:
        with pytest.raises(AuthenticationError) as info:
            self.generate(server, api_key=WRONG_KEY)
        assert not info.value.retryable
        assert WRONG_KEY not in str(info.value) and WRONG_KEY not in repr(info.value.to_dict())
        assert emulator.counters.calls.get("total", 0) == 1  # never retried

    # -- job lifecycle ----------------------------------------------------------------------------

    def test_submit_then_status_and_wait_from_another_client(self, server: LoopbackServer, tmp_path: Path) -> None:
        jobs = tmp_path / "jobs.sqlite3"
        name = self.provider.name
        with Client(self.config(server, jobs=jobs)) as first:
            job = first.submit(self.prompt, provider=name)
            assert job.id.startswith(f"{name}:") and job.provider == name and job.native_id
            assert job.status in ("queued", "running", "succeeded")
        with Client(self.config(server, jobs=jobs)) as second:  # another process, the same store
            result = second.wait(job.id, timeout=30)
            assert result.images and result.job_id == job.id
            finished = second.status(job.id)
            assert finished.status == "succeeded" and finished.result is not None and finished.result.images
