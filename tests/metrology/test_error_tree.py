"""The error tree drawn in metrology/errors.py is the real class hierarchy, and it is complete."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import metrology.errors
from metrology.errors import CalstreamError

PACKAGES = ("metrology", "ingest", "stream_processors", "storage", "edge_sim", "dashboards")
ERROR_MODULES = (
    "metrology.errors",
    "ingest.errors",
    "stream_processors.errors",
    "storage.errors",
    "edge_sim.errors",
    "dashboards.errors",
    "calstream.errors",
)


def drawn_tree() -> dict[str, str | None]:
    """Each class name in the docstring's drawing, with the name of its parent."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    doc = metrology.errors.__doc__ or ""
    for line in doc.splitlines():
        match = re.match(
            r"^(\s*(?:[│ ]   )*)(?:[├└]── )?([A-Z][A-Za-z]+(?:Error|Unavailable|Full|"
            r"Timeout|Query))\b",
            line,
        )
        if not match or not line.startswith("    "):
            continue
        depth = len(match.group(1)) // 4
        name = match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def real_classes() -> dict[str, type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for module_name in ERROR_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, CalstreamError):
                classes[name] = value
    return classes


def test_the_drawing_names_every_error_class_with_its_real_parent() -> None:
    drawn = drawn_tree()
    classes = real_classes()
    assert drawn["CalstreamError"] is None
    assert set(drawn) == set(classes), "drawn and defined error classes differ"
    for name, parent in drawn.items():
        if parent is None:
            continue
        assert issubclass(classes[name], classes[parent]), f"{name} is not a {parent}"
        calstream_bases = [
            b.__name__ for b in classes[name].__bases__ if issubclass(b, CalstreamError)
        ]
        assert calstream_bases == [parent], (
            f"{name} derives from {calstream_bases}, drawn under {parent}"
        )


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exception_a_package_defines_is_in_the_tree(package: str) -> None:
    """An exception class defined anywhere in a package derives from CalstreamError (private
    control-flow exceptions, named with a leading underscore or kept inside one module, aside)."""
    stray = []
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.endswith(("faust_app", "migrations.env")) or ".migrations." in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, Exception)
                and value.__module__ == module.__name__
                and not name.startswith("_")
                and not issubclass(value, CalstreamError)
            ):
                stray.append(f"{module.__name__}.{name}")
    # Internal: raised inside storage.influx and turned into StorageError by its retry loop.
    allowed = {"storage.influx.retry.Retryable"}
    assert sorted(set(stray) - allowed) == []
