"""Push the generated dashboards to a running Grafana through its HTTP API (``grafana-client``).

``grafana-client`` is an optional extra (``pip install 'calstream[grafana]'``): it replaces
urllib3 with urllib3-future, so it is imported only here, when a push is asked for.

Each flavour goes into its own folder (uid ``calstream-<flavour>``, the same folders the file
provisioning uses); a dashboard with the same uid is overwritten. Grafana refuses to overwrite
a dashboard it provisioned from files: push to a Grafana that does not provision them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dashboards.build import DASHBOARDS, dashboard_document
from dashboards.errors import PushError
from dashboards.flavours import Flavour

INSTALL_HINT = "pip install 'calstream[grafana]'"
FOLDER_TITLES = {"sqlite": "calstream (SQLite)", "influxdb": "calstream (InfluxDB)"}


@dataclass(frozen=True, slots=True)
class Pushed:
    uid: str
    title: str
    folder_uid: str
    url: str


def _client_module() -> Any:
    try:
        import grafana_client  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise PushError(
            f"pushing dashboards needs the optional grafana-client package: {INSTALL_HINT}"
        ) from exc
    return grafana_client


def push(
    url: str, token: str, flavours: Iterable[Flavour], timeout_s: float = 10.0
) -> list[Pushed]:
    """Create the folders if missing and save every dashboard of ``flavours``; returns them."""
    grafana_client = _client_module()
    from grafana_client.client import (  # type: ignore[import-not-found, unused-ignore]
        GrafanaClientError,
        GrafanaException,
    )

    api = grafana_client.GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    pushed: list[Pushed] = []
    try:
        for flavour in flavours:
            folder_uid = f"calstream-{flavour.name}"
            try:
                api.folder.get_folder(folder_uid)
            except GrafanaClientError as exc:
                if getattr(exc, "status_code", None) != 404:
                    raise
                api.folder.create_folder(FOLDER_TITLES[flavour.name], uid=folder_uid)
            for spec in DASHBOARDS:
                document = dashboard_document(spec, flavour)
                answer = api.dashboard.update_dashboard(
                    {
                        "dashboard": document,
                        "folderUid": folder_uid,
                        "overwrite": True,
                        "message": "calstream dashboards push",
                    }
                )
                pushed.append(
                    Pushed(document["uid"], document["title"], folder_uid, str(answer.get("url")))
                )
    except GrafanaException as exc:
        raise PushError(f"Grafana at {url} refused: {exc}") from exc
    except OSError as exc:  # requests' ConnectionError and timeouts are OSErrors
        raise PushError(f"cannot reach Grafana at {url}: {exc}") from exc
    return pushed
