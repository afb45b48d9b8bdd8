"""Every weight and threshold the correlator uses, side by side, each with why.

The scorers (``score.py`` for failed tests, ``compare.py`` for the run against its baseline run)
and ``api.py`` import their constants from here; the thresholds in the correlator's SQL are passed
in as parameters from ``SQL``, so no number hides in a query. The baseline comparison's weights
(significance, pseudo-counts, metric deviations) head ``compare.py``, next to the formula they
shape.
"""

from __future__ import annotations

# --- a failed test's notable spans (score.py) -----------------------------------------------------
MESSENGER = 0.15  # trouble with more trouble below it relays the failure: a weak vote for itself
ERROR_ORIGIN = 1.0  # an error with nothing unexplained below it: where the failure began
LOG_ORIGIN = 0.8  # an error log on a span that looked OK: likely, but a log can be chatty
LATENCY_ORIGIN = 0.7  # slower than every baseline occurrence: a cause, but latency varies
RETRY_RECOVERED = 0.1  # inside a call that a retry then recovered: not what failed the test
NOISE_FLOOR = 0.05  # a sign passing tests show too never weighs less than this share
CAUSE_THRESHOLD = 0.3  # below this, no candidate is trusted to be the cause

# --- metric shifts of leading candidates (api.py, explain_metrics.sql) -----------------------------
METRIC_WINDOW_SLACK_NS = 2_000_000_000  # metric exports lag the spans by an export interval
# Metric points without a run id join a run up to this long after its last span (metric_points.sql):
# services export on an interval, the last time when they shut down.
METRIC_RUN_SLACK_NS = 5_000_000_000
METRIC_BONUS = 0.1  # a metric above twice the baseline's highest adds this to a leading candidate
TOP_FOR_METRICS = 3  # candidates per failed test whose metrics are looked at

# --- a run still arriving (api.py, kept.py) -------------------------------------------------------
# A run whose last span ended this recently, and that the daemon has not recorded as complete, may
# still be arriving: the explanation says so and is not kept.
STILL_RECEIVING_SECONDS = 10

# --- the SQL's thresholds (explain_nodes.sql, compare_latency.sql, explain_metrics.sql) ------------
SQL = {
    # a span is slow when above both this many times the reference's slowest and ...
    "slow_factor": 2,
    # ... the reference's median plus this (a 100 ms floor: short calls jitter by more than double)
    "slow_margin_ns": 100_000_000,
    # a sign at least this share of passing tests show is noise, not a cause
    "noisy_share": 0.5,
    # a run span counts as slower than the baseline above its slowest by 20% and 1 ms (jitter)
    "above_factor": 1.2,
    "above_margin_ns": 1_000_000,
    # a metric shift: a window figure above this many times the baseline's highest
    "metric_factor": 2,
    # compare each operation's own time ('self', facts_latency.sql) with the baseline's: off. Until
    # 2026-12-03 it was 0 for nearly every span (a NULL-skipping least()); computed right, it named a
    # hub whose own time moves with load (ts-order-service) before the faulty service in most Nezha
    # cases (bench/nezha.py AC@1 91.1% -> 57.8%; 91.1% with it off, the same as before; 88.9% when
    # compared only if an operation's median passes the baseline's p90, which still missed a slowed
    # leaf service on independent data), so it stays out until its comparison discounts what a fault
    # elsewhere does to a caller's own time.
    "compare_own_time": False,
}
