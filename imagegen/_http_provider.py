"""``HTTPProvider``: a provider for a vendor's REST API, with the sending done once.

``request`` sends one call to ``base_url + path`` on the provider's pooled client:

- authentication from ``auth_headers`` (a bearer token by default);
- redirects followed by hand: 301, 302, 307 and 308 keep the method and the body (an API
  that moved answers them to POSTs, and ``curl -L`` keeps the body too), 303 becomes a
  body-less GET; credentials are dropped when a redirect leaves the site; more than
  ``max_redirects`` is an error naming the base URL;
- transport failures become ``ProviderTimeoutError``/``ProviderUnavailableError``;
- a non-2xx answer becomes ``status_error(ErrorReply)``: the status table and the vendor's
  error body, with the wait hint of ``Retry-After``/``X-RateLimit-Reset`` or the body.

``request_json`` also decodes the body (inside ``parsing``). Retries, rate limits and circuit
breaking are the core's, for every provider alike: a provider makes each call once.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

from ._errors import ProviderError, ProviderTimeoutError, ProviderUnavailableError
from ._http import read_json
from ._provider import Provider
from ._status import ErrorReply

__all__ = ["HTTPProvider"]

_KEEP_BODY = frozenset({301, 302, 307, 308})


def same_site(origin: str, target: str) -> bool:
    """Whether a redirect stays with the same service (``api.x.com`` -> ``www.api.x.com``, http -> https)."""
    a, b = urlsplit(origin), urlsplit(target)
    host_a, host_b = (a.hostname or "").removeprefix("www."), (b.hostname or "").removeprefix("www.")
    return host_a == host_b and a.port == b.port and (a.scheme == b.scheme or b.scheme == "https")


class HTTPProvider(Provider):
    """Base class of providers that speak HTTP to their vendor: subclasses build requests and read answers."""

    #: Redirects followed for one call before giving up.
    max_redirects: ClassVar[int] = 5

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a call: ``Authorization: Bearer <api key>`` by default."""
        if self.api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}

    def url(self, path: str) -> str:
        """``base_url + path``; an absolute URL is used as given."""
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    async def request(self, method: str, path: str, *, json: Any = None, data: Any = None, files: Any = None,
                      params: Any = None, headers: dict[str, str] | None = None, auth: bool = True,
                      timeout: float | None = None) -> httpx.Response:
        """Send one call; return its 2xx response, or raise the error its status and body stand for.

        ``timeout`` (seconds) replaces the client's for this call, redirects included."""
        url = self.url(path)
        credentials = self.auth_headers() if auth else {}
        sent = {**credentials, **(headers or {})}
        per_call: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        for _ in range(self.max_redirects + 1):
            response = await self._send(method, url, json=json, data=data, files=files, params=params,
                                        headers=sent, **per_call)
            location = response.headers.get("location")
            if not response.is_redirect or not location:
                break
            target = urljoin(url, location)
            if response.status_code not in _KEEP_BODY:
                method, json, data, files = "GET", None, None, None
            if not same_site(url, target):
                sent = {k: v for k, v in sent.items() if k not in credentials}
            url, params = target, None  # the new location carries its own query
        else:
            raise ProviderError(
                f"{self.instance_name}: {method} {path} was redirected more than {self.max_redirects} times; "
                f"check base_url ({self.base_url})", provider=self.instance_name, retryable=False)
        if response.is_success:
            return response
        raise self.status_error(ErrorReply.from_response(response))

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request``, then its JSON body (an empty body is None); unreadable JSON is InvalidResponseError."""
        response = await self.request(method, path, **kwargs)
        return self.decode_json(response)

    def decode_json(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        return read_json(response, provider=self.instance_name)

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, url, follow_redirects=False, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"{self.instance_name} did not answer in time ({type(exc).__name__})",
                                       provider=self.instance_name) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"{self.instance_name} could not be reached ({type(exc).__name__})",
                                           provider=self.instance_name) from exc
