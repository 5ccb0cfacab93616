"""Sandbox benchmark: what an evaluation costs in-process and in the isolated child process, and
the CPU and memory high-water marks of each resource attack of issue 15 under each setting.

    python -m bench.sandbox [--evaluations N] [--memory-mb MB]

Prints ONE JSON line on stdout:

* `per_evaluation_us`: microseconds per evaluation of an ordinary condition and an ordinary script,
  plain Python eval/exec (the ceiling: no sandbox at all), in-process sandbox, and subprocess
  (GRIDLOOP_SANDBOX_ISOLATION=subprocess: a round trip to a pre-started child with rlimits);
* `attacks`: for each attack, run in a fresh process per setting so that marks do not mix: the CPU
  seconds and the peak RSS (MB) of the process that evaluated it (for subprocess, the child), and
  the start of the error that stopped it. The deploy attack (19 parallel split/join pairs) is
  `parse_model` of the model. Unbounded, before issue 15: the data bomb grew the process until it
  was killed, json_dumps 6.9 s / 1 GB, pow() 2.4 s, the 19 pairs 66 s / 2.4 GB.

Needs no database. Linux only (reads /proc for the child's marks).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BOMB = "[['a' * 1000000] * 1000] * 1000"
ATTACKS: dict[str, tuple[str, str]] = {  # name → (script or expression, what it is)
    "data_bomb": ("script", f"x = {BOMB}"),
    "json_dumps": ("expression", f"json_dumps({BOMB})"),
    "fstring": ("expression", f'f"{{{BOMB}}}"'),
    "str": ("expression", f"str({BOMB})"),
    "pow_mod": ("expression", "pow(3, 10**3000, 10**3000 + 7)"),
    "equality": ("expression", f"{BOMB} == {BOMB}"),
    "membership": ("expression", f"['a' * 1000000] * 1000 in {BOMB}"),
    "hash": ("expression", "hash(((('a' * 1000,) * 1000,) * 1000,) * 1000)"),
    "deploy_19_pairs": ("deploy", "19"),
}
CONDITION = "amount * 2 > 100 and level in ('a', 'b')"
SCRIPT = "total = 0\nfor x in items:\n    total += x\nlabel = f'{total:>5}'"


def _pairs(n: int) -> str:
    from tests.engine.builders import split_join_pairs

    return split_join_pairs(n)


def _proc_marks(pid: int) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of a live process, from /proc."""
    proc = Path("/proc", str(pid))
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    hwm = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("VmHWM:"))
    return ticks / 100.0, int(hwm.split()[1]) / 1024


def _attack(name: str, mode: str, memory_mb: int) -> dict[str, Any]:
    """Runs in a fresh process: one attack under one setting."""
    from engine.parsing import ModelError, parse_model
    from engine.sandbox import SandboxEnvironment, SandboxLimitError
    from engine.sandbox.isolation import IsolatedEvaluator

    kind, source = ATTACKS[name]
    evaluator = IsolatedEvaluator(memory_mb=memory_mb) if mode == "subprocess" and kind != "deploy" else None
    env = SandboxEnvironment(isolated=evaluator)
    if evaluator:
        env.evaluate("1", {})  # the child is up
    pid = evaluator._all[0].process.pid if evaluator else None
    before = _proc_marks(pid) if pid else _self_marks()
    try:
        if kind == "deploy":
            parse_model(_pairs(int(source)))
        elif kind == "script":
            env.execute(source, {})
        else:
            env.evaluate(source, {})
        stopped = "NOT STOPPED"
    except (SandboxLimitError, ModelError) as exc:
        stopped = str(exc)[:160]
    after = _proc_marks(evaluator._all[0].process.pid) if evaluator and evaluator._all else (
        _self_marks() if not pid else (before[0], before[1]))
    if evaluator:
        evaluator.close()
    return {"cpu_s": round(after[0] - before[0], 3), "peak_rss_mb": round(after[1], 1), "stopped_by": stopped}


def _self_marks() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def _per_evaluation(n: int, memory_mb: int) -> dict[str, dict[str, float]]:
    from engine.sandbox import SandboxEnvironment
    from engine.sandbox.isolation import IsolatedEvaluator

    data = {"amount": 60, "level": "a", "items": list(range(20))}
    plain_cond, plain_script = compile(CONDITION, "<b>", "eval"), compile(SCRIPT, "<b>", "exec")
    evaluator = IsolatedEvaluator(memory_mb=memory_mb)
    envs: dict[str, Any] = {"inprocess": SandboxEnvironment(), "subprocess": SandboxEnvironment(isolated=evaluator)}
    runs: dict[str, dict[str, Any]] = {
        "plain_python": {"condition": lambda: eval(plain_cond, {}, dict(data)),
                         "script": lambda: exec(plain_script, {}, dict(data))},
        **{mode: {"condition": lambda env=env: env.evaluate(CONDITION, dict(data)),
                  "script": lambda env=env: env.execute(SCRIPT, dict(data))} for mode, env in envs.items()},
    }
    out: dict[str, dict[str, float]] = {}
    for mode, kinds in runs.items():
        out[mode] = {}
        for kind, run in kinds.items():
            for _ in range(20):
                run()  # warm caches and the child
            start = time.perf_counter()
            for _ in range(n):
                run()
            out[mode][kind] = round((time.perf_counter() - start) / n * 1e6, 1)
    evaluator.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--memory-mb", type=int, default=512, help="the child's RLIMIT_AS")
    parser.add_argument("--attack", nargs=2, metavar=("NAME", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        print(json.dumps(_attack(args.attack[0], args.attack[1], args.memory_mb)))
        return
    attacks: dict[str, dict[str, Any]] = {}
    for name in ATTACKS:
        for mode in ("inprocess", "subprocess"):
            if ATTACKS[name][0] == "deploy" and mode == "subprocess":
                continue
            done = subprocess.run([sys.executable, "-m", "bench.sandbox", "--attack", name, mode,
                                   "--memory-mb", str(args.memory_mb)], capture_output=True, text=True, timeout=600)
            attacks.setdefault(name, {})[mode] = json.loads(done.stdout) if done.returncode == 0 else {
                "error": done.stderr[-300:]}
    print(json.dumps({"bench": "sandbox", "per_evaluation_us": _per_evaluation(args.evaluations, args.memory_mb),
                      "attacks": attacks, "child_memory_limit_mb": args.memory_mb}, ensure_ascii=False))


if __name__ == "__main__":
    main()
