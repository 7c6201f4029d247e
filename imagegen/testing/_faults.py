"""Fault plans: which requests an emulator answers with an injected failure.

A plan is a live, thread-safe object: scripted plans advance and random plans draw from their
seeded generator as requests arrive, so a plan shared by several emulators (or combined into
another plan) shares that progress.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["Fault", "FaultKind", "FaultPlan"]

FaultKind = Literal[
    "rate_limit", "server_error", "timeout", "drop", "truncate", "malformed", "html"
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

# The kit's own routes stay reliable unless a plan's path regex names them: a test that counts
# calls or downloads a generated file should not trip over faults meant for the vendor API.
_KIT_ROUTES = re.compile(r"^/(?:_emulator|files)(?:/|$)")
_PASS = ("ok", "pass")


@dataclass(frozen=True)
class Fault:
    """One injected failure, rendered by the emulator middleware.

    `status` overrides the HTTP status of ``server_error`` (503) and ``html`` (502);
    `retry_after` is the wait hint sent with ``rate_limit``; `delay` is how long ``timeout``
    stalls, in real seconds (default 5); `body` replaces the payload of ``malformed`` and
    ``html``.

    `after_chunks` makes ``drop`` and ``timeout`` strike mid-stream: the real handler runs
    and that many body chunks (for a streamed answer, events) reach the client before the
    connection is cut, or stalls. An answer that is not streamed is dropped as without it.
    """

    kind: FaultKind
    status: int | None = None
    retry_after: float | None = None
    delay: float | None = None
    body: bytes | None = None
    after_chunks: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(_unknown_kind(self.kind))
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status code, got {self.status!r}")
        for name in ("retry_after", "delay"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"fault {name} must be >= 0, got {value!r}")
        if self.after_chunks is not None:
            if self.kind not in ("drop", "timeout"):
                raise ValueError(f"after_chunks applies to drop and timeout faults, not {self.kind!r}")
            if self.after_chunks < 1:
                raise ValueError(f"fault after_chunks must be >= 1, got {self.after_chunks!r}")


class _Rule:
    """Base of the plan's building blocks: decides which paths it applies to."""

    def __init__(self, path: str | None) -> None:
        try:
            self._path = re.compile(path) if path is not None else None
        except re.error as exc:
            raise ValueError(f"bad fault path regex {path!r}: {exc}") from None
        self._lock = threading.Lock()

    def applies(self, path: str) -> bool:
        if self._path is None:
            return _KIT_ROUTES.match(path) is None
        return self._path.search(path) is not None

    def pick(self, method: str, path: str) -> Fault | None:
        raise NotImplementedError


class _Script(_Rule):
    def __init__(self, steps: Iterable[Fault | str | None], path: str | None) -> None:
        super().__init__(path)
        self._steps = tuple(_as_step(step) for step in steps)
        self._next = 0

    def pick(self, method: str, path: str) -> Fault | None:
        if not self.applies(path):
            return None
        with self._lock:
            if self._next >= len(self._steps):
                return None
            step = self._steps[self._next]
            self._next += 1
        return step

    def __repr__(self) -> str:
        steps = ", ".join(step.kind if step else "ok" for step in self._steps)
        return f"script({steps}; done={self._next})"


class _Random(_Rule):
    def __init__(self, faults: dict[Fault, float], seed: int, path: str | None) -> None:
        super().__init__(path)
        self._rng = random.Random(seed)
        # One uniform draw per request, compared with cumulative thresholds, keeps the kinds
        # mutually exclusive and the sequence reproducible for a given seed and request order.
        self._thresholds: list[tuple[float, Fault]] = []
        total = 0.0
        for fault, rate in faults.items():
            total += rate
            self._thresholds.append((total, fault))

    def pick(self, method: str, path: str) -> Fault | None:
        if not self.applies(path):
            return None
        with self._lock:
            draw = self._rng.random()
        for threshold, fault in self._thresholds:
            if draw < threshold:
                return fault
        return None

    def __repr__(self) -> str:
        return f"random({', '.join(f'{f.kind}={rate:g}' for rate, f in self._rates())})"

    def _rates(self) -> list[tuple[float, Fault]]:
        previous, rates = 0.0, []
        for threshold, fault in self._thresholds:
            rates.append((threshold - previous, fault))
            previous = threshold
        return rates


class FaultPlan:
    """Decides, request by request, whether an emulator injects a fault.

    ``FaultPlan()`` never injects one. Build others with `script`, `random` or `parse`, and
    chain them with `combine` or ``+``: the first plan that picks a fault wins, and later
    plans are not consulted for that request (their scripts do not advance).
    """

    def __init__(self) -> None:
        self._rules: tuple[_Rule, ...] = ()

    @classmethod
    def script(cls, *steps: Fault | str | None, path: str | None = None) -> FaultPlan:
        """Replay `steps` in order, one per matching request, then let everything through.

        A step is a `Fault`, a fault kind such as ``"rate_limit"``, or ``None``/``"ok"`` for
        a request that passes. `path` is a regex searched in the request path; ``None``
        matches every route except the kit's own ``/_emulator/*`` and ``/files/*``.
        """
        return cls._of([_Script(steps, path)])

    @classmethod
    def random(
        cls,
        rates: dict[str, float],
        *,
        seed: int = 0,
        path: str | None = None,
        retry_after: float = 2.0,
        timeout_delay: float = 5.0,
    ) -> FaultPlan:
        """Inject each fault kind with its probability in `rates` (the rates sum to at most 1).

        The draws come from a generator seeded with `seed`, so a given request order always
        sees the same faults. Rate limits carry `retry_after`; timeouts stall `timeout_delay`
        seconds. `path` filters requests as in `script`.
        """
        faults: dict[Fault, float] = {}
        for kind, rate in rates.items():
            if kind not in FAULT_KINDS:
                raise ValueError(_unknown_kind(kind))
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate for {kind} must be between 0 and 1, got {rate!r}")
            faults[_default_fault(kind, retry_after=retry_after, delay=timeout_delay)] = rate
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates sum to {sum(rates.values()):g}, more than 1")
        return cls._of([_Random(faults, seed, path)])

    @classmethod
    def combine(cls, *plans: FaultPlan) -> FaultPlan:
        """A plan that asks `plans` in order and returns the first fault picked."""
        return cls._of([rule for plan in plans for rule in plan._rules])

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Build a plan from a command-line spec.

        ``"rate_limit=0.2,server_error=0.1,seed=7"`` is a `random` plan; besides the kinds
        it takes ``seed``, ``retry_after``, ``timeout_delay`` and ``path`` (a regex without
        commas). ``"script:rate_limit,ok,server_error:status=500"`` is a `script` plan; a step
        may carry ``:status=``, ``:retry_after=``, ``:delay=``, ``:body=`` or
        ``:after_chunks=`` (``"script:drop:after_chunks=1"`` cuts a stream after its first
        event), and a ``path=REGEX`` item filters it. ``""`` or ``"none"`` means no faults.
        """
        text = spec.strip()
        if text.lower() in ("", "none", "off"):
            return cls()
        if text.startswith("script:"):
            return _parse_script(text[len("script:") :])
        return _parse_random(text)

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault to inject for this request, or ``None`` to let it through.

        Each call may advance a script or draw a random number, so call it once per request.
        The built-in plans filter on `path` only; `method` is passed for completeness.
        """
        for rule in self._rules:
            fault = rule.pick(method, path)
            if fault is not None:
                return fault
        return None

    def __add__(self, other: FaultPlan) -> FaultPlan:
        if not isinstance(other, FaultPlan):
            return NotImplemented
        return FaultPlan.combine(self, other)

    def __repr__(self) -> str:
        return f"FaultPlan({' + '.join(map(repr, self._rules)) or 'no faults'})"

    @classmethod
    def _of(cls, rules: Iterable[_Rule]) -> FaultPlan:
        plan = cls()
        plan._rules = tuple(rules)
        return plan


def _unknown_kind(kind: object) -> str:
    return f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}"


def _as_step(step: Fault | str | None) -> Fault | None:
    if step is None or isinstance(step, Fault):
        return step
    if isinstance(step, str):
        return None if step in _PASS else Fault(step)  # type: ignore[arg-type]
    raise TypeError(f"a script step is a Fault, a fault kind or None, got {step!r}")


def _default_fault(kind: str, *, retry_after: float, delay: float) -> Fault:
    if kind == "rate_limit":
        return Fault("rate_limit", retry_after=retry_after)
    if kind == "timeout":
        return Fault("timeout", delay=delay)
    return Fault(kind)  # type: ignore[arg-type]


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _number(key: str, value: str, convert: type[float] = float) -> float:
    try:
        return convert(value)
    except ValueError:
        raise ValueError(f"fault spec: {key}={value!r} is not a number") from None


def _parse_random(text: str) -> FaultPlan:
    rates: dict[str, float] = {}
    options: dict[str, object] = {}
    for item in _items(text):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise ValueError(
                f"fault spec item {item!r} has no '='; write kind=rate (e.g. rate_limit=0.2) "
                "or start the spec with 'script:'"
            )
        if key in FAULT_KINDS:
            rates[key] = _number(key, value)
        elif key == "seed":
            options["seed"] = int(_number(key, value, int))
        elif key in ("retry_after", "timeout_delay"):
            options[key] = _number(key, value)
        elif key == "path":
            options["path"] = value
        else:
            raise ValueError(
                f"unknown fault spec key {key!r}; use a fault kind ({', '.join(FAULT_KINDS)}) "
                "or seed, retry_after, timeout_delay, path"
            )
    return FaultPlan.random(rates, **options)  # type: ignore[arg-type]


def _parse_script(text: str) -> FaultPlan:
    steps: list[Fault | None] = []
    path: str | None = None
    for item in _items(text):
        if item.startswith("path="):
            path = item[len("path=") :]
        else:
            steps.append(_parse_step(item))
    if not steps:
        raise ValueError("a 'script:' fault spec needs at least one step")
    return FaultPlan.script(*steps, path=path)


def _parse_step(item: str) -> Fault | None:
    kind, *params = (part.strip() for part in item.split(":"))
    if kind in _PASS and not params:
        return None
    if kind not in FAULT_KINDS:
        raise ValueError(
            f"unknown script step {kind!r}; use ok or a fault kind ({', '.join(FAULT_KINDS)})"
        )
    fields: dict[str, object] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or key not in ("status", "retry_after", "delay", "body", "after_chunks"):
            raise ValueError(
                f"bad script step parameter {param!r} in {item!r}; "
                "use status=, retry_after=, delay=, body= or after_chunks="
            )
        if key in ("status", "after_chunks"):
            fields[key] = int(_number(key, value, int))
        elif key == "body":
            fields[key] = value.encode()
        else:
            fields[key] = _number(key, value)
    return Fault(kind, **fields)  # type: ignore[arg-type]
