"""What the closed-loop code relies on in the bundled models, declared in one place and checked by
the engine at every deploy of a new version (engine/contracts.py): an administrator may redraw a
model, but a version that renames `handle`, drops the `defer` option of handle_result or removes the
review_overdue timer would make assessment, 缓办 or the home page count the wrong things silently —
it is refused, naming the element or field and who relies on it.

When code here starts relying on another element, field, operation or message, declare it below."""

from __future__ import annotations

from engine.contracts import ModelContract, ModelContracts, NeedsElement, NeedsField, NeedsMessage, NeedsOperation

from .cases import CASE_PROCESS
from .warning_models import MESSAGE as WARNING_ACK
from .warning_models import PROCESS as WARNING_PROCESS

ASSESSMENT = "workflows/case_closing.py counts it for assessment"
HOME = "api/views/home.py lists the open tasks of this stage"
REMINDERS = "workflows/case_closing.py counts the reminders it fires (from the audit trail) for assessment"
ESCALATIONS = "workflows/case_closing.py counts the escalations it fires (from the audit trail) for assessment"
DEFERRAL = "workflows/deferrals.py (缓办 from the case) completes the handling task with it"
INTAKE = "workflows/cases.py starts every case with it"


def _user(id_: str, *why: str) -> NeedsElement:
    return NeedsElement(id_, "user task", "; ".join(why))


def _timer(id_: str, why: str) -> NeedsElement:
    return NeedsElement(id_, "timer event", why)


ENV_CASE = ModelContract(
    key=CASE_PROCESS,
    elements=(
        _user("review", ASSESSMENT, HOME, "workflows/reports.py takes its decision as a petition's acceptance"),
        _user("dispatch", ASSESSMENT, HOME),
        _user("sign_for", ASSESSMENT, HOME),
        _user("handle", ASSESSMENT, "workflows/evidence.py requires photos on it", DEFERRAL),
        _user("verify", ASSESSMENT, HOME),
        _user("approve_deferral", "workflows/deferrals.py reads who approved a 缓办 from it"),
        _user("deferred", "api/views/home.py lists deferred cases by it"),
        _timer("review_reminder", REMINDERS),
        _timer("dispatch_reminder", REMINDERS),
        _timer("sign_reminder", REMINDERS),
        _timer("review_overdue", ESCALATIONS),
        _timer("dispatch_overdue", ESCALATIONS),
        _timer("enforcement_overdue", "workflows/case_closing.py counts the urges it fires for assessment"),
        NeedsElement("wait_enforcement", "receive task", "the enforcement callback answers this wait"),
    ),
    fields=(
        NeedsField("review", "review_result", "enum", "workflows/case_closing.py reads the case's outcome from it",
                   options=("valid", "invalid", "merge")),
        NeedsField("handle", "handle_result", "enum", f"{DEFERRAL}; the demo city's cases complete it 'done'",
                   options=("done", "defer")),
        NeedsField("handle", "defer_reason", "text", DEFERRAL),
        NeedsField("handle", "defer_until", "date-time", DEFERRAL),
        NeedsField("handle", "finding_kind", "enum", "workflows/case_closing.py records a violation for assessment",
                   options=("violation", "rectified")),
        NeedsField("verify", "verified", "boolean", "the demo city's cases complete verification with it"),
        *(NeedsField(None, name, kind, INTAKE) for name, kind in (
            ("case_id", "reference"), ("category", "string"), ("grid", "reference"), ("escalation_scope", "reference"),
            ("inspector", "reference"), ("urgent", "boolean"), ("reminder_ratio", "number"))),
        *(NeedsField(None, f"{stage}_{part}", kind, "workflows/time_rules.py fills it from the category's limits")
          for stage in ("review", "dispatch", "sign_for", "handle", "verify", "feedback")
          for part, kind in (("hours", "number"), ("clock", "enum"))),
        *(NeedsField(None, counter, "integer", f"{INTAKE} at 0; workflows/case_closing.py counts it for assessment")
          for counter in ("transfers", "escalations", "extensions", "returns", "reworks")),
    ),
    operations=(
        NeedsOperation("sla.deadline", "every stage's deadline (workflows/time_rules.py, working time)"),
        NeedsOperation("case.transfer", "a transfer moves the case row to the other grid (workflows/operations.py)"),
        NeedsOperation("case.defer", "缓办 stops the handling clock on the case (workflows/deferrals.py)"),
        NeedsOperation("case.resume", "缓办 ends and the handling clock restarts (workflows/deferrals.py)"),
        NeedsOperation("notify.send", "dispatch, reminders, escalations and the reporter's reply are notices"),
        NeedsOperation("enforcement.push", "a violation goes to the enforcement system (integrations/enforcement)"),
    ),
    messages=(NeedsMessage("enforcement_feedback", "the enforcement system's callback is delivered as it"),),
)

GRADED_WARNING = ModelContract(
    key=WARNING_PROCESS,
    operations=(
        NeedsOperation("notify.send", "the warning reaches its recipients as notices"),
        NeedsOperation("warning.deadline", "each attempt's acknowledgement deadline (workflows/warnings.py)"),
        NeedsOperation("warning.track", "renotify and escalation go on the warning's timeline (workflows/warnings.py)"),
    ),
    messages=(NeedsMessage(WARNING_ACK, "workflows/warnings.py acknowledges a group with it"),),
)

PATROL_ROUND = ModelContract(
    key="patrol_round",
    operations=(NeedsOperation("patrol.open_round", "each run opens the visits now due (workflows/patrol_rounds.py)"),),
)

PATROL_VISIT = ModelContract(
    key="patrol_visit",
    elements=(_user("visit", "api/views/tasks.py checks a visit's check-in against its target (not the grid)",
                    "workflows/patrol_rounds.py links findings to it"),),
    fields=(
        NeedsField("visit", "finding", "enum", "workflows/patrol_rounds.py asks for a patrol case on a problem",
                   options=("problem",)),
    ),
    operations=(
        NeedsOperation("patrol.visited", "a finished visit is recorded for coverage (workflows/patrol_rounds.py)"),
        NeedsOperation("patrol.missed", "a visit past its slot is recorded as missed (workflows/patrol_rounds.py)"),
    ),
)

# alarm_review: nothing in workflows/ or api/ starts it or reads its elements (it is the smallest loop
# GridLoop ships, for administrators to start from); its contract is empty on purpose.
ALARM_REVIEW = ModelContract(key="alarm_review")

CONTRACTS = (ENV_CASE, GRADED_WARNING, ALARM_REVIEW, PATROL_ROUND, PATROL_VISIT)


def register(contracts: ModelContracts) -> None:
    for contract in CONTRACTS:
        contracts.register(contract)
