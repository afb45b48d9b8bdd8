"""Ingest throughput of `triage serve` against a parse-and-drop gRPC ceiling, on the same load.

    python bench/ingest.py [--spans 400000] [--clients 2] [--streams 4] [--batch 512] [--decode-workers N]
                           [--protocol grpc|http|http-chunked] [--sdk] [--no-ceiling] [--serve-arg=--flag=value ...]

Client processes send pre-serialized, realistic OTLP trace requests (unique ids, ~10 attributes a
span, 20% with an event, 4% with an exception event, 5 services; built by hand, or with --sdk by the
OpenTelemetry SDK's own spans and OTLP encoder) over several concurrent gRPC calls
each (or OTLP/HTTP protobuf POSTs on keep-alive connections with --protocol http). Prints accepted
spans/s with ack-after-commit, the CPU per span and peak RSS of every process (the daemon, each of
its workers, each client), the load average (on a shared machine, CPU per span is the steady figure:
wall-clock throughput depends on what else runs), then the same load against a bare grpcio receiver
that parses each request and drops it. Verifies that every acknowledged span is in the file.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import duckdb
import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.daemon import DaemonProcess

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SERVICES = ["gateway", "orders", "inventory", "payments", "notifier"]


def make_requests(client: int, n_requests: int, batch: int, attributes: int = 10, fat: int = 0) -> list[bytes]:
    rnd = random.Random(client)
    out = []
    span_no = 0
    for r in range(n_requests):
        req = ExportTraceServiceRequest()
        per_service = batch // len(SERVICES)
        for s, service in enumerate(SERVICES):
            rs = req.resource_spans.add()
            for key, value in (("service.name", service), ("cicd.pipeline.run.id", "bench"),
                               ("service.version", "1.4.2"), ("host.name", f"host-{s}")):
                rs.resource.attributes.add(key=key).value.string_value = value
            ss = rs.scope_spans.add()
            ss.scope.name = "opentelemetry.instrumentation.flask"
            ss.scope.version = "0.55b0"
            for _ in range(per_service if s < len(SERVICES) - 1 else batch - per_service * (len(SERVICES) - 1)):
                span_no += 1
                trace = (1 << 120 | client << 40 | r << 8 | (span_no % 7)).to_bytes(16, "big")
                span = ss.spans.add(trace_id=trace, span_id=(client << 48 | span_no).to_bytes(8, "big"),
                                    parent_span_id=(client << 48 | span_no + 1).to_bytes(8, "big"),
                                    name=f"GET /api/v1/{service}/items/{{id}}", kind=2,
                                    start_time_unix_nano=1_700_000_000_000_000_000 + span_no * 1000,
                                    end_time_unix_nano=1_700_000_000_000_000_000 + span_no * 1000 + 5_000_000)
                for key, kind, value in (
                        ("http.request.method", "string_value", "GET"),
                        ("http.route", "string_value", f"/api/v1/{service}/items/{{id}}"),
                        ("url.path", "string_value", f"/api/v1/{service}/items/{rnd.randrange(10**6)}"),
                        ("http.response.status_code", "int_value", 200),
                        ("server.address", "string_value", f"{service}.svc.cluster.local"),
                        ("server.port", "int_value", 8080),
                        ("network.protocol.version", "string_value", "1.1"),
                        ("user_agent.original", "string_value", "python-requests/2.32"),
                        ("client.address", "string_value", "10.0.0.12"),
                        ("app.cache_hit", "bool_value", rnd.random() < 0.5))[:attributes]:
                    setattr(span.attributes.add(key=key).value, kind, value)
                if fat:  # an incompressible payload (a request body, a query): the memory bound's test
                    span.attributes.add(key="app.payload").value.string_value = rnd.randbytes(fat // 2).hex()
                span.status.code = 1
                roll = rnd.random()
                if roll < 0.2:
                    ev = span.events.add(name="cache.lookup", time_unix_nano=span.start_time_unix_nano + 10)
                    ev.attributes.add(key="cache.key").value.string_value = f"item:{rnd.randrange(1000)}"
                if roll < 0.04:
                    ev = span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano + 20)
                    ev.attributes.add(key="exception.type").value.string_value = "TimeoutError"
                    ev.attributes.add(key="exception.message").value.string_value = "upstream timed out"
                    ev.attributes.add(key="exception.stacktrace").value.string_value = "Traceback...\n" * 8
                    span.status.code = 2
        out.append(req.SerializeToString())
    return out


def make_sdk_requests(client: int, n_requests: int, batch: int) -> list[bytes]:
    """The same load built another way: spans made by the OpenTelemetry SDK (ReadableSpan, its
    Resource and InstrumentationScope) and encoded by the SDK's own OTLP encoder, as an exporter
    would send them; ~10 attributes a span, 20% with an event, 4% with an exception event."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

    rnd = random.Random(1000 + client)
    scope = InstrumentationScope("opentelemetry.instrumentation.flask", "0.55b0")
    resources = [Resource({"service.name": service, "cicd.pipeline.run.id": "bench", "service.version": "1.4.2",
                           "host.name": f"host-{s}"}) for s, service in enumerate(SERVICES)]
    out, span_no = [], 0
    for r in range(n_requests):
        spans = []
        for i in range(batch):
            span_no += 1
            s = i % len(SERVICES)
            service, start = SERVICES[s], 1_700_000_000_000_000_000 + span_no * 1000
            trace = 2 << 120 | client << 40 | r << 8 | (span_no % 7)
            error = rnd.random() < 0.04
            events = [Event("cache.lookup", {"cache.key": f"item:{rnd.randrange(1000)}"}, start + 10)] \
                if rnd.random() < 0.2 else []
            if error:
                events.append(Event("exception", {"exception.type": "TimeoutError",
                                                  "exception.message": "upstream timed out",
                                                  "exception.stacktrace": "Traceback...\n" * 8}, start + 20))
            spans.append(ReadableSpan(
                name=f"GET /api/v1/{service}/items/{{id}}", kind=SpanKind.SERVER,
                context=SpanContext(trace, client << 48 | span_no, is_remote=False),
                parent=SpanContext(trace, client << 48 | span_no + 1, is_remote=True),
                resource=resources[s], instrumentation_scope=scope, start_time=start, end_time=start + 5_000_000,
                status=Status(StatusCode.ERROR if error else StatusCode.OK), events=events,
                attributes={"http.request.method": "GET", "http.route": f"/api/v1/{service}/items/{{id}}",
                            "url.path": f"/api/v1/{service}/items/{rnd.randrange(10**6)}",
                            "http.response.status_code": 200, "server.address": f"{service}.svc.cluster.local",
                            "server.port": 8080, "network.protocol.version": "1.1",
                            "user_agent.original": "python-requests/2.32", "client.address": "10.0.0.12",
                            "app.cache_hit": rnd.random() < 0.5}))
        out.append(encode_spans(spans).SerializeToString())
    return out


def http_stream(address: str, chunk: list[bytes], chunked: bool = False) -> int:
    """POST each payload to /v1/traces on one keep-alive connection; retry 503s as exporters do.
    ``chunked``: send it with Transfer-Encoding: chunked in 16 KiB chunks, as the JavaScript SDK does."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    failures = 0
    for p in chunk:
        for _attempt in range(50):
            if chunked:
                conn.request("POST", "/v1/traces", body=(p[i:i + 16384] for i in range(0, len(p), 16384)),
                             headers={"Content-Type": "application/x-protobuf"}, encode_chunked=True)
            else:
                conn.request("POST", "/v1/traces", body=p, headers={"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                break
            if resp.status != 503:
                raise RuntimeError(f"HTTP {resp.status}")
            failures += 1
            time.sleep(0.05)
    conn.close()
    return failures


def client_main(client: int, address: str, n_requests: int, batch: int, streams: int, ready, go, result,
                protocol: str = "grpc", sdk: bool = False, attributes: int = 10, fat: int = 0) -> None:
    payloads = (make_sdk_requests(client, n_requests, batch) if sdk
                else make_requests(client, n_requests, batch, attributes, fat))
    ready.put(sum(len(p) for p in payloads))
    go.wait()
    cpu0 = time.process_time()
    channel = grpc.insecure_channel(address)
    call = channel.unary_unary(METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    failures = 0

    def stream(chunk: list[bytes]) -> None:
        nonlocal failures
        if protocol.startswith("http"):
            failures += http_stream(address, chunk, chunked=protocol == "http-chunked")
            return
        for p in chunk:
            for _attempt in range(50):
                try:
                    call(p, timeout=120)
                    break
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    failures += 1
                    time.sleep(0.05)

    threads = [threading.Thread(target=stream, args=(payloads[i::streams],)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.put((time.perf_counter(), failures, time.process_time() - cpu0))
    channel.close()


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().split(") ")[1].split()[1]) == pid:
                    pids += process_tree(int(p.name))
            except (OSError, IndexError):
                pass
    return pids


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss(pid: int) -> tuple[float, float]:
    """(peak, current) resident set of one process, MB (VmHWM, VmRSS)."""
    out = {"VmHWM:": 0, "VmRSS:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0] + ":"
            if key in out:
                out[key] = int(line.split()[1])
    except OSError:
        pass
    return out["VmHWM:"] / 1024, out["VmRSS:"] / 1024


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process, by thread id."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            fields = (task / "stat").read_text().split(") ")[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Thread id → name: Python's names from `py-spy dump` when py-spy is installed, else the OS's
    (CPython 3.11 leaves every thread's OS name "python"); digits dropped, so the pool's threads add up."""
    names: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names[int(task.name)] = (task / "comm").read_text().strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        dump = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True,
                              timeout=30).stdout
        for tid, name in re.findall(r'^Thread (\d+) \(\w+\): "([^"]+)"', dump, re.M):
            names[int(tid)] = name
    return {tid: name.rstrip("0123456789") for tid, name in names.items()}


def peak_rss_mb(pids: list[int]) -> float:
    return sum(process_rss(pid)[0] for pid in pids)


def process_name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(c.decode(errors="replace") for c in cmd if c)
    return "worker" if "multiprocessing" in text else ("daemon" if "serve" in text else "process")


class RssSampler:
    """Sums the processes' current RSS every 50 ms: the peak of the sum, which VmHWM (a peak per
    process, reached at different moments) can only bound from above."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak, self._stop = pids, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, sum(process_rss(pid)[1] for pid in self.pids))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def drive(address: str, pids: list[int], args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    ready, result, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    per_client = args.spans // args.batch // args.clients
    protocol = getattr(args, "protocol_now", "grpc")
    procs = [ctx.Process(target=client_main, args=(c, address, per_client, args.batch, args.streams,
                                                    ready, go, result, protocol, args.sdk, args.attributes,
                                                    args.fat_bytes))
             for c in range(args.clients)]
    for p in procs:
        p.start()
    wire = sum(ready.get() for _ in procs)
    main_pid = pids[0]
    pids = pids + [p for p in process_tree(main_pid) if p not in pids]  # workers started since
    cpu0 = {pid: process_cpu(pid) for pid in pids}
    threads0 = thread_cpu(main_pid)
    load0 = os.getloadavg()[0]
    sampler = RssSampler(pids)
    start = time.perf_counter()
    go.set()
    ends = [result.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(e for e, _, _ in ends) - start
    spans = per_client * args.clients * args.batch
    names = thread_names(main_pid)
    threads: dict[str, float] = {}
    for tid, cpu in thread_cpu(main_pid).items():
        name = names.get(tid, "?")
        threads[name] = threads.get(name, 0.0) + cpu - threads0.get(tid, 0.0)
    per_process = [(pid, process_name(pid), process_cpu(pid) - cpu0.get(pid, 0.0), *process_rss(pid))
                   for pid in pids]
    return {"spans": spans, "seconds": elapsed, "spans_per_s": spans / elapsed,
            "cpu_s": sum(cpu for _, _, cpu, _, _ in per_process), "peak_rss_mb": peak_rss_mb(pids),
            "peak_sum_rss_mb": sampler.stop(), "wire_mb": wire / 2**20,
            "retries": sum(f for _, f, _ in ends), "per_process": per_process, "threads": threads,
            "client_cpu_s": [c for _, _, c in ends], "load": (load0, os.getloadavg()[0])}


def report(r: dict) -> None:
    """Every process's CPU per span and peak RSS, and the clients' CPU (they share the cores)."""
    for pid, name, cpu, hwm, rss in r["per_process"]:
        print(f"    {name:<7} pid {pid}: CPU {cpu:.1f}s = {cpu / r['spans'] * 1e6:.1f} us/span; "
              f"peak RSS {hwm:.0f} MB (now {rss:.0f} MB)")
    busy = sorted(((cpu, name) for name, cpu in r["threads"].items() if cpu >= 0.05), reverse=True)
    print("    threads of the daemon process: " + ", ".join(
        f"{name} {cpu / r['spans'] * 1e6:.1f}" for cpu, name in busy) + " us/span")
    for i, cpu in enumerate(r["client_cpu_s"]):
        print(f"    client  {i}: CPU {cpu:.1f}s = {cpu / r['spans'] * 1e6:.1f} us/span")
    print(f"  load average (1 min) {r['load'][0]:.1f} at the start, {r['load'][1]:.1f} at the end; "
          f"{os.cpu_count()} cores")


def ceiling_main(port_q) -> None:
    def export(data: bytes, context) -> bytes:
        ExportTraceServiceRequest.FromString(data)
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(32), options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export, lambda b: b, lambda b: b)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_q.put(port)
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=400_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--attributes", type=int, default=10, choices=range(11), metavar="0-10",
                        help="attributes a span (by hand-built requests; fewer make lighter spans)")
    parser.add_argument("--fat-bytes", type=int, default=0, metavar="N",
                        help="one more attribute of N random characters a span (fat spans: the memory bound)")
    parser.add_argument("--decode-workers", type=int, default=None,
                        help="passed to `triage serve` (default: the daemon's own default)")
    parser.add_argument("--protocol", choices=["grpc", "http", "http-chunked"], default="grpc",
                        help="OTLP/gRPC (--listen) or OTLP/HTTP protobuf POSTs (--listen-http), with a "
                             "Content-Length or chunked")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare grpcio comparison")
    parser.add_argument("--sdk", action="store_true",
                        help="requests built and encoded by the OpenTelemetry SDK instead of by hand")
    parser.add_argument("--profile", metavar="FILE",
                        help="record the daemon with py-spy (collapsed stacks, native frames) into FILE")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="an extra `triage serve` option, e.g. --serve-arg=--max-pending-bytes=1000000")
    args = parser.parse_args()
    print(f"load: {args.spans} spans of {args.attributes} attributes in requests of {args.batch}, {args.clients} client processes x "
          f"{args.streams} concurrent calls, {os.cpu_count()} cores" + (", built by the SDK" if args.sdk else ""))

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        serve_args = [] if args.decode_workers is None else ["--decode-workers", str(args.decode_workers)]
        daemon = DaemonProcess(db, serve_args + args.serve_arg).start()
        time.sleep(1.0)
        pids = process_tree(daemon.pid)
        spy = None
        if args.profile:
            spy = subprocess.Popen(["py-spy", "record", "--native", "--threads", "--format", "raw", "--rate", os.environ.get("SPY_RATE", "200"),
                                    "-o", args.profile, "--pid", str(daemon.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        args.protocol_now = args.protocol
        r = drive(daemon.http_address if args.protocol.startswith("http") else daemon.address, pids, args)
        args.protocol_now = "grpc"
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(60)
        daemon.terminate()
        stored = duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM otel_traces").fetchone()[0]
        size_mb = db.stat().st_size / 2**20
    workers = "default" if args.decode_workers is None else args.decode_workers
    print(f"triage serve over OTLP/{args.protocol} (ack after commit, decode workers {workers}): "
          f"{r['spans_per_s']:,.0f} spans/s  ({r['spans']:,} spans in {r['seconds']:.2f}s; "
          f"{r['wire_mb']:.0f} MB on the wire)")
    print(f"  daemon CPU {r['cpu_s']:.1f}s = {r['cpu_s'] / r['seconds']:.2f} cores, "
          f"{r['cpu_s'] / r['spans'] * 1e6:.1f} us/span; peak RSS {r['peak_rss_mb']:.0f} MB "
          f"(sum of each daemon process's peak; peak of the sum {r['peak_sum_rss_mb']:.0f} MB); "
          f"retries (UNAVAILABLE / 503) {r['retries']}")
    report(r)
    print(f"  stored {stored:,} of {r['spans']:,} acknowledged spans; file {size_mb:.0f} MB")
    if stored != r["spans"]:
        raise SystemExit("LOST DATA: stored count differs from acknowledged")
    if args.no_ceiling:
        return

    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    ceiling = ctx.Process(target=ceiling_main, args=(port_q,))
    ceiling.start()
    port = port_q.get()
    c = drive(f"127.0.0.1:{port}", [ceiling.pid], args)
    ceiling.terminate()
    print(f"ceiling, bare grpcio parse-and-drop: {c['spans_per_s']:,.0f} spans/s; "
          f"CPU {c['cpu_s'] / c['seconds']:.2f} cores, {c['cpu_s'] / c['spans'] * 1e6:.1f} us/span, "
          f"peak RSS {c['peak_rss_mb']:.0f} MB")
    print(f"triage reaches {r['spans_per_s'] / c['spans_per_s']:.0%} of the ceiling")


if __name__ == "__main__":
    main()
