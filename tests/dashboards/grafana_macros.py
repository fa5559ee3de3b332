"""What Grafana and the datasource plugins do to a query before it runs, for the tests.

Grafana's frontend first replaces template variables (``templateSrv.replace``), then the
datasource replaces its macros. Only the syntax calstream's dashboards use is supported, and
anything else fails loudly rather than running a half-expanded query:

Variables (Grafana, https://grafana.com/docs/grafana/latest/dashboards/variables/variable-syntax/):

- ``$name``, ``${name}``, ``[[name]]``: the value; a multi-value selection without a format is
  refused (its default format depends on the datasource);
- ``${name:sqlstring}``: each value in single quotes, quotes doubled, comma separated;
- ``${name:regex}``: one value regex-escaped; several as ``(a|b)``;
- ``${name:csv}``: comma separated;
- ``$__from``, ``$__to``: the range in epoch milliseconds.

``frser-sqlite-datasource`` macros (its ``pkg/plugin/macros.go``):

- ``$__unixEpochGroupSeconds(column, seconds)``: ``cast((column / seconds) as int) * seconds``;
- ``$__timeFilter(column)`` is refused: on a REAL column of epoch seconds it is wrong.

InfluxDB datasource (InfluxQL):

- ``$timeFilter``: ``time >= <from>ms and time <= <to>ms``;
- ``$__interval``: the interval given (Grafana derives it from the range and the panel width).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

VARIABLE = re.compile(
    r"\$(?P<plain>\w+)"
    r"|\[\[(?P<bracket>\w+?)(?::(?P<bracket_format>\w+))?\]\]"
    r"|\$\{(?P<braced>\w+)(?::(?P<format>[^}]+))?\}"
)
"""Grafana's variable syntax (the same three forms as its ``variableRegex``)."""

DATASOURCE_VARIABLES = frozenset({"timeFilter", "__interval", "__interval_ms"})
"""Names Grafana leaves to the datasource (expanded by the macro step)."""
GLOBAL_VARIABLES = frozenset({"__from", "__to"})
SQLITE_GROUP = re.compile(r"\$__unixEpochGroupSeconds\(([^,()]+),\s*(\d+)\s*(?:,\s*NULL\s*)?\)")
REGEX_SPECIALS = re.compile(r"[\\^$.|?*+()\[\]{}/]")


class ExpansionError(ValueError):
    """A query uses a variable, format or macro that is not defined or not supported."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The dashboard's time range, epoch milliseconds (what ``$__from``/``$__to`` give)."""

    from_ms: int
    to_ms: int

    @classmethod
    def of_seconds(cls, start: float, end: float) -> TimeRange:
        return cls(int(start * 1000), int(end * 1000))


def variables_used(text: str) -> set[str]:
    """Names of the template variables a query refers to (globals and macros excluded)."""
    names = set()
    for match in VARIABLE.finditer(text):
        name = match.group("plain") or match.group("bracket") or match.group("braced")
        if name in GLOBAL_VARIABLES or name in DATASOURCE_VARIABLES:
            continue
        if match.group("plain") and text[match.end() : match.end() + 1] == "(":
            continue  # a macro: $__name(...)
        names.add(name)
    return names


def _format(name: str, values: Sequence[str], form: str | None) -> str:
    if form is None or form in ("raw", "text"):
        if len(values) != 1:
            raise ExpansionError(f"${name} has {len(values)} values and no format")
        return values[0]
    if form == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if form == "regex":
        escaped = [REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if form == "csv":
        return ",".join(values)
    raise ExpansionError(f"format {form!r} of ${name} is not supported here")


def expand_variables(text: str, values: Mapping[str, Sequence[str]], time_range: TimeRange) -> str:
    """Replace template variables as Grafana's frontend does; macros are left in place."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("plain") or match.group("bracket") or match.group("braced")
        form = match.group("format") or match.group("bracket_format")
        if name == "__from":
            return str(time_range.from_ms)
        if name == "__to":
            return str(time_range.to_ms)
        if name in DATASOURCE_VARIABLES:
            return match.group(0)
        if match.group("plain") and text[match.end() : match.end() + 1] == "(":
            return match.group(0)  # a datasource macro
        if name not in values:
            raise ExpansionError(f"variable ${name} is not defined")
        if not values[name]:
            raise ExpansionError(f"variable ${name} has no value")
        return _format(name, values[name], form)

    return VARIABLE.sub(replace, text)


def expand_sqlite(text: str, values: Mapping[str, Sequence[str]], time_range: TimeRange) -> str:
    """A ``frser-sqlite-datasource`` query as the plugin runs it."""
    expanded = expand_variables(text, values, time_range)
    expanded = SQLITE_GROUP.sub(
        lambda m: f"cast(({m.group(1).strip()} / {m.group(2)}) as int) * {m.group(2)}", expanded
    )
    if "$__" in expanded:
        raise ExpansionError(f"unsupported macro left in {expanded!r}")
    return expanded


def expand_influxql(
    text: str,
    values: Mapping[str, Sequence[str]],
    time_range: TimeRange,
    interval: str = "1h",
) -> str:
    """An InfluxQL query as Grafana's InfluxDB datasource sends it."""
    expanded = expand_variables(text, values, time_range)
    expanded = expanded.replace(
        "$timeFilter", f"time >= {time_range.from_ms}ms and time <= {time_range.to_ms}ms"
    )
    expanded = expanded.replace("$__interval", interval)
    if re.search(r"\$(?=\w)", expanded):
        raise ExpansionError(f"unexpanded variable left in {expanded!r}")
    return expanded
