"""The small chaos run (python -m bench.chaos --quick): closed loops over HTTP while the web, worker
and scheduler are SIGKILLed and a private PostgreSQL and Redis are restarted; afterwards nothing is
lost or done twice. It starts its own PostgreSQL cluster and redis-server (never the shared ones)."""

from __future__ import annotations

import glob
import json
import shutil

import pytest

from bench import chaos
from tests.conftest import IN_CI


def _servers_or_skip() -> None:
    missing = [what for what, ok in (("PostgreSQL server binaries", glob.glob("/usr/lib/postgresql/*/bin/initdb")),
                                     ("redis-server", shutil.which("redis-server"))) if not ok]
    if missing:
        if IN_CI:
            raise RuntimeError(f"the chaos run needs {', '.join(missing)} in CI")
        pytest.skip(f"no {', '.join(missing)}")


@pytest.mark.slow
def test_loops_under_kills_and_restarts_lose_nothing_and_do_nothing_twice():
    _servers_or_skip()
    result, ok = chaos.run(chaos.parse_args(["--quick", "--seed", "7"]))
    print(json.dumps(result, ensure_ascii=False))
    counts = {k: v for k, v in result.items() if k.startswith(("lost_", "duplicated_"))}
    assert counts == dict.fromkeys(counts, 0), result
    assert len(counts) == 8
    assert result["loops_finished"] == result["loops_started"] >= 3, result["loop_errors"]
    assert result["recovery_s"] is not None, result
    assert sum(result["faults"].values()) >= 5, result["faults"]  # the faults really happened
    assert result["kills"].get("web", 0) + result["kills"].get("worker", 0) >= 1
    assert result["pg_restarts"] + result["redis_restarts"] >= 1
    assert result["transitions_acknowledged"] >= 5 * result["loops_finished"]
    assert result["notices_per_loop"] > 0 and result["pushes"] >= result["loops_finished"]
    assert ok
