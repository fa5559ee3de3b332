"""What the registry verbs share: where a request goes, documents from files, the output.

Every verb (`calstream tenants|sites|gateways|instruments|calibrations|contracts|tokens ...`)
is one request of the HTTP API (docs/api.md), sent

- to a running API, with ``--api URL --token TOKEN`` (or ``CALSTREAM_API_URL`` and
  ``CALSTREAM_API_TOKEN``): the token's tenant and role decide what it may do; or
- to the API's application inside this process, on the configured store (``--store``,
  ``--db``), acting as the local principal (the command line on the server itself, which may
  do everything, creating tenants included; the audit trail names the OS user).

Either way the same routes validate the same documents and answer the same JSON, so ``--json``
prints the same thing, and a refusal is the same problem (exit status 1).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import quote

import httpx
import typer
import yaml
from rich.console import Console
from rich.table import Table

from calstream.cli.common import fail, load_settings

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="A running calstream API, http://host:8080 (default: CALSTREAM_API_URL; unset: "
        "act on the store directly, as the local principal).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="The API token to present with --api (default: CALSTREAM_API_TOKEN).",
        show_default=False,
    ),
]
FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="The document, JSON or YAML, as the API takes it (docs/api.md); options given as "
        "well replace its fields.",
        exists=True,
        dir_okay=False,
        show_default=False,
    ),
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (kept in the audit trail).", show_default=False)
]
RequiredReason = Annotated[
    str, typer.Option("--reason", help="Why (required; kept in the audit trail).")
]
TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="Only this tenant.", show_default=False)
]


@dataclass(frozen=True)
class Reach:
    """Where the verb's request goes, and how its answer is printed."""

    api: str | None = None
    token: str | None = None
    store: str | None = None
    db: Path | None = None
    json: bool = False


class Refused(Exception):
    """The API answered with a problem (RFC 9457)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or status)
        self.status = status
        self.problem = problem


class Client(Protocol):
    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any: ...


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase, "detail": response.text[:500]}
        if not isinstance(problem, dict):
            problem = {"title": response.reason_phrase, "detail": str(problem)[:500]}
        raise Refused(response.status_code, problem)
    return response.json()


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None}


class RemoteApi:
    """A running API, over HTTP, with a bearer token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            response = self._client.request(method, path, params=_params(params), json=body)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the API at {self.url}: {exc}", code=1)
        return _answer(response)

    def close(self) -> None:
        self._client.close()


class InProcessApi:
    """The API's application called in this process on a store, as the local principal."""

    def __init__(self, store: Any) -> None:
        from calstream.api import create_app
        from metrology.tenancy import Principal

        self._app = create_app(store, local=Principal.local(_os_user()))

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
                return await client.request(method, path, params=_params(params), json=body)

        return _answer(asyncio.run(send()))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "local"


@contextmanager
def client_for(where: Reach) -> Iterator[Client]:
    """The API the options name, or the application in process on the configured store."""
    settings = load_settings()
    url = where.api or settings.api_url
    if url:
        secret = settings.api_token.get_secret_value() if settings.api_token else None
        token = where.token or secret
        if not token:
            fail("--api needs a token: --token TOKEN or CALSTREAM_API_TOKEN")
        remote = RemoteApi(url, token)
        try:
            yield remote
        finally:
            remote.close()
        return
    from calstream.cli.common import with_store
    from calstream.wiring import store_for
    from storage.errors import StorageError
    from storage.select import SQLITE_PREFIX

    if where.store is None and where.db is not None:
        settings = with_store(settings, f"{SQLITE_PREFIX}{where.db}")
    else:
        settings = with_store(settings, where.store)
    try:
        store = store_for(settings)
    except (ValueError, StorageError) as exc:
        fail(str(exc))
    try:
        yield InProcessApi(store)
    finally:
        store.close()


def segment(value: str | int) -> str:
    """``value`` as one path segment."""
    return quote(str(value), safe="")


def load_document(path: Path | None) -> dict[str, Any]:
    """The JSON or YAML mapping in ``path`` (empty without a file)."""
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        fail(f"cannot read {path}: {exc}")
    if not isinstance(loaded, dict):
        fail(f"{path} holds no document (a JSON or YAML mapping of fields)")
    return loaded


def merged(file: Path | None, **given: Any) -> dict[str, Any]:
    """The file's document with the options that were given (not None) on top."""
    document = load_document(file)
    document.update({k: v for k, v in given.items() if v is not None})
    return document


def report_refusal(exc: Refused, json_output: bool) -> None:
    if json_output:
        print(json.dumps(dict(exc.problem)))
    console = Console(stderr=True)
    title = exc.problem.get("title", "refused")
    console.print(f"[bold red]error:[/] {exc.status} {title}: {exc.problem.get('detail', '')}")
    for error in exc.problem.get("errors") or []:
        where = error.get("pointer") or error.get("field") or ""
        console.print(f"  {error.get('location', '')} {where}: {error.get('detail', '')}")


def call(
    where: Reach,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    body: Mapping[str, Any] | None = None,
    show: Callable[[Any], None] | None = None,
) -> Any:
    """Send the request, print the answer (``--json``: as one line), exit 1 on a refusal."""
    with client_for(where) as client:
        try:
            answer = client.request(method, path, params, body)
        except Refused as exc:
            report_refusal(exc, where.json)
            raise typer.Exit(1) from exc
    if where.json:
        print(json.dumps(answer))
    elif show is not None:
        show(answer)
    else:
        show_record(answer)
    return answer


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def show_record(record: Mapping[str, Any]) -> None:
    """One object as ``field: value`` lines."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in record.items():
        table.add_row(key, _cell(value))
    Console().print(table)


def table_of(columns: Sequence[str]) -> Callable[[Any], None]:
    """Print a list answer (``items``) as a table of ``columns``."""

    def show(answer: Any) -> None:
        items = answer.get("items", []) if isinstance(answer, dict) else answer
        table = Table(*columns, box=None, header_style="bold")
        for item in items:
            table.add_row(*(_cell(item.get(c)) for c in columns))
        Console().print(table)
        if isinstance(answer, dict) and answer.get("next"):
            Console(stderr=True).print(f"more: {answer['next']}")

    return show
