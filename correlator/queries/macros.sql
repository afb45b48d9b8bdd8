-- Functions the correlator's queries share (sql.py defines them on every scratch DuckDB).
-- rate_nats: anomaly.rates, the surprise of a count per unit of exposure changing between the
-- baseline and the run, and novelty_nats: anomaly.novelty, so that the comparison's rows that
-- cannot be significant never leave DuckDB (tests/test_scoring.py checks that both agree).
CREATE MACRO xlogx(c) AS CASE WHEN c > 0 THEN c * ln(c) ELSE 0 END;
CREATE MACRO rate_nats(r, re, b, be) AS CASE
    WHEN re <= 0 OR be <= 0 OR r + b <= 0 THEN 0.0
    WHEN r <= re AND b <= be  -- each span shows it or not: the 2x2 table's log-likelihood ratio
        THEN xlogx(r) + xlogx(re - r) + xlogx(b) + xlogx(be - b) - xlogx(r + b) - xlogx(re + be - r - b)
             - xlogx(re) - xlogx(be) + xlogx(re + be)
    ELSE (r + b) * (xlogx(r / (r + b)) - r / (r + b) * ln(re / (re + be))  -- two Poisson counts
                    + xlogx(b / (r + b)) - b / (r + b) * ln(be / (re + be)))
END;
CREATE MACRO novelty_nats(unseen, n, singletons, baseline_n) AS CASE
    WHEN unseen * baseline_n <= singletons * n THEN 0.0 ELSE rate_nats(unseen, n, singletons, baseline_n) END;
