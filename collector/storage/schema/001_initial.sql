-- Schema version 1: every OTLP field of traces, logs and metrics, in the table and column naming of
-- the OpenTelemetry Collector's ClickHouse exporter (otel_traces, otel_logs, otel_metrics_*), so the
-- correlator's queries stay portable to ClickHouse.
--
-- Deliberate differences from the ClickHouse exporter, each to stay lossless or cheap to write:
--   * Attributes are JSON objects (not Map(String, String)): values keep their OTLP type
--     (string, bool, int, double, array, kvlist; bytes as {"bytesValue": "<base64>"}).
--   * Span events and links live in their own tables (otel_traces_events, otel_traces_links) keyed
--     by (TraceId, SpanId) instead of Nested columns: appending flat Arrow columns is far cheaper.
--   * RunId is resolved at ingest from the resource attribute cicd.pipeline.run.id (or the daemon's
--     --run-id); it is NULL for services that do not carry one (see README, "Runs").
--   * Dropped counts, flags, schema URLs and scope attributes are kept as columns.
-- Ids are lowercase hex, as in OTLP/JSON; an absent parent is ''.

CREATE TABLE otel_traces (
    Timestamp TIMESTAMP_NS NOT NULL,         -- span start
    TraceId VARCHAR NOT NULL,
    SpanId VARCHAR NOT NULL,
    ParentSpanId VARCHAR NOT NULL,
    TraceState VARCHAR NOT NULL,
    TraceFlags UINTEGER NOT NULL,
    SpanName VARCHAR NOT NULL,
    SpanKind VARCHAR NOT NULL,               -- Unspecified | Internal | Server | Client | Producer | Consumer
    ServiceName VARCHAR NOT NULL,
    RunId VARCHAR,
    ResourceAttributes JSON NOT NULL,
    ResourceSchemaUrl VARCHAR NOT NULL,
    ResourceDroppedAttributesCount UINTEGER NOT NULL,
    ScopeName VARCHAR NOT NULL,
    ScopeVersion VARCHAR NOT NULL,
    ScopeAttributes JSON NOT NULL,
    ScopeDroppedAttributesCount UINTEGER NOT NULL,
    ScopeSchemaUrl VARCHAR NOT NULL,
    -- zstd, not DuckDB's choice (DICT_FSST): every checkpoint compresses the spans it writes, ~40%
    -- less CPU this way and a smaller file; a full scan of it costs the same to ~25% more (high-entropy
    -- values). docs/storage.md, "Compression". Files created before keep DuckDB's choice.
    SpanAttributes JSON USING COMPRESSION zstd NOT NULL,
    Duration BIGINT NOT NULL,                -- end - start, nanoseconds (end is Timestamp + Duration)
    StatusCode VARCHAR NOT NULL,             -- Unset | Ok | Error
    StatusMessage VARCHAR NOT NULL,
    DroppedAttributesCount UINTEGER NOT NULL,
    DroppedEventsCount UINTEGER NOT NULL,
    DroppedLinksCount UINTEGER NOT NULL
);

CREATE TABLE otel_traces_events (
    TraceId VARCHAR NOT NULL,
    SpanId VARCHAR NOT NULL,
    RunId VARCHAR,
    Timestamp TIMESTAMP_NS NOT NULL,
    Name VARCHAR NOT NULL,                   -- "exception" events carry exception.type/message/stacktrace
    Attributes JSON NOT NULL,
    DroppedAttributesCount UINTEGER NOT NULL
);

CREATE TABLE otel_traces_links (
    TraceId VARCHAR NOT NULL,                -- the span that holds the link
    SpanId VARCHAR NOT NULL,
    RunId VARCHAR,
    LinkedTraceId VARCHAR NOT NULL,          -- the span it points at (e.g. a messaging producer)
    LinkedSpanId VARCHAR NOT NULL,
    TraceState VARCHAR NOT NULL,
    Flags UINTEGER NOT NULL,
    Attributes JSON NOT NULL,
    DroppedAttributesCount UINTEGER NOT NULL
);

CREATE TABLE otel_logs (
    Timestamp TIMESTAMP_NS,                  -- NULL when the record has no time (use ObservedTimestamp)
    ObservedTimestamp TIMESTAMP_NS,
    TraceId VARCHAR NOT NULL,
    SpanId VARCHAR NOT NULL,
    TraceFlags UINTEGER NOT NULL,
    SeverityText VARCHAR NOT NULL,
    SeverityNumber INTEGER NOT NULL,
    ServiceName VARCHAR NOT NULL,
    RunId VARCHAR,
    Body VARCHAR,                            -- string bodies as is; other value types as JSON text
    BodyType VARCHAR NOT NULL,               -- string | bool | int | double | bytes | array | kvlist | empty
    EventName VARCHAR NOT NULL,
    ResourceAttributes JSON NOT NULL,
    ResourceSchemaUrl VARCHAR NOT NULL,
    ResourceDroppedAttributesCount UINTEGER NOT NULL,
    ScopeName VARCHAR NOT NULL,
    ScopeVersion VARCHAR NOT NULL,
    ScopeAttributes JSON NOT NULL,
    ScopeDroppedAttributesCount UINTEGER NOT NULL,
    ScopeSchemaUrl VARCHAR NOT NULL,
    LogAttributes JSON NOT NULL,
    DroppedAttributesCount UINTEGER NOT NULL
);

-- Metrics: one table per point kind. Columns shared by every kind first.
CREATE TABLE otel_metrics_gauge (
    ServiceName VARCHAR NOT NULL, RunId VARCHAR,
    ResourceAttributes JSON NOT NULL, ResourceSchemaUrl VARCHAR NOT NULL, ResourceDroppedAttributesCount UINTEGER NOT NULL,
    ScopeName VARCHAR NOT NULL, ScopeVersion VARCHAR NOT NULL, ScopeAttributes JSON NOT NULL,
    ScopeDroppedAttributesCount UINTEGER NOT NULL, ScopeSchemaUrl VARCHAR NOT NULL,
    MetricName VARCHAR NOT NULL, MetricDescription VARCHAR NOT NULL, MetricUnit VARCHAR NOT NULL, MetricMetadata JSON NOT NULL,
    Attributes JSON NOT NULL, StartTimeUnix TIMESTAMP_NS, TimeUnix TIMESTAMP_NS NOT NULL, Flags UINTEGER NOT NULL,
    Exemplars JSON NOT NULL,
    Value DOUBLE,                            -- as_double, or as_int converted (for ordering and maths)
    ValueInt BIGINT                          -- as_int exactly, NULL for double points
);

CREATE TABLE otel_metrics_sum (
    ServiceName VARCHAR NOT NULL, RunId VARCHAR,
    ResourceAttributes JSON NOT NULL, ResourceSchemaUrl VARCHAR NOT NULL, ResourceDroppedAttributesCount UINTEGER NOT NULL,
    ScopeName VARCHAR NOT NULL, ScopeVersion VARCHAR NOT NULL, ScopeAttributes JSON NOT NULL,
    ScopeDroppedAttributesCount UINTEGER NOT NULL, ScopeSchemaUrl VARCHAR NOT NULL,
    MetricName VARCHAR NOT NULL, MetricDescription VARCHAR NOT NULL, MetricUnit VARCHAR NOT NULL, MetricMetadata JSON NOT NULL,
    Attributes JSON NOT NULL, StartTimeUnix TIMESTAMP_NS, TimeUnix TIMESTAMP_NS NOT NULL, Flags UINTEGER NOT NULL,
    Exemplars JSON NOT NULL,
    Value DOUBLE, ValueInt BIGINT,
    AggregationTemporality INTEGER NOT NULL, -- 0 unspecified, 1 delta, 2 cumulative
    IsMonotonic BOOLEAN NOT NULL
);

CREATE TABLE otel_metrics_histogram (
    ServiceName VARCHAR NOT NULL, RunId VARCHAR,
    ResourceAttributes JSON NOT NULL, ResourceSchemaUrl VARCHAR NOT NULL, ResourceDroppedAttributesCount UINTEGER NOT NULL,
    ScopeName VARCHAR NOT NULL, ScopeVersion VARCHAR NOT NULL, ScopeAttributes JSON NOT NULL,
    ScopeDroppedAttributesCount UINTEGER NOT NULL, ScopeSchemaUrl VARCHAR NOT NULL,
    MetricName VARCHAR NOT NULL, MetricDescription VARCHAR NOT NULL, MetricUnit VARCHAR NOT NULL, MetricMetadata JSON NOT NULL,
    Attributes JSON NOT NULL, StartTimeUnix TIMESTAMP_NS, TimeUnix TIMESTAMP_NS NOT NULL, Flags UINTEGER NOT NULL,
    Exemplars JSON NOT NULL,
    Count UBIGINT NOT NULL, Sum DOUBLE, BucketCounts UBIGINT[] NOT NULL, ExplicitBounds DOUBLE[] NOT NULL,
    Min DOUBLE, Max DOUBLE,                  -- NULL when the point does not carry them
    AggregationTemporality INTEGER NOT NULL
);

CREATE TABLE otel_metrics_exponential_histogram (
    ServiceName VARCHAR NOT NULL, RunId VARCHAR,
    ResourceAttributes JSON NOT NULL, ResourceSchemaUrl VARCHAR NOT NULL, ResourceDroppedAttributesCount UINTEGER NOT NULL,
    ScopeName VARCHAR NOT NULL, ScopeVersion VARCHAR NOT NULL, ScopeAttributes JSON NOT NULL,
    ScopeDroppedAttributesCount UINTEGER NOT NULL, ScopeSchemaUrl VARCHAR NOT NULL,
    MetricName VARCHAR NOT NULL, MetricDescription VARCHAR NOT NULL, MetricUnit VARCHAR NOT NULL, MetricMetadata JSON NOT NULL,
    Attributes JSON NOT NULL, StartTimeUnix TIMESTAMP_NS, TimeUnix TIMESTAMP_NS NOT NULL, Flags UINTEGER NOT NULL,
    Exemplars JSON NOT NULL,
    Count UBIGINT NOT NULL, Sum DOUBLE, Scale INTEGER NOT NULL, ZeroCount UBIGINT NOT NULL, ZeroThreshold DOUBLE NOT NULL,
    PositiveOffset INTEGER NOT NULL, PositiveBucketCounts UBIGINT[] NOT NULL,
    NegativeOffset INTEGER NOT NULL, NegativeBucketCounts UBIGINT[] NOT NULL,
    Min DOUBLE, Max DOUBLE,
    AggregationTemporality INTEGER NOT NULL
);

CREATE TABLE otel_metrics_summary (
    ServiceName VARCHAR NOT NULL, RunId VARCHAR,
    ResourceAttributes JSON NOT NULL, ResourceSchemaUrl VARCHAR NOT NULL, ResourceDroppedAttributesCount UINTEGER NOT NULL,
    ScopeName VARCHAR NOT NULL, ScopeVersion VARCHAR NOT NULL, ScopeAttributes JSON NOT NULL,
    ScopeDroppedAttributesCount UINTEGER NOT NULL, ScopeSchemaUrl VARCHAR NOT NULL,
    MetricName VARCHAR NOT NULL, MetricDescription VARCHAR NOT NULL, MetricUnit VARCHAR NOT NULL, MetricMetadata JSON NOT NULL,
    Attributes JSON NOT NULL, StartTimeUnix TIMESTAMP_NS, TimeUnix TIMESTAMP_NS NOT NULL, Flags UINTEGER NOT NULL,
    Count UBIGINT NOT NULL, Sum DOUBLE NOT NULL,
    ValueAtQuantiles STRUCT(Quantile DOUBLE, Value DOUBLE)[] NOT NULL
);
