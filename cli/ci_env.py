"""What a CI job tells us through its environment: the run id, the pipeline, the commit.

The run id keys everything in triage (``cicd.pipeline.run.id``), so it must be the same for the test
runner and every service, and differ between reruns: a retried job is a new run, which is how the
flaky verdict sees a test pass and fail on the same code. Names follow the OpenTelemetry CI/CD
(``cicd.pipeline.*``) and VCS (``vcs.ref.head.revision``) semantic conventions.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Mapping
from urllib.parse import quote, unquote

TOKEN_ENV = "TRIAGE_AUTH_TOKEN"  # as collector/auth.py: the daemon's token, which the exporters must send

# (variable holding the run id, variable holding the attempt or "", pipeline name, run URL, commit)
PROVIDERS: tuple[tuple[str, str, str, str, str], ...] = (
    ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_WORKFLOW", "", "GITHUB_SHA"),
    ("CI_PIPELINE_ID", "", "CI_PROJECT_PATH", "CI_PIPELINE_URL", "CI_COMMIT_SHA"),  # GitLab
    ("BUILDKITE_BUILD_ID", "BUILDKITE_RETRY_COUNT", "BUILDKITE_PIPELINE_SLUG", "BUILDKITE_BUILD_URL",
     "BUILDKITE_COMMIT"),
    ("CIRCLE_WORKFLOW_ID", "", "CIRCLE_PROJECT_REPONAME", "CIRCLE_BUILD_URL", "CIRCLE_SHA1"),
    ("BUILD_TAG", "", "JOB_NAME", "BUILD_URL", "GIT_COMMIT"),  # Jenkins: jenkins-JOB-NUMBER
)


def _provider(env: Mapping[str, str]) -> tuple[str, str, str, str, str] | None:
    return next((p for p in PROVIDERS if env.get(p[0])), None)


def run_id(env: Mapping[str, str]) -> str:
    """``TRIAGE_RUN_ID``, else the CI's run id (with the attempt when retried), else a fresh one."""
    if env.get("TRIAGE_RUN_ID"):
        return env["TRIAGE_RUN_ID"]
    explicit = _attribute(env.get("OTEL_RESOURCE_ATTRIBUTES", ""), "cicd.pipeline.run.id")
    if explicit:
        return explicit
    found = _provider(env)
    if found is None:
        return f"local-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run, attempt = env[found[0]], env.get(found[1], "") if found[1] else ""
    # GitHub counts attempts from 1, Buildkite retries from 0: only a real retry gets a suffix.
    first = "1" if found[1] == "GITHUB_RUN_ATTEMPT" else "0"
    return f"{run}-{attempt}" if attempt and attempt != first else run


def _attribute(resource: str, key: str) -> str:
    """One key of an ``OTEL_RESOURCE_ATTRIBUTES`` value (``k=v,k=v``, values percent-encoded)."""
    found = ""
    for pair in resource.split(","):
        name, _, value = pair.partition("=")
        if name.strip() == key:
            found = unquote(value.strip())
    return found


def _revision(env: Mapping[str, str]) -> str:
    found = _provider(env)
    if found and env.get(found[4]):
        return env[found[4]]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def resource_attributes(run: str, env: Mapping[str, str]) -> dict[str, str]:
    """Resource attributes of the test runner: the run, the pipeline and the commit under test."""
    attrs = {"cicd.pipeline.run.id": run}
    found = _provider(env)
    if found:
        if env.get(found[2]):
            attrs["cicd.pipeline.name"] = env[found[2]]
        url = env.get(found[3], "") if found[3] else ""
        if found[0] == "GITHUB_RUN_ID" and env.get("GITHUB_REPOSITORY"):
            server = env.get("GITHUB_SERVER_URL", "https://github.com")
            url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
        if url:
            attrs["cicd.pipeline.run.url.full"] = url
    revision = _revision(env)
    if revision:
        attrs["vcs.ref.head.revision"] = revision
    return attrs


def otel_settings(address: str, run: str, env: Mapping[str, str], tls_ca: str | None = None) -> dict[str, str]:
    """The ``OTEL_*`` variables that send a process's telemetry to the daemon under this run id.

    Existing ``OTEL_RESOURCE_ATTRIBUTES`` are kept; the run id is added unless they name one (then
    ``run_id`` chose it). Traces, logs and metrics all go to the one gRPC port: in plain text (the
    daemon listens on loopback or a private CI network), or over TLS trusting ``tls_ca`` (a daemon
    started with --tls-cert: the SDKs read the CA from OTEL_EXPORTER_OTLP_CERTIFICATE).
    """
    ours = f"cicd.pipeline.run.id={quote(run, safe='')}"
    existing = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if _attribute(existing, "cicd.pipeline.run.id"):
        ours = ""
    out = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"{'https' if tls_ca else 'http'}://{address}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "false" if tls_ca else "true",
        "OTEL_RESOURCE_ATTRIBUTES": ",".join(filter(None, [ours, existing])),
        # The SDK's default 2048-span queue drops spans under a burst (NOTES.md); a short delay lets
        # the run settle soon after the last test.
        "OTEL_BSP_MAX_QUEUE_SIZE": env.get("OTEL_BSP_MAX_QUEUE_SIZE", "65536"),
        "OTEL_BSP_SCHEDULE_DELAY": env.get("OTEL_BSP_SCHEDULE_DELAY", "500"),
    }
    if tls_ca:
        out["OTEL_EXPORTER_OTLP_CERTIFICATE"] = os.path.abspath(tls_ca)
    token = env.get(TOKEN_ENV, "").strip()
    if token:  # a daemon with a token (docs/receiver.md) wants it on every export, as the SDKs send headers
        ours = f"authorization=Bearer%20{quote(token, safe='')}"
        headers = env.get("OTEL_EXPORTER_OTLP_HEADERS", "")
        out["OTEL_EXPORTER_OTLP_HEADERS"] = headers if ours in headers else ",".join(filter(None, [ours, headers]))
    return out


def shown(settings: dict[str, str], keys: tuple[str, ...]) -> str:
    """The settings as ``K=V`` words for a log line, the bearer token masked."""
    words = []
    for k in keys:
        if k in settings:
            v = settings[k]
            if k == "OTEL_EXPORTER_OTLP_HEADERS":
                v = ",".join(h.split("=", 1)[0] + ("=Bearer%20$" + TOKEN_ENV if h.lower().startswith("authorization=")
                                                    else "=" + h.split("=", 1)[-1]) for h in v.split(","))
            words.append(f"{k}={v}")
    return " ".join(words)
