"""The generated dashboards: committed as generated, and internally consistent.

Datasources named exist in provisioning, variables used are defined (before the variables that
use them), the grid is valid and every link lands on a dashboard that exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_macros import variables_used

from dashboards.build import DASHBOARDS, JSON_DIR, documents, render
from dashboards.flavours import FLAVOURS

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
GENERATED = documents(FLAVOURS.values())
DOCUMENTS = sorted(GENERATED.items())
LINKED_UID = re.compile(r"/d/([A-Za-z0-9_-]+)")


def all_panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in document["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def target_text(target: dict[str, Any]) -> str:
    return str(target.get("rawQueryText", target.get("query", "")))


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of every provisioned datasource."""
    found = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yaml")):
        for datasource in yaml.safe_load(path.read_text())["datasources"]:
            found[datasource["uid"]] = datasource["type"]
    return found


def test_committed_json_is_what_the_code_generates_byte_for_byte() -> None:
    committed = {
        str(path.relative_to(JSON_DIR)): path.read_bytes() for path in JSON_DIR.rglob("*.json")
    }
    regenerated = {name: render(document).encode() for name, document in GENERATED.items()}
    assert sorted(committed) == sorted(regenerated), "run `python -m dashboards.build`"
    stale = [name for name in regenerated if committed[name] != regenerated[name]]
    assert not stale, f"{stale} differ from the code: run `python -m dashboards.build`"


def test_generation_is_stable_and_carries_no_instance_state() -> None:
    again = documents(FLAVOURS.values())
    assert {k: render(v) for k, v in again.items()} == {k: render(v) for k, v in DOCUMENTS}
    for _, document in DOCUMENTS:
        assert "id" not in document and "version" not in document
        assert document["schemaVersion"] == 42


def test_both_flavours_define_exactly_the_queries_the_dashboards_use() -> None:
    panel_keys = {panel.query for board in DASHBOARDS for panel in board.panels}
    variable_keys = {f"{board.key}.{v.name}" for board in DASHBOARDS for v in board.variables}
    for flavour in FLAVOURS.values():
        assert set(flavour.queries) == panel_keys, flavour.name
        assert set(flavour.variables) == variable_keys, flavour.name


def test_uids_are_fixed_unique_and_short_enough_for_grafana() -> None:
    uids = [document["uid"] for _, document in DOCUMENTS]
    assert len(set(uids)) == len(uids) == 6
    assert all(len(uid) <= 40 for uid in uids)
    assert "calstream-fleet-sqlite" in uids and "calstream-instrument-influxdb" in uids


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_every_datasource_named_is_provisioned(name: str, document: dict[str, Any]) -> None:
    provisioned = provisioned_datasources()
    flavour = FLAVOURS[name.split("/")[0]]
    named = [v["datasource"] for v in document["templating"]["list"]]
    for panel in all_panels(document):
        if panel["type"] == "row":
            continue
        named.append(panel["datasource"])
        named.extend(target["datasource"] for target in panel["targets"])
        assert panel["targets"], f"{panel['title']} has no query"
    for ref in named:
        assert ref == {"type": flavour.datasource.type, "uid": flavour.datasource.uid}
        assert provisioned.get(ref["uid"]) == ref["type"], f"{ref} is not provisioned"


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_every_variable_used_is_defined_before_it_is_used(
    name: str, document: dict[str, Any]
) -> None:
    defined: list[str] = []
    for variable in document["templating"]["list"]:
        used = variables_used(variable["query"])
        assert used <= set(defined), f"${variable['name']} uses {used - set(defined)}"
        defined.append(variable["name"])
    used_by_panels: set[str] = set()
    for panel in all_panels(document):
        for target in panel.get("targets", []):
            used_by_panels |= variables_used(target_text(target))
    assert used_by_panels, "no panel is filtered by a variable"
    assert used_by_panels <= set(defined), used_by_panels - set(defined)


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_grid_is_within_24_columns_without_overlaps(name: str, document: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    ids = []
    for panel in all_panels(document):
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} ends past column 24"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    # no hole between rows: every row's top line is used
    assert {y for _, y in cells} == set(range(max(y for _, y in cells) + 1))


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_every_link_lands_on_a_dashboard_of_the_same_flavour(
    name: str, document: dict[str, Any]
) -> None:
    flavour = name.split("/")[0]
    uids = {d["uid"] for n, d in DOCUMENTS if n.startswith(f"{flavour}/")}
    urls = [link["url"] for link in document["links"]]
    for panel in all_panels(document):
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "links":
                    urls.extend(link["url"] for link in prop["value"])
        urls.extend(
            link["url"]
            for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        )
    assert urls, "a dashboard links to the others"
    for url in urls:
        match = LINKED_UID.search(url)
        assert match and match.group(1) in uids, f"{url} does not land on {sorted(uids)}"


def test_instrument_links_pass_the_variables_the_detail_dashboard_defines() -> None:
    detail = GENERATED["sqlite/instrument.json"]
    names = {v["name"] for v in detail["templating"]["list"]}
    fleet = GENERATED["sqlite/fleet.json"]
    table = next(p for p in fleet["panels"] if p["title"] == "Instruments by status (worst first)")
    (link,) = next(
        prop["value"]
        for o in table["fieldConfig"]["overrides"]
        for prop in o["properties"]
        if prop["id"] == "links"
    )
    passed = set(re.findall(r"var-(\w+)=", link["url"]))
    assert passed == names == {"tenant", "site", "instrument"}
    assert "${__url_time_range}" in link["url"]
