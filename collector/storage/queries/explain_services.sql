-- The operations each failed test reached (its subtree, explain_tree), with how many of its spans ran
-- in each: a failed test whose subtree shows no error is explained by the service it reached that
-- differs most from the baseline run. Expects temp tables explain_tree, explain_spans, explain_tests.
SELECT t.test_span, s.service, s.operation, count(*) AS spans
FROM explain_tree AS t
JOIN explain_spans AS s USING (TraceId, SpanId)
JOIN explain_tests AS x ON x.span_id = t.test_span AND x.status = 'failed'
WHERE t.depth > 0
GROUP BY ALL
