"""Reference fields: a form value that names something (a user, a case, a grid) is resolved and
checked by a validator the domain registers, inside the change and under the instance lock, so a
dispatch cannot name a user who does not exist or may not work there. The engine knows only the
contract; `workflows/` and the composition root register the kinds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from .forms import FormField
    from .visibility import Viewer


class ReferenceRefused(ValueError):
    """Raised by a validator: the value names nothing the field allows; the message says why."""


@dataclass(frozen=True)
class ReferenceContext:
    """What a validator gets: the field (with its attributes), the variables the process holds
    merged with the submitted values, who acts (None: the system) and the change's connection."""

    form_field: FormField
    variables: Mapping[str, Any]
    viewer: Viewer | None
    conn: Connection

    def arg(self, name: str) -> str | None:
        return self.form_field.ref_args.get(name)

    def variable(self, arg: str) -> Any:
        """The value of the variable an attribute names (scope="grid" → the process's `grid`)."""
        name = self.form_field.ref_args.get(arg)
        return self.variables.get(name) if name else None


Check = Callable[[Any, ReferenceContext], Any]


@dataclass(frozen=True)
class ReferenceKind:
    """A kind of reference: its check (returns the value to store, or raises ReferenceRefused) and
    the attributes a field of this kind may carry — `variables` name process variables (checked at
    deploy like any expression), `literals` are taken as written."""

    name: str
    check: Check
    variables: frozenset[str] = frozenset()
    literals: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()


@dataclass
class ReferenceKinds:
    kinds: dict[str, ReferenceKind] = field(default_factory=dict)

    def register(self, kind: ReferenceKind) -> None:
        self.kinds[kind.name] = kind

    def get(self, name: str) -> ReferenceKind | None:
        return self.kinds.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.kinds

    def resolve(self, conn: Connection, viewer: Viewer | None) -> Callable[[FormField, Any, Mapping[str, Any]], Any]:
        """The `resolve` callback of Form.validate for one change."""

        def resolve(f: FormField, value: Any, variables: Mapping[str, Any]) -> Any:
            kind = self.kinds.get(f.ref or "")
            if kind is None:  # deployed under another composition: fail closed
                raise ReferenceRefused(f"references of kind {f.ref!r} cannot be checked here")
            return kind.check(value, ReferenceContext(form_field=f, variables=variables, viewer=viewer, conn=conn))

        return resolve
