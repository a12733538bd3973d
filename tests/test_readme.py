"""The README stays true: metric table, quickstart commands, CI command, public API."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import mlprobe
from mlprobe._catalog import CATALOG, markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker}:start -->\n(.*?)\n<!-- {marker}:end -->", README, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1).strip()


def test_metric_table_equals_catalogue():
    """The README's metric table is exactly the one generated from the catalogue."""
    assert readme_block("metrics") == markdown_table(), (
        "regenerate with: python -c 'from mlprobe._catalog import markdown_table as t; "
        "print(t())'")


def test_exported_families_match_catalogue(registry):
    """Every family a busy probe exports is in the catalogue with the declared labels."""
    probe = mlprobe.Probe("readme", registry=registry)

    @probe.track
    def predict(x):
        if x is None:
            raise ValueError
        return np.array([[0.1, 0.9]])

    predict(np.zeros((1, 3)))
    try:
        predict(None)
    except ValueError:
        pass
    probe.observe(outputs=["a"])
    families = registry.collect()
    assert {f.name for f in families} >= {
        "mlprobe_predictions", "mlprobe_prediction_errors", "mlprobe_prediction_duration_seconds",
        "mlprobe_predictions_in_flight", "mlprobe_batch_rows", "mlprobe_input_bytes",
        "mlprobe_prediction_score", "mlprobe_predicted_class", "mlprobe_internal_errors"}
    for family in families:
        spec = CATALOG[family.name]
        assert family.kind == spec.kind
        for sample in family.samples:
            assert tuple(k for k, _ in sample.labels) == spec.labels, family.name


def test_quickstart_is_two_commands_and_ci_runs_the_test_one():
    """The quickstart has exactly two commands and .ci/run runs the second one verbatim."""
    commands = [line for line in readme_block("quickstart").splitlines()
                if line.strip() and not line.startswith("```") and not line.startswith("#")]
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1].strip() in [line.strip() for line in ci]


def test_public_api_is_curated():
    """mlprobe.__all__ is sorted and names exactly the public, re-exported objects."""
    assert mlprobe.__all__ == sorted(mlprobe.__all__)
    public = {name for name in dir(mlprobe) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(mlprobe, name)).__name__ == "module"}
    assert set(mlprobe.__all__) - {"__version__"} == public - modules


def test_alert_table_equals_the_generated_rules():
    """The README's alert table is exactly the one generated from the default rules."""
    from mlprobe._alerts import alerts_markdown

    assert readme_block("alerts") == alerts_markdown(), (
        "regenerate with: python -c 'from mlprobe._alerts import alerts_markdown as t; "
        "print(t())'")


def test_readme_pictures_exist():
    """Every image the README shows is in the repository (the browser tests write them with
    MLPROBE_WRITE_DOCS_IMAGES=1)."""
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images, "the README shows no picture"
    for image in images:
        path = ROOT / image
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image


def _module_rows() -> list[tuple[str, str, str]]:
    """(layer, module, job) of each row of the README's module table; an empty layer cell
    continues the layer above."""
    rows, layer = [], ""
    for line in readme_block("modules").splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, line
        layer = cells[0] or layer
        match = re.fullmatch(r"`([\w/]+)`", cells[1])
        assert match and cells[2], line
        rows.append((layer, match.group(1), cells[2]))
    return rows


def _linter_layers() -> list[set[str]]:
    """The import-linter layers of pyproject.toml, lowest first, as sets of module names."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    return [set(re.findall(r"[\w.]+", layer)) for layer in reversed(layers)]


def test_module_table_lists_every_module_once_in_its_layer():
    """The README's module table has one row per module of src/mlprobe (no more, no fewer),
    and each row sits in the layer pyproject.toml's import-linter contract gives it."""
    package = ROOT / "src" / "mlprobe"
    on_disk = sorted(str(path.relative_to(package).with_suffix(""))
                     for path in package.rglob("*.py"))
    rows = _module_rows()
    listed = [module for _, module, _ in rows]
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert sorted(listed) == on_disk, (
        f"missing: {sorted(set(on_disk) - set(listed))}, "
        f"not a module: {sorted(set(listed) - set(on_disk))}")
    names = list(dict.fromkeys(layer for layer, module, _ in rows if module != "__init__"))
    layers = _linter_layers()
    assert len(names) == len(layers), (names, layers)
    for layer, module, _ in rows:
        if module == "__init__":
            assert layer == "package root (no layer)"
            continue
        top = module.split("/")[0]
        assert top in layers[names.index(layer)], f"{module} is not in layer {layer!r}"


def test_readme_links_every_guide():
    """The README's Guides section links every document in docs/."""
    section = README.split("## Guides", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", section))
    guides = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert linked == guides


def test_docs_name_only_things_that_exist():
    """Every metric (with its _total/_bucket/_sum/_count series), recording rule, alert and
    repository path that the README, docs/*.md, benchmarks/README.md and the CHANGELOG name
    exists: in the catalogue, in the rules `mlprobe rules` writes, on disk."""
    from mlprobe._alerts import rule_file_yaml
    from mlprobe.exporters import prometheus

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("_sum", "_count")}
    series = {name + suffix for name, spec in CATALOG.items()
              for suffix in ("", *suffixes.get(spec.kind, ()))}
    rules = rule_file_yaml()
    named = set(re.findall(r"(?:record|alert): (\S+)", rules))
    documents = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md",
                 *sorted((ROOT / "docs").glob("*.md"))]
    unknown = []
    for document in documents:
        text = document.read_text()
        for name in set(re.findall(r"\b((?:mlprobe|http_server)_[a-z_]*[a-z])\b", text)):
            if name not in series:
                unknown.append((document.name, name))
        for name in set(re.findall(r"\b(mlprobe:[a-z_0-9:]+R?)", text)):
            # docs/operating.md writes the range as R: mlprobe:feature_psi:increaseR
            if not (name in named or name.endswith("R") and any(
                    rule.startswith(name[:-1]) for rule in named)):
                unknown.append((document.name, name))
        for name in set(re.findall(r"\b(Mlprobe[A-Za-z0-9]+)", text)):
            if name not in named and not hasattr(prometheus, name):
                unknown.append((document.name, name))
        for path in set(re.findall(r"(?<![\w/.-])((?:src|tests|benchmarks|examples|docs|\.ci)"
                                   r"/[\w./-]*[\w/])", text)):
            if not (ROOT / path).exists() and "NAME" not in path:
                unknown.append((document.name, path))
    assert unknown == []
