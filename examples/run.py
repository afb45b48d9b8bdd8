"""Run one fault scenario of the example shop end to end and report the test outcome.

    python examples/run.py --list
    python examples/run.py --scenario propagated_error --endpoint 127.0.0.1:4317 --run-id r42 --json

Starts every service in its own process group on free loopback ports, waits until all answer
/health, runs the integration suite with pytest-opentelemetry exporting to --endpoint, then
stops everything: SIGTERM (services drain and flush telemetry), SIGKILL for what is left after
a grace period. When this returns, all telemetry of the run has been handed to the endpoint.

Exit status: 0 when the failed tests are exactly the scenario's expected ones, 1 when they
differ, 2 when the environment could not be brought up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
SUITE = HERE / "suite"
SCENARIOS_FILE = HERE / "scenarios.json"

sys.path.insert(0, str(HERE))
from shop import config  # noqa: E402 - after the path tweak; config imports no OpenTelemetry

HEALTH_TIMEOUT_S = 20.0
SUITE_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 30


class EnvironmentFailed(RuntimeError):
    """The shop could not be brought up."""


def load_scenarios() -> dict[str, Any]:
    return json.loads(SCENARIOS_FILE.read_text())


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all held open together so they differ."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def otlp_url(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"http://{endpoint}"


@dataclass
class Service:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: TextIO | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the whole process group; the group may already be gone."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_processes(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every group, wait up to `grace`, then SIGKILL every group regardless."""
    for process in processes:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        signal_group(process, signal.SIGKILL)  # stragglers, and any child a service left behind
        with suppress(subprocess.TimeoutExpired):
            process.wait(2)


class Shop:
    """The running environment of one scenario; a context manager that always tears down."""

    def __init__(self, scenario: str, endpoint: str, run_id: str, workdir: Path,
                 services_carry_run_id: bool = True) -> None:
        self.scenario = scenario
        self.services_carry_run_id = services_carry_run_id
        self.endpoint = otlp_url(endpoint)
        self.run_id = run_id
        self.workdir = workdir
        ports = free_ports(len(config.SERVICES))
        self.services = {
            name: Service(name, port, workdir / f"{name}.log")
            for name, port in zip(config.SERVICES, ports, strict=True)
        }

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SHOP_"))}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
                "PYTHONUNBUFFERED": "1",
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "TRIAGE_EXAMPLE_FAULT": self.scenario,
                "SHOP_DATA_DIR": str(self.workdir),
            }
        )
        env.update({config.url_env(s.name): s.url for s in self.services.values()})
        return env

    def start(self) -> None:
        env = self._base_env()
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http,database"
        # Usually only the test runner knows the run id; scenarios can start the services without it.
        run_attr = f"cicd.pipeline.run.id={quote(self.run_id)}," if self.services_carry_run_id else ""
        env["OTEL_RESOURCE_ATTRIBUTES"] = f"{run_attr}deployment.environment.name=ci"
        for service in self.services.values():
            service.log_file = service.log_path.open("w")
            service.process = subprocess.Popen(
                [sys.executable, "-m", "shop", service.name],
                env={**env, "SHOP_PORT": str(service.port)},
                cwd=HERE,
                stdin=subprocess.DEVNULL,
                stdout=service.log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so teardown reaches every child
            )

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> None:
        pending = dict(self.services)
        deadline = time.monotonic() + timeout
        while pending:
            for name, service in list(pending.items()):
                assert service.process is not None
                if service.process.poll() is not None:
                    raise EnvironmentFailed(
                        f"{name} exited with {service.process.returncode}:\n{service.tail()}"
                    )
                try:
                    with urllib.request.urlopen(f"{service.url}/health", timeout=0.5) as response:
                        if response.status == 200:
                            del pending[name]
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{s.tail()}" for n, s in pending.items())
                raise EnvironmentFailed(f"not healthy after {timeout:.0f}s: {', '.join(pending)}\n{tails}")
            if pending:
                time.sleep(0.05)

    def run_suite(self, include_stale: bool, out: TextIO) -> tuple[int, dict[str, str]]:
        """Run pytest in its own process group; return its exit code and outcomes by node id."""
        report = self.workdir / "report.json"
        env = self._base_env()
        env.update(
            {
                "OTEL_RESOURCE_ATTRIBUTES": f"cicd.pipeline.run.id={quote(self.run_id)},service.name=integration-tests",
                "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
                "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "SHOP_REPORT_FILE": str(report),
            }
        )
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(SUITE),
            "--export-traces",
            "-p",
            "report_plugin",
            "-q",
            "-rfE",
        ]
        if not include_stale:
            command += ["-m", "not stale_expectation"]
        process = subprocess.Popen(
            command,
            env=env,
            cwd=SUITE,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(SUITE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            out.write(f"run.py: the suite ran over {SUITE_TIMEOUT_S:.0f}s; killed\n")
            code = -signal.SIGKILL
        finally:
            stop_processes([process], grace=STOP_GRACE_S)  # pytest flushes its spans at session end
        outcomes = json.loads(report.read_text()) if report.exists() else {}
        return code, outcomes

    def stop(self) -> dict[str, int | None]:
        """Stop the instrumented services first, then the bank and broker they talk to."""
        waves = [
            [s for s in self.services.values() if s.name not in config.UNINSTRUMENTED],
            [s for s in self.services.values() if s.name in config.UNINSTRUMENTED],
        ]
        for wave in waves:
            stop_processes([s.process for s in wave if s.process is not None], grace=STOP_GRACE_S)
        for service in self.services.values():
            if service.log_file is not None:
                service.log_file.close()
        return {s.name: (s.process.returncode if s.process else None) for s in self.services.values()}


def run(args: argparse.Namespace, scenario: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"triage-example-{args.scenario}-"))
    shop = Shop(args.scenario, args.endpoint, args.run_id, workdir,
                services_carry_run_id=not scenario.get("services_without_run_id"))
    summary: dict[str, Any] = {"scenario": args.scenario, "run_id": args.run_id, "endpoint": shop.endpoint}
    code: int | None = None
    outcomes: dict[str, str] = {}
    error = None
    timings: dict[str, float] = {}
    try:
        shop.start()
        shop.wait_healthy()
        timings["startup_s"] = round(time.monotonic() - started, 2)
        code, outcomes = shop.run_suite(bool(scenario.get("include_stale_tests")), sys.stderr)
        timings["suite_s"] = round(time.monotonic() - started - timings["startup_s"], 2)
    except EnvironmentFailed as exc:
        error = str(exc)
    finally:
        stopping = time.monotonic()
        service_codes = shop.stop()
        timings["teardown_s"] = round(time.monotonic() - stopping, 2)
    expected = sorted(scenario["expected_failed"])
    failed = sorted(n for n, o in outcomes.items() if o == "failed")
    summary.update(
        {
            "failure_class": scenario["failure_class"],
            "root_cause_service": scenario["root_cause_service"],
            "passed": sorted(n for n, o in outcomes.items() if o == "passed"),
            "failed": failed,
            "skipped": sorted(n for n, o in outcomes.items() if o == "skipped"),
            "expected_failed": expected,
            "as_expected": error is None and failed == expected,
            "exit_code": code,
            "error": error,
            "service_exit_codes": service_codes,
            "ports": {s.name: s.port for s in shop.services.values()},
            "workdir": str(workdir) if args.keep else None,
            "duration_s": round(time.monotonic() - started, 2),
            "timings": timings,
        }
    )
    if not args.keep:
        for path in sorted(workdir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        workdir.rmdir()
    return summary


def print_list(scenarios: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(scenarios, indent=2))
        return
    for name, item in scenarios.items():
        print(f"{name:22} root cause: {item['root_cause_service'] or '-':10} {item['description']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", help="scenario name (see --list)")
    parser.add_argument(
        "--endpoint", default="127.0.0.1:4317", help="OTLP/gRPC endpoint, host:port (insecure)"
    )
    parser.add_argument("--run-id", default=None, help="value of cicd.pipeline.run.id (default: random)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (service logs, DB files)"
    )
    args = parser.parse_args(argv)

    scenarios = load_scenarios()["scenarios"]
    if args.list:
        print_list(scenarios, args.json)
        return 0
    if args.scenario not in scenarios:
        parser.error(f"--scenario must be one of: {', '.join(scenarios)}")
    args.run_id = args.run_id or f"example-{args.scenario}-{uuid.uuid4().hex[:8]}"

    # A SIGTERM to run.py must still tear the shop down: turn it into an exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    summary = run(args, scenarios[args.scenario])
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        verdict = "as expected" if summary["as_expected"] else "NOT as expected"
        print(f"{summary['scenario']} (run {summary['run_id']}): {verdict} in {summary['duration_s']}s")
        print(f"  failed:   {summary['failed']}\n  expected: {summary['expected_failed']}")
        if summary["error"]:
            print(f"  error: {summary['error']}")
    if summary["error"]:
        return 2
    return 0 if summary["as_expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
