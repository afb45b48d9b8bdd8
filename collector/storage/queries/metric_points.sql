-- The metric points of the runs in $run_ids (a list), one value each: gauges and non-monotonic
-- sums their value, histograms their Max (else Sum/Count). Metric points carry no trace context,
-- so they belong to a run by run id only (README, "Runs").
SELECT RunId, ServiceName AS service, MetricName AS metric, MetricUnit AS unit, 'gauge' AS kind,
       epoch_ns(TimeUnix) AS t, Value AS v
FROM otel_metrics_gauge WHERE RunId IN (SELECT unnest($run_ids))
UNION ALL
SELECT RunId, ServiceName, MetricName, MetricUnit, 'sum', epoch_ns(TimeUnix), Value
FROM otel_metrics_sum WHERE RunId IN (SELECT unnest($run_ids)) AND NOT IsMonotonic
UNION ALL
SELECT RunId, ServiceName, MetricName, MetricUnit, 'histogram', epoch_ns(TimeUnix),
       coalesce(Max, Sum / nullif(Count, 0))
FROM otel_metrics_histogram WHERE RunId IN (SELECT unnest($run_ids))
