"""Domain values to line-protocol lines, in the schema of :mod:`storage.influx.schema`.

:meth:`ReadingSerialiser.lines` is the hot path (one line per reading): the escaped head of
each instrument's series (measurement and tag set) is built once and cached, string fields of
the few distinct statuses and certificates are cached, floats are formatted by one
``orjson.dumps`` per call, and the fields are written in sorted key order directly. The points
are those of the generic :func:`~storage.influx.lineprotocol.line` (and of influxdb-client's
``Point``); only the spelling of some floats differs (``0.00003`` for ``3e-05``: orjson moves
to exponents at other magnitudes), which parses to the same float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.health import Status
from metrology.reading import Reading
from metrology.wire import DeadLetter
from storage.influx.lineprotocol import (
    FieldValue,
    escape_key,
    escape_measurement,
    format_float,
    line,
    nanoseconds,
    quote_string,
    tag_set,
)
from storage.influx.schema import (
    ALERT,
    DEAD_LETTER,
    FLEET_STATUS,
    FLEET_STATUS_FIELDS,
    FLEET_STATUS_TOTAL,
    HEALTH,
    HEALTH_NUMBER_FIELDS,
    HEALTH_TEXT_FIELDS,
    READING,
    READING_DRIFT_FIELDS,
    SECONDS_PER_DAY,
    SEVERITY_OF,
)

assert Reading._fields[3:8] == ("instrument_id", "ts", "value", "unit", "seq")
assert Assessment._fields[3:13] == (
    "corrected", "certificate_id", "reference", "residual", "u_residual", "ewma", "cusum_high",
    "cusum_low", "drift_rate", "status",
)  # fmt: skip

_isfinite = math.isfinite
_NO_NUMBERS = (None,) * 7
_GENERAL, _PLAIN, _DRIFT = 0, 2, 9
_dumps = orjson.dumps


class ReadingSerialiser:
    """Readings to ``reading`` lines; caches per instrument, status and certificate.

    ``measurand_of`` maps an instrument id to its measurand (from the registered fleet); an
    instrument it does not know is written without the ``measurand`` tag.
    """

    def __init__(self, measurand_of: Callable[[str], str | None]) -> None:
        self._measurand_of = measurand_of
        self._heads: dict[str, str] = {}
        self._statuses: dict[Any, str] = {
            s: "status=" + quote_string(s.value) + "," for s in Status
        }
        self._certificates: dict[str, str] = {}

    def forget_heads(self) -> None:
        """Drop the cached series heads (after the fleet's measurands changed)."""
        self._heads.clear()

    def _tags(self, reading: Reading) -> dict[str, str | None]:
        return {
            "instrument": reading.instrument_id,
            "measurand": self._measurand_of(reading.instrument_id),
            "site": reading.site,
            "tenant": reading.tenant,
        }

    def _head(self, reading: Reading) -> str:
        head = escape_measurement(READING) + tag_set(self._tags(reading)) + " "
        self._heads[reading.instrument_id] = head
        return head

    def _status(self, status: Any) -> str:
        text = "status=" + quote_string(_status_text(status)) + ","
        self._statuses[status] = text
        return text

    def _certificate(self, certificate: str) -> str:
        if len(self._certificates) > 100_000:
            self._certificates.clear()
        text = "certificate=" + quote_string(certificate) + ","
        self._certificates[certificate] = text
        return text

    def line(self, reading: Reading, assessment: Assessment) -> str | None:
        """The general path (any value missing or not finite): the generic serialiser."""
        r, a = reading, assessment
        fields: dict[str, FieldValue] = dict(zip(READING_DRIFT_FIELDS, a[5:12], strict=True))
        fields["value"] = r[5]
        fields["corrected"] = a[3]
        for key, number in fields.items():
            if type(number) is int:  # these fields are floats: never let one become an integer
                fields[key] = float(number)
        fields["seq"] = int(r[7])
        fields["status"] = _status_text(a[12])
        fields["certificate"] = a[4]
        return line(READING, self._tags(r), fields, nanoseconds(r[4]))

    def lines(self, readings: Iterable[tuple[Reading, Assessment]]) -> list[str]:
        """One line per reading (the hot path), in two passes.

        The first pass checks each reading and collects its float fields in key order; one
        ``orjson.dumps`` formats all of them (shortest round-trip spelling, like ``repr``,
        several times faster); the second pass assembles the lines. A whole float's ``.0`` is
        dropped by replacing ``.0,`` in the numbers-only parts (no other text there can contain
        it). A finite sum proves every number finite; a reading with a missing, non-finite or
        non-float number takes the general path (:meth:`line`).
        """
        batch = readings if isinstance(readings, list) else list(readings)
        floats: list[float] = []
        collect = floats.extend
        kinds: list[int] = []
        kind = kinds.append
        isfinite, no_numbers = math.isfinite, _NO_NUMBERS
        for r, a in batch:
            value, corrected, numbers = r[5], a[3], a[5:12]
            if numbers == no_numbers:
                if (
                    type(value) is float
                    and type(corrected) is float
                    and isfinite(value + corrected)
                ):
                    collect((corrected, value))
                    kind(_PLAIN)
                else:
                    kind(_GENERAL)
                continue
            try:
                # (an int among the numbers is written as a float: these fields are floats)
                finite = type(value) is float and isfinite(value + corrected + sum(numbers))
            except TypeError:  # a None among them
                finite = False
            if finite:
                reference, residual, u_residual, ewma, cusum_high, cusum_low, drift_rate = numbers
                # sorted keys: corrected, cusum_high, cusum_low, drift_rate, ewma, reference,
                # residual, (seq, status), u_residual, value
                collect((corrected, cusum_high, cusum_low, drift_rate, ewma, reference, residual,
                         u_residual, value))  # type: ignore[arg-type]  # fmt: skip
                kind(_DRIFT)
            else:
                kind(_GENERAL)
        texts = _dumps(floats).decode()[1:-1].split(",") if floats else []

        out: list[str] = []
        add = out.append
        heads, statuses, certificates = self._heads, self._statuses, self._certificates
        floor = math.floor
        i = 0
        for (r, a), k in zip(batch, kinds, strict=True):
            if k == _PLAIN:
                middle = "corrected=" + texts[i] + ","
                tail = "value=" + texts[i + 1] + ","
                i += 2
            elif k == _DRIFT:
                middle = (
                    f"corrected={texts[i]},cusum_high={texts[i + 1]},cusum_low={texts[i + 2]},"
                    f"drift_rate={texts[i + 3]},ewma={texts[i + 4]},reference={texts[i + 5]},"
                    f"residual={texts[i + 6]},"
                )
                tail = f"u_residual={texts[i + 7]},value={texts[i + 8]},"
                i += 9
            else:
                text = self.line(r, a)
                if text is not None:
                    add(text)
                continue
            if ".0," in middle:
                middle = middle.replace(".0,", ",")
            if ".0," in tail:
                tail = tail.replace(".0,", ",")
            cert, status, ts = a[4], a[12], r[4]
            whole = floor(ts)
            add(
                f"{heads.get(r[3]) or self._head(r)}"
                f"{'' if cert is None else (certificates.get(cert) or self._certificate(cert))}"
                f"{middle}seq={r[7]}i,{statuses.get(status) or self._status(status)}{tail[:-1]} "
                f"{whole * 1_000_000_000 + round((ts - whole) * 1e9)}"
            )
        return out


def _status_text(status: Status | str) -> str:
    return status.value if isinstance(status, Status) else str(status)


def _numbers_fields(numbers: Mapping[str, Any]) -> dict[str, FieldValue]:
    """The declared numbers and texts of a snapshot or change, each with its one type."""
    fields: dict[str, FieldValue] = {}
    for key in HEALTH_NUMBER_FIELDS:
        value = numbers.get(key)
        if type(value) is float:
            fields[key] = value
        elif type(value) is int:
            fields[key] = float(value)
    for key in HEALTH_TEXT_FIELDS:
        value = numbers.get(key)
        if type(value) is str:
            fields[key] = value
    return fields


def _days_between(later: Any, earlier: float) -> float | None:
    if type(later) not in (float, int) or not _isfinite(later):
        return None
    return (float(later) - earlier) / SECONDS_PER_DAY


def health_line(snapshot: HealthSnapshot) -> str | None:
    fields = _numbers_fields(snapshot.numbers)
    fields["status"] = _status_text(snapshot.status)
    fields["severity"] = SEVERITY_OF.get(Status(snapshot.status), len(SEVERITY_OF))
    fields["conditions"] = ",".join(_status_text(c) for c in snapshot.conditions)
    fields["reasons"] = "; ".join(snapshot.reasons)
    if snapshot.last_reading_at is not None:
        fields["last_reading_at"] = float(snapshot.last_reading_at)
    fields["days_to_due"] = _days_between(snapshot.numbers.get("due_at"), snapshot.evaluated_at)
    fields["days_to_predicted_oot"] = _days_between(
        snapshot.numbers.get("predicted_oot_at"), snapshot.evaluated_at
    )
    tags = {"tenant": snapshot.tenant, "site": snapshot.site, "instrument": snapshot.instrument_id}
    return line(HEALTH, tags, fields, nanoseconds(snapshot.evaluated_at))


_NUMBER, _TEXT, _SPECIAL = 0, 1, 2
_HEALTH_SPECIAL = (
    "status", "severity", "conditions", "reasons", "last_reading_at", "days_to_due",
    "days_to_predicted_oot",
)  # fmt: skip
_HEALTH_ORDER: tuple[tuple[str, str, int], ...] = tuple(
    (key, escape_key(key) + "=", kind)
    for key, kind in sorted(
        [(k, _NUMBER) for k in HEALTH_NUMBER_FIELDS]
        + [(k, _TEXT) for k in HEALTH_TEXT_FIELDS]
        + [(k, _SPECIAL) for k in _HEALTH_SPECIAL]
    )
)
"""Every ``health`` field in sorted key order, with its escaped ``key=`` and where it comes from."""


def health_lines(snapshots: Iterable[HealthSnapshot]) -> list[str]:
    """:func:`health_line` for many snapshots at once (the points are the same): the fields
    are visited in a precomputed sorted order and the floats of all snapshots are formatted by
    one ``orjson.dumps``. A snapshot carries some 30 numbers; formatting them one by one cost
    more than a batch's readings."""
    floats: list[float] = []
    keep = floats.append
    plans: list[tuple[str, list[str | int], int]] = []
    isfinite = _isfinite
    for s in snapshots:
        get = s.numbers.get
        at = s.evaluated_at
        special: dict[str, Any] = {
            "status": _status_text(s.status),
            "severity": SEVERITY_OF.get(Status(s.status), len(SEVERITY_OF)),
            "conditions": ",".join(_status_text(c) for c in s.conditions),
            "reasons": "; ".join(s.reasons),
            "last_reading_at": None if s.last_reading_at is None else float(s.last_reading_at),
            "days_to_due": _days_between(get("due_at"), at),
            "days_to_predicted_oot": _days_between(get("predicted_oot_at"), at),
        }
        parts: list[str | int] = []  # "key=value" texts, or a float's index with its key before
        for key, prefix, kind in _HEALTH_ORDER:
            value = get(key) if kind != _SPECIAL else special[key]
            kind_of = type(value)
            if kind_of is float or (kind_of is int and kind == _NUMBER):
                if kind != _TEXT and isfinite(value):
                    parts.append(prefix)
                    parts.append(len(floats))
                    keep(float(value))
            elif kind_of is int and kind == _SPECIAL:  # severity
                parts.append(f"{prefix}{value}i")
            elif kind_of is str and kind != _NUMBER:
                parts.append(prefix + quote_string(value))
        tags = {"tenant": s.tenant, "site": s.site, "instrument": s.instrument_id}
        head = escape_measurement(HEALTH) + tag_set(tags) + " "
        plans.append((head, parts, nanoseconds(at)))
    texts = _dumps(floats).decode()[1:-1].split(",") if floats else []
    out = []
    for head, parts, ns in plans:
        fields: list[str] = []
        prefix = ""
        for part in parts:
            if type(part) is int:
                text = texts[part]
                fields.append(prefix + (text[:-2] if text[-2:] == ".0" else text))
            elif part[-1] == "=":  # type: ignore[index]
                prefix = part  # type: ignore[assignment]
            else:
                fields.append(part)  # type: ignore[arg-type]
        if fields:
            out.append(f"{head}{','.join(fields)} {ns}")
    return out


def alert_line(change: StatusChange) -> str | None:
    fields = _numbers_fields(change.numbers)
    fields["previous"] = None if change.previous is None else _status_text(change.previous)
    fields["severity"] = SEVERITY_OF.get(Status(change.status), len(SEVERITY_OF))
    fields["reasons"] = "; ".join(change.reasons)
    tags = {
        "tenant": change.tenant,
        "site": change.site,
        "instrument": change.instrument_id,
        "status": _status_text(change.status),
    }
    return line(ALERT, tags, fields, nanoseconds(change.ts))


def dead_letter_lines(dead_letters: Iterable[DeadLetter]) -> list[str]:
    """One line each; the n-th with the same (reason, tenant, received_at) at +n ns."""
    seen: dict[tuple[str, str | None, int], int] = {}
    out = []
    for d in dead_letters:
        reason = _status_text(d.reason)
        ns = nanoseconds(d.received_at)
        key = (reason, d.tenant, ns)
        n = seen.get(key, 0)
        seen[key] = n + 1
        fields: dict[str, FieldValue] = {
            "count": int(d.count),
            "detail": d.detail,
            "topic": d.topic,
            "excerpt": d.excerpt,
            "instrument": d.instrument_id,
            "seq": None if d.seq is None else int(d.seq),
        }
        text = line(DEAD_LETTER, {"reason": reason, "tenant": d.tenant}, fields, ns + n)
        if text is not None:
            out.append(text)
    return out


def fleet_status_line(tenant: str, site: str, counts: Mapping[Status, int], ns: int) -> str:
    fields: dict[str, FieldValue] = {
        field: int(counts.get(status, 0)) for status, field in FLEET_STATUS_FIELDS.items()
    }
    fields[FLEET_STATUS_TOTAL] = sum(int(c) for c in counts.values())
    text = line(FLEET_STATUS, {"tenant": tenant, "site": site}, fields, ns)
    assert text is not None  # integer fields are always written
    return text


__all__ = [
    "ReadingSerialiser",
    "alert_line",
    "dead_letter_lines",
    "escape_key",
    "fleet_status_line",
    "format_float",
    "health_line",
]
