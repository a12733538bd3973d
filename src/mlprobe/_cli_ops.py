"""The operating commands of the ``mlprobe`` CLI: ``rules`` and ``dashboard``.

``mlprobe rules`` prints the Prometheus recording and alerting rules (every
:class:`~mlprobe._rules.RuleParams` field is an option); ``mlprobe dashboard`` prints the
packaged Grafana dashboard JSON. Both write to stdout, or atomically to ``-o FILE``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import MISSING, fields
from typing import Any

from ._cli_io import CliError, emit
from .errors import ConfigurationError

__all__ = ["add_commands"]


def _write(text: str, output: str | None) -> None:
    if output is None:
        emit(text.rstrip("\n"))
        return
    directory = os.path.dirname(os.path.abspath(output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mlprobe-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        raise CliError(f"cannot write {output!r}: {exc.strerror or exc}") from None


def _cmd_rules(args: argparse.Namespace) -> int:
    from ._alerts import rule_file_yaml
    from ._rules import RuleParams

    given = {f.name: getattr(args, f.name) for f in fields(RuleParams)
             if getattr(args, f.name) is not None}
    try:
        params = RuleParams(**given)
    except ConfigurationError as exc:
        # name the option, not the dataclass field
        text = str(exc)
        for name in given:
            text = text.replace(f"RuleParams.{name}", "--" + name.replace("_", "-"))
        raise CliError(text) from None
    _write(rule_file_yaml(params), args.output)
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from ._dashboard import dashboard_json

    _write(dashboard_json(), args.output)
    return 0


def html_report(profile: Any, window: Any, report: Any, current: str,
                model_quality: Any = None) -> str:
    """``mlprobe drift --format html``: the status page's views as one static document."""
    from ._feature_metrics import PREDICTION_FEATURE, feature_labels
    from ._fingerprint import profile_fingerprint
    from ._html_report import render_page, view_model

    fingerprint = profile_fingerprint(profile, feature_labels(profile), profile.sensitive,
                                      PREDICTION_FEATURE)
    return render_page(view_model(profile, window, report, sensitive=profile.sensitive,
                                  title=f"mlprobe drift report · {os.path.basename(current)}",
                                  profile_id=fingerprint,
                                  model_quality=(model_quality.to_dict()
                                                 if model_quality is not None else None)))


def add_commands(sub: Any, formatter: type[argparse.HelpFormatter], epilog: str) -> None:
    """Add ``rules`` and ``dashboard`` to the CLI's subcommands."""
    from ._rules import RuleParams

    r = sub.add_parser("rules", help="print Prometheus recording and alerting rules",
                       formatter_class=formatter, epilog=epilog,
                       description="Print the Prometheus rule file for mlprobe metrics: "
                       "fleet-wide drift (PSI, JS, L-infinity per feature from the bin "
                       "counters of every replica), serving quantiles and alerts. Check it "
                       "with `promtool check rules FILE`.")
    r.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    for f in fields(RuleParams):
        default = f.default if f.default is not MISSING else None
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default {default!r})"
        if f.name == "by":
            r.add_argument(flag, nargs="+", metavar="LABEL", help=help_text)
        elif isinstance(default, bool) or default is None:
            continue
        elif isinstance(default, int):
            r.add_argument(flag, type=int, metavar="N", help=help_text)
        elif isinstance(default, float):
            r.add_argument(flag, type=float, metavar="X", help=help_text)
        else:
            r.add_argument(flag, metavar="TEXT" if f.name == "selector" else "DURATION",
                           help=help_text)
    r.set_defaults(func=_cmd_rules)
    d = sub.add_parser("dashboard", help="print the Grafana dashboard JSON",
                       formatter_class=formatter, epilog=epilog,
                       description="Print the Grafana dashboard for mlprobe metrics "
                       "(importable JSON with datasource, model, version and feature "
                       "variables). Provisioning files: examples/grafana/.")
    d.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    d.set_defaults(func=_cmd_dashboard)
