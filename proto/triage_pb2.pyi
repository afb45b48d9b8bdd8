from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "spans", "logs", "metric_points", "services", "first_seen_unix_nano", "last_seen_unix_nano", "tests", "failed_tests")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    METRIC_POINTS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_TESTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    spans: int
    logs: int
    metric_points: int
    services: _containers.RepeatedScalarFieldContainer[str]
    first_seen_unix_nano: int
    last_seen_unix_nano: int
    tests: int
    failed_tests: int
    def __init__(self, run_id: _Optional[str] = ..., spans: _Optional[int] = ..., logs: _Optional[int] = ..., metric_points: _Optional[int] = ..., services: _Optional[_Iterable[str]] = ..., first_seen_unix_nano: _Optional[int] = ..., last_seen_unix_nano: _Optional[int] = ..., tests: _Optional[int] = ..., failed_tests: _Optional[int] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("name", "unit", "attributes", "value", "count", "sum", "min", "max")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    name: str
    unit: str
    attributes: _containers.ScalarMap[str, str]
    value: float
    count: int
    sum: float
    min: float
    max: float
    def __init__(self, name: _Optional[str] = ..., unit: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ..., count: _Optional[int] = ..., sum: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("metrics", "db_path", "schema_version")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DB_PATH_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    db_path: str
    schema_version: int
    def __init__(self, metrics: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ..., db_path: _Optional[str] = ..., schema_version: _Optional[int] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("run_id", "baseline_run_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BASELINE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    baseline_run_id: str
    def __init__(self, run_id: _Optional[str] = ..., baseline_run_id: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DroppedFile(_message.Message):
    __slots__ = ("path", "sha256", "size_bytes", "format", "status", "run_id", "items", "error", "ingested_at_unix_nano")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    size_bytes: int
    format: str
    status: str
    run_id: str
    items: int
    error: str
    ingested_at_unix_nano: int
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., format: _Optional[str] = ..., status: _Optional[str] = ..., run_id: _Optional[str] = ..., items: _Optional[int] = ..., error: _Optional[str] = ..., ingested_at_unix_nano: _Optional[int] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[DroppedFile]
    def __init__(self, files: _Optional[_Iterable[_Union[DroppedFile, _Mapping]]] = ...) -> None: ...

class RunStatusRequest(_message.Message):
    __slots__ = ("run_id", "wait_seconds")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    wait_seconds: float
    def __init__(self, run_id: _Optional[str] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class RunStatusResponse(_message.Message):
    __slots__ = ("run_id", "known", "complete", "reason", "completed_unix_nano")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    known: bool
    complete: bool
    reason: str
    completed_unix_nano: int
    def __init__(self, run_id: _Optional[str] = ..., known: _Optional[bool] = ..., complete: _Optional[bool] = ..., reason: _Optional[str] = ..., completed_unix_nano: _Optional[int] = ...) -> None: ...

class TestSpansRequest(_message.Message):
    __slots__ = ("trace_id", "span_id", "max_spans")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_SPANS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    max_spans: int
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., max_spans: _Optional[int] = ...) -> None: ...

class TestSpansResponse(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class ListTestsRequest(_message.Message):
    __slots__ = ("flaky_only",)
    FLAKY_ONLY_FIELD_NUMBER: _ClassVar[int]
    flaky_only: bool
    def __init__(self, flaky_only: _Optional[bool] = ...) -> None: ...

class ListTestsResponse(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class PruneRequest(_message.Message):
    __slots__ = ("keep_runs", "older_than_days")
    KEEP_RUNS_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_DAYS_FIELD_NUMBER: _ClassVar[int]
    keep_runs: int
    older_than_days: float
    def __init__(self, keep_runs: _Optional[int] = ..., older_than_days: _Optional[float] = ...) -> None: ...

class PruneResponse(_message.Message):
    __slots__ = ("json", "db_path")
    JSON_FIELD_NUMBER: _ClassVar[int]
    DB_PATH_FIELD_NUMBER: _ClassVar[int]
    json: str
    db_path: str
    def __init__(self, json: _Optional[str] = ..., db_path: _Optional[str] = ...) -> None: ...
