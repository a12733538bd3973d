"""What a shadow records for each candidate call, wherever the candidate ran.

Both ways of running the candidate (a thread of the serving process, or a child process; see
:mod:`mlprobe._shadow`) end here with the same facts: the call's duration, its result or the
type of its error, the primary's prediction id, and the comparison of the two outputs
(:class:`~mlprobe._shadow_compare.Comparer`, run where the candidate ran). So both produce
exactly the same metrics: the call in the candidate's probe (latency, errors, scores, the
prediction kept under the primary's id when quality is on) and the comparison counts in
:class:`~mlprobe._shadow_counts.ShadowCounters`.
"""

from __future__ import annotations

from typing import Any

from ._decorators import build_recorder
from ._guard import report_internal_error
from ._probe import Probe
from ._shadow_compare import Comparer
from ._shadow_counts import Comparison, ShadowCounters

__all__ = ["COMPARE_BATCH", "CandidateRecorder"]

COMPARE_BATCH = 64
"""Outputs compared together at most (fewer when the runner has drained its queue)."""


class CandidateRecorder:
    """Records candidate calls into the candidate's probe and the shadow's counters.

    One thread records (the runner's). Outputs recorded with their primary's output are
    compared in batches (:data:`COMPARE_BATCH`, or whatever is left when the runner has
    drained its queue: :meth:`drained`); comparisons made elsewhere are added with
    :meth:`add_comparison`.
    """

    def __init__(self, candidate: Probe, comparer: Comparer, counters: ShadowCounters) -> None:
        self.comparer = comparer
        self.counters = counters
        self._record = build_recorder(candidate._state)
        self._store = candidate._state.store
        self._outputs: list[tuple[Any, Any]] = []  # (primary, candidate) outputs to compare

    def record(self, prediction_id: Any, duration: float, result: Any,
               error_type: str | None, primary_result: Any = None, compare: bool = False
               ) -> None:
        """Count one candidate call (``error_type`` None: it returned ``result``); with
        ``compare``, its output is compared with ``primary_result`` by the next
        :meth:`drained` at the latest."""
        try:
            self._record(duration, prediction_id, result, error_type)
        except Exception as exc:  # noqa: BLE001 - the shadow must never hurt the primary
            report_internal_error("shadow.record", exc)
            return
        if compare and error_type is None:
            outputs = self._outputs
            outputs.append((primary_result, result))
            if len(outputs) >= COMPARE_BATCH:
                self._compare()

    def add_comparison(self, comparison: Comparison | tuple[str, str] | None) -> None:
        """Add the counts of comparisons made where the candidate ran (``("failed",
        reason)``: the comparison failed there)."""
        if comparison is None:
            return
        try:
            if comparison[0] == "failed":
                raise RuntimeError(f"comparing in the candidate's process: {comparison[1]}")
            self.counters.add(comparison)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            report_internal_error("shadow.compare", exc)

    def _compare(self) -> None:
        outputs, self._outputs = self._outputs, []
        if outputs:
            try:
                comparison = self.comparer.compare(outputs)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("shadow.compare", exc)
                return
            self.add_comparison(comparison)

    def drained(self) -> None:
        """The runner has no call left for now: compare what is queued, and move the
        prediction store's queued entries into the store here, off the request path.

        The candidate's predictions go into the model's store, the one the primary's calls
        fill; left queued, they would make a request cross the store's batch size twice as
        often and pay for ingesting them (a tail latency spike, measured).
        """
        self._compare()
        store = self._store
        if store is not None:
            try:
                store.ingest()
            except Exception as exc:  # noqa: BLE001
                report_internal_error("shadow.ingest", exc)
