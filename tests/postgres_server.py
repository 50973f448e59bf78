"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary folder, listening only
on 127.0.0.1 at a free port (its unix socket in that folder too), stopped afterwards.

PostgreSQL refuses to run as root, so as root the cluster belongs to an unprivileged user
(``postgres`` when the Debian package made it, else ``fastgen-pg``, made with useradd) and
initdb and pg_ctl run through ``runuser``. Clients authenticate with a password over TCP
(scram-sha-256), so wrong credentials are real. The server runs with fsync off: the tests
kill clients, never the server, and a crash of the server loses nothing a test needs.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "fastgen_test"
SERVICE_USER = "fastgen-pg"


def binaries() -> Path | None:
    """The bin folder of the newest PostgreSQL server installed, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Server:
    bin: Path
    folder: Path
    port: int
    password: str
    user: str | None  # the OS user the server runs as (None: this process's user)

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{quote(self.password, safe='')}" if password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check,
                              timeout=120, env={**os.environ, "LC_ALL": "C"})

    def start(self) -> None:
        data = self.folder / "data"
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        self._chown(self.folder, pwfile)
        self._run("initdb", "-D", str(data), "-U", SUPERUSER, "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--no-sync")
        pwfile.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        done = self._run("pg_ctl", "-D", str(data), "-l", str(self.folder / "log"), "-w",
                         "-t", "60", "-o", options, "start", check=False)
        if done.returncode != 0:
            log = (self.folder / "log").read_text() if (self.folder / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr or done.stdout}\n{log}")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop",
                  check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _chown(self, *paths: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)


def _service_user() -> str | None:
    """None when not root; else an unprivileged user to own the cluster (made if missing)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVICE_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    SERVICE_USER], check=True, capture_output=True)
    return SERVICE_USER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> Server:
    """Start a cluster; RuntimeError if the binaries are missing or it does not start."""
    bin = binaries()
    if bin is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb) on this machine")
    user = _service_user()
    folder = Path(tempfile.mkdtemp(prefix="fastgen-pg-"))  # /tmp: reachable by that user
    last: Exception | None = None
    for _ in range(3):  # the free port may be taken between the probe and the start
        server = Server(bin, folder, _free_port(), secrets.token_urlsafe(12) + "@/%", user)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            last = exc
            server.stop()
            folder.mkdir()
    raise RuntimeError(str(last))
