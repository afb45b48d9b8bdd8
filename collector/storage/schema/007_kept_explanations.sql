-- A completed run's explanation, computed once and kept (correlator/api.py): `triage explain`,
-- `wait`, `report` and webhooks of a run whose inputs have not changed read it instead of
-- computing it again. Derived data, like the facts: ``stamp`` is a digest of everything the
-- explanation read (the correlator's code, the facts of every run that could be its baseline or in
-- its tests' history, the metric points of the run and of its baseline, its completion), taken
-- before it was computed; a kept row whose stamp differs from the current one is computed again.
-- Only the default-baseline explanation is kept (an explicit --baseline is computed each time).
CREATE TABLE triage_explanations (
    run_id VARCHAR NOT NULL,
    baseline_run_id VARCHAR,                 -- the baseline it chose (NULL: none), for the stamp
    stamp VARCHAR NOT NULL,
    explanation VARCHAR NOT NULL,            -- `triage explain RUN --json`, byte for byte
    computed_unix_nano BIGINT NOT NULL
);
