"""Debian's mosquitto, started by calstream from the shipped configuration.

``deploy/mosquitto/mosquitto.conf`` is the one configuration of every mosquitto calstream runs:

- :func:`shipped_config`: the file as shipped (passwords, ACL, client ids bound to users), with
  only what a machine owns replaced: the listener's port, the persistence folder, and the paths
  of the password and ACL files, pointing at the shipped copies (the deploy tests' broker);
- :func:`local_config`: its tuning (persistence, queue limits, in-flight window, packet size)
  on 127.0.0.1 for local clients without a login (benchmarks, tests, and `calstream run`
  without a broker).

:class:`LocalMosquitto` runs one as a child process of the caller (tests, benchmarks);
:class:`MosquittoDaemon` runs one as a daemon of its own that outlives the process that started
it (the broker of `calstream run` without ``CALSTREAM_BROKER``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from calstream.servers.base import HOST, TcpServer, find_binary

DEPLOY_MOSQUITTO = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
DEPLOY_MOSQUITTO_CONF = DEPLOY_MOSQUITTO / "mosquitto.conf"
DEPLOY_PASSWD = DEPLOY_MOSQUITTO / "passwd"
DEPLOY_ACL = DEPLOY_MOSQUITTO / "acl"

_SECURITY = ("allow_anonymous", "password_file", "acl_file", "use_username_as_clientid")
"""Directives a local broker for clients without a login leaves out."""
_MACHINE_OWNED = ("listener", "persistence_location", "log_dest", "pid_file")
"""Directives that name this machine's ports and folders."""


def mosquitto_binary() -> str:
    """Path of the mosquitto executable; raises with what to do when it is missing."""
    return find_binary("mosquitto", "mosquitto", folders=("/usr/sbin",))


def _directive(line: str) -> str | None:
    words = line.split()
    return words[0] if words and not words[0].startswith("#") else None


def _as_the_caller() -> list[str]:
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot enter a private
    # folder of root's: it then cannot save sessions and queued messages ("Permission denied")
    # and a crash loses them. A broker calstream starts keeps the caller's user.
    return ["user root"] if os.geteuid() == 0 else []


def shipped_config(port: int, data_dir: Path) -> str:
    """The shipped configuration as it is, but for the listener (``port`` on 127.0.0.1), the
    persistence folder (``data_dir``) and the password and ACL files (the shipped copies)."""
    replacements = {
        "listener": f"listener {port} {HOST}",
        "persistence_location": f"persistence_location {data_dir}/",
        "password_file": f"password_file {DEPLOY_PASSWD}",
        "acl_file": f"acl_file {DEPLOY_ACL}",
    }
    lines, replaced = [], set()
    for line in DEPLOY_MOSQUITTO_CONF.read_text().splitlines():
        directive = _directive(line)
        if directive in replacements:
            lines.append(replacements[directive])
            replaced.add(directive)
        else:
            lines.append(line)
    missing = sorted(replacements.keys() - replaced)
    if missing:
        raise ValueError(f"{DEPLOY_MOSQUITTO_CONF} sets no {', '.join(missing)}")
    return "\n".join([*_as_the_caller(), *lines]) + "\n"


def local_config(
    port: int, data_dir: Path, *, log_file: Path | None = None, pid_file: Path | None = None
) -> str:
    """The shipped configuration's tuning, for local clients without a login: a listener on
    127.0.0.1, persistence in ``data_dir``, the log on standard error or in ``log_file``."""
    kept = [
        line.strip()
        for line in DEPLOY_MOSQUITTO_CONF.read_text().splitlines()
        if _directive(line) is not None and _directive(line) not in _SECURITY + _MACHINE_OWNED
    ]
    return (
        "\n".join(
            [
                *_as_the_caller(),
                f"listener {port} {HOST}",
                "allow_anonymous true",
                f"persistence_location {data_dir}/",
                f"log_dest file {log_file}" if log_file is not None else "log_dest stderr",
                *([f"pid_file {pid_file}"] if pid_file is not None else []),
                *kept,
            ]
        )
        + "\n"
    )


class LocalMosquitto(TcpServer):
    """A mosquitto process on a free port of 127.0.0.1, its files in ``folder``.

    ``secured``: the shipped configuration with its passwords, ACL and client ids bound to
    users (:func:`shipped_config`); otherwise its tuning for clients without a login.
    """

    name = "mosquitto"

    def __init__(self, folder: Path, port: int | None = None, *, secured: bool = False) -> None:
        super().__init__(folder, port)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            shipped_config(self.port, folder) if secured else local_config(self.port, folder)
        )

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [mosquitto_binary(), "-c", str(self.config)]


class MosquittoDaemon:
    """mosquitto as a daemon of its own (``mosquitto -d``) on ``port`` of 127.0.0.1, with its
    configuration (:func:`local_config`), pid file, log and persistence in ``folder``.

    It outlives the process that started it: a crash of that process leaves the broker running
    with its sessions and queued messages. :meth:`start` reuses the broker the pid file names
    while it runs with the same configuration (:attr:`reused`); :meth:`stop` ends it with
    SIGTERM, on which mosquitto saves everything it holds to its persistence file.
    """

    def __init__(self, folder: Path, port: int) -> None:
        self.host = HOST
        self.port = port
        # absolute paths: the pid file's process is recognised by its configuration's path
        self.folder = folder = folder.resolve()
        self.config = folder / "mosquitto.conf"
        self.pid_file = folder / "mosquitto.pid"
        self.log = folder / "mosquitto.log"
        self.pid: int | None = None
        self.reused = False

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def wanted_config(self) -> str:
        return local_config(self.port, self.folder, log_file=self.log, pid_file=self.pid_file)

    def running_pid(self) -> int | None:
        """The pid of this folder's broker while it runs (its pid file names a live process
        started with this folder's configuration), else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        try:  # an exited process (or a zombie) has no command line; a reused pid another one
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.config).encode() in arguments

    def _answers(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0

    def start(self, timeout: float = 30.0) -> None:
        """Reuse this folder's running broker, or start one; returns once it accepts
        connections. Raises RuntimeError when another process holds the port or mosquitto
        does not come up (with the end of its log)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        wanted = self.wanted_config()
        pid = self.running_pid()
        if pid is not None:
            if self.config.read_text() == wanted and self._answers():
                self.pid, self.reused = pid, True
                return
            self._terminate(pid, timeout)  # started with another port: start it anew
        if self._answers():
            raise RuntimeError(f"another process listens on {self.host}:{self.port}")
        self.config.write_text(wanted)
        log_start = self.log.stat().st_size if self.log.exists() else 0
        # -d: mosquitto forks, detaches from this process's session (Ctrl-C on the terminal
        # does not reach it) and writes its pid file; this call returns once it forked.
        result = subprocess.run(
            [mosquitto_binary(), "-c", str(self.config), "-d"], capture_output=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"mosquitto exited with {result.returncode}: "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pid = self.running_pid()
            if self.pid is not None and self._answers():
                self.reused = False
                return
            if "Error:" in self._log_since(log_start):
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"mosquitto did not start on {self.host}:{self.port}: "
            f"{self._log_since(log_start)[-2000:].strip() or 'no log'} (log: {self.log})"
        )

    def _log_since(self, offset: int) -> str:
        try:
            with self.log.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _terminate(self, pid: int, timeout: float, signum: int = signal.SIGTERM) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while self._is_ours(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then wait: mosquitto saves its sessions and queued messages and exits."""
        pid = self.running_pid()
        if pid is not None:
            self._terminate(pid, timeout)
        self.pid = None

    def kill(self) -> None:
        """kill -9: the broker keeps only what it saved (autosave_interval changes)."""
        pid = self.running_pid()
        if pid is not None:
            self._terminate(pid, 10.0, signal.SIGKILL)
        self.pid = None
