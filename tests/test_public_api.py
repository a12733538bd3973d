"""Each public module's ``__all__`` is pinned, sorted, and every name in it is documented.

A name becomes public only when a user needs it, and this file changes in the same commit.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from types import ModuleType

import pytest

PUBLIC = {
    "mlprobe": [
        "ConfigurationError", "DriftSpec", "ExporterError", "MlprobeError", "Probe",
        "ProbeMiddleware", "ProfileError", "ProfileLimits", "QualitySpec", "ReferenceProfile",
        "Registry", "Shadow", "Split", "__version__", "current_prediction_id",
        "default_registry",
    ],
    "mlprobe.stats": [
        "BinnedCounts", "CategoryCounts", "ChiSquareResult", "Moments", "QuantileSketch",
        "chi_square", "evidently_jensenshannon", "evidently_psi", "evidently_wasserstein_norm",
        "jensen_shannon", "ks_exact", "ks_from_counts", "ks_pvalue", "linf_distance", "normed",
        "psi", "reference_edges", "wasserstein_exact", "wasserstein_from_counts",
    ],
    "mlprobe.stats.drift": [
        "ChiSquareResult", "chi_square", "jensen_shannon", "ks_exact", "ks_from_counts",
        "ks_pvalue", "linf_distance", "normed", "psi", "wasserstein_exact",
        "wasserstein_from_counts",
    ],
    "mlprobe.snapshot": [
        "HistogramSample", "LabelSet", "MAX_LABEL_CHARS", "MetricFamily", "MetricKind",
        "MetricSpec", "Sample", "SummarySample", "exposed_name", "label_value", "metric_spec",
        "metric_specs",
    ],
    "mlprobe.registry": ["FamilyBuilder", "MergeableSource", "Registry", "Source", "SourceState",
                         "default_registry"],
    "mlprobe.asgi": [
        "CLIENT_DISCONNECTED", "DEFAULT_EXCLUDE_PATHS", "OTHER_METHOD", "ProbeMiddleware",
        "UNMATCHED_ROUTE",
    ],
    "mlprobe.multiprocess": ["DEFAULT_INTERVAL_S", "child_exit", "enable", "exports_here",
                             "instance_id", "is_enabled", "mark_process_dead"],
    "mlprobe.testing": ["raise_internal_errors", "sample_value"],
    "mlprobe.errors": [
        "ConfigurationError", "ExporterError", "MlprobeError", "ProfileError",
        "internal_error_count", "report_internal_error",
    ],
    "mlprobe.exporters.otel": ["PushExporter", "bridge", "metrics_data", "push"],
    "mlprobe.exporters.prometheus": [
        "Exposition", "MlprobeCollector", "encoder_for", "exposition", "register",
        "start_http_server", "to_prometheus",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_pinned_and_sorted(module_name: str) -> None:
    """``__all__`` equals the sorted list stated here, and every name in it exists."""
    module = importlib.import_module(module_name)
    assert PUBLIC[module_name] == sorted(PUBLIC[module_name])
    assert list(module.__all__) == PUBLIC[module_name]
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, missing


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    """Classes and functions have their own docstring; constants and aliases a string literal
    right after their assignment (the attribute docstring), where they are defined."""
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), module_name
    undocumented = [name for name in module.__all__ if not _documented(module, name)]
    assert not undocumented, undocumented


def _documented(module: ModuleType, name: str) -> bool:
    obj = getattr(module, name)
    if inspect.isclass(obj):
        return bool((obj.__dict__.get("__doc__") or "").strip())
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return bool((obj.__doc__ or "").strip())
    return _attribute_docstring(module, name) is not None


def _attribute_docstring(module: ModuleType, name: str, depth: int = 0) -> str | None:
    """The string literal after ``name = ...`` in ``module``'s source, following
    ``from .x import name`` to the module that assigns it."""
    tree = ast.parse(inspect.getsource(module))
    body = tree.body
    for stmt, following in zip(body, body[1:] + [None]):
        targets = (stmt.targets if isinstance(stmt, ast.Assign)
                   else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                return following.value.value
            return None
    for stmt in body:
        if isinstance(stmt, ast.ImportFrom) and any(a.name == name for a in stmt.names):
            package = module.__name__ if hasattr(module, "__path__") else (
                module.__name__.rpartition(".")[0])
            origin = importlib.import_module("." * stmt.level + (stmt.module or ""), package)
            if depth < 3 and origin is not sys.modules.get(module.__name__):
                return _attribute_docstring(origin, name, depth + 1)
    return None


EXPORTERS = sorted(f"mlprobe.exporters.{m.name}" for m in pkgutil.iter_modules(
    importlib.import_module("mlprobe.exporters").__path__))


@pytest.mark.parametrize("module_name", EXPORTERS)
def test_exporters_import_nothing_private_of_mlprobe(module_name: str) -> None:
    """An exporter reads only the public read side (mlprobe.registry, mlprobe.snapshot,
    mlprobe.errors): every mlprobe module that a module of mlprobe.exporters imports is public
    or one of the exporter package's own modules."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = importlib.util.resolve_name("." * node.level + (node.module or ""),
                                               module.__package__)
            imported += [base] if node.module else [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            imported += [a.name for a in node.names if a.name.startswith("mlprobe")]
    private = [name for name in imported
               if any(part.startswith("_") for part in name.split("."))
               and not name.startswith("mlprobe.exporters.")]
    assert imported and not private, private
