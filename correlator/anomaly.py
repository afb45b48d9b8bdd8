"""One scale for every kind of evidence: how surprising the run is if it behaved like its baseline.

Each indicator (an operation's latency, a call it makes, a log template it writes, a metric) is
turned into a *surprise* in nats: the log-likelihood ratio of the run's observation against what the
baseline predicts, which is also the Chernoff exponent of the tail probability (``p ≈ e^-surprise``).
On that one scale a service is judged by its strongest indicator (``strongest``), less what the
number of indicators it offers would yield by chance, instead of by the sum of many weak ones: a busy
service whose logs and calls merely follow its inputs has many small shifts, the faulty one has one
large shift.

The tests behind the scale are exact in their use of the baseline: a rate is compared by the
conditional binomial test of two Poisson counts (no pseudo-count for a template the baseline never
logged: it is as surprising as the run's exposure makes it), a latency by the share of the run's
spans beyond every baseline span of the operation (TraceRCA's abnormal share: 3 slow calls out of 3
count), a resource's utilisation by the share of the time it was busy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _kl(p: float, q: float) -> float:
    """Kullback-Leibler divergence of Bernoulli(p) from Bernoulli(q), in nats."""
    q = min(max(q, 1e-12), 1 - 1e-12)
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def binomial(k: float, n: float, q: float) -> float:
    """Surprise of ``k`` of ``n`` trials succeeding when each does with probability ``q`` (upper tail
    only: fewer than expected is no surprise)."""
    if n <= 0 or k <= q * n:
        return 0.0
    return n * _kl(min(k / n, 1.0), q)


def _xlogx(counts: tuple[float, ...]) -> float:
    return sum(c * math.log(c) for c in counts if c > 0)


def rates(run: float, run_exposure: float, baseline: float, baseline_exposure: float) -> float:
    """Surprise of a count per unit of exposure (per span) changing between baseline and run, either way.

    When no span has it more than once (a log line, a call), each span of either side either shows
    it or not: the log-likelihood ratio of that 2x2 table (the G-test's half), which counts the
    baseline's own sampling error, so a small baseline yields small surprises. Otherwise the two
    counts are compared as Poisson counts by the conditional test: of all occurrences, each falls
    in the run with the run's share of the exposure.
    """
    if run_exposure <= 0 or baseline_exposure <= 0 or run + baseline <= 0:
        return 0.0
    if run <= run_exposure and baseline <= baseline_exposure:
        total, shown = run_exposure + baseline_exposure, run + baseline
        return (_xlogx((run, run_exposure - run, baseline, baseline_exposure - baseline))
                - _xlogx((shown, total - shown)) - _xlogx((run_exposure, baseline_exposure)) + _xlogx((total,)))
    n = run + baseline
    return n * _kl(run / n, run_exposure / (run_exposure + baseline_exposure))


def novelty(unseen: float, n: float, singletons: float, baseline_n: float) -> float:
    """Surprise of ``unseen`` of ``n`` run spans showing a pattern no baseline span showed, when
    ``singletons`` of the ``baseline_n`` baseline spans show one no other baseline span did.

    A baseline span whose pattern is seen once would have been unseen had it been left out, so the
    baseline's own rate of novelty is its singletons' share (Good-Turing's missing mass). Both
    shares are estimates: compared as a 2x2 table (``rates``), a small baseline's sampling error
    counts, as it does for calls and log lines. Taken as exact (a binomial against the missing
    mass), 12 baseline spans made a changed mix of destinations of one generic client operation
    the strongest sign of a run (44 nats; here 9). Upper tail only: less novelty is no surprise.
    """
    if unseen * baseline_n <= singletons * n:
        return 0.0
    return rates(unseen, n, singletons, baseline_n)


def rarity(rare: float, n: float, singletons: float, doubletons: float, baseline_n: float) -> float:
    """Surprise of ``rare`` of ``n`` run spans showing a pattern the baseline showed at most once:
    a fault can make frequent a branch the baseline took once by chance. Left out, a baseline span
    whose pattern it saw once would be unseen and one seen twice would be seen once, so the
    baseline's own rate is its singletons' and doubletons' spans (``singletons + 2 * doubletons``
    of ``baseline_n``); compared as ``novelty`` is."""
    return novelty(rare, n, singletons + 2 * doubletons, baseline_n)


def gaussian(z: float) -> float:
    """Surprise of a standard normal deviation ``z`` above the mean (upper tail)."""
    return z * z / 2 if z > 0 else 0.0


def vanished(baseline: float, run_exposure: float, baseline_exposure: float) -> float:
    """Surprise of a count the baseline had ``baseline`` times never showing in the run."""
    return rates(0, run_exposure, baseline, baseline_exposure)


def look_elsewhere(tested: int) -> float:
    """What the strongest of ``tested`` independent indicators reaches by chance alone, in nats
    (Bonferroni: ``-ln(p·m)`` = surprise - ln m)."""
    return math.log(max(tested, 1))


@dataclass(frozen=True)
class Strongest:
    """A service's strongest indicator, net of the number of indicators it was tested on."""

    raw: float
    tested: int

    @property
    def net(self) -> float:
        return max(0.0, self.raw - look_elsewhere(self.tested))
