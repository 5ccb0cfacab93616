"""Who is told what, when the process says so (DOMAIN.md §1 "alarm linkage", §6).

A BPMN service task calls `notify.send` with the notice kind and whom it is for — `to` (a
username), `scope` (the supervisors of a grid, climbing to the parent level when it has none) or
`reporter` (the citizen who reported the case). The operation is pure: it only emits a
`notice.plan` job with the change (the outbox), so the process never waits for a notice and a
rolled-back change notifies nobody. The job, after commit, looks up the people and their channels
and queues one notification per person; asked twice, it queues nothing new."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import outbox
from engine.operations import OperationContext
from engine.runtime import Runtime
from notifications import templates
from notifications.models import Notification
from notifications.queueing import QUEUE, NoticeRequest, Queued, queue_each, queue_notices
from notifications.quiet_hours import QuietHours

from .cases import Case, CaseAlarm
from .grids import Grid
from .people import Category, Person
from .routing import on_duty
from .working_time import CHINA

PLAN = "notice.plan"
CHANNEL_ORDER = ("wechat_work", "sms")  # staff default: WeChat Work, then SMS
NOBODY = "nobody"  # the recipient of a notice for someone who is not (or no longer) on the staff list


def notify_operation(params: Mapping[str, Any], ctx: OperationContext) -> None:
    """`notify.send`: checked here (a bad model fails in its change), sent after commit."""
    kind = str(params.get("kind", ""))
    if kind not in templates.KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if not any(k in params for k in ("to", "scope", "reporter")):  # a model error; an empty value is not
        raise ValueError("notify.send needs `to`, `scope` or `reporter`")
    if ctx.emit is None:
        raise ValueError("notify.send must run inside a change")
    ctx.emit(QUEUE, PLAN, {"key": f"{ctx.instance_id}:{ctx.task_id}", "instance_id": ctx.instance_id,
                           "params": dict(params)})


class NoticePlanner:
    """The `notice.plan` job."""

    marks_done = True  # the notices and the outbox row's done mark are one transaction

    def __init__(self, quiet: QuietHours, public_url: str = "") -> None:
        self.quiet, self.public_url = quiet, public_url

    def __call__(self, rt: Runtime, payload: dict[str, Any]) -> None:
        now = rt.clock.now()
        with rt.db.transaction() as s:
            queue_notices(s, now, plan(s, now, payload["key"], payload["params"], payload.get("instance_id"),
                                       self.public_url), self.quiet)
            outbox.mark_done(s, payload.get("outbox_id"), now)


def plan(s: Session, now: datetime, key: str, params: Mapping[str, Any], instance_id: str | None,
         public_url: str = "") -> list[NoticeRequest]:
    """The notices `params` asks for: one per person (or the reporter), with their channels."""
    case = s.get(Case, params.get("case_id")) if params.get("case_id") else None
    data = case_data(s, case, params, public_url)
    kind, urgent = str(params["kind"]), bool(params.get("urgent", case.urgent if case else False))

    def request(recipient: str, channels: list[tuple[str, str]], unreachable: str | None = None) -> NoticeRequest:
        return NoticeRequest(key=f"{key}:{recipient}", kind=kind, recipient=recipient, channels=channels, data=data,
                             urgent=urgent, case_id=case.id if case else None, instance_id=instance_id,
                             unreachable=unreachable)

    people = recipients(s, now, to=params.get("to"), scope=params.get("scope"),
                        category=case.category if case else None)
    requests = [request(p.username or f"person:{p.id}", staff_channels(p)) for p in people]
    if not requests and (params.get("to") or params.get("scope")):  # a failed notice, for the case and the logs
        requests.append(request(NOBODY, [], _nobody(params.get("to"), params.get("scope"))))
    if params.get("reporter") and case is not None:  # cases from monitoring have no reporter to tell
        for n, reporter in enumerate(reporters(s, case)):
            requests.append(request(f"citizen:{case.id}" + (f":{n}" if n else ""), citizen_channels(reporter)))
    return requests


def _nobody(to: str | None, scope: str | None) -> str:
    """Why a notice has nobody to go to, in words an operator acts on."""
    wanted = [f"no active member of staff is named {to!r}"] if to else []
    if scope:
        wanted.append(f"no supervisor in grid {scope} or above it")
    return " and ".join(wanted)


def reporters(s: Session, case: Case) -> list[Mapping[str, Any]]:
    """Everyone who reported the case — the first report and each duplicate that joined it — once
    each (by phone and openid)."""
    found = [d["reporter"] for d in s.scalars(select(CaseAlarm.details).where(CaseAlarm.case_id == case.id)
                                              .order_by(CaseAlarm.id)) if (d or {}).get("reporter")]
    if not found and (case.details or {}).get("reporter"):  # a case filed before alarms were recorded
        found = [case.details["reporter"]]
    found = [r for r in found if isinstance(r, Mapping)]  # an inspector's patrol report names a username: staff
    unique: dict[tuple, Mapping[str, Any]] = {}
    for r in found:
        unique.setdefault((r.get("phone"), r.get("openid")), r)
    return list(unique.values())


def urge(s: Session, now: datetime, *, key: str, case_id: str, people: list[str], note: str, urged_by: str,
         due: str | None, quiet: QuietHours, public_url: str = "") -> dict[str, list[Queued]]:
    """督办 by a leader or supervisor: each person working on the case is told, now (queued in `s`);
    answers what became of the notice to each of them."""
    return {person: queue_each(s, now, plan(s, now, f"{key}:{person}", {
        "kind": templates.URGE, "case_id": case_id, "to": person, "comment": note, "urged_by": urged_by,
        "due": due or ""}, None, public_url), quiet) for person in people}


def recipients(s: Session, at: datetime, *, to: str | None, scope: str | None, category: str | None) -> list[Person]:
    """`to` by username, and the supervisors of `scope` at `at`: those on duty for that grid at that
    moment (workflows/duty.py: at night and on holidays the grid centre's duty supervisor) when anyone
    is; else — nobody rostered then, e.g. a town at night — every active supervisor of that grid, so
    an escalation is never lost for want of a roster. A grid with neither (a unit) climbs to its
    parent."""
    found: list[Person] = []
    if to:
        found += s.scalars(select(Person).where(Person.username == to, Person.active.is_(True)))
    code = scope
    while code:
        names = on_duty(s, grid_code=code, category=category or "", at=at, post="supervisor")
        people = list(s.scalars(select(Person).where(Person.active.is_(True), Person.post == "supervisor",
                                                     Person.username.in_(names) if names else
                                                     Person.grid_code == code)))
        if people:
            found += people
            break
        code = s.scalar(select(Grid.parent_code).where(Grid.code == code, Grid.valid_to.is_(None)))
    unique = {p.id: p for p in found}
    return list(unique.values())


def chosen_channels(channels: str | None) -> list[str]:
    """The channels a person chose, in order (`Person.channels`: comma-separated; empty: none chosen)."""
    return [c.strip() for c in (channels or "").split(",") if c.strip()]


def staff_channels(p: Person) -> list[tuple[str, str]]:
    """The person's channels in their order of preference (`channels`, else WeChat Work then SMS),
    those they have an address for."""
    addresses = {"wechat_work": p.wecom_id, "sms": p.phone}
    order = chosen_channels(p.channels) or list(CHANNEL_ORDER)
    return [(c, address) for c in order if (address := addresses.get(c))]


def contacts(s: Session, n: Notification) -> list[tuple[str, str]]:
    """The channels `n`'s recipient has now (notifications.delivery.Contacts): a member of staff
    by username, a reporter of the case by their place among its reporters; none for nobody."""
    if n.recipient == NOBODY:  # whom it was meant for is in its incident; a retry cannot find them
        return []
    if n.recipient.startswith("citizen:"):
        _, case_id, *nth = n.recipient.split(":")
        case = s.get(Case, case_id)
        found = reporters(s, case) if case is not None else []
        index = int(nth[0]) if nth and nth[0].isdigit() else 0
        return citizen_channels(found[index]) if index < len(found) else []
    if n.recipient.startswith("person:"):
        person = s.get(Person, int(n.recipient.removeprefix("person:"))) if n.recipient[7:].isdigit() else None
    else:
        person = s.scalar(select(Person).where(Person.username == n.recipient))
    return staff_channels(person) if person is not None and person.active else []


def citizen_channels(reporter: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A citizen: the Official Account if they came through it, else (or when that fails) SMS."""
    channels = [("wechat_oa", reporter.get("openid")), ("sms", reporter.get("phone"))]
    return [(c, str(a)) for c, a in channels if a]


def case_data(s: Session, case: Case | None, params: Mapping[str, Any], public_url: str) -> dict[str, Any]:
    """The template values: the case's number, category, place and deadline, and what params add."""
    data: dict[str, Any] = {k: _text(v) for k, v in params.items() if k not in ("kind", "to", "scope", "reporter")}
    if case is not None:
        category = s.get(Category, case.category)
        grid = s.scalar(select(Grid.name).where(Grid.code == case.grid_code, Grid.valid_to.is_(None)))
        data.setdefault("case_no", case.id)
        data.setdefault("category", category.name.split(" ")[0] if category else case.category)
        data.setdefault("address", (case.description and grid and f"{grid}（{case.description}）") or grid or "")
        if public_url:
            data.setdefault("url", f"{public_url}/api/v1/cases/{case.id}")
    return data


def _text(value: Any) -> Any:
    """Deadlines arrive as ISO 8601 strings: shown in China time, to the minute."""
    if isinstance(value, str) and len(value) >= 16 and value[4] == "-" and "T" in value:
        try:
            return datetime.fromisoformat(value).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return value
