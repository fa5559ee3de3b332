"""One attempt to post one chunk of line protocol, through the v1 or the v2 write API.

An attempt returns when the server answered 204 (every line accepted). It raises
:class:`~storage.influx.retry.Retryable` for failures worth another attempt (connection refused
or reset, timeouts, 429, 5xx, with the server's ``Retry-After``) and
:class:`~storage.errors.StorageError` with the server's message and what to do for the rest.
Retrying is the caller's (:mod:`storage.influx.sink`).

- :class:`V1Writer`: ``POST /write?db=&rp=&precision=ns`` with httpx, user and password as HTTP
  basic credentials (InfluxDB 1.x, 1.8+, 2.x's compatibility API).
- :class:`V2Writer`: ``POST /api/v2/write`` through ``influxdb-client``'s write service with
  token, org and bucket (InfluxDB 2.x, 3.x, 1.8+, VictoriaMetrics).

Both post a body :func:`request_body` gzipped beforehand (at level 1: influxdb-client's own
gzip runs at level 9, which costs more CPU than the rest of the write).
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from typing import Protocol

import httpx
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService

from storage.errors import StorageError
from storage.influx.retry import RETRYABLE_STATUS, Retryable, parse_retry_after
from storage.influx.target import InfluxTarget

log = logging.getLogger(__name__)

GZIP_LEVEL = 1
"""Line protocol compresses about 8x at level 1; higher levels cost CPU for a few % more."""


def request_body(lines: Sequence[str], gzipped: bool) -> bytes:
    """The lines as one request body: newline-separated UTF-8, gzipped at ``GZIP_LEVEL``.

    The sink builds it in the caller's thread: zlib releases the GIL while it compresses, so
    the sender threads run meanwhile instead of waiting for the interpreter's switch interval.
    """
    data = "\n".join(lines).encode()
    return gzip.compress(data, GZIP_LEVEL) if gzipped else data


class ChunkWriter(Protocol):
    def send(self, data: bytes, database: str | None = None) -> None:
        """Post ``data`` (a :func:`request_body`) once, to ``database`` (v1; None: the
        target's); raise Retryable or StorageError."""

    def close(self) -> None: ...


def refusal(target: InfluxTarget, status: int, message: str) -> StorageError:
    """A final refusal, with what to do about it."""
    hint = {
        400: "the server refused the line protocol (for example a field type conflict: a "
        "field written before with another type in the same shard)",
        401: "check the user and password (influxdb://user:password@...) or the token",
        403: "the credentials may not write to this database or bucket",
        404: "create the database (CREATE DATABASE) or bucket, or fix its name in the store URL",
        413: "lower chunk_lines in the store URL (request body too large)",
    }.get(status, "see the server's log")
    return StorageError(
        f"InfluxDB at {target.redacted_url} refused the write: HTTP {status}: "
        f"{message.strip()[:500]}; {hint}"
    )


def _retryable(status: int, message: str, retry_after: str | None) -> Retryable:
    return Retryable(f"HTTP {status}: {message.strip()[:300]}", parse_retry_after(retry_after))


class V1Writer:
    """The v1 ``/write`` API over one keep-alive httpx client (thread-safe)."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        policy = target.policy
        auth = None
        if target.username is not None:
            auth = httpx.BasicAuth(target.username, target.password or "")
        self._client = httpx.Client(
            base_url=target.base_url,
            auth=auth,
            timeout=policy.timeout_s,
            limits=httpx.Limits(max_connections=policy.senders + 2),
        )
        self._params = {"precision": "ns"}
        if target.retention_policy:
            self._params["rp"] = target.retention_policy
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if policy.gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._created: set[str] = set()
        """Databases this writer created (once each: a second 'not found' is a refusal)."""

    def send(self, data: bytes, database: str | None = None) -> None:
        database = database or self.target.database
        try:
            response = self._client.post(
                "/write", params={**self._params, "db": database}, content=data,
                headers=self._headers,
            )  # fmt: skip
        except httpx.TransportError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 204:
            return
        if status in RETRYABLE_STATUS:
            raise _retryable(status, response.text, response.headers.get("Retry-After"))
        if (
            status == 404
            and "database not found" in response.text
            and database not in self._created
        ):
            self._created.add(database)
            self.create_database(database)
            raise Retryable("database created; writing again", retry_after=0.0)
        raise refusal(self.target, status, response.text)

    def create_database(self, database: str | None = None) -> None:
        """``CREATE DATABASE`` (idempotent; needs an admin user when authentication is on)."""
        database = database or self.target.database
        name = database.replace("\\", "\\\\").replace('"', '\\"')
        try:
            response = self._client.post("/query", data={"q": f'CREATE DATABASE "{name}"'})
        except httpx.TransportError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            log.warning("CREATE DATABASE %s: HTTP %d %s", name, response.status_code, response.text)

    def close(self) -> None:
        self._client.close()


class V2Writer:
    """The v2 ``/api/v2/write`` API through influxdb-client (thread-safe: urllib3's pool)."""

    def __init__(self, target: InfluxTarget) -> None:
        self.target = target
        policy = target.policy
        self._client = InfluxDBClient(
            url=target.base_url,
            token=target.token or "",
            org=target.org or "",
            timeout=int(policy.timeout_s * 1000),
            enable_gzip=False,  # gzipped here, at GZIP_LEVEL
            connection_pool_maxsize=policy.senders + 2,
            retries=False,  # retried by the sink, honouring Retry-After
        )
        self._service = WriteService(self._client.api_client)
        self._encoding = {"content_encoding": "gzip"} if policy.gzip else {}

    def send(self, data: bytes, database: str | None = None) -> None:
        # The v2 form has one bucket (a store URL with per_tenant is refused for it).
        try:
            self._service.post_write(
                org=self.target.org,
                bucket=self.target.bucket,
                body=data,
                precision="ns",
                content_type="text/plain; charset=utf-8",
                **self._encoding,
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            message = exc.body if isinstance(exc.body, str) else str(exc.reason or "")
            headers: dict[str, str] = dict(exc.headers or {})
            if status in RETRYABLE_STATUS or status == 0:
                raise _retryable(status, message, headers.get("Retry-After")) from exc
            raise refusal(self.target, status, message) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def chunk_writer(target: InfluxTarget) -> ChunkWriter:
    return V1Writer(target) if target.api == "v1" else V2Writer(target)
