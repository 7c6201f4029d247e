"""Billed answers: once a billed call has been answered 2xx, the vendor has been paid.

A synchronous image API (and an asynchronous one, for its submit) bills a call when it answers
it. If that answer's body is then lost -- the connection cut mid-body, a read timeout after
the status line, the caller's deadline -- or cannot be read, there is no job to fetch again,
and sending the call again pays twice. So the core's rule (``imagegen._charges``): once a
billed request has been answered 2xx, the call counts as billed. Its charge is recorded (the
estimate, marked as such), it is never sent again on this route nor moved to another provider,
and the caller gets ``AnswerLostError`` carrying the job id -- unless the provider declares
that resending is free (``Provider.bills_unreadable_answers = False``, for a vendor with
idempotency keys).

How the core knows: every provider's HTTP client carries ``watch_answer`` as a response hook.
httpx calls it with the status line and headers, before the body is read, whatever sends the
request (the provider, google-genai on the provider's client) and whatever carries it (aiohttp,
httpcore, a proxy mount, a test's in-process transport). Inside a call that can spend money
(``CallScope.answers`` is set) it notes each 2xx answer to a billed request -- any method but
GET, HEAD and OPTIONS: polls and downloads are free -- and whether its body then arrived whole
or was cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ._errors import InvalidResponseError
from ._http import current_scope

__all__ = ["Answer", "AnswerWatch", "note_answer", "watch_answer"]

#: Methods that never start billable work: status polls, output downloads, model lists.
FREE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Answer:
    """One 2xx answer to a billed request, as far as its body got."""

    request: httpx.Request
    status: int
    headers: httpx.Headers
    #: ``reading`` until the body ends (``whole``) or breaks under the reader (``cut``: a
    #: transport error, a read timeout, a cancelled read).
    body: Literal["reading", "whole", "cut"] = "reading"

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def url(self) -> str:
        """The request's URL without its query (which may carry a key); made only when asked
        for: parsing a URL again costs more than the rest of the watch, on every billed call."""
        return str(self.request.url.copy_with(query=None))


@dataclass
class AnswerWatch:
    """The 2xx answers to billed requests one call has had (``CallScope.answers``)."""

    answers: list[Answer] = field(default_factory=list)

    def lost(self, error: BaseException) -> Answer | None:
        """The billed answer that ``error`` lost, if it lost one: a 2xx whose body was cut, or
        (``InvalidResponseError``, not about an error status) a body that arrived but cannot be read."""
        cut = next((a for a in reversed(self.answers) if a.body == "cut"), None)
        if cut is not None:
            return cut
        if self.answers and isinstance(error, InvalidResponseError) and (
                error.status_code is None or 200 <= error.status_code < 300):  # (None: a reader that did not say)
            return self.answers[-1]
        return None


class _WatchedBody(httpx.AsyncByteStream):
    """The answer's body as it was, noting on ``answer`` how its reading ended."""

    def __init__(self, inner: httpx.AsyncByteStream, answer: Answer) -> None:
        self._inner, self._answer = inner, answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except GeneratorExit:  # the reader stopped reading: nothing broke
            raise
        except (Exception, asyncio.CancelledError):
            self._answer.body = "cut"
            raise
        self._answer.body = "whole"

    async def aclose(self) -> None:
        await self._inner.aclose()


async def watch_answer(response: httpx.Response) -> None:
    """httpx response hook: note a 2xx answer to a billed request of the current call."""
    answer = note_answer(response.request, response.status_code, response.headers)
    if answer is not None and isinstance(response.stream, httpx.AsyncByteStream):
        response.stream = _WatchedBody(response.stream, answer)


def note_answer(request: httpx.Request, status: int, headers: Any) -> Answer | None:
    """The current call's record of this answer if it is a 2xx to a billed request (its body
    still to be read: the reader marks it ``whole`` or ``cut``), else None."""
    scope = current_scope()
    watch = scope.answers if scope is not None else None
    if watch is None or not 200 <= status < 300 or request.method in FREE_METHODS:
        return None
    answer = Answer(request, status, headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers))
    watch.answers.append(answer)
    return answer
