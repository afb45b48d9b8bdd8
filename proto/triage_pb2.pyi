from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class ListRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Run(_message.Message):
    __slots__ = ("failed_tests", "first_seen_unix_nano", "last_seen_unix_nano", "logs", "metric_points", "run_id", "services", "spans", "tests")
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
    def __init__(self, run_id: str | None = ..., spans: int | None = ..., logs: int | None = ..., metric_points: int | None = ..., services: _Iterable[str] | None = ..., first_seen_unix_nano: int | None = ..., last_seen_unix_nano: int | None = ..., tests: int | None = ..., failed_tests: int | None = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Iterable[Run | _Mapping] | None = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("attributes", "count", "max", "min", "name", "sum", "unit", "value")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: str | None = ..., value: str | None = ...) -> None: ...
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
    def __init__(self, name: str | None = ..., unit: str | None = ..., attributes: _Mapping[str, str] | None = ..., value: float | None = ..., count: int | None = ..., sum: float | None = ..., min: float | None = ..., max: float | None = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("db_path", "metrics", "schema_version")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DB_PATH_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    db_path: str
    schema_version: int
    def __init__(self, metrics: _Iterable[MetricPoint | _Mapping] | None = ..., db_path: str | None = ..., schema_version: int | None = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("baseline_run_id", "run_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BASELINE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    baseline_run_id: str
    def __init__(self, run_id: str | None = ..., baseline_run_id: str | None = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: str | None = ...) -> None: ...
