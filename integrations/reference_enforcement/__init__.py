"""A reference enforcement system (执法系统) for demos and tests: a separate process that takes
GridLoop's signed pushes and calls back, after a delay, with a signed result. Standard library only;
it imports nothing of GridLoop. Run it with `gridloop enforcement-sim` or
`python -m integrations.reference_enforcement`; the protocol is described in simulator.py."""

from .simulator import DEFAULT_CALLBACK_URL, EnforcementSimulator, SimCase, SimConfig, parse_results, result_for

__all__ = ["DEFAULT_CALLBACK_URL", "EnforcementSimulator", "SimCase", "SimConfig", "parse_results", "result_for"]
