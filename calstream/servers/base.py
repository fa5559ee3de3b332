"""What every local server process shares: a free port, its binary, start and stop.

A :class:`LocalServer` runs one server process on a free port of 127.0.0.1 with every file in
one folder; ``start()`` returns once it answers, ``stop()`` ends it gracefully and ``kill()``
with SIGKILL (the fault tests' crash), and ``start()`` again brings it back on the same port
and files.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Self

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def find_binary(name: str, package: str, folders: tuple[str, ...] = ("/usr/bin",)) -> str:
    """Path of the executable ``name``; raises with what to do when it is missing."""
    found = shutil.which(name)
    if found is None:
        found = next(
            (f"{folder}/{name}" for folder in folders if Path(f"{folder}/{name}").exists()), None
        )
    if found is None:
        raise FileNotFoundError(
            f"{name} is not installed: `make test-servers` (or `apt-get install {package}`) "
            "installs it"
        )
    return found


class LocalServer(ABC):
    """A server process with a log file in ``folder``, started and stopped on the same port."""

    name = "server"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def command(self) -> list[str]:
        """The server's command line."""

    @abstractmethod
    def ready(self) -> bool:
        """Whether the server answers now."""

    def start(self, timeout: float = 30.0) -> None:
        """(Re)start on the same port and folder; returns once the server answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n"
                    f"{self.log.read_text(errors='replace')[-4000:]}"
                )
            if self.ready():
                self._after_start()
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"{self.name} did not answer on {self.host}:{self.port} within {timeout} s"
        )

    def _after_start(self) -> None:  # noqa: B027 - a hook: nothing to do by default
        """What to do once the server answers (create a database, an admin...)."""

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        """kill -9: nothing is saved beyond what the server already wrote."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


class HttpServer(LocalServer):
    """A local server that is ready once ``GET ready_path`` answers 2xx."""

    ready_path = "/"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + self.ready_path, timeout=1) as response:
                return bool(200 <= response.status < 300)
        except (OSError, urllib.error.URLError):
            return False


class TcpServer(LocalServer):
    """A local server that is ready once its port accepts a TCP connection."""

    def ready(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0
