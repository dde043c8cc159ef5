"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temporary data folder, a
free port on 127.0.0.1, torn down at the end.

initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user (runuser)
on a data folder that user owns. `make test` installs Debian's postgresql when it is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from store.local_server import free_port

INSTALL_HINT = "install Debian's postgresql (make test does: apt-get install postgresql)"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started; the message says why and what to install."""


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None  # run the binaries as this user (when we are root)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        _run(self, "pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def find_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    if not candidates:
        raise PostgresUnavailable(f"PostgreSQL's initdb not found; {INSTALL_HINT}")
    return Path(candidates[0]).parent


def _run(server: PostgresServer, tool: str, *args: str, check: bool = True):
    command = [str(server.bin_dir / tool), *args]
    if server.user:
        command = ["runuser", "-u", server.user, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise PostgresUnavailable(
            f"{tool} failed ({result.returncode}): {(result.stderr or result.stdout).strip()}"
        )
    return result


def start() -> PostgresServer:
    """initdb + pg_ctl start on a fresh folder; raises PostgresUnavailable with the reason."""
    bin_dir = find_bin_dir()
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="defectlens-pg-"))
    data = root / "data"
    data.mkdir()
    if user:
        try:
            shutil.chown(root, user)
            shutil.chown(data, user)
        except (LookupError, PermissionError) as exc:
            raise PostgresUnavailable(f"cannot hand {root} to user {user!r}: {exc}") from exc
    server = PostgresServer(bin_dir, data, free_port(), user)
    try:
        _run(server, "initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = (
            f"-p {server.port} -c listen_addresses=127.0.0.1 -k {root} "
            "-c fsync=off -c max_connections=100"
        )
        _run(
            server, "pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"
        )
    except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as exc:
        log = root / "log"
        detail = log.read_text()[-500:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"{exc} {detail}".strip()) from exc
    return server
