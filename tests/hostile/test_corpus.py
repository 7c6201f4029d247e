"""The hostile-input corpus: requests, files, config and provider answers, one table.

Every case must end in one specific ``ImageGenError`` subclass whose message says what went
wrong; nothing else may escape. Cases that are invalid before sending must cost nothing:
the emulators (all three run for every case) count zero calls. Provider-answer cases are
injected by the emulators' fault plans, with router retries off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagegen import (
    AnswerLostError,
    Client,
    ConfigurationError,
    ImageGenError,
    InvalidImageError,
    InvalidRequestError,
    InvalidResponseError,
    JobFailedError,
    MissingCredentialsError,
    NoImageReturnedError,
    OutputUnavailableError,
    UnknownProviderError,
    UnsupportedFeatureError,
)
from imagegen.testing import Fault, FaultPlan, LatencyModel, serve

from ._corpus import PNG, bomb_png, gemini_body, inline, nb2_body, png_header, wireflow_poll

PLUGINS = {"gemini": "gemini", "nb2": "nanobanana2", "wireflow": "wireflow"}


class Env:
    def __init__(self, servers: dict[str, Any], tmp: Path) -> None:
        self.servers, self.tmp = servers, tmp

    def config(self, **extra: Any) -> dict[str, Any]:
        providers = {n: {"plugin": PLUGINS[n], "base_url": s.base_url, "api_key": f"hostile-{n}"}
                     for n, s in self.servers.items()}
        providers["nb2"]["poll_interval"] = 0.01
        providers["wireflow"].update(poll_schedule=[0.01, 1.5, 0.02], persist_workflows=False,
                                     executions_per_minute=1e6)
        return {"providers": providers, "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
                "retry": {"max_attempts": 1}, "routes": {"all": {"chain": ["gemini", "nb2", "wireflow"]}},
                **extra}

    def client(self, **extra: Any) -> Client:
        return Client(self.config(**extra))

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)

    def calls(self) -> int:
        return sum(s.emulator.counters.calls.get("total", 0) for s in self.servers.values())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from imagegen_gemini.emulator import create_emulator as gemini
    from imagegen_nanobanana2.emulator import create_emulator as nb2
    from imagegen_wireflow.emulator import create_emulator as wireflow

    none = LatencyModel.none()
    emulators = {"gemini": gemini(latency=none, image_scale=0.02), "nb2": nb2(latency=none, image_scale=0.02),
                 "wireflow": wireflow(latency=none, output_max_side=16, executions_per_minute=1e6)}
    servers = {name: serve(emulator).start() for name, emulator in emulators.items()}
    try:
        yield Env(servers, tmp_path_factory.mktemp("hostile"))
    finally:
        for server in servers.values():
            server.stop()


@dataclass
class Case:
    id: str
    run: Callable[[Env], Any]
    error: type[ImageGenError]
    says: str
    #: For provider-answer cases: (emulator, path regex, body) of the injected answer.
    answer: tuple[str, str | None, bytes] | None = None


def gen(provider: str = "gemini", prompt: str = "a red fox", **options: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        with env.client() as client:
            return client.generate(prompt, provider=provider, **options)
    return run


def edit(provider: str, make_images: Callable[[Env], Any], **options: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        with env.client() as client:
            return client.edit("make it blue", images=make_images(env), provider=provider, **options)
    return run


def with_config(change: Callable[[dict[str, Any], Env], Any], then: str = "gemini") -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        config = env.config()
        change(config, env)
        with Client(config) as client:
            return client.generate("a red fox", provider=then)
    return run


def toml(text: str) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        path = env.tmp / "hostile.toml"
        path.write_text(text)
        with Client(str(path)) as client:
            return client.generate("a red fox")
    return run


def sub(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        config = config.setdefault(key, {})
    config[last] = value


REQUESTS = [
    Case("empty prompt", gen(prompt=""), InvalidRequestError, "prompt is empty"),
    Case("blank prompt", gen(prompt=" \n\t "), InvalidRequestError, "prompt is empty"),
    Case("1 MB prompt", gen(prompt="fox " * 262_144), InvalidRequestError, "over the 32000 allowed"),
    Case("NUL in prompt", gen(prompt="a fox\x00"), InvalidRequestError, "U+0000"),
    Case("escape sequence in prompt", gen(prompt="\x1b[2Ja fox"), InvalidRequestError, "U+001B"),
    Case("DEL in prompt", gen(prompt="a fox\x7f"), InvalidRequestError, "U+007F"),
    Case("prompt is not text", gen(prompt=None), InvalidRequestError, "prompt"),  # type: ignore[arg-type]
    Case("n = 0", gen(n=0), InvalidRequestError, "n must be between 1 and 64"),
    Case("negative n", gen(n=-3), InvalidRequestError, "n must be between 1 and 64"),
    Case("huge n", gen(n=10**9), InvalidRequestError, "n must be between 1 and 64"),
    Case("n is text", gen(n="three"), InvalidRequestError, "n:"),
    Case("n is fractional", gen(n=1.5), InvalidRequestError, "n:"),
    Case("unsupported size (gemini)", gen(size="9K", model="gemini-3-pro-image"), UnsupportedFeatureError, "9K"),
    Case("unsupported size (nb2)", gen("nb2", size="9K"), UnsupportedFeatureError, "9K"),
    Case("unsupported ratio (wireflow)", gen("wireflow", aspect_ratio="7:3"), UnsupportedFeatureError, "7:3"),
    Case("ratio is nonsense", gen(aspect_ratio="wide"), UnsupportedFeatureError, "wide"),
    Case("unknown option (gemini)", gen(options={"bogus": 1}), UnsupportedFeatureError, "bogus"),
    Case("unknown option (nb2)", gen("nb2", options={"bogus": 1}), UnsupportedFeatureError, "bogus"),
    Case("unknown option (wireflow)", gen("wireflow", options={"bogus": 1}), UnsupportedFeatureError, "bogus"),
    Case("option of the wrong type", gen(options={"include_thoughts": "yes"}), InvalidRequestError,
         "include_thoughts"),
    Case("unknown request field", gen(colour="red"), InvalidRequestError, "colour"),
    Case("negative timeout", gen(timeout=-1), InvalidRequestError, "timeout must be a positive"),
    Case("zero timeout", gen(timeout=0), InvalidRequestError, "timeout must be a positive"),
    Case("seed is text", gen(seed="abc"), InvalidRequestError, "seed"),
    Case("unknown provider", gen("nope"), UnknownProviderError, "nope"),
    Case("unknown model", gen(model="gemini-99"), UnknownProviderError, "gemini-99"),
    Case("webhook URL that is not a URL", gen("nb2", webhook_url="javascript:alert(1)"), InvalidRequestError,
         "webhook_url"),
    Case("mask on a provider without masks", edit("gemini", lambda e: [PNG], mask=PNG), UnsupportedFeatureError,
         "mask"),
    Case("too many reference images", edit("nb2", lambda e: [PNG] * 40), UnsupportedFeatureError,
         "input images given"),
]

FILES = [
    Case("0-byte image", edit("nb2", lambda e: [e.file("empty.png", b"")]), InvalidImageError, "empty (0 bytes)"),
    Case("0 bytes in memory", edit("gemini", lambda e: [b""]), InvalidImageError, "empty (0 bytes)"),
    Case("text file as image", edit("nb2", lambda e: [e.file("notes.png", b"hello, not a picture")]),
         InvalidImageError, "not a readable image"),
    Case("HTML page as image", edit("gemini", lambda e: [b"<!doctype html><html></html>"]), InvalidImageError,
         "not a readable image"),
    Case("truncated PNG", edit("nb2", lambda e: [e.file("cut.png", PNG[: len(PNG) // 2])]), InvalidImageError,
         "not a readable image"),
    Case("PNG header only", edit("gemini", lambda e: [PNG[:8]]), InvalidImageError, "not a readable image"),
    Case("absurd dimensions", edit("nb2", lambda e: [png_header(100_000, 100_000)]), InvalidImageError,
         "10000000000 pixels"),
    Case("decompression bomb", edit("gemini", lambda e: [e.file("bomb.png", bomb_png())]), InvalidImageError,
         "decompression bomb"),
    Case("zero-width image", edit("nb2", lambda e: [png_header(0, 10)]), InvalidImageError, "image"),
    Case("missing file", edit("nb2", lambda e: [str(e.tmp / "nowhere.png")]), InvalidImageError, "cannot be read"),
    Case("directory as image", edit("nb2", lambda e: [str(e.tmp)]), InvalidImageError, "cannot be read"),
    Case("image of a wrong type", edit("nb2", lambda e: [12345]), InvalidImageError, "not int"),
    Case("mask that is not an image", edit("gemini", lambda e: [PNG], mask=b"nope"), InvalidImageError, "mask"),
]

CONFIG = [
    Case("unknown top-level key", with_config(lambda c, e: sub(c, "colour", "red")), ConfigurationError,
         "colour: unknown key"),
    Case("unknown provider key", with_config(lambda c, e: sub(c, "providers.gemini.api_kee", "x")),
         ConfigurationError, "api_kee: unknown key"),
    Case("unknown retry key", with_config(lambda c, e: sub(c, "retry.tries", 3)), ConfigurationError,
         "retry.tries: unknown key"),
    Case("negative max_attempts", with_config(lambda c, e: sub(c, "retry.max_attempts", -1)), ConfigurationError,
         "max_attempts"),
    Case("timeout of the wrong type", with_config(lambda c, e: sub(c, "providers.gemini.timeout", "fast")),
         ConfigurationError, "providers.gemini.timeout"),
    Case("missing secret", with_config(lambda c, e: sub(c, "providers.gemini.api_key", "env:HOSTILE_UNSET")),
         MissingCredentialsError, "HOSTILE_UNSET"),
    Case("missing secret file", with_config(lambda c, e: sub(c, "providers.nb2.api_key", "file:/nonexistent/key"),
                                            then="nb2"), MissingCredentialsError, "/nonexistent/key"),
    Case("no key at all", with_config(lambda c, e: c["providers"]["wireflow"].pop("api_key"), then="wireflow"),
         MissingCredentialsError, "WIREFLOW_API_KEY"),
    Case("unknown plugin", with_config(lambda c, e: sub(c, "providers.x.plugin", "no-such-plugin")),
         UnknownProviderError, "no-such-plugin"),
    Case("route to nowhere", with_config(lambda c, e: sub(c, "routes.bad", {"chain": ["ghost"]})),
         ConfigurationError, "ghost"),
    Case("empty route", with_config(lambda c, e: sub(c, "routes.bad", {"chain": []})), ConfigurationError,
         "routes.bad.chain"),
    Case("redis job store without a url", with_config(lambda c, e: sub(c, "jobs", {"backend": "redis"})),
         ConfigurationError, "jobs.url"),
    Case("literal secret in a file", toml('[providers.gemini]\napi_key = "AIzaLiteralKey"\n'), ConfigurationError,
         "literal secret"),
    Case("TOML syntax error", toml("[providers.gemini\nmodel = 1\n"), ConfigurationError, "cannot be read"),
    Case("default route that does not exist", toml('default = "ghost"\n'), UnknownProviderError, "ghost"),
]

GEM, NB2, WF = r":generateContent$", r"/generate$", r"/poll$"
RESPONSES = [
    Case("gemini: JSON array", gen(), InvalidResponseError, "not an object", ("gemini", GEM, b"[1, 2]")),
    Case("gemini: null", gen(), InvalidResponseError, "not an object", ("gemini", GEM, b"null")),
    Case("gemini: empty object", gen(), InvalidResponseError, "neither candidates", ("gemini", GEM, b"{}")),
    Case("gemini: candidates of the wrong type", gen(), InvalidResponseError, "candidates",
         ("gemini", GEM, b'{"candidates": "many"}')),
    Case("gemini: bad base64", gen(), InvalidResponseError, "unreadable image",
         ("gemini", GEM, gemini_body([{"inlineData": {"mimeType": "image/png", "data": "!!not base64!!"}}]))),
    Case("gemini: image bytes that are text", gen(), InvalidResponseError, "unreadable image",
         ("gemini", GEM, gemini_body([inline(b"hello")]))),
    Case("gemini: absurd dimensions", gen(), InvalidResponseError, "decompression bomb",
         ("gemini", GEM, gemini_body([inline(png_header(100_000, 100_000))]))),
    Case("gemini: wrong MIME (text/plain)", gen(), NoImageReturnedError, "returned no image",
         ("gemini", GEM, gemini_body([inline(PNG, "text/plain")]))),
    Case("gemini: parts of the wrong type", gen(), NoImageReturnedError, "returned no image",
         ("gemini", GEM, gemini_body(["a string part", 7, {"inlineData": "x"}]))),
    Case("gemini: HTML with status 200", gen(), InvalidResponseError, "",
         ("gemini", GEM, b"<html><title>Captive portal</title></html>")),
    Case("nb2: missing id", gen("nb2"), InvalidResponseError, "no job id",
         ("nb2", NB2, b'{"status": "completed"}')),
    Case("nb2: id of the wrong type", gen("nb2"), InvalidResponseError, "no job id",
         ("nb2", NB2, b'{"id": {"a": 1}, "status": "completed"}')),
    Case("nb2: status of the wrong type", gen("nb2"), InvalidResponseError, "no 'status'",
         ("nb2", NB2, b'{"id": "gen_1", "status": 5}')),
    Case("nb2: outputs of the wrong type", gen("nb2"), InvalidResponseError, "not a list",
         ("nb2", NB2, nb2_body(outputs="https://cdn.example/x.png"))),
    Case("nb2: output without url", gen("nb2"), InvalidResponseError, "no 'url'",
         ("nb2", NB2, nb2_body(outputs=[{"width": 1}]))),
    # The vendor finished (and billed) these jobs: an output URL refused or gone is the job's
    # missing output, never a reason to pay again.
    Case("nb2: output URL over plain http", gen("nb2"), OutputUnavailableError, "not https",
         ("nb2", NB2, nb2_body(outputs=[{"url": "http://cdn.example/x.png"}]))),
    Case("nb2: output URL on a private address", gen("nb2"), OutputUnavailableError, "private",
         ("nb2", NB2, nb2_body(outputs=[{"url": "https://10.0.0.5/x.png"}]))),
    Case("nb2: output URL at cloud metadata", gen("nb2"), OutputUnavailableError, "private",
         ("nb2", NB2, nb2_body(outputs=[{"url": "https://169.254.169.254/latest/meta-data/"}]))),
    Case("nb2: output URL is a file", gen("nb2"), OutputUnavailableError, "not http(s)",
         ("nb2", NB2, nb2_body(outputs=["file:///etc/passwd"]))),
    Case("nb2: failed job", gen("nb2"), JobFailedError, "boom",
         ("nb2", NB2, json.dumps({"id": "gen_1", "status": "failed", "error": "boom"}).encode())),
    Case("wireflow: execute without an execution id", gen("wireflow"), InvalidResponseError, "no execution id",
         ("wireflow", r"/execute$", b'{"status": "QUEUED"}')),
    Case("wireflow: poll without status", gen("wireflow"), InvalidResponseError, "no status",
         ("wireflow", WF, b'{"progress": 0.5}')),
    Case("wireflow: poll of the wrong type", gen("wireflow"), InvalidResponseError, "not an object",
         ("wireflow", WF, b'"COMPLETED"')),
    Case("wireflow: completed without an image", gen("wireflow"), NoImageReturnedError, "without an image URL",
         ("wireflow", WF, b'{"status": "COMPLETED"}')),
    Case("wireflow: output URL on a private address", gen("wireflow"), OutputUnavailableError, "private",
         ("wireflow", WF, wireflow_poll("https://192.168.0.10/out.png"))),
    Case("wireflow: output URL on loopback by name", gen("wireflow"), OutputUnavailableError, "private",
         ("wireflow", WF, wireflow_poll("https://localhost/out.png"))),
    Case("wireflow: output that 404s", gen("wireflow"), OutputUnavailableError, "HTTP 404",
         ("wireflow", WF, b"")),  # body filled in with the emulator's own host below
    # The first provider's 200 was billed: the route stops there rather than pay the next one.
    Case("route: every provider answers garbage", gen("all"), AnswerLostError, "billed this call",
         ("*", None, b"{}")),
]

CASES = REQUESTS + FILES + CONFIG + RESPONSES


def test_the_corpus_is_large_and_named_uniquely():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_ends_in_a_typed_error(env: Env, case: Case) -> None:
    for server in env.servers.values():
        server.emulator.counters.reset()
        server.emulator.faults = FaultPlan()
    if case.answer is not None:
        name, path, body = case.answer
        if case.id == "wireflow: output that 404s":
            body = wireflow_poll(f"{env.servers['wireflow'].base_url}/files/missing")
        for target in env.servers if name == "*" else [name]:
            env.servers[target].emulator.faults = FaultPlan.script(*[Fault("malformed", body=body)] * 20, path=path)
    try:
        case.run(env)
    except ImageGenError as exc:
        error = exc
    else:
        pytest.fail(f"{case.id}: no error was raised")
    if type(error) is AnswerLostError and case.error is InvalidResponseError:
        # A 2xx that cannot be read was billed (imagegen._answers): reported as an answer lost,
        # never sent again, with the unreadable answer as its cause.
        assert isinstance(error.__cause__, InvalidResponseError) and not error.retryable and error.job_id
        error = error.__cause__
    assert type(error) is case.error, f"{case.id}: {type(error).__name__}: {error}"
    assert case.says in error.message, error.message
    assert len(error.message) > 15 and "Traceback" not in error.message
    if case.answer is None:
        assert env.calls() == 0, f"{case.id} reached a provider: nothing should be sent"
