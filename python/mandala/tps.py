"""Type annotations that make collections transparent: `-> MList[int]`, `xs: MDict[str, float]`.

A parameter or result annotated MList / MDict is stored element by element (each element a value
of its own, with its own history; lists sharing elements share storage), through the engine's
structural ops __make_list__ / __make_dict__ (inputs) and __list_getitem__ / __dict_getitem__
(outputs). Without the annotation a list or dict is one opaque value."""

import typing
from typing import Dict, Generic, List, TypeVar

T = TypeVar("T")
_KT = TypeVar("_KT")
_VT = TypeVar("_VT")


class MList(List[T], Generic[T]):
    """Annotation for a transparent list (`MList[int]`)."""

    def identify(self):
        return "Type annotation for `mandala` lists"


class MDict(Dict[_KT, _VT], Generic[_KT, _VT]):
    """Annotation for a transparent dict with str keys (`MDict[str, int]`)."""

    def identify(self):
        return "Type annotation for `mandala` dictionaries"


def shape_of(annotation):
    """The storage shape of an annotation: None (an opaque value), or ("list" | "dict", element
    shape) for MList / MDict (nested ones recursively)."""
    if annotation is MList:
        return ("list", None)
    if annotation is MDict:
        return ("dict", None)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is MList:
        return ("list", shape_of(args[0]) if args else None)
    if origin is MDict:
        if args and args[0] is not str and not isinstance(args[0], TypeVar):
            raise TypeError(f"MDict keys must be str, not {args[0]!r}")
        return ("dict", shape_of(args[1]) if len(args) == 2 else None)
    return None


def output_shapes(annotation, count):
    """One shape per output from a return annotation: a single annotation applies to a single
    output; Tuple[A, B] annotates outputs positionally, Tuple[A, ...] all of them."""
    if annotation is None:
        return [None] * count
    origin = typing.get_origin(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return [shape_of(args[0])] * count
        if len(args) == count:
            return [shape_of(a) for a in args]
        return [None] * count
    if count == 1:
        return [shape_of(annotation)]
    return [None] * count


__all__ = ["MList", "MDict"]
