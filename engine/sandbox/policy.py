"""Compiling scripts and expressions: RestrictedPython's policy plus the rewrites the budget needs.

RestrictedPython refuses `_`-prefixed names and attributes; this policy also refuses imports and
classes up front and rewrites the code so the budget sees what it needs to: loops and calls of
script-defined functions tick, `+ * ** % // <<` go through checked operators, f-string fields are
formatted by a guard, and comparisons (`==`, `<`, `in`, ...) are charged by what they walk.
Generated nodes use `_`-names, which scripts themselves may not, and are built after the user's
nodes were checked.
"""

from __future__ import annotations

import ast
import functools
import re
import types
from typing import Literal, cast

from RestrictedPython import RestrictingNodeTransformer, compile_restricted

from .limits import SandboxError

# SpiffWorkflow looks for this filename in tracebacks to report the failing script line.
_FILENAME = "<string>"
_LINE_RE = re.compile(r"Line (\d+)")


def _name(id_: str, like: ast.AST) -> ast.Name:
    return ast.copy_location(ast.Name(id=id_, ctx=ast.Load()), like)

def _call(func: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    return ast.copy_location(ast.Call(func=_name(func, like), args=args, keywords=[]), like)


def _ticked(expr: ast.expr) -> ast.expr:
    """`_tick_() or expr`: counts a step, then evaluates to `expr` (`_tick_` returns None)."""
    return ast.copy_location(ast.BoolOp(op=ast.Or(), values=[_call("_tick_", [], expr), expr]), expr)


_BINOP_GUARDS: dict[type, str] = {
    ast.Add: "_add_", ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Mod: "_mod_",
    ast.FloorDiv: "_floordiv_",
}
# Comparisons that may walk whole structures; `is` / `is not` compare identities and stay as they are.
_COMPARED: dict[type, str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
    ast.NotIn: "not in",
}


def _literal(node: ast.expr) -> bool:
    """A constant, or a tuple/list/set display of constants: bounded by the source's own size."""
    if isinstance(node, ast.Constant):
        return True
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(isinstance(e, ast.Constant) for e in node.elts)


def _cheap(left: ast.expr, op: ast.cmpop, right: ast.expr) -> bool:
    """Comparisons that cannot walk a large structure: `x == True`, `n > 100`, `level in ('a', 'b')`
    (a literal on the right of `in`; on either side otherwise). These stay as Python wrote them, so
    the common condition costs no budget at all."""
    if isinstance(op, (ast.In, ast.NotIn)):
        return _literal(right)
    return _literal(left) or _literal(right)


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus refusing imports and classes up front (clearer than a NameError),
    plus the rewrites the budget needs (see the module docstring). Generated nodes use `_`-names,
    which scripts themselves may not, and are built after the user's nodes were checked."""

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        self.error(node, "import statements are not allowed")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed")
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        """Counted, not refused (see the module docstring): `while t:` → `while _tick_() or t:`."""
        node = self.node_contents_visit(node)
        node.test = _ticked(node.test)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node = cast(ast.FunctionDef, super().visit_FunctionDef(node))  # RestrictedPython returns the same node
        node.body.insert(0, ast.copy_location(ast.Expr(_call("_tick_", [], node)), node.body[0]))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node = cast(ast.Lambda, super().visit_Lambda(node))  # RestrictedPython returns the same node
        node.body = _ticked(node.body)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        node = cast(ast.ExceptHandler, super().visit_ExceptHandler(node))  # RestrictedPython returns the same node
        node.body.insert(0, ast.copy_location(ast.Expr(_call("_reraise_limit_", [], node)), node.body[0]))
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        return node if guard is None else _call(guard, [node.left, node.right], node)

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):  # [*x, *x], f(*x): counted like a loop over x
            node.value = _call("_getiter_", [node.value], node.value)
        return node

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.AST:
        node = self.node_contents_visit(node)
        node.value = _call("_getiter_", [node.value], node.value)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        """`a == b` → `_compare_(a, '==', b)`, charged by what the comparison may walk. A chain
        (`a < b < c`) keeps Python's evaluation order: each operand goes through `_compared_`, which
        charges by its size."""
        node = self.node_contents_visit(node)
        if not any(type(op) in _COMPARED for op in node.ops):
            return node
        if len(node.ops) == 1 and _cheap(node.left, node.ops[0], node.comparators[0]):
            return node
        if len(node.ops) == 1:
            op = ast.copy_location(ast.Constant(_COMPARED[type(node.ops[0])]), node)
            return _call("_compare_", [node.left, op, node.comparators[0]], node)
        node.left = _call("_compared_", [node.left], node.left)
        node.comparators = [_call("_compared_", [c], c) for c in node.comparators]
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        """`{k: v}` hashes k: a tuple key is charged by `_hashed_` (tuple hashes are not cached)."""
        node = self.node_contents_visit(node)
        node.keys = [k if k is None or isinstance(k, ast.Constant) else _call("_hashed_", [k], k) for k in node.keys]
        return node

    def visit_Set(self, node: ast.Set) -> ast.AST:
        node = self.node_contents_visit(node)
        node.elts = [e if isinstance(e, (ast.Constant, ast.Starred)) else _call("_hashed_", [e], e) for e in node.elts]
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        """`d[k] = v` and `del d[k]` hash k too (a load becomes `_getitem_`, which charges it)."""
        visited = cast(ast.AST, super().visit_Subscript(node))  # RestrictedPython: the node, or a `_getitem_` call
        if isinstance(visited, ast.Subscript) and not isinstance(visited.slice, (ast.Constant, ast.Slice)):
            visited.slice = _call("_hashed_", [visited.slice], visited.slice)
        return visited

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        """f'{x!r:>{w}}' → f'{_format_(x, f">{w}", 114)}': widths are checked before formatting and
        the text made is charged."""
        node = self.node_contents_visit(node)
        spec = node.format_spec or ast.copy_location(ast.Constant(""), node)
        node.value = _call("_format_", [node.value, spec, ast.copy_location(ast.Constant(node.conversion), node)],
                           node)
        node.format_spec, node.conversion = None, -1
        return node


def _refusal(kind: str, exc: SyntaxError) -> SandboxError:
    """RestrictedPython packs its messages ('Line N: ...') into SyntaxError.args[0] as a tuple."""
    payload = exc.args[0] if exc.args else str(exc)
    if isinstance(payload, (tuple, list)):
        reason = "; ".join(str(m) for m in payload)
        match = _LINE_RE.search(reason)
        return SandboxError(kind, int(match.group(1)) if match else 1, reason)
    return SandboxError(kind, exc.lineno or 1, f"{type(exc).__name__}: {exc.msg or payload}")


def _compile(source: str, mode: Literal["exec", "eval"], kind: str) -> types.CodeType:
    if not isinstance(source, str):
        raise TypeError(f"{kind} source must be str, not {type(source).__name__}")
    try:
        return compile_restricted(source, filename=_FILENAME, mode=mode, policy=_Policy)
    except SyntaxError as exc:
        raise _refusal(kind, exc) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise SandboxError(kind, 1, f"{type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> types.CodeType:
    """Compile a BPMN expression; surrounding whitespace from the XML text is ignored."""
    return _compile(source.strip() if isinstance(source, str) else source, "eval", "expression")


@functools.lru_cache(maxsize=4096)
def compile_script(source: str) -> types.CodeType:
    """Compile a BPMN script task / pre- / post-script."""
    return _compile(source, "exec", "script")


def names_used(code: types.CodeType) -> set[str]:
    """Every global (and attribute) name the code and its nested functions refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= names_used(const)
    return names

