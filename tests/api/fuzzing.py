"""A bounded property-based fuzz of the served OpenAPI document (Schemathesis): every operation is
called with generated requests, valid ones (positive) and ones the document says are invalid
(negative), and each answer is checked: no server error, a status the document declares, the
declared content type and a body matching the declared schema. Used by tests/api/test_api_fuzz.py;
deterministic (Hypothesis derandomized, no example database)."""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import hypothesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode, checks, openapi
from schemathesis.core.failures import Failure, FailureGroup

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@dataclass
class FuzzReport:
    requests: int = 0
    operations: int = 0
    statuses: Counter = field(default_factory=Counter)  # "2xx", "4xx", "5xx"
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (operation, check, status) → sample
    seconds: dict[str, float] = field(default_factory=dict)  # by operation

    def classes(self) -> Counter:
        """Failures by the check that failed."""
        return Counter(check for _op, check, _status in self.failures)

    def figures(self) -> dict[str, object]:
        slowest = sorted(self.seconds.items(), key=lambda kv: -kv[1])[:5]
        return {"operations": self.operations, "requests": self.requests,
                "statuses": dict(sorted(self.statuses.items())), "failure_classes": len(self.failures),
                "by_check": dict(self.classes()), "seconds": round(sum(self.seconds.values()), 1),
                "slowest": {k: round(v, 1) for k, v in slowest}}


def _label(failure: Failure) -> str:
    return re.sub(r"\s+", " ", failure.title)


def fuzz(app, *, headers: Callable[[], dict[str, str]], max_examples: int,
         skip: Callable[[str, str, dict], bool] = lambda method, path, params: False,
         exclude: Callable[[str, str], bool] = lambda method, path: False,
         modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)) -> FuzzReport:
    """Fuzz every operation of `app`'s document (but those `exclude(method, path)` names) with up to
    `max_examples` requests per operation and mode, sent with `headers()`; a generated case for which
    `skip(method, path, path_parameters)` is true is not sent (e.g. one that would end the fuzzer's
    own session)."""
    schema = openapi.from_wsgi("/api/v1/openapi.json", app)
    report = FuzzReport()
    settings = hypothesis.settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                                   phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                                   print_blob=False)
    for result in schema.get_all_operations():
        operation = result.ok()
        if exclude(operation.method.upper(), operation.path):
            continue
        report.operations += 1
        started = time.perf_counter()
        for mode in modes:
            _fuzz_operation(operation, mode, settings, headers, skip, report)
        report.seconds[f"{operation.method.upper()} {operation.path}"] = time.perf_counter() - started
    return report


def _fuzz_operation(operation, mode, settings, headers, skip, report: FuzzReport) -> None:
    name = f"{operation.method.upper()} {operation.path}"

    @settings
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        if skip(operation.method.upper(), operation.path, case.path_parameters or {}):
            hypothesis.reject()
        sent = headers()
        response = case.call(headers=sent)
        report.requests += 1
        report.statuses[f"{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=sent)
        except FailureGroup as group:
            for failure in group.exceptions:
                _record(report, name, _label(failure), response, case)
        except Failure as failure:
            _record(report, name, _label(failure), response, case)

    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()


def _record(report: FuzzReport, name: str, check: str, response, case) -> None:
    key = (name, check, str(response.status_code))
    if key not in report.failures:
        report.failures[key] = f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}"
