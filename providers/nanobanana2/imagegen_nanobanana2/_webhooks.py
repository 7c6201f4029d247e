"""Receiving nano-banana2.com webhooks.

The service POSTs ``{job_id, status, outputs}`` to the ``webhook_url`` given on submit
when a job finishes (``status`` is ``completed`` or ``failed``) and expects a 200. No
signature is documented, so a receiver cannot authenticate a delivery: treat it as a
hint, deduplicate on ``job_id`` (deliveries may repeat), and answer 2xx quickly.

``job_from_webhook`` does **not** download anything: a completed Job carries its output
URLs in ``metadata["outputs"]`` and ``result`` is None. To get the same Job that
``status()`` returns, images included, await ``provider.webhook_job(payload)`` on a
configured ``NanoBanana2Provider`` (``client.provider("nanobanana2")``), or simply call
``client.status(job.id)``.
"""

from __future__ import annotations

import json
from typing import Any

from imagegen import InvalidRequestError, Job
from imagegen.provider import make_job_id

from ._wire import Generation, parse_generation

__all__ = ["job_from_webhook", "parse_webhook"]


def parse_webhook(payload: dict[str, Any] | bytes | str) -> Generation:
    """Read a webhook body (a parsed dict, or the raw bytes/text of the POST)."""
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            payload = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"the webhook body is not JSON ({exc}); pass the POST body as received") from None
    try:
        return parse_generation(payload, id_keys=("job_id", "jobId", "id"))
    except (KeyError, TypeError) as exc:
        raise InvalidRequestError(
            f"not a nano-banana2 webhook payload ({exc}); expected {{job_id, status, outputs}}") from None


def job_from_webhook(payload: dict[str, Any] | bytes | str, *, provider_name: str = "nanobanana2") -> Job:
    """The Job a webhook payload describes, without downloading its outputs.

    ``provider_name`` is the configured provider instance the job id routes to
    (``"<provider_name>:<job_id>"``). Status, failure message, credits and output URLs
    are filled in; ``result`` stays None (see the module docs for the downloading variant).
    """
    generation = parse_webhook(payload)
    status = generation.status or "running"
    error = None
    if status == "failed":
        error = {"message": generation.error or "the job failed (no reason given)"}
        if generation.error_code:
            error["code"] = generation.error_code
    fields: dict[str, Any] = {"metadata": generation.metadata()}
    if generation.created_at is not None:
        fields["created_at"] = generation.created_at
    return Job(id=make_job_id(provider_name, generation.id), provider=provider_name, native_id=generation.id,
               status=status, error=error, **fields)
