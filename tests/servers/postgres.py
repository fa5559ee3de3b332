"""A throw-away PostgreSQL server (initdb, pg_ctl) in a temporary folder: tests and trials.

``LocalPostgres()`` initialises a cluster in its own temporary folder (trust authentication,
listening on a free port of 127.0.0.1, its unix socket in the folder too), ``start()`` starts it
and creates the database, ``stop()`` stops it (fast shutdown: committed data stays), ``start()``
again brings the same cluster back on the same port (outage tests), ``destroy()`` stops it and
removes the folder.

PostgreSQL refuses to run as root: started by root, the server runs as the ``postgres`` user
(Debian's package creates it) and the folder is given to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from calstream.servers.base import free_port

_BINARY_FOLDERS = "/usr/lib/postgresql/*/bin"


def postgres_bin_dir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``; raises with what to do when they are missing.

    ``CALSTREAM_PG_BIN`` names it explicitly; else the newest ``/usr/lib/postgresql/*/bin``
    (Debian), else the folder of an ``initdb`` on PATH.
    """
    explicit = os.environ.get("CALSTREAM_PG_BIN")
    candidates = [Path(explicit)] if explicit else []
    candidates += sorted(
        (Path(p) for p in glob.glob(_BINARY_FOLDERS)),
        key=lambda p: _major(p.parent.name),
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise FileNotFoundError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or "
        "on PATH: `make test-servers` (or `apt-get install postgresql`) installs them; "
        "CALSTREAM_PG_BIN may name their folder"
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


class LocalPostgres:
    """One PostgreSQL cluster on a free port of 127.0.0.1, its files in a temporary folder."""

    def __init__(self, database: str = "calstream", port: int | None = None) -> None:
        self.bin_dir = postgres_bin_dir()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.database = database
        self.user = "calstream"
        # Its own folder under the system temporary folder: a server started as another user
        # (see the module docstring) must be able to reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="calstream-postgres-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._run_as = _server_user()
        self._initialised = False
        self._created = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL with the psycopg (3) driver."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.database}"

    def _command(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        user = self._run_as
        return [
            "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
            *args,
        ]  # fmt: skip

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            self._command(*args), capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}"
            )

    def _initdb(self) -> None:
        if self._run_as is not None:
            os.chown(self.folder, self._run_as.pw_uid, self._run_as.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", self.user,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        settings = [
            f"port = {self.port}",
            f"listen_addresses = '{self.host}'",
            f"unix_socket_directories = '{self.folder}'",
            "fsync = off",  # a throw-away cluster: durability across power loss is not tested
            "max_connections = 50",
            "shared_buffers = 32MB",
        ]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        self._initialised = True

    def start(self) -> None:
        """Start the cluster (initialised the first time, its database created once)."""
        if not self._initialised:
            self._initdb()
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        if not self._created:
            self._run(
                str(self.bin_dir / "createdb"), "-h", str(self.folder), "-p", str(self.port),
                "-U", self.user, self.database,
            )  # fmt: skip
            self._created = True

    def create_database(self, name: str) -> str:
        """Create another database in the cluster; returns its URL (as :attr:`url`)."""
        self._run(
            str(self.bin_dir / "createdb"), "-h", str(self.folder), "-p", str(self.port),
            "-U", self.user, name,
        )  # fmt: skip
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended, committed data stays)."""
        if self.running:
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
            )

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as when started by root (None: the caller's own user)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("started as root and there is no 'postgres' or 'nobody' user to run as")
