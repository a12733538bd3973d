"""Every code snippet of the README and docs/*.md runs.

The Python snippets of one section (``## ...``) of a document run in order, in one namespace,
in a fresh interpreter (later snippets use the names earlier ones defined, as a reader would);
a snippet whose first line names a file of its own (``# gunicorn.conf.py``) runs alone. The
names the prose takes for granted (``model``, ``X_train``, ``rows``, ``app``, ``probe``, the
OTel SDK classes, ...) come from ``PRELUDE``. A warning mlprobe logs while they run (a probe
created twice with other settings, outcomes ignored) fails the test too: the snippet ran, but
did not do what the text says. The ``mlprobe`` and ``promtool`` command lines of shell
snippets run too, on small generated CSV files. The only edits made to a snippet before it
runs are the ``SUBSTITUTIONS`` below (ports, system paths and endpoints, so that nothing
outside a temporary directory and 127.0.0.1 is touched).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]

# text in a snippet -> what runs instead; {tmp} is the snippet's temporary directory
SUBSTITUTIONS = {
    "start_http_server(8000,": "start_http_server(0,",           # any free port
    "/run/churn-api/mlprobe": "{tmp}/mp",                         # the multi-process directory
    "/etc/prometheus/mlprobe-rules.yml": "{tmp}/mlprobe-rules.yml",
    "http://127.0.0.1:4317": "http://127.0.0.1:9",                # nothing listens there
}

PRELUDE = '''
import logging


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if "pushing metrics" not in message:  # nothing listens where the snippets push
            self.messages.append(message)


_warnings = _Warnings()
logging.getLogger("mlprobe").addHandler(_warnings)

import numpy as np
import prometheus_client
from fastapi import FastAPI
from starlette.applications import Starlette
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

import mlprobe

_g = np.random.default_rng(0)
_n = 2000


class _Model:
    """Stands for a fitted scikit-learn classifier."""

    def predict_proba(self, X):
        n = len(X) if not isinstance(X, dict) else len(next(iter(X.values())))
        p = _g.random(n)
        return np.column_stack([1 - p, p])


model = _Model()


class _Candidate:
    """Stands for a candidate model whose predict function returns the positive class's score."""

    def predict_proba_positive(self, X):
        return model.predict_proba(X)[:, 1]


candidate = _Candidate()
user_id = "user-42"
X_train = {"age": _g.normal(40, 10, _n), "salary": _g.lognormal(10, 0.5, _n),
           "plan": _g.choice(["basic", "pro"], _n),
           "diagnosis": _g.choice(["a", "b", "c"], _n)}
X = X_train
y_train = (_g.random(_n) < 0.3).astype(int)
profile = mlprobe.ReferenceProfile.from_data(X_train, y_train,
                                             model.predict_proba(X_train)[:, 1])
profile.save("churn-v3.profile.json")
rows = [{"age": 41.0, "salary": 30000.0, "plan": "pro", "diagnosis": "a"},
        {"age": 35.0, "salary": 12000.0, "plan": "basic", "diagnosis": "b"}]
label = churned = [1, 0]
ids, labels, predictions = ["id-1", "id-2"], [1, 0], [0.8, 0.3]
app = Starlette()
probe = mlprobe.Probe("churn", version="3", registry=mlprobe.Registry(), reference=profile,
                      quality=True)
my_collector_registry = prometheus_client.CollectorRegistry()
resource = Resource.create({"service.name": "churn-api"})
'''

EPILOGUE = '''
import gc
from mlprobe.exporters import otel as _otel
for _pusher in [o for o in gc.get_objects() if isinstance(o, _otel.PushExporter)]:
    _pusher.shutdown(timeout=1)
assert not _warnings.messages, f"mlprobe warned: {_warnings.messages}"
print("SNIPPETS-DONE")
'''


def blocks(document: str) -> list[tuple[int, str, str, str]]:
    """(line, language, code, section) of every fenced block of ``document``."""
    found, lines = [], (ROOT / document).read_text().splitlines()
    section, i = "", 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i]
        match = re.match(r"```(\w*)\s*$", lines[i])
        if match:
            end = lines.index("```", i + 1)
            found.append((i + 1, match.group(1), "\n".join(lines[i + 1:end]), section))
            i = end
        i += 1
    return found


def substituted(code: str, tmp: Path) -> str:
    for text, replacement in SUBSTITUTIONS.items():
        code = code.replace(text, replacement.format(tmp=tmp))
    return code


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPROBE_", "OTEL_"))}
    env.update(PYTHONPATH=str(ROOT / "src"), PYTHONDONTWRITEBYTECODE="1",
               # pushes at exit go nowhere, quickly
               OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_TIMEOUT="1",
               OTEL_METRIC_EXPORT_TIMEOUT="1000")
    return env


def run_python(snippets: list[tuple[int, str]], document: str, tmp: Path) -> None:
    """Run ``snippets`` (line, code) in order in one fresh interpreter, after the prelude."""
    parts = [PRELUDE]
    for line, code in snippets:
        parts.append(f"print('SNIPPET {document}:{line}', flush=True)\n"
                     f"exec(compile({substituted(code, tmp)!r}, '{document}:{line}', 'exec'))")
    parts.append(EPILOGUE)
    (tmp / "mp").mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-c", "\n".join(parts)], cwd=tmp, text=True,
                         capture_output=True, timeout=120, env=environment(tmp))
    assert out.returncode == 0 and "SNIPPETS-DONE" in out.stdout, (
        f"a snippet of {document} failed\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


@pytest.mark.parametrize("document", [d for d in DOCUMENTS
                                      if any(b[1] == "python" for b in blocks(d))])
def test_python_snippets_run(document: str, tmp_path: Path) -> None:
    """Every ```python block of the document runs without an exception or an mlprobe
    warning, section by section in order (a block that starts with ``# some_file.py``
    alone)."""
    sessions: dict[str, list[tuple[int, str]]] = {}
    for line, lang, code, section in blocks(document):
        if lang == "python":
            alone = re.match(r"#\s*[\w.-]+\.py\s*$", code.splitlines()[0])
            sessions.setdefault(f"line {line}" if alone else section, []).append((line, code))
    for i, snippets in enumerate(sessions.values()):
        (tmp_path / str(i)).mkdir()
        run_python(snippets, document, tmp_path / str(i))


def write_csv_files(tmp: Path) -> None:
    """train.csv (features, label, score), and current.csv / day.csv like it."""
    import numpy as np

    g = np.random.default_rng(1)
    for name, n in (("train.csv", 3000), ("current.csv", 1500), ("day.csv", 1500)):
        lines = ["age,salary,plan,label,score"]
        for _ in range(n):
            score = g.random()
            lines.append(f"{g.normal(40, 10):.3f},{g.lognormal(10, 0.5):.2f},"
                         f"{g.choice(['basic', 'pro'])},{int(g.random() < score)},{score:.4f}")
        (tmp / name).write_text("\n".join(lines) + "\n")


def mlprobe_commands(document: str) -> list[tuple[int, str]]:
    """(line, command) of every ``mlprobe`` or ``promtool`` line of a shell block."""
    return [(line + k + 1, text) for line, lang, code, _ in blocks(document)
            if lang in ("sh", "bash", "shell")
            for k, text in enumerate(code.splitlines())
            if text.startswith(("mlprobe ", "promtool "))]


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if mlprobe_commands(d)])
def test_shell_snippets_run(document: str, tmp_path: Path) -> None:
    """Every ``mlprobe`` (and, when installed, ``promtool``) command line of a shell block runs,
    in order, on generated CSV files: exit 0 (``mlprobe drift`` may exit 1: a threshold was
    reached), never a usage error."""
    commands = mlprobe_commands(document)
    write_csv_files(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "mlprobe"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mlprobe "$@"\n')
    shim.chmod(0o755)
    env = environment(tmp_path)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    for line, command in commands:
        if command.startswith("promtool ") and not shutil.which("promtool", path=env["PATH"]):
            # tests/realservers.py's rule: .ci/run installs it, locally it may be missing
            assert not os.environ.get("CI"), "promtool is not installed (CI is set)"
            continue
        out = subprocess.run(["bash", "-c", substituted(command, tmp_path)], cwd=tmp_path,
                             text=True, capture_output=True, timeout=120, env=env)
        allowed = (0, 1) if command.startswith("mlprobe drift ") else (0,)
        assert out.returncode in allowed, textwrap.dedent(f"""\
            {document}:{line}: {command}
            exit {out.returncode}
            {out.stderr[-2000:]}""")
