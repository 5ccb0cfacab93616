"""Starting many instances of one definition at once (a notice to every inspector of a city, a
campaign of inspections, a bench): one transaction for the whole batch, so an item the engine
refuses — a variable name, a start-form value, a model that fails on an item's values, a business
key already taken — refuses all of them, and nothing is half started. Each instance is the same
change a single start makes (its own audit chain and read models); only the commit is shared."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from .change import after_commit, new_instance
from .errors import Conflict, EngineError, InvalidInput
from .instances import _definition  # the version a start takes (latest of the key, or exactly the id)
from .models import ProcessInstance
from .runtime import Runtime
from .tasks import check_variables
from .visibility import Viewer

MAX_BATCH = 1000  # instances per call: the batch holds one transaction (and its locks) while it runs


@dataclass(frozen=True)
class StartItem:
    variables: dict[str, Any] = field(default_factory=dict)
    business_key: str | None = None


def start_many(rt: Runtime, *, actor: str, items: Sequence[StartItem], key: str | None = None,
               definition_id: int | None = None, scope: str | None = None,
               viewer: Viewer | None = None) -> list[ProcessInstance]:
    """Start one instance per item of the latest version of `key` (or exactly `definition_id`), all
    in one transaction; returns them in the items' order. Errors name the item by its position
    (`fields={"3": {...}}`, as marshmallow names list items); a refused batch started nothing."""
    if (key is None) == (definition_id is None):
        raise InvalidInput("give exactly one of key or definition id")
    if not items:
        raise InvalidInput("give at least one instance to start", fields=["instances"])
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} instances per batch (got {len(items)})", fields=["instances"])
    _refuse_repeated_keys(items)
    changes = []
    try:
        with rt.db.begin() as conn:
            definition = _definition(rt, conn, key, definition_id)
            start_form = rt.specs.get(rt.db, definition.id, session=conn).start_form
            resolve = rt.references.resolve(conn, viewer) if start_form is not None else None
            checked = _checked(rt, items, start_form, resolve)
            for index, (item, variables) in enumerate(zip(items, checked, strict=True)):
                try:
                    with new_instance(rt, definition, conn, actor, item.business_key, variables, scope=scope) as ch:
                        ch.record("instance.started", definition_id=definition.id, version=definition.version,
                                  business_key=item.business_key, variables=variables)
                except EngineError as exc:
                    raise _of_item(exc, index) from exc
                changes.append(ch)
    except IntegrityError as exc:
        taken = [str(i) for i, item in enumerate(items) if item.business_key is not None]
        raise Conflict("a business key of the batch is taken by an existing instance; nothing was started",
                       fields={i: {"businessKey": ["may be taken"]} for i in taken}) from exc
    for ch in changes:
        after_commit(rt, ch)
    return [ch.instance for ch in changes]


def _refuse_repeated_keys(items: Sequence[StartItem]) -> None:
    seen: dict[str, int] = {}
    repeated: dict[str, Any] = {}
    for index, item in enumerate(items):
        if item.business_key is None:
            continue
        if item.business_key in seen:
            repeated[str(index)] = {"businessKey": [f"repeats item {seen[item.business_key]}'s business key"]}
        seen.setdefault(item.business_key, index)
    if repeated:
        raise InvalidInput("two items of the batch have the same business key; nothing was started",
                           fields=repeated)


def _checked(rt: Runtime, items: Sequence[StartItem], start_form, resolve) -> list[dict[str, Any]]:
    """Every item's variables as a single start takes them; all items' errors together."""
    out: list[dict[str, Any]] = []
    errors: dict[str, Any] = {}
    now = rt.clock.now()
    for index, item in enumerate(items):
        try:
            variables = check_variables(dict(item.variables))
            if start_form is not None:
                variables = start_form.validate(variables, {}, resolve=resolve, now=now)
        except InvalidInput as exc:
            errors[str(index)] = {"variables": exc.fields}
            continue
        out.append(variables)
    if errors:
        raise InvalidInput(f"{len(errors)} of the {len(items)} items are refused; nothing was started",
                           fields=errors)
    return out


def _of_item(exc: EngineError, index: int) -> EngineError:
    """The same error, saying which item of the batch it is about."""
    return type(exc)(f"item {index}: {exc.message}", fields={str(index): exc.fields or [exc.message]},
                     **exc.details)
