"""Where an InfluxSink writes: the store URL, parsed into a target and its write policy.

::

    influxdb://[user:password@]host[:8086]/database[?rp=autogen]      v1 API (/write, InfluxQL)
    influxdb2://host[:8086]?org=ORG&bucket=BUCKET&token=TOKEN          v2 API (influxdb-client)
    influxdbs://..., influxdb2s://...                                  the same over HTTPS

Options for either form (query parameters): ``chunk_lines``, ``in_flight``, ``senders``,
``retry_s``, ``timeout_s``, ``gzip``, ``reads`` (``influxql`` | ``victoriametrics``) and, for the
v2 form, ``database`` (the DBRP database InfluxQL reads; defaults to the bucket).

``per_tenant=true`` (v1 form): each tenant's points go to a database of their own,
``<database>_<tenant>`` (:meth:`InfluxTarget.database_of`), so that a read-only InfluxDB user
granted that database alone reads that tenant alone (:mod:`storage.influx.tenancy`); points of
no tenant (dead letters refused before their tenant was known) go to ``<database>`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 8086

_SCHEMES: dict[str, tuple[Literal["v1", "v2"], str]] = {
    "influxdb": ("v1", "http"),
    "influxdbs": ("v1", "https"),
    "influxdb2": ("v2", "http"),
    "influxdb2s": ("v2", "https"),
}
READS = ("influxql", "victoriametrics")


@dataclass(frozen=True, slots=True)
class WritePolicy:
    """How chunks are sent: size, bounds, retry budget (docs/influxdb.md, "Store URLs")."""

    chunk_lines: int = 5000
    """Lines per request (InfluxData's guidance: about 5,000)."""
    in_flight: int = 8
    """Chunks serialised but not yet accepted, over all callers; more waits (back-pressure)."""
    senders: int = 4
    """Requests at a time: enough to keep the server busy while the caller holds the GIL
    serialising the next chunk (two left a server on its own CPU idle a third of the time)."""
    retry_s: float = 30.0
    """How long one chunk is retried before the write raises StorageError."""
    timeout_s: float = 10.0
    """One request's timeout."""
    gzip: bool = True

    def __post_init__(self) -> None:
        if self.chunk_lines < 1 or self.in_flight < 1 or self.senders < 1:
            raise ValueError("chunk_lines, in_flight and senders must be at least 1")
        if self.retry_s < 0 or self.timeout_s <= 0:
            raise ValueError("retry_s must be >= 0 and timeout_s > 0")


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """One InfluxDB (or VictoriaMetrics) database or bucket, and how to reach it."""

    api: Literal["v1", "v2"]
    base_url: str
    """``http(s)://host:port``, no trailing slash."""
    database: str
    """v1: the database written; v2: the database InfluxQL reads name (the bucket's DBRP)."""
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    org: str | None = None
    bucket: str | None = None
    token: str | None = field(default=None, repr=False)
    reads: Literal["influxql", "victoriametrics"] = "influxql"
    policy: WritePolicy = WritePolicy()
    per_tenant: bool = False
    """v1: one database per tenant, ``<database>_<tenant>`` (see the module docstring)."""

    def database_of(self, tenant: str | None) -> str:
        """The database a point of ``tenant`` is written to (``None``: no tenant known)."""
        if not self.per_tenant or tenant is None:
            return self.database
        return tenant_database(self.database, tenant)

    def with_policy(self, **changes: object) -> InfluxTarget:
        return replace(self, policy=replace(self.policy, **changes))  # type: ignore[arg-type]

    @property
    def redacted_url(self) -> str:
        """For messages and logs: no password, no token."""
        where = self.database if self.api == "v1" else f"bucket {self.bucket}"
        if self.per_tenant:
            where = f"{where} and {self.database}_<tenant>"
        return f"{self.base_url} ({self.api} API, {where})"


def tenant_database(base: str, tenant: str) -> str:
    """``<base>_<tenant>``: one-to-one for a given base (tenant ids are never empty)."""
    return f"{base}_{tenant}"


def _flag(query: dict[str, list[str]], key: str) -> bool | None:
    text = _one(query, key)
    if text is None:
        return None
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"store URL option {key}={text!r}: use true or false")
    return text.lower() in ("true", "1")


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.pop(key, None)
    return None if not values else values[-1]


def _policy(query: dict[str, list[str]], url: str) -> WritePolicy:
    changes: dict[str, object] = {}
    for key, kind in (
        ("chunk_lines", int), ("in_flight", int), ("senders", int),
        ("retry_s", float), ("timeout_s", float),
    ):  # fmt: skip
        text = _one(query, key)
        if text is not None:
            try:
                changes[key] = kind(text)
            except ValueError:
                raise ValueError(f"store URL option {key}={text!r} is not a number") from None
    gzip = _flag(query, "gzip")
    if gzip is not None:
        changes["gzip"] = gzip
    return WritePolicy(**changes)  # type: ignore[arg-type]


def parse_store_url(url: str) -> InfluxTarget:
    """Parse an ``influxdb://`` / ``influxdb2://`` (``...s://``) store URL.

    Raises ``ValueError`` naming what is wrong: an unknown scheme, a missing database, org,
    bucket or token, an unknown option.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"not an InfluxDB store URL: {parts.scheme}:// (use influxdb://user:password@host:8086"
            "/database for the v1 API or influxdb2://host:8086?org=..&bucket=..&token=.. for v2)"
        )
    api, http = _SCHEMES[scheme]
    if not parts.hostname:
        raise ValueError(f"store URL {scheme}://... names no host")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    base_url = f"{http}://{host}:{parts.port or DEFAULT_PORT}"
    query = parse_qs(parts.query, keep_blank_values=True)
    policy = _policy(query, url)
    reads = _one(query, "reads") or "influxql"
    if reads not in READS:
        raise ValueError(f"store URL option reads={reads!r}: use one of {', '.join(READS)}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    per_tenant = bool(_flag(query, "per_tenant"))
    if per_tenant and (api != "v1" or reads != "influxql"):
        raise ValueError(
            "store URL option per_tenant=true is for InfluxDB 1.x (influxdb://...): one "
            "database per tenant, each read by its own user"
        )
    if api == "v1":
        database = unquote(parts.path.strip("/"))
        if not database or "/" in database:
            raise ValueError(
                f"store URL {scheme}://{parts.hostname}: name the database as the path "
                "(influxdb://user:password@host:8086/calstream)"
            )
        target = InfluxTarget(
            api="v1",
            base_url=base_url,
            database=database,
            retention_policy=_one(query, "rp") or None,
            username=username,
            password=password,
            reads=reads,  # type: ignore[arg-type]
            policy=policy,
            per_tenant=per_tenant,
        )
    else:
        org, bucket, token = _one(query, "org"), _one(query, "bucket"), _one(query, "token")
        if token is None and username is not None:
            token = f"{username}:{password or ''}"  # InfluxDB 1.8's v2 API: token=user:password
        missing = [k for k, v in (("org", org), ("bucket", bucket), ("token", token)) if not v]
        if missing:
            raise ValueError(
                f"store URL {scheme}://{parts.hostname}: missing {', '.join(missing)} "
                "(influxdb2://host:8086?org=ORG&bucket=BUCKET&token=TOKEN)"
            )
        assert bucket is not None
        target = InfluxTarget(
            api="v2",
            base_url=base_url,
            database=_one(query, "database") or bucket,
            retention_policy=_one(query, "rp") or None,
            org=org,
            bucket=bucket,
            token=token,
            reads=reads,  # type: ignore[arg-type]
            policy=policy,
        )
    if query:
        raise ValueError(f"store URL: unknown option(s) {', '.join(sorted(query))}")
    return target
