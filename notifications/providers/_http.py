"""HTTP plumbing shared by the requests-based providers: transport failures, 429 and 5xx become
RetriableError here, so each provider only maps its own error codes."""

from __future__ import annotations

from typing import Any

import requests

from .base import PermanentError, RetriableError


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds; an HTTP-date form (rare on these APIs) yields None and the
    caller's backoff applies."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def call(session: requests.Session, method: str, url: str, *, timeout: float, **kwargs: Any) -> requests.Response:
    """Make the request; raise RetriableError for what a later attempt may fix at the HTTP level."""
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectTimeout as exc:
        raise RetriableError(f"connect timeout: {exc}") from exc
    except requests.Timeout as exc:
        raise RetriableError(f"read timeout: {exc}", maybe_sent=True) from exc
    except requests.RequestException as exc:
        raise RetriableError(f"connection error: {exc}") from exc
    if response.status_code == 429:
        raise RetriableError("HTTP 429", code=429, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    if response.status_code >= 500:
        raise RetriableError(f"HTTP {response.status_code}", code=response.status_code)
    return response


def json_object(response: requests.Response) -> dict[str, Any]:
    """The JSON object body; a 2xx that is not JSON (a proxy's error page) is retriable."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    snippet = response.text[:200]
    if response.ok:
        raise RetriableError(f"unexpected non-JSON answer (HTTP {response.status_code}): {snippet}")
    raise PermanentError(f"HTTP {response.status_code}: {snippet}", code=response.status_code)
