"""Retrying one request: which failures are worth another attempt, and how long to wait.

A :class:`Retryable` failure (connection refused or reset, timeout, HTTP 429, 500, 502, 503,
504) is retried with jittered exponential back-off, or after the server's ``Retry-After``
when it sends one, until the policy's budget is spent; anything else (400 line protocol
refused, 401/403 credentials, 404 no such database) is final at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay
from tenacity.wait import wait_random_exponential

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class Retryable(Exception):
    """A failure worth another attempt; ``retry_after`` is the server's wish, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(when - (time.time() if now is None else now), 0.0)


class _Stop:
    """Stop when the budget is spent, or when the server's Retry-After reaches beyond it (an
    earlier attempt would disregard the server's wish; waiting would only delay the failure)."""

    def __init__(self, budget_s: float, started: float) -> None:
        self._after_budget = stop_after_delay(budget_s)
        self._deadline = started + budget_s

    def __call__(self, state: RetryCallState) -> bool:
        if self._after_budget(state):
            return True
        error = state.outcome.exception() if state.outcome else None
        wanted = getattr(error, "retry_after", None)
        return wanted is not None and time.monotonic() + float(wanted) > self._deadline


class _Wait:
    """Retry-After when the server sent one, else jittered exponential; never past the budget."""

    def __init__(self, budget_s: float, started: float) -> None:
        self._backoff = wait_random_exponential(multiplier=0.05, max=5.0)
        self._deadline = started + budget_s

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        wanted = getattr(error, "retry_after", None)
        wait = float(wanted) if wanted is not None else self._backoff(state)
        # Back-off past the budget only delays the failure: wake up at the deadline for the
        # last attempt (the stop condition then ends it).
        if wanted is not None:
            return wait
        return max(min(wait, self._deadline - time.monotonic()), 0.0)


def call_with_retries(attempt: Callable[[], T], budget_s: float) -> T:
    """Call ``attempt`` until it returns, raises a non-:class:`Retryable`, or the budget is spent
    (then the last :class:`Retryable` is raised)."""
    started = time.monotonic()
    retrying = Retrying(
        retry=retry_if_exception_type(Retryable),
        stop=_Stop(budget_s, started),
        wait=_Wait(budget_s, started),
        reraise=True,
    )
    return retrying(attempt)
