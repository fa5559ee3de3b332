"""mosquitto's password file and ACL file, written from the registry.

:func:`broker_users` lists every user the broker should know, in a fixed order: calstream's own
components first (:func:`component_users`: the pipeline, the ingest forwarders, the simulated
gateways, the compose stack's health check), then each gateway in service with credentials, then
each calibration provider's alert reader, by user name. Each user has the topics it may write
and read (the rest is refused):

- the pipeline: writes ``calstream/v1/+/alerts``, reads every readings topic;
- a forwarder: reads every readings topic; the simulated gateways: write every readings topic;
- the health check: reads ``$SYS/broker/uptime``;
- gateway ``<tenant>-<site>-<gateway>``: writes ``calstream/v1/<tenant>/<site>/<gateway>/readings``,
  reads ``calstream/v1/<tenant>/alerts``;
- ``provider-<tenant>``: reads ``calstream/v1/<client>/alerts`` of each client under a contract
  in force at the export (none: it may log in and read nothing).

The gateways' and providers' password hashes come from the registry
(:mod:`storage.registry.broker_access`); the components' from a password file the operator keeps
with ``mosquitto_passwd`` (:func:`read_password_file`). :func:`passwd_text` and :func:`acl_text`
render the two files, byte for byte the same for the same registry; :func:`write_atomically`
writes each to a temporary file beside it and renames it over the old one, so mosquitto, which
re-reads both on SIGHUP, never reads half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from metrology.wire import READINGS_SUBSCRIPTION, alerts_topic, readings_topic
from storage.errors import BrokerAuthError
from storage.registry.broker_access import BrokerAccounts

__all__ = [
    "ACL_FILE",
    "PASSWD_FILE",
    "BrokerUser",
    "Component",
    "acl_text",
    "broker_users",
    "component_users",
    "passwd_text",
    "read_password_file",
    "write_atomically",
]

PASSWD_FILE = "passwd"
ACL_FILE = "acl"
HEALTH_CHECK_TOPIC = "$SYS/broker/uptime"


@dataclass(frozen=True, slots=True)
class Component:
    """One of calstream's own broker users, and what it may do."""

    name: str
    role: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerUser:
    """A user of the password file with its ACL block."""

    name: str
    password_hash: str = field(repr=False)
    role: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


def component_users(
    pipeline: str = "calstream-pipeline",
    forwarders: int = 2,
    simulator: bool = True,
    health_check: bool = True,
) -> list[Component]:
    """calstream's own users: the pipeline (named after its client id), ``forwarders`` ingest
    forwarders ``calstream-ingest-<n>``, the simulated gateways and the health check."""
    readings = (READINGS_SUBSCRIPTION,)
    pipeline_role = "the pipeline (calstream run): every tenant's readings in, alerts out"
    users = [Component(pipeline, pipeline_role, writes=(alerts_topic("+"),), reads=readings)]
    forwarder_role = "an ingest forwarder (calstream ingest)"
    users += [
        Component(f"calstream-ingest-{n}", forwarder_role, reads=readings)
        for n in range(1, forwarders + 1)
    ]
    if simulator:
        role = "the simulated gateways (calstream simulate): every tenant's readings"
        users.append(Component("calstream-simulated-gateways", role, writes=readings))
    if health_check:
        role = "the broker's health check"
        users.append(Component("calstream-healthcheck", role, reads=(HEALTH_CHECK_TOPIC,)))
    return users


def read_password_file(text: str) -> dict[str, str]:
    """``user -> hash`` of a mosquitto password file (comments and blank lines skipped)."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user or not encoded.startswith("$"):
            raise BrokerAuthError(
                f"line {number} of the components' password file is not 'user:$7$...' "
                "(write it with mosquitto_passwd)"
            )
        found[user] = encoded
    return found


def broker_users(
    accounts: BrokerAccounts, components: Iterable[Component], hashes: Mapping[str, str]
) -> list[BrokerUser]:
    """Every user in file order; :class:`BrokerAuthError` when a component has no password in
    ``hashes`` or two users have the same name."""
    users: list[BrokerUser] = []
    for c in components:
        if c.name not in hashes:
            raise BrokerAuthError(
                f"no password for calstream's user {c.name!r} in the components' password file: "
                f"add it with `mosquitto_passwd -b FILE {c.name} PASSWORD`"
            )
        users.append(BrokerUser(c.name, hashes[c.name], c.role, c.writes, c.reads))
    for g in accounts.gateways:
        role = f"gateway {g.tenant}/{g.site}/{g.gateway}"
        writes = (readings_topic(g.tenant, g.site, g.gateway),)
        users.append(
            BrokerUser(g.username, g.password_hash, role, writes, (alerts_topic(g.tenant),))
        )
    for p in accounts.providers:
        role = f"calibration provider {p.tenant}: its clients' alerts (contracts in force)"
        reads = tuple(alerts_topic(client) for client in p.clients)
        users.append(BrokerUser(p.username, p.password_hash, role, reads=reads))
    seen: dict[str, str] = {}
    for user in users:
        if user.name in seen:
            raise BrokerAuthError(
                f"broker user {user.name!r} is both {seen[user.name]} and {user.role}: rename "
                "the component (or register the gateway under another id)"
            )
        seen[user.name] = user.role
    return users


def passwd_text(users: Iterable[BrokerUser]) -> str:
    """The password file: ``user:hash`` per line, in the order given."""
    return "".join(f"{u.name}:{u.password_hash}\n" for u in users)


_ACL_HEADER = """\
# mosquitto ACL written by `calstream broker-auth export` from the registry: do not edit, export
# again (the registry's gateways in service, providers' contracts in force, calstream's own
# users). Everything not granted here is refused. Reload: send mosquitto SIGHUP.
"""


def acl_text(users: Iterable[BrokerUser]) -> str:
    """The ACL file: one block per user, its writes then its reads, in the order given."""
    blocks = []
    for u in users:
        lines = [f"# {u.role}", f"user {u.name}"]
        lines += [f"topic write {topic}" for topic in u.writes]
        lines += [f"topic read {topic}" for topic in u.reads]
        if not (u.writes or u.reads):
            lines.append("# (nothing granted: it may log in and do nothing)")
        blocks.append("\n".join(lines) + "\n")
    return _ACL_HEADER + "\n" + "\n".join(blocks)


def write_atomically(directory: Path, files: Mapping[str, str], mode: int = 0o600) -> list[Path]:
    """Write each ``name -> text`` into ``directory``: a temporary file beside the target,
    flushed to disk, then renamed over it (readers see the old file or the new one, never a
    part). Returns the paths written, in the order given."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = directory / name
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(target)
    folder = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(folder)  # the renames themselves survive a crash
    finally:
        os.close(folder)
    return written
