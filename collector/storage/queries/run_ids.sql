-- Every run id in the store, from the RunId columns alone (no JSON, no joins).
SELECT RunId FROM otel_traces WHERE RunId IS NOT NULL
UNION SELECT RunId FROM otel_logs WHERE RunId IS NOT NULL
UNION SELECT RunId FROM otel_metrics_gauge WHERE RunId IS NOT NULL
UNION SELECT RunId FROM otel_metrics_sum WHERE RunId IS NOT NULL
UNION SELECT RunId FROM otel_metrics_histogram WHERE RunId IS NOT NULL
UNION SELECT RunId FROM otel_metrics_exponential_histogram WHERE RunId IS NOT NULL
UNION SELECT RunId FROM otel_metrics_summary WHERE RunId IS NOT NULL
