"""The simulator's command line (`gridloop enforcement-sim` hands its arguments here). Every option
has an environment variable; an option given wins."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .simulator import DEFAULT_CALLBACK_URL, EnforcementSimulator, SimConfig, parse_results

DEFAULT_RESULTS = "penalized=5,rectified=3,no_violation=2"


def _parser(env: dict[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridloop enforcement-sim",
        description="Reference enforcement system: takes GridLoop's signed pushes on POST /cases and calls "
                    "GridLoop back with a signed result after a delay.")
    p.add_argument("--host", default=env.get("GRIDLOOP_SIM_HOST", "127.0.0.1"),
                   help="listen address (GRIDLOOP_SIM_HOST; default %(default)s)")
    p.add_argument("--port", type=int, default=int(env.get("GRIDLOOP_SIM_PORT", "8100")),
                   help="listen port, 0 for any (GRIDLOOP_SIM_PORT; default %(default)s)")
    p.add_argument("--secret", default=env.get("GRIDLOOP_ENFORCEMENT_SECRET", ""),
                   help="shared HMAC secret, the same as GridLoop's (GRIDLOOP_ENFORCEMENT_SECRET; required)")
    p.add_argument("--callback-url", default=env.get("GRIDLOOP_SIM_CALLBACK_URL", DEFAULT_CALLBACK_URL),
                   help="GridLoop's callback endpoint (GRIDLOOP_SIM_CALLBACK_URL; default %(default)s)")
    p.add_argument("--delay", type=float, default=float(env.get("GRIDLOOP_SIM_DELAY", "5")),
                   help="seconds from a push to its callback (GRIDLOOP_SIM_DELAY; default %(default)s)")
    p.add_argument("--results", default=env.get("GRIDLOOP_SIM_RESULTS", DEFAULT_RESULTS),
                   help="weights of the results, drawn by a hash of the case id "
                        "(GRIDLOOP_SIM_RESULTS; default %(default)s)")
    p.add_argument("--outage", action=argparse.BooleanOptionalAction,
                   default=env.get("GRIDLOOP_SIM_OUTAGE", "").lower() in ("1", "true", "yes", "on"),
                   help="start in an outage: pushes get 503 until POST /admin/outage {\"on\": false} "
                        "(GRIDLOOP_SIM_OUTAGE)")
    p.add_argument("--callback-attempts", type=int, default=int(env.get("GRIDLOOP_SIM_CALLBACK_ATTEMPTS", "20")),
                   help="attempts per callback while GridLoop is down, 1 s doubling to 60 s apart "
                        "(GRIDLOOP_SIM_CALLBACK_ATTEMPTS; default %(default)s)")
    p.add_argument("--log-level", default=env.get("GRIDLOOP_SIM_LOG_LEVEL", "INFO"))
    return p


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    parser = _parser(dict(os.environ if env is None else env))
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("the shared secret is required: --secret or GRIDLOOP_ENFORCEMENT_SECRET")
    try:
        results = parse_results(args.results)
    except ValueError as exc:
        parser.error(str(exc))
    if args.delay < 0 or args.callback_attempts < 1:
        parser.error("--delay must be >= 0 and --callback-attempts >= 1")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = SimConfig(secret=args.secret, callback_url=args.callback_url, host=args.host, port=args.port,
                       delay_s=args.delay, results=results, outage=args.outage,
                       callback_attempts=args.callback_attempts)
    try:
        sim = EnforcementSimulator(config)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"enforcement simulator: push to {sim.url}  (GRIDLOOP_ENFORCEMENT_URL); calling back "
          f"{config.callback_url}", flush=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    sim.serve(stop)
    return 0
