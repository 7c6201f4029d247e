"""Gemini's Batch API as imagegen's vendor batch (``GeminiProvider.vendor_batches``).

Requests go inline in the create call while they and twice their expected answers fit in 20 MB,
else as a JSONL file uploaded through the Files API first (see ``_batch_wire``); both go
through the SDK's API client on the provider's own httpx clients, like ``generateContent``,
so the URL, authentication, timeout and error answers are the SDK's. The answers are read as
raw JSON (the SDK's parsed batch drops ``batchStats`` and each answer's ``finishMessage``) with
the same reader as a standard call, and each member is charged the model's batch price
(``price.batch_discount`` x the cost its usage reports).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlencode

from imagegen import (
    Cost,
    ImageGenError,
    ImageRequest,
    ImageResult,
    InvalidResponseError,
    Job,
    JobFailedError,
    JobTimeoutError,
    ModelSpec,
    UnsupportedFeatureError,
)
from imagegen.provider import BATCH_POLL_SCHEDULE, MEMBER_SEPARATOR, Delivery, ErrorReply, VendorBatchSnapshot

from . import _batch_wire as wire
from . import _wire

if TYPE_CHECKING:  # pragma: no cover
    from ._provider import GeminiProvider

__all__ = ["GeminiBatches"]

T = TypeVar("T")

#: Seconds for one batch call (create, get, upload, download): a finished inline batch of
#: images is a large answer.
BATCH_CALL_TIMEOUT_S = 300.0
#: Where a batch whose create answer was lost is looked for: the newest pages of batches.list
#: (small pages: a finished inline batch is listed with its answers).
_FIND_PAGES, _FIND_PAGE_SIZE = 5, 10
#: Assumed size of an input image given by URL, before it is fetched (for the delivery plan).
_URL_IMAGE_BYTES = 1_000_000


class GeminiBatches:
    """The vendor-batch calls of one Gemini provider instance."""

    def __init__(self, provider: GeminiProvider) -> None:
        self.provider = provider

    @property
    def name(self) -> str:
        return self.provider.instance_name

    # -- planning (no I/O) ----------------------------------------------------------------------

    def delivery(self, requests: list[ImageRequest], spec: ModelSpec) -> Delivery:
        sizes = [len(r.prompt) + sum(len(i.data) * 4 // 3 if i.data is not None else _URL_IMAGE_BYTES
                                     for i in r.images) + 256 for r in requests]
        return wire.choose_delivery(sizes, (wire.expected_answer_bytes(r, spec) for r in requests))

    # -- I/O ------------------------------------------------------------------------------------

    async def create(self, members: list[tuple[str, ImageRequest]], spec: ModelSpec, *, display_name: str,
                     delivery: Delivery | Literal["auto"]) -> tuple[str, Delivery]:
        """Send the batch; return its name (``batches/...``) and how the requests travelled."""
        self._api()  # refused before any work when batches cannot be sent
        built = [wire.MemberRequest(key, await self._body(request, spec)) for key, request in members]
        if delivery not in ("inline", "file"):
            delivery = wire.choose_delivery((m.size() for m in built),
                                            (wire.expected_answer_bytes(r, spec) for _, r in members))
        with self.provider.translating():
            if delivery == "inline":
                body = wire.inline_body(display_name, built)
            else:
                body = wire.file_body(display_name, await self._upload(built, display_name))
            del built
        path = f"models/{spec.id}:batchGenerateContent"
        snapshot = await self._call("post", path, body, "batch operation", wire.read_operation)
        return snapshot.name, delivery

    async def find(self, display_name: str, spec: ModelSpec, *, requests: int, since: float) -> str | None:
        """The batch a create call whose answer was lost made anyway (display name, model and size
        as sent, created since ``since``), looked for among the newest ``batches.list`` pages."""
        def read(page: Any) -> tuple[Any, str | None]:
            return page, wire.sent_batch(page, display_name=display_name, model=spec.id, requests=requests,
                                         since=since)

        token = ""
        for _ in range(_FIND_PAGES):
            query = {"pageSize": _FIND_PAGE_SIZE, **({"pageToken": token} if token else {})}
            listing, found = await self._call("get", f"batches?{urlencode(query)}", {}, "batch list", read)
            token = str(listing.get("nextPageToken") or "")
            if found is not None or not token:
                return found
        return None

    async def poll(self, native_id: str, spec: ModelSpec) -> VendorBatchSnapshot:
        snapshot = await self._call("get", native_id, {}, "batch operation", wire.read_operation)
        answers = None
        if snapshot.inline is not None:
            with self.provider.parsing("batch answers", status_code=200):
                answers = wire.outcomes_of_inline(snapshot.inline)
        elif snapshot.responses_file is not None:
            with self.provider.translating():
                downloaded = await self._download(snapshot.responses_file)
            with self.provider.parsing("batch answers file", status_code=200):
                answers = wire.outcomes_of_jsonl(downloaded)
        outcomes = None if answers is None else {key: self._outcome(key, answer, spec, native_id)
                                                 for key, answer in answers.items()}
        message = str(snapshot.error.get("message")) if snapshot.error else None
        return VendorBatchSnapshot(state=snapshot.state, vendor_state=snapshot.vendor_state,  # type: ignore[arg-type]
                                   outcomes=outcomes, counts=snapshot.stats, message=message)

    async def wait_member(self, job: Job, spec: ModelSpec, *, deadline: float) -> ImageResult:
        """One member's result, once its batch is over (a standard call that carries a member's key
        resumes that member instead of paying again)."""
        native_id = job.native_id.partition(MEMBER_SEPARATOR)[0]
        key = job.request.idempotency_key if job.request is not None else None
        delays = BATCH_POLL_SCHEDULE.delays()
        while True:
            snapshot = await self.poll(native_id, spec)
            if snapshot.state in ("succeeded", "failed", "cancelled", "expired"):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeoutError(f"job {job.id} is a member of vendor batch {native_id}, still "
                                      f"{snapshot.state}; wait({job.id!r}) later", provider=self.name, job_id=job.id)
            await asyncio.sleep(min(next(delays), remaining))
        outcome = (snapshot.outcomes or {}).get(key or "")
        if isinstance(outcome, ImageResult):
            return outcome.model_copy(update={"job_id": job.id})
        raise outcome if outcome is not None else JobFailedError(
            f"job {job.id}: vendor batch {native_id} ended {snapshot.state} with no answer for it",
            provider=self.name)

    async def cancel(self, native_id: str) -> None:
        await self._call("post", f"{native_id}:cancel", {}, "batch cancel", lambda _: None)

    # -- helpers --------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: dict[str, Any], what: str,
                    read: Callable[[Any], T]) -> T:
        """One Batch API call through the SDK's API client; its JSON answer read by ``read``."""
        with self.provider.translating():
            response = await self._api().async_request(method, path, body)
        with self.provider.parsing(what, status_code=200):
            return read(json.loads(response.body or "{}"))

    def _api(self) -> Any:
        if self.provider.settings.vertexai:
            raise UnsupportedFeatureError(
                f"{self.name}: the vendor batch is the Gemini API's Batch API; on Vertex AI batches read from "
                "Cloud Storage or BigQuery, which imagegen does not drive. Use the Gemini API (vertexai = false)")
        from ._provider import _api_client_of

        api = _api_client_of(self.provider._client(BATCH_CALL_TIMEOUT_S))
        if api is None:
            raise UnsupportedFeatureError(
                f"{self.name}: this google-genai release has no API client imagegen can send batches through; "
                "install google-genai 3.4 to 3.x")
        return api

    async def _body(self, request: ImageRequest, spec: ModelSpec) -> dict[str, Any]:
        self.provider.validate(request, spec)
        return _wire.build_body(request, await self.provider.input_images(request))

    async def _upload(self, members: list[wire.MemberRequest], display_name: str) -> str:
        data = b"".join(wire.jsonl_lines(members))
        client = self.provider._client(BATCH_CALL_TIMEOUT_S)
        uploaded = await client.aio.files.upload(
            file=io.BytesIO(data), config={"mime_type": "application/jsonl", "display_name": f"{display_name} input"})
        if not uploaded.name:
            raise InvalidResponseError(f"{self.name}: the Files API stored the batch input without a name",
                                       provider=self.name)
        return str(uploaded.name)

    async def _download(self, name: str) -> bytes:
        client = self.provider._client(BATCH_CALL_TIMEOUT_S)
        return bytes(await client.aio.files.download(file=name))

    def _outcome(self, key: str, answer: dict[str, Any], spec: ModelSpec,
                 native_id: str) -> ImageResult | ImageGenError:
        """One member's answer: its result at the batch price, or the error it stands for."""
        name = self.name
        if "error" in answer:
            status, status_name = wire.http_status_of(answer["error"])
            envelope = {"error": {**answer["error"], "code": status, "status": status_name}}
            return self.provider.status_error(ErrorReply(status, body=envelope, path=f"models/{spec.id}"))
        try:
            with self.provider.parsing("batch member answer", status_code=200):  # this member's only
                read = _wire.read_answer(answer["response"], spec, provider=name)
        except ImageGenError as exc:
            return exc
        discount = spec.price.batch_discount if spec.price and spec.price.batch_discount else 1.0
        read.cost = Cost(usd=None if read.cost.usd is None else round(read.cost.usd * discount, 9), estimated=False,
                         breakdown={k: round(v * discount, 9) for k, v in read.cost.breakdown.items()})
        read.metadata.update(batch=native_id, batch_key=key, batch_discount=discount)
        return read
