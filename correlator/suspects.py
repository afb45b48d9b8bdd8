"""The run's suspects: services ranked across the run from its failed tests and its comparison with
the baseline run (``api.explain``'s last step)."""

from __future__ import annotations

from collections import defaultdict

from otel_triage.correlator.compare import MESSENGER_SHARE, ServiceShift
from otel_triage.correlator.model import FailedTest, Suspect


def rank_suspects(failed: list[FailedTest], shifts: dict[str, ServiceShift]) -> tuple[Suspect, ...]:
    """Services ranked across the run, from the failed tests (mean candidate score) and from how far
    each service moved away from the baseline run (relative to the one that moved most).

    The comparison weighs as much as the failed tests leave open: when they agree on a cause (a
    score near 1), it only breaks ties; when their evidence is weak or scattered (a fault with no
    errors, a noisy run), it decides. Either alone can be misled: failed tests by a noisy run, the
    comparison by a change no test depends on or by a sample too small to be significant. (Weighing
    the two alike won two Nezha cases but let a noisy service outrank the errors every failed test
    agrees on, the e2e noisy_baseline scenario: docs/correlation.md.)

    One scale: a test's comparison and change candidates count through the shift they are views of
    (a change at a fixed score put a caller ahead of the callee whose change caused its own), and a
    relaying service's test evidence is pruned as its shift is.
    """
    totals: dict[str, float] = defaultdict(float)
    causes: dict[str, int] = defaultdict(int)
    mentions: dict[str, int] = defaultdict(int)
    for f in failed:
        for c in f.candidates:
            if c.signal == "comparison":  # counted below, as the shift it came from
                continue
            mentions[c.service] += 1
            # A change under one test is a per-test view of what the comparison measures over the
            # run: where it measured the service, its nats speak for the change (one scale, and a
            # caller that relays its callee's change is pruned); a change it cannot see (an
            # attribute value, too few spans) speaks alone.
            if c.signal == "change" and c.service in shifts:
                continue
            totals[c.service] += c.score
        if f.root_cause:
            causes[f.root_cause.service] += 1
    n_failed = max(1, len(failed))
    top_shift = max((s.score for s in shifts.values()), default=0.0) or 1.0
    open_question = 1.0 - min(1.0, max((v / n_failed for v in totals.values()), default=0.0))
    out = []
    for service in set(totals) | (set(shifts) if failed else set()):
        shift = shifts.get(service)
        # Root pruning for the failed tests' evidence too: a service whose callee differs at least
        # as much (``relays_from``) shows the failure passing through it, as its shift does.
        from_tests = totals[service] / n_failed * (MESSENGER_SHARE if shift and shift.relays_from else 1.0)
        from_shift = shift.score / top_shift if shift else 0.0
        score = from_tests + open_question * from_shift
        if causes[service]:
            reason = f"root cause of {causes[service]} of {len(failed)} failed tests"
        elif mentions[service]:
            reason = f"candidate in {mentions[service]} failed tests"
        else:
            reason = "in no failed test's evidence"
        if shift:
            signals = ", ".join(k for k, _ in sorted(shift.by_signal.items(), key=lambda kv: -kv[1]))
            reason += f"; differs from the baseline run in {signals}"
        out.append(Suspect(service=service, score=round(score, 3), failed_tests=causes[service], reason=reason,
                           evidence=shift.evidence() if shift else ()))
    return tuple(sorted(out, key=lambda x: (-x.score, -x.failed_tests, x.service)))
