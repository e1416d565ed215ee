"""Reads HyperPyYAML files (``cosyvoice.yaml``) as plain data, importing nothing they name.

``!new:pkg.Class`` and ``!name:pkg.func`` nodes become mappings that record the class or
function under ``"__new__"`` / ``"__name__"`` next to their arguments, ``!apply:`` nodes
likewise under ``"__apply__"``; ``!ref <key[sub]>`` is replaced by the referenced value
(simple arithmetic on numbers is evaluated); ``!tuple`` (a sequence or ``(a, b)``) becomes a
list.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import Any

import yaml

__all__ = ["load_hyperyaml"]

_REF = re.compile(r"<([^<>]+)>")
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}


class _Ref:
    def __init__(self, expression: str) -> None:
        self.expression = expression


class _Loader(yaml.SafeLoader):
    """SafeLoader plus the HyperPyYAML tags, all mapped to data."""


def _tagged(kind: str) -> Callable[[yaml.SafeLoader, str, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.MappingNode):
            args: dict[str, Any] = dict(loader.construct_mapping(node, deep=True))
        elif isinstance(node, yaml.SequenceNode):
            args = {"__args__": loader.construct_sequence(node, deep=True)}
        else:
            value = loader.construct_scalar(node)  # type: ignore[arg-type]
            args = {"__args__": [value]} if value != "" else {}
        return {kind: suffix, **args}

    return construct


def _construct_ref(loader: yaml.SafeLoader, node: yaml.Node) -> _Ref:
    return _Ref(str(loader.construct_scalar(node)))  # type: ignore[arg-type]


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(loader.construct_sequence(node, deep=True))
    text = str(loader.construct_scalar(node)).strip()  # type: ignore[arg-type]
    items = yaml.safe_load(f"[{text[1:-1] if text.startswith('(') else text}]")
    return list(items)


_Loader.add_multi_constructor("!new:", _tagged("__new__"))
_Loader.add_multi_constructor("!name:", _tagged("__name__"))
_Loader.add_multi_constructor("!apply:", _tagged("__apply__"))
_Loader.add_constructor("!ref", _construct_ref)
_Loader.add_constructor("!copy", _construct_ref)
_Loader.add_constructor("!tuple", _construct_tuple)


def _lookup(root: dict[str, Any], path: str) -> Any:
    head, *subs = re.split(r"[\[\]]+", path.strip().rstrip("]"))
    value: Any = root[head]
    for sub in subs:
        value = value[int(sub) if isinstance(value, list) else sub]
    return _resolve(value, root)


def _arithmetic(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _arithmetic(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arithmetic(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_arithmetic(node.left), _arithmetic(node.right))
    raise ValueError(f"unsupported expression {ast.dump(node)}")


def _resolve(value: Any, root: dict[str, Any]) -> Any:
    if isinstance(value, _Ref):
        expression = value.expression.strip()
        whole = _REF.fullmatch(expression)
        if whole:
            return _lookup(root, whole.group(1))
        text = _REF.sub(lambda m: repr(_lookup(root, m.group(1))), expression)
        return _arithmetic(ast.parse(text, mode="eval"))
    if isinstance(value, dict):
        return {k: _resolve(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root) for v in value]
    return value


def load_hyperyaml(text: str) -> dict[str, Any]:
    """Parses HyperPyYAML text into nested dicts and lists.

    Raises:
        ValueError: for malformed YAML, a top level that is not a mapping, or a ``!ref``
            that cannot be resolved.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ValueError("the top level is not a mapping")
    try:
        return {k: _resolve(v, data) for k, v in data.items()}
    except (KeyError, IndexError, TypeError, SyntaxError, ValueError) as e:
        raise ValueError(f"unresolvable !ref: {e}") from e
