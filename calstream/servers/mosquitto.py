"""Start Debian's mosquitto locally with calstream's deploy tuning (benchmarks and tests).

The configuration is ``deploy/mosquitto/mosquitto.conf`` with the parts that belong to a
machine (listener, authentication, persistence folder, log destination) replaced: a free port
of 127.0.0.1, anonymous access, a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from calstream.servers.base import TcpServer, find_binary

DEPLOY_MOSQUITTO_CONF = (
    Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
)
_MACHINE_OWNED = (
    "listener",
    "allow_anonymous",
    "password_file",
    "acl_file",
    "persistence_location",
    "log_dest",
)


def mosquitto_binary() -> str:
    """Path of the mosquitto executable; raises with what to do when it is missing."""
    return find_binary("mosquitto", "mosquitto", folders=("/usr/sbin",))


def mosquitto_config(port: int, data_dir: Path) -> str:
    """The deploy configuration's tuning, with a local listener and persistence folder."""
    kept = [
        line
        for line in DEPLOY_MOSQUITTO_CONF.read_text().splitlines()
        if line.strip()
        and not line.lstrip().startswith("#")
        and line.split()[0] not in _MACHINE_OWNED
    ]
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot enter a private
    # temporary folder: it then cannot save sessions and queued messages ("Permission denied")
    # and a crash loses them. This broker is local and throw-away: it keeps the caller's user.
    user = ["user root"] if os.geteuid() == 0 else []
    return (
        "\n".join(
            [
                *user,
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                f"persistence_location {data_dir}/",
                "log_dest stderr",
                *kept,
            ]
        )
        + "\n"
    )


class LocalMosquitto(TcpServer):
    """A mosquitto process on a free port of 127.0.0.1, its files in ``folder``."""

    name = "mosquitto"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        super().__init__(folder, port)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(mosquitto_config(self.port, folder))

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [mosquitto_binary(), "-c", str(self.config)]
