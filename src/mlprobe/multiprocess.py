"""Several worker processes: one exact view of every worker, whichever worker answers.

A server with several worker processes (``gunicorn -w N``, ``uvicorn --workers N``) gives
each worker its own copy of mlprobe's state, so a scrape or ``/drift`` would show only the
worker that answered it. In multi-process mode every worker publishes its raw, mergeable state
to a directory (off the request path, every second and at exit), and the worker answering a
scrape, ``/drift``, ``drift_status()``, the status page or an OTLP push merges its own live
state with the others' latest before computing anything: totals are exact, and drift is the
drift of the merged windows. See ``docs/multiprocess.md`` for the semantics of every metric.

Turn it on with one switch, before any probe is created (off by default):

- the environment: ``MLPROBE_MULTIPROCESS_DIR=/run/myapp/mlprobe`` (read when the default
  registry gets its first probe or middleware), or
- one call, e.g. at the top of a gunicorn config file (it runs in the master, before the
  workers exist)::

      # gunicorn.conf.py
      import mlprobe.multiprocess
      mlprobe.multiprocess.enable("/run/myapp/mlprobe")    # an existing, private directory
      child_exit = mlprobe.multiprocess.child_exit        # optional: prompt cleanup

The directory must exist and be writable, and belong to one server; a wrong setting fails at
start-up with a :class:`~mlprobe.errors.ConfigurationError` that says what to change.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from . import _config
from ._mp_files import Directory
from ._mp_ledger import claim, server_id
from ._mp_merge import Merger
from ._mp_process import WorkerId, is_alive
from ._mp_publisher import publisher
from ._registry import Registry, default_registry
from .errors import ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_INTERVAL_S", "child_exit", "enable", "exports_here", "instance_id",
           "is_enabled", "mark_process_dead"]

DEFAULT_INTERVAL_S = 1.0
"""Seconds between two publications of a worker's state (``MLPROBE_MULTIPROCESS_INTERVAL``)."""

_directories: dict[str, Registry] = {}  # directory -> the registry of this process using it


def enable(directory: str | os.PathLike[str], *, registry: Registry | None = None,
           interval: float = DEFAULT_INTERVAL_S) -> None:
    """Turn multi-process mode on for ``registry`` (:data:`mlprobe.default_registry`).

    Call it before the registry has any probe or middleware: in a gunicorn config file, or at
    the top of the app module. Calling it again with the same directory does nothing.

    Args:
        directory: an existing directory the server's user can write, used by this server
            only (e.g. ``/run/<app>/mlprobe``; a tmpfs is best). mlprobe touches only its own
            ``mlprobe-*`` files there.
        registry: the registry whose probes are merged across workers.
        interval: seconds between two publications of a worker's state (what a worker killed
            with SIGKILL loses at most).

    Raises:
        ConfigurationError: the directory is missing or not writable, another server uses
            it, the registry already has sources, or it is already in multi-process mode with
            another directory.
    """
    registry = default_registry if registry is None else registry
    if not isinstance(registry, Registry):
        raise ConfigurationError(f"registry must be a mlprobe.Registry, got "
                                 f"{type(registry).__name__}")
    if fcntl is None:
        raise ConfigurationError("multi-process mode needs a POSIX system (fcntl)")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
            or not 0.05 <= interval <= 60:
        raise ConfigurationError(f"interval must be seconds between 0.05 and 60, got "
                                 f"{interval!r}")
    path = _check_directory(directory)
    current = registry.merger
    if current is not None:
        if current.directory.path == path:
            return
        raise ConfigurationError(f"this registry is already in multi-process mode with "
                                 f"{current.directory.path}; enable it once, with one directory")
    if registry.sources:
        raise ConfigurationError(
            "mlprobe multi-process mode was turned on after probes (or the ASGI middleware) "
            "were created in this registry; turn it on first: call "
            "mlprobe.multiprocess.enable() at the top of the gunicorn config file or of the "
            "app module, or set MLPROBE_MULTIPROCESS_DIR before starting the server")
    other = _directories.get(path)
    if other is not None and other is not registry:
        raise ConfigurationError(f"{path} is already used by another registry of this process; "
                                 "give each registry its own directory")
    attach(registry, path, interval=float(interval))
    _directories[path] = registry


def attach(registry: Registry, path: str, *, interval: float, background: bool = True,
           **merger_options: Any) -> Merger:
    """Claim ``path`` and attach a merger to ``registry``.

    Tests pass worker identities and liveness functions in ``merger_options`` to simulate
    several workers in one process, and ``background=False`` to publish only when they say.
    """
    directory = Directory(path)
    server = server_id()
    ledger = claim(directory, server)
    merger = Merger(registry, directory, ledger, server, interval=interval, **merger_options)
    registry.merger = merger
    if background:
        publisher.add(merger)
    return merger


def detach(registry: Registry) -> None:
    """Leave multi-process mode (tests): stop publishing ``registry``; it shows this process
    alone from now on. Its file stays until a live worker folds it."""
    merger = registry.merger
    if merger is None:
        return
    publisher.remove(merger)
    with merger._publish_lock:  # waits for a publish in progress; none writes after this
        merger.closed = True
    merger.outcomes.close()
    registry.merger = None
    for source in registry.sources.values():  # outcomes wait and expire in this process again
        store = getattr(source, "store", None)
        if store is not None:
            store.coordinated = False
    for path, owner in list(_directories.items()):
        if owner is registry:
            del _directories[path]


def _check_directory(directory: Any) -> str:
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ConfigurationError(f"the multi-process directory must be a path, got "
                                 f"{directory!r}")
    path = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(path):
        raise ConfigurationError(f"the multi-process directory {path} does not exist; create it "
                                 f"before the server starts (mkdir -p {path}), writable by the "
                                 "server's user")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".mlprobe-tmp-check-"):
            pass
    except OSError as exc:
        raise ConfigurationError(f"the multi-process directory {path} is not writable by this "
                                 f"process ({exc.strerror}); give the server's user write "
                                 "access") from None
    return path


def enable_from_environment(registry: Registry) -> None:
    """``MLPROBE_MULTIPROCESS_DIR``: enable for ``registry`` (called by the composition root
    when the default registry creates its first source)."""
    path = _config.multiprocess_dir()
    if path is None:
        return
    enable(path, registry=registry,
           interval=_config.env_seconds("MLPROBE_MULTIPROCESS_INTERVAL", DEFAULT_INTERVAL_S))


def is_enabled(registry: Registry | None = None) -> bool:
    """True when ``registry`` (the default one) is in multi-process mode."""
    return (default_registry if registry is None else registry).merger is not None


def exports_here(registry: Registry | None = None) -> bool:
    """True in the one process that should push ``registry``'s metrics (an OTLP exporter).

    Outside multi-process mode: always True. In it: True in exactly one live worker (the one
    holding the directory's exporter lock; when it dies another takes over at its next try),
    so what reaches a collector is one merged view, as a scrape shows, counted once.
    ``mlprobe.exporters.otel.push`` asks it before every push by default.
    """
    merger = (default_registry if registry is None else registry).merger
    return True if merger is None else merger.exports_here()


def instance_id(registry: Registry | None = None) -> str | None:
    """A ``service.instance.id`` shared by every worker of the server (None outside
    multi-process mode): the merged metrics are one instance's, whichever worker pushes."""
    merger = (default_registry if registry is None else registry).merger
    return None if merger is None else merger.ledger.instance_id


def mark_process_dead(pid: int, directory: str | os.PathLike[str] | None = None) -> None:
    """Tell the directory that worker ``pid`` has exited (its last state is then folded into
    the archive at the next publish of a live worker). Never raises.

    ``directory``: by default the one this process enabled, else ``MLPROBE_MULTIPROCESS_DIR``.
    """
    try:
        path = os.fspath(directory) if directory is not None else _default_directory()
        if path is None:
            return
        target = Directory(path)
        for file_name, worker_name, marked in target.worker_files():
            worker = WorkerId.parse(worker_name)
            if marked or worker is None or worker.pid != pid or is_alive(worker):
                continue
            try:
                os.rename(target.file(file_name),
                          target.file(Directory.worker_file(worker_name, dead=True)))
            except FileNotFoundError:
                pass  # folded meanwhile
    except Exception:  # noqa: BLE001 - a server hook must never fail the server
        import logging

        logging.getLogger("mlprobe").warning("mlprobe: mark_process_dead(%s) failed", pid,
                                             exc_info=True)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: ``child_exit = mlprobe.multiprocess.child_exit`` in the
    gunicorn config file marks an exited worker's state for folding at once. Optional on
    Linux (a dead worker is recognised by its pid and start time anyway); use it where
    ``/proc`` is missing."""
    mark_process_dead(worker.pid)


def _default_directory() -> str | None:
    if _directories:
        return next(iter(_directories))
    return _config.multiprocess_dir()
