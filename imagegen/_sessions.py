"""Edit sessions: a conversation of turns ("a cottage", "now make the roof blue", "now add snow")
with one provider and model, kept in the job store and resumable by id from any process.

Two ways of carrying the thread, chosen from the model's capabilities:

- ``conversation`` (models with ``multi_turn``, e.g. Gemini): every turn sends the earlier turns
  back exactly as the provider answered them (Gemini 3's thought signatures unchanged), so the
  model edits with the whole conversation in mind;
- ``reference`` (every other model that can edit): a turn sends the previous turn's first
  output image as a reference image with the new instruction. This is an approximation: the
  model sees the last picture, not the conversation that led to it.

In the job store a session is one record, ``<provider>:session-<id>``, listing its turns; each
turn is an ordinary job (its request, result and cost) written by the call itself, which also
holds what the turn adds to the conversation. A session record exists from its first turn on.
Turns run one at a time; a failed turn is recorded and leaves the conversation as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._errors import ImageGenError, InvalidRequestError, JobNotFoundError, UnsupportedFeatureError
from ._jobstore import put_job
from ._models import Cost, Image, ImageRequest, ImageResult, InputImage, Job, JobStatus, make_job_id

if TYPE_CHECKING:  # pragma: no cover
    from ._capabilities import ModelSpec
    from ._client import AsyncClient
    from ._provider import Provider

__all__ = ["AsyncSession", "Session", "SessionMode", "SessionTurn"]

SessionMode = Literal["conversation", "reference"]
_RECORD = "session"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SessionTurn(BaseModel):
    """One turn of a session: what was asked, and what it produced or why it failed."""

    model_config = ConfigDict(defer_build=True)

    index: int
    operation: Literal["generate", "edit"]
    prompt: str
    status: Literal["succeeded", "failed"]
    #: The turn's job: ``status``/``wait`` give its result (images, usage) from any process.
    job_id: str | None = None
    cost: Cost = Field(default_factory=lambda: Cost(usd=0.0, estimated=False))
    images: int = 0
    error: dict[str, Any] | None = None
    at: datetime = Field(default_factory=_utcnow)


class _SessionState(BaseModel):
    model_config = ConfigDict(defer_build=True)

    provider: str
    model: str
    mode: SessionMode
    turns: list[SessionTurn] = Field(default_factory=list)


class AsyncSession:
    """A conversation of edits with one provider and model (``AsyncClient.session``)."""

    def __init__(self, client: AsyncClient, *, session_id: str, state: _SessionState,
                 created_at: datetime | None = None) -> None:
        self._client = client
        self.id = session_id
        self._state = state
        self._created_at = created_at or _utcnow()
        self._lock = asyncio.Lock()

    # -- what it holds ----------------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._state.provider

    @property
    def model(self) -> str:
        return self._state.model

    @property
    def mode(self) -> SessionMode:
        """``conversation`` (earlier turns are sent back) or ``reference`` (the last image is)."""
        return self._state.mode

    @property
    def turns(self) -> list[SessionTurn]:
        return list(self._state.turns)

    @property
    def cost(self) -> Cost:
        """What every turn cost together."""
        return sum((t.cost for t in self._state.turns), Cost(usd=0.0, estimated=False))

    async def result(self, turn: int = -1) -> ImageResult:
        """A succeeded turn's result (images included), from the job store; the last by default."""
        done = self._succeeded()
        chosen = self._state.turns[turn] if -len(self._state.turns) <= turn < len(self._state.turns) else None
        if chosen is None or chosen.status != "succeeded":
            raise InvalidRequestError(f"session {self.id} has no succeeded turn {turn} "
                                      f"({len(done)} of {len(self._state.turns)} turn(s) succeeded)")
        return self._turn_job(chosen).result  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.provider}/{self.model} {self.mode} turns={len(self._state.turns)}>"

    # -- turns --------------------------------------------------------------------------------

    async def generate(self, prompt: str, **options: Any) -> ImageResult:
        """A turn from words alone (the first turn, or "now add snow" on a later one)."""
        return await self._turn("generate", prompt, None, options)

    async def edit(self, prompt: str, *, images: Any = None, **options: Any) -> ImageResult:
        """A turn that changes the current picture as ``prompt`` says, with any new ``images``."""
        return await self._turn("edit", prompt, images, options)

    async def _turn(self, operation: Literal["generate", "edit"], prompt: str, images: Any,
                    options: dict[str, Any]) -> ImageResult:
        for fixed in ("provider", "model"):
            if options.get(fixed) not in (None, getattr(self, fixed)):
                raise InvalidRequestError(f"session {self.id} is bound to {self.provider}/{self.model}; "
                                          f"start another session for {fixed} {options[fixed]!r}")
            options.pop(fixed, None)
        async with self._lock:
            self._reload()  # another process may have added turns since
            index = len(self._state.turns)
            request = await self._request(prompt, images, options, index)
            try:
                result = await self._client._run(request)
            except ImageGenError as exc:
                await self._append(SessionTurn(index=index, operation=operation, prompt=prompt, status="failed",
                                               error=exc.to_dict()), None)
                raise
            # The turn's job (and what it adds to the conversation) lands before the record names it.
            await self._client._drain_background()
            await self._append(SessionTurn(index=index, operation=operation, prompt=prompt, status="succeeded",
                                           job_id=result.job_id, cost=result.cost, images=len(result.images)),
                               result)
            return result

    async def _request(self, prompt: str, images: Any, options: dict[str, Any], index: int) -> ImageRequest:
        given = [] if images is None else list(images) if isinstance(images, (list, tuple)) else [images]
        inputs = [InputImage.coerce(image, what=f"image {i + 1}") for i, image in enumerate(given)]
        provider, spec = self._target()
        fields: dict[str, Any] = {**options, "provider": f"{self.provider}/{self.model}"}
        if self.mode == "conversation":
            if int(fields.get("n", 1)) != 1:
                raise InvalidRequestError("a conversation turn makes one image (n=1): the next turn continues it")
            history = [content for turn in self._succeeded() for content in
                       provider.conversation_of(self._turn_job(turn))]  # type: ignore[attr-defined]
            fields.update(cache=False, conversation=history)
        else:
            previous = self._previous_image()
            inputs = ([InputImage.coerce(previous)] if previous is not None else []) + inputs
        fields["idempotency_key"] = self._turn_key(index, prompt, inputs, options)
        # On the wire a turn is an edit when it carries an image; in a conversation the picture
        # being edited is already in the history, so "now add snow" is sent as text alone.
        return ImageRequest.build(prompt=prompt, operation="edit" if inputs else "generate", images=inputs, **fields)

    # -- the record ---------------------------------------------------------------------------

    def _target(self) -> tuple[Provider, ModelSpec]:
        from ._routing import Target

        provider = self._client.provider(self.provider)
        return provider, self._client._model(provider, Target(self.provider, self.model), ImageRequest(prompt="-"))

    def _succeeded(self) -> list[SessionTurn]:
        return [t for t in self._state.turns if t.status == "succeeded"]

    def _turn_job(self, turn: SessionTurn) -> Job:
        job = self._client.jobs.get(turn.job_id or "")
        if job is None or job.result is None:
            raise JobNotFoundError(f"session {self.id}: turn {turn.index}'s job {turn.job_id} is not in the job "
                                   "store (was it pruned?); the session cannot continue from it")
        return job

    def _previous_image(self) -> Image | None:
        done = self._succeeded()
        if not done:
            return None
        result = self._turn_job(done[-1]).result
        return result.images[0] if result is not None and result.images else None

    def _turn_key(self, index: int, prompt: str, inputs: Sequence[InputImage], options: dict[str, Any]) -> str:
        """Names the turn: a retry of the same turn after a crash finds the job already paid for."""
        what = json.dumps([prompt, [i.sha256 for i in inputs], options], sort_keys=True, default=str)
        return f"{self.id}.t{index}.{hashlib.sha256(what.encode()).hexdigest()[:12]}"

    def _reload(self) -> None:
        stored = self._client.jobs.get(self.id)
        if stored is not None and _RECORD in stored.metadata:
            self._state = _SessionState.model_validate(stored.metadata[_RECORD])

    async def _append(self, turn: SessionTurn, result: ImageResult | None) -> None:
        self._state.turns.append(turn)
        succeeded = any(t.status == "succeeded" for t in self._state.turns)
        status: JobStatus = "succeeded" if succeeded else "failed"
        previous = self._client.jobs.get(self.id)
        kept = result if result is not None else (previous.result if previous is not None else None)
        provider, native = self.id.split(":", 1)
        record = Job(id=self.id, provider=provider, native_id=native, status=status, model=self.model,
                     result=kept, created_at=self._created_at, updated_at=_utcnow(),
                     error=None if succeeded else turn.error,
                     metadata={_RECORD: self._state.model_dump(mode="json")})
        await put_job(self._client.jobs, record)


def new_session(client: AsyncClient, provider: str | None) -> AsyncSession:
    """A session with the provider (and model) ``provider`` names; nothing is stored before its first turn."""
    probe = ImageRequest.build(prompt="-", provider=provider)
    plan = client._plan(probe)
    if len(plan.targets) > 1:
        raise InvalidRequestError(f"a session talks to one provider, and {provider!r} is a route of "
                                  f"{len(plan.targets)}; name one provider or provider/model")
    target = plan.targets[0]
    instance = client.provider(target.provider)
    spec = client._model(instance, target, probe)
    if spec.multi_turn and callable(getattr(instance, "conversation_of", None)):
        mode: SessionMode = "conversation"
    elif spec.supports_edit:
        mode = "reference"
    else:
        raise UnsupportedFeatureError(f"{target.provider}/{spec.id} can neither keep a conversation nor edit an "
                                      "image; a session needs one or the other")
    session_id = make_job_id(target.provider, f"session-{uuid.uuid4().hex[:20]}")
    return AsyncSession(client, session_id=session_id,
                        state=_SessionState(provider=target.provider, model=spec.id, mode=mode))


def load_session(client: AsyncClient, session_id: str) -> AsyncSession:
    """The session stored under ``session_id``, ready for its next turn."""
    stored = client.jobs.get(session_id)
    if stored is None or _RECORD not in stored.metadata:
        raise JobNotFoundError(f"no session {session_id!r} in the job store (a session is stored from its first "
                               "turn on; check jobs.backend / jobs.path in the config)")
    return AsyncSession(client, session_id=session_id, state=_SessionState.model_validate(stored.metadata[_RECORD]),
                        created_at=stored.created_at)


class Session:
    """The blocking twin of `AsyncSession` (``Client.session``): the same turns and records."""

    def __init__(self, inner: AsyncSession, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._inner = inner
        self._run = run

    @property
    def id(self) -> str:
        return self._inner.id

    @property
    def provider(self) -> str:
        return self._inner.provider

    @property
    def model(self) -> str:
        return self._inner.model

    @property
    def mode(self) -> SessionMode:
        return self._inner.mode

    @property
    def turns(self) -> list[SessionTurn]:
        return self._inner.turns

    @property
    def cost(self) -> Cost:
        return self._inner.cost

    def generate(self, prompt: str, **options: Any) -> ImageResult:
        """A turn from words alone (see `AsyncSession.generate`)."""
        result: ImageResult = self._run(self._inner.generate(prompt, **options))
        return result

    def edit(self, prompt: str, *, images: Any = None, **options: Any) -> ImageResult:
        """A turn that changes the current picture (see `AsyncSession.edit`)."""
        result: ImageResult = self._run(self._inner.edit(prompt, images=images, **options))
        return result

    def result(self, turn: int = -1) -> ImageResult:
        """A succeeded turn's result, from the job store; the last by default."""
        result: ImageResult = self._run(self._inner.result(turn))
        return result

    def __repr__(self) -> str:
        return repr(self._inner)
