"""Start Debian's mosquitto locally with calstream's deploy tuning (benchmarks and tests).

The configuration is ``deploy/mosquitto/mosquitto.conf`` with the parts that belong to a
machine (listener, authentication, persistence folder, log destination) replaced: a free port
of 127.0.0.1, anonymous access, a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from calstream.embedded_broker import free_port

DEPLOY_MOSQUITTO_CONF = (
    Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"
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
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise FileNotFoundError(
            "mosquitto is not installed: `make test-servers` "
            "(or `apt-get install mosquitto`) installs it"
        )
    return found


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


class LocalMosquitto:
    """A mosquitto process on a free port of 127.0.0.1, its files in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(mosquitto_config(self.port, folder))
        self.log = folder / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """(Re)start on the same port, configuration and persistence folder."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            with socket.socket() as probe:
                if probe.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"mosquitto did not listen on {self.host}:{self.port} within {timeout} s"
        )

    def stop(self) -> None:
        """Stop gracefully (mosquitto saves its persistence file)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """kill -9: nothing is saved beyond what autosave already wrote."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> LocalMosquitto:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
