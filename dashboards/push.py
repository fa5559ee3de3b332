"""Push the generated dashboards to a running Grafana through its HTTP API (``grafana-client``).

``grafana-client`` is an optional extra (``pip install 'calstream[grafana]'``): it replaces
urllib3 with urllib3-future, so it is imported only here, when a push is asked for.

Each flavour goes into its own folder (uid ``calstream-<flavour>``, the same folders the file
provisioning uses); a dashboard with the same uid is overwritten. Grafana refuses to overwrite
a dashboard it provisioned from files: push to a Grafana that does not provision them.

:func:`push_organisations` creates the tenants' organisations that ``calstream dashboards
provision`` planned (:mod:`dashboards.organisations`): Grafana cannot create them from files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dashboards.build import DASHBOARDS, dashboard_document
from dashboards.errors import ProvisioningError, PushError
from dashboards.flavours import Flavour
from dashboards.organisations import MANIFEST, Organisation

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


@dataclass(frozen=True, slots=True)
class PushedOrganisation:
    """One tenant's organisation in Grafana: ``created``, ``renamed`` or ``kept``."""

    org_id: int
    name: str
    tenant: str
    action: str


def push_organisations(
    url: str,
    credential: tuple[str, str],
    organisations: Iterable[Organisation],
    *,
    reload: bool = True,
    timeout_s: float = 10.0,
) -> list[PushedOrganisation]:
    """Create the tenants' organisations that Grafana lacks, in the order of their ids, and
    rename those whose tenant was renamed; then (``reload``) have Grafana read its datasource
    and dashboard provisioning files again.

    Grafana numbers a new organisation itself (the next id); provisioning files address it by
    that number, so an organisation that Grafana numbers otherwise than ``organisations.yaml``
    stops the push with :class:`ProvisioningError` (and what to do). Organisations and the
    provisioning reload are the server admin's: ``credential`` is a server admin's user and
    password (Grafana's admin API takes basic authentication only).
    """
    grafana_client = _client_module()
    from grafana_client.client import (  # type: ignore[import-not-found, unused-ignore]
        GrafanaClientError,
        GrafanaException,
    )

    api = grafana_client.GrafanaApi.from_url(url, credential=credential, timeout=timeout_s)
    pushed: list[PushedOrganisation] = []
    try:
        for organisation in sorted(organisations, key=lambda o: o.org_id):
            try:
                found = api.client.GET(f"/orgs/{organisation.org_id}")
            except GrafanaClientError as exc:
                if getattr(exc, "status_code", None) != 404:
                    raise
                found = None
            if found is None:
                answer = api.organization.create_organization({"name": organisation.name})
                given = int(answer["orgId"])
                if given != organisation.org_id:
                    raise ProvisioningError(
                        f"Grafana at {url} numbered the organisation of tenant "
                        f"{organisation.tenant!r} {given}, {MANIFEST} says "
                        f"{organisation.org_id} (organisations were created or deleted there "
                        f"by hand): set its orgId to {given} in {MANIFEST}, run "
                        "`calstream dashboards provision` again and copy the files"
                    )
                action = "created"
            elif found.get("name") != organisation.name:
                api.organizations.update_organization(
                    organisation.org_id, {"name": organisation.name}
                )
                action = "renamed"
            else:
                action = "kept"
            pushed.append(
                PushedOrganisation(organisation.org_id, organisation.name, organisation.tenant,
                                   action)
            )  # fmt: skip
        if reload:
            api.client.POST("/admin/provisioning/datasources/reload")
            api.client.POST("/admin/provisioning/dashboards/reload")
    except GrafanaException as exc:
        raise PushError(f"Grafana at {url} refused: {exc}") from exc
    except OSError as exc:
        raise PushError(f"cannot reach Grafana at {url}: {exc}") from exc
    return pushed
