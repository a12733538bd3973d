"""Prometheus export: a prometheus_client collector that reads mlprobe snapshots at scrape time.

Nothing here runs on the request path: every scrape calls ``Registry.collect()`` and translates
the snapshots into prometheus_client ``Metric`` objects.

A failure in mlprobe's part of a scrape costs only mlprobe's part, never the application's
metrics in the same ``CollectorRegistry``: a source that fails loses its own samples (see
:meth:`mlprobe.Registry.collect`), a family that cannot be translated is left out, and a
failing ``Registry.collect`` leaves only ``mlprobe_internal_errors_total``. Each failure is
counted in that counter, in the same scrape, and logged at a bounded rate. Every label value
goes through :func:`mlprobe.snapshot.label_value` once more here, so no value can make
``generate_latest()`` raise.

Which prometheus_client registry serves an mlprobe registry is decided here only
(:func:`register`, :func:`exposition`, :func:`start_http_server`): the one given, else
prometheus_client's ``REGISTRY`` for :data:`mlprobe.default_registry` (so the application's own
metrics and the process collectors come along), else a private one holding just that registry.

This module is a leaf that needs nothing private of mlprobe: it reads the public read side
(:mod:`mlprobe.registry`, :mod:`mlprobe.snapshot` with the catalogue, and the error accounting
of :mod:`mlprobe.errors`).
Two modules of mlprobe import it, lazily: the composition root (``mlprobe/_wiring.py``, which
attaches the default registry) and the middleware's ``metrics_path`` endpoint (which serves
:func:`exposition`).

Example:
    >>> from mlprobe.exporters import prometheus
    >>> prometheus.start_http_server(8000, addr="127.0.0.1")      # default registries
    >>> prometheus.register(my_mlprobe_registry, my_collector_registry)   # explicit ones
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

try:
    import prometheus_client
    from prometheus_client.core import Metric
    from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder
    from prometheus_client.registry import CollectorRegistry
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # pragma: no cover - prometheus-client is a declared dependency
    raise ImportError("mlprobe.exporters.prometheus needs prometheus-client: "
                      "pip install prometheus-client") from exc

from ..errors import ExporterError, internal_error_count, report_internal_error
from ..registry import Registry, default_registry
from ..snapshot import (
    MAX_LABEL_CHARS,
    HistogramSample,
    LabelSet,
    MetricFamily,
    Sample,
    SummarySample,
    label_value,
    metric_spec,
)

__all__ = ["Exposition", "MlprobeCollector", "encoder_for", "exposition", "register",
           "start_http_server", "to_prometheus"]

_log = logging.getLogger("mlprobe")

INTERNAL_ERRORS = "mlprobe_internal_errors"


class MlprobeCollector:
    """A prometheus_client collector over one or more mlprobe :class:`~mlprobe.Registry`.

    :func:`register` keeps one collector per prometheus_client registry and attaches every
    mlprobe registry exported there to it, so that each family appears once in the
    exposition (two collectors would each print ``# HELP``/``# TYPE`` lines of every family,
    which promtool rejects as a parse error). When two attached registries hold the same
    series (the same model and version in both), the first one attached wins, with a warning.
    """

    def __init__(self, registry: Registry) -> None:
        # Copy-on-write, read without a lock; replaced only by register(), under its lock.
        self._registries: tuple[Registry, ...] = (registry,)
        self._warned: set[str] = set()

    @property
    def registry(self) -> Registry:
        """The first attached mlprobe registry."""
        return self._registries[0]

    @property
    def registries(self) -> tuple[Registry, ...]:
        """Every attached mlprobe registry, in attachment order."""
        return self._registries

    def _attach(self, registry: Registry) -> bool:
        # Called by register() under its lock; False if ``registry`` was already attached.
        if any(r is registry for r in self._registries):
            return False
        self._registries = (*self._registries, registry)
        return True

    def describe(self) -> list[Metric]:
        # Returning nothing tells prometheus_client not to call collect() at registration
        # (mlprobe's names are validated by its own catalogue and tests).
        return []

    def collect(self) -> list[Metric]:
        """Return one prometheus_client family per mlprobe metric family; never raises.

        Everything is built before anything is returned, so a failure cannot surface inside
        prometheus_client's encoder, half-way through the application's exposition.
        """
        out: list[Metric] = []
        try:
            for family in self._families():
                if family.name == INTERNAL_ERRORS:
                    continue  # re-read below, after this scrape's own failures are counted
                try:
                    out.append(to_prometheus(family))
                except Exception as exc:  # noqa: BLE001 - one family must not cost the scrape
                    report_internal_error("prometheus.translate", exc)
        except Exception as exc:  # noqa: BLE001 - nor may anything else in here
            report_internal_error("prometheus.collector", exc)
            out = []
        out.append(_internal_errors_metric())
        return out

    def _families(self) -> list[MetricFamily]:
        registries = self._registries
        if len(registries) == 1:
            return _collect_registry(registries[0])
        merged: dict[str, MetricFamily] = {}
        seen: dict[str, set[LabelSet]] = {}
        for registry in registries:
            for family in _collect_registry(registry):
                keys = seen.setdefault(family.name, set())
                fresh = [s for s in family.samples if s.labels not in keys]
                if len(fresh) < len(family.samples) and family.name != INTERNAL_ERRORS:
                    self._warn_duplicates(family.name)
                keys.update(s.labels for s in fresh)
                first = merged.get(family.name)
                merged[family.name] = family if first is None else MetricFamily(
                    first.name, first.kind, first.description, first.unit,
                    first.samples + tuple(fresh))
        return [merged[name] for name in sorted(merged)]

    def _warn_duplicates(self, name: str) -> None:
        if name not in self._warned:  # at most once per family: bounded by the catalogue
            self._warned.add(name)
            _log.warning("mlprobe: two mlprobe registries exported to one prometheus registry "
                         "both have series of %s with the same labels; exporting the first "
                         "registry's (give the probes distinct names or versions)", name)


def _collect_registry(registry: Registry) -> list[MetricFamily]:
    try:
        return registry.collect()
    except Exception as exc:  # noqa: BLE001 - the app's metrics must still come out
        report_internal_error("prometheus.collect", exc)
        return []


def _internal_errors_metric() -> Metric:
    s = metric_spec(INTERNAL_ERRORS)
    metric = Metric(INTERNAL_ERRORS, s.description, "counter")
    metric.add_sample(INTERNAL_ERRORS + "_total", {}, float(internal_error_count()))
    return metric


def to_prometheus(family: MetricFamily) -> Metric:
    """Translate one snapshot family into a prometheus_client ``Metric``.

    Every label value is made a label value once more (:func:`mlprobe.snapshot.label_value`)
    and every number a float, so the result cannot make an encoder raise.

    Raises:
        TypeError, ValueError: a malformed family (a bug in mlprobe; the collector counts it
            and leaves the family out).
    """
    name, kind = family.name, family.kind
    metric = Metric(name, family.description, kind)
    add = metric.add_sample
    if kind == "counter" or kind == "gauge":
        sample_name = name + "_total" if kind == "counter" else name
        for sample in family.samples:
            _expect(sample, Sample)
            add(sample_name, _labels(sample.labels), float(sample.value))
    elif kind == "histogram":
        for sample in family.samples:
            _expect(sample, HistogramSample)
            if len(sample.bucket_counts) != len(sample.bounds) + 1:
                raise ValueError(f"{name}: a histogram needs one count per bound plus +Inf")
            labels = _labels(sample.labels)
            cumulative = sample.cumulative_counts()
            for bound, count in zip(sample.bounds, cumulative):
                add(name + "_bucket", {**labels, "le": floatToGoString(bound)}, float(count))
            add(name + "_bucket", {**labels, "le": "+Inf"}, float(cumulative[-1]))
            add(name + "_count", labels, float(cumulative[-1]))
            add(name + "_sum", labels, float(sample.sum))
    elif kind == "summary":
        for sample in family.samples:
            _expect(sample, SummarySample)
            labels = _labels(sample.labels)
            for q, value in sample.quantiles:
                add(name, {**labels, "quantile": floatToGoString(q)}, float(value))
            add(name + "_count", labels, float(sample.count))
            add(name + "_sum", labels, float(sample.sum))
    else:
        raise ValueError(f"{name}: unknown metric kind {kind!r}")
    return metric


def _expect(sample: object, kind: type) -> None:
    if type(sample) is not kind:
        raise TypeError(f"expected a {kind.__name__}, got {type(sample).__name__}")


def _labels(pairs: LabelSet) -> dict[str, str]:
    # The last-resort pass: values were made label values where they were created; this
    # keeps the exposition valid even if some path forgot (two O(1) checks per value).
    return {k: v if type(v) is str and v.isascii() and len(v) <= MAX_LABEL_CHARS
            else label_value(v) for k, v in pairs}


# -- registration ----------------------------------------------------------------------------

# One collector per prometheus_client registry, holding every mlprobe registry attached to it.
_collectors: weakref.WeakKeyDictionary[Any, MlprobeCollector] = weakref.WeakKeyDictionary()
_attach_lock = threading.Lock()


def _new_lock_after_fork() -> None:
    # A thread of the parent may hold the lock at the moment of a fork; in the child nobody
    # would release it. The attachments themselves stay true in the child.
    global _attach_lock
    _attach_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def register(registry: Registry | None = None,
             prometheus_registry: CollectorRegistry | None = None) -> MlprobeCollector | None:
    """Expose ``registry`` (default: mlprobe's) through ``prometheus_registry`` (default: REGISTRY).

    Every mlprobe registry exported to one prometheus registry is served by one
    :class:`MlprobeCollector`, so each family appears once. Idempotent and thread-safe:
    registering a pair that is already registered returns None and changes nothing.

    Returns:
        The collector now serving ``registry`` in ``prometheus_registry``, or None if it
        already was.
    """
    registry = default_registry if registry is None else registry
    target = prometheus_client.REGISTRY if prometheus_registry is None else prometheus_registry
    with _attach_lock:
        collector = _collectors.get(target)
        if collector is not None and _still_registered(target, collector):
            return collector if collector._attach(registry) else None
        collector = MlprobeCollector(registry)
        target.register(collector)  # type: ignore[arg-type]
        _collectors[target] = collector
    return collector


def _after_fork_in_child() -> None:
    # A worker forked while another thread was registering must not inherit the lock held.
    global _attach_lock
    _attach_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _still_registered(target: Any, collector: MlprobeCollector) -> bool:
    # After target.unregister(collector), registering again must attach a new collector.
    names = getattr(target, "_collector_to_names", None)  # prometheus_client's own table
    return names is None or collector in names


# -- serving ---------------------------------------------------------------------------------

def _serving_target(registry: Registry | None,
                    prometheus_registry: CollectorRegistry | None) -> CollectorRegistry:
    # The one choice of which prometheus registry serves ``registry`` (see the module docstring).
    if prometheus_registry is not None:
        return prometheus_registry
    if registry is None or registry is default_registry:
        return prometheus_client.REGISTRY
    return CollectorRegistry(auto_describe=True)


class Exposition:
    """Builds the exposition of one prometheus registry for a request's ``Accept`` header.

    Calling it returns ``(body, content_type)``: OpenMetrics or the classic text format, as
    :func:`encoder_for` chooses. It raises what the registry's collectors raise (an
    application's collector may); mlprobe's own collector never does. Made by
    :func:`exposition`; used by the middleware's ``metrics_path``.
    """

    __slots__ = ("prometheus_registry",)

    def __init__(self, prometheus_registry: CollectorRegistry) -> None:
        self.prometheus_registry = prometheus_registry  # whose metrics are exposed

    def __call__(self, accept: str | None) -> tuple[bytes, str]:
        """Return the exposition body and its content type for ``accept``."""
        encoder, content_type = encoder_for(accept)  # a bad Accept gets the text format
        return encoder(self.prometheus_registry), content_type


def exposition(registry: Registry | None = None,
               prometheus_registry: CollectorRegistry | None = None) -> Exposition:
    """Register ``registry`` and return a function that builds its exposition on demand.

    ``prometheus_registry`` defaults as for every exporter entry point (module docstring):
    prometheus_client's ``REGISTRY`` for mlprobe's default registry (the application's
    prometheus_client metrics come along), else a private registry holding only ``registry``.
    Building an exposition walks every source, so call the result off the event loop.
    """
    target = _serving_target(registry, prometheus_registry)
    register(registry, target)  # idempotent
    return Exposition(target)


def encoder_for(accept: str | None) -> tuple[Callable[[Any], bytes], str]:
    """prometheus_client's encoder and content type for an ``Accept`` header, never raising.

    ``choose_encoder`` raises on some headers a client may send (``version=abc``); such a
    header gets the classic text format, as if it had not been sent.
    """
    try:
        return choose_encoder(accept)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a client's header must not fail the scrape
        return choose_encoder(None)  # type: ignore[arg-type]


FAILURE_BODY = b"mlprobe: building the metrics exposition failed; see the application log\n"
"""Body of a 500 answer when the exposition could not be built at all."""


def _wsgi_app(target: Any) -> Callable[..., Iterable[bytes]]:
    """prometheus_client's WSGI app, with a safe encoder choice and a 500 instead of a crash."""
    inner = prometheus_client.make_wsgi_app(target)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        accept = environ.get("HTTP_ACCEPT")
        if accept:
            try:
                choose_encoder(accept)
            except Exception:  # noqa: BLE001 - serve the classic text format instead
                environ = {k: v for k, v in environ.items() if k != "HTTP_ACCEPT"}
        try:
            return inner(environ, start_response)  # fails before start_response, if at all
        except Exception as exc:  # noqa: BLE001 - e.g. an application collector that raises
            report_internal_error("prometheus.http", exc)
            start_response("500 Internal Server Error",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [FAILURE_BODY]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Log nothing per request (as prometheus_client's own server)."""


def start_http_server(port: int, addr: str = "0.0.0.0", *, registry: Registry | None = None,
                      prometheus_registry: CollectorRegistry | None = None) -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns ``(server, thread)``.

    With no registries given (or mlprobe's default registry) it serves prometheus_client's
    default registry, to which mlprobe's default registry is attached. With another
    ``registry`` alone it serves a fresh prometheus registry holding only that mlprobe
    registry. The server is prometheus_client's (threaded WSGI, gzip, ``OPTIONS``,
    ``?name[]=`` filters); a scrape whose exposition cannot be built gets a 500 with a short
    text and is counted, and an ``Accept`` header that prometheus_client cannot parse gets the
    classic text format.

    Raises:
        ExporterError: the port cannot be bound.
    """
    prometheus_registry = _serving_target(registry, prometheus_registry)
    register(registry, prometheus_registry)
    try:
        family, host = _best_family(addr, port)

        class _Server(ThreadingWSGIServer):
            address_family = family

        server = make_server(host, port, _wsgi_app(prometheus_registry), _Server,
                             handler_class=_QuietHandler)
    except OSError as exc:
        raise ExporterError(f"cannot serve /metrics on {addr}:{port}: {exc}; choose a free port"
                            ) from exc
    thread = threading.Thread(target=server.serve_forever, name="mlprobe-metrics", daemon=True)
    thread.start()
    return server, thread


def _best_family(addr: str, port: int) -> tuple[socket.AddressFamily, str]:
    # As prometheus_client does: the first address getaddrinfo offers (IPv4 or IPv6).
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])
