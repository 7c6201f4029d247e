"""A third-party provider plugin, as small as one can be, installed by imagegen's tests.

It draws images locally (no network), and turns prompt markers into errors so the
core's error paths can be exercised: ``[[rate_limit]]``, ``[[unavailable]]``,
``[[refuse]]``, ``[[unreadable]]`` (an answer its parser cannot read, inside ``parsing()``:
an InvalidResponseError) and ``[[crash]]`` (a KeyError in its own code, outside
``parsing()``: a bug, which the core lets through untouched). ``[[slow]]`` jobs finish on
their second status poll; ``[[never]]`` jobs never finish. ``CALLS`` counts submits per
provider instance.
"""

import collections
import io
import itertools
from typing import ClassVar

from imagegen import (
    ContentPolicyError,
    Cost,
    Image,
    ImageResult,
    JobNotFoundError,
    ModelSpec,
    Price,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen.provider import PollSchedule, Provider, hookimpl

_ids = itertools.count(1)
_JOBS = {}
CALLS = collections.Counter()


def _png(width, height, shade):
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (width, height), (shade % 256, 80, 160)).save(buf, "PNG")
    return buf.getvalue()


def _answer(prompt):
    """What the make-believe vendor answers: no id for the two broken markers."""
    return {} if "[[unreadable]]" in prompt or "[[crash]]" in prompt else {"id": "ok"}


def _read_answer(answer):
    """The plugin's own code with a bug in it: ``missing`` is no field of any answer."""
    return answer["missing"]


class TinyProvider(Provider):
    name = "tinyplug"
    requires_api_key = False
    _SIZES: ClassVar[dict[str, int]] = {"S": 32, "M": 64}
    poll_schedule = PollSchedule(initial=0.01, factor=2.0, cap=0.05)

    @classmethod
    def models(cls):
        price = Price(source="tinyplug test data", as_of="2026-11-01", per_image_usd={"S": 0.01, "M": 0.02})
        return [ModelSpec(id="tiny-1", sizes=["S", "M"], default_size="S", aspect_ratios=["1:1", "2:1"],
                          max_images_per_call=2, max_reference_images=2, supports_edit=True, supports_seed=True,
                          async_jobs=True, options=["shade"], price=price)]

    async def submit(self, request, spec):
        CALLS[self.instance_name] += 1
        marker_errors = {
            "[[rate_limit]]": RateLimitError("slow down", provider=self.instance_name, retry_after=2.0,
                                             status_code=429),
            "[[unavailable]]": ProviderUnavailableError("down", provider=self.instance_name, status_code=503),
            "[[refuse]]": ContentPolicyError("refused", provider=self.instance_name, reason="TEST"),
        }
        for marker, error in marker_errors.items():
            if marker in request.prompt:
                raise error
        answer = _answer(request.prompt)
        if "[[crash]]" in request.prompt:
            _read_answer(answer)
        with self.parsing("tinyplug answer"):
            native = f"t{next(_ids)}-{answer['id']}"
        side = self._SIZES[request.size or spec.default_size]
        width = side * (2 if request.aspect_ratio == "2:1" else 1)
        shade = request.options.get("shade", request.seed or 0)
        images = [Image.from_bytes(_png(width, side, shade + i)) for i in range(request.n)]
        result = ImageResult(images=images, provider=self.instance_name, model=spec.id,
                             job_id=self.job_id(native), cost=Cost(usd=0.015 * request.n, estimated=False))
        polls_left = 2 if "[[slow]]" in request.prompt else 10**9 if "[[never]]" in request.prompt else 0
        _JOBS[native] = [result, polls_left]
        return self._report(native)

    def _report(self, native):
        result, polls_left = _JOBS[native]
        if polls_left:
            _JOBS[native][1] -= 1
            return self.job(native, "running")
        return self.job(native, "succeeded", result=result)

    async def status(self, native_id):
        if native_id not in _JOBS:
            raise JobNotFoundError(f"tinyplug knows no job {native_id}")
        return self._report(native_id)


@hookimpl
def imagegen_register_providers(register):
    register(TinyProvider)
