"""Slotted pydantic dataclasses: the shape of every typed resource and its nested
structures.

Each is a `@record` class: pydantic validates the document (its messages are what users
see, field by field) and builds the instance directly, with one slot per field and
nothing else: no `__dict__` and no set of given fields per object, a fifth of a pydantic
model's bytes (85 000 of them at 5000 routes). The few model methods Propylon uses are
here, on the class (`model_validate`, `model_dump`, `model_copy`).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, ClassVar, Self, TypeVar, cast, dataclass_transform

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass

# Python snake_case attributes, YAML camelCase aliases. Unknown fields are dropped, as
# the API server prunes fields a structural schema does not declare.
STRUCT_CONFIG = ConfigDict(
    alias_generator=to_camel,
    populate_by_name=True,
    extra="ignore",
    validate_default=False,
)

_T = TypeVar("_T")


@dataclass_transform(kw_only_default=True, field_specifiers=(Field,))
def record(cls: type[_T]) -> type[_T]:
    """A `Struct` subclass as a slotted, keyword-only pydantic dataclass."""
    made: Any = dataclass(slots=True, kw_only=True, config=STRUCT_CONFIG)(cls)
    names = tuple(made.__dataclass_fields__)
    get = attrgetter(*names)
    # The values of every field in one C-level call (walks over thousands of routes).
    getter = get if len(names) > 1 else (lambda struct: (get(struct),))
    made._field_values = staticmethod(getter)
    return cast("type[_T]", made)


class Struct:
    """Nested structure (a `@record` class). Instances are compared by their fields and
    are not hashable, as pydantic models were."""

    __slots__ = ()
    __pydantic_validator__: ClassVar[Any]
    __pydantic_serializer__: ClassVar[Any]
    __pydantic_fields__: ClassVar[dict[str, Any]]
    __dataclass_fields__: ClassVar[dict[str, Any]]
    _field_values: ClassVar[Callable[[Any], tuple[Any, ...]]]

    @classmethod
    def model_validate(cls, doc: Any) -> Self:
        """Validate a document (camelCase keys) into an instance, or raise pydantic's
        `ValidationError`."""
        made: Self = cls.__pydantic_validator__.validate_python(doc)
        return made

    def model_dump(
        self, *, mode: str = "json", by_alias: bool = True, exclude_none: bool = False
    ) -> dict[str, Any]:
        """The user's shape (`mode="json"`, camelCase keys) or Python values."""
        dumped: dict[str, Any] = self.__pydantic_serializer__.to_python(
            self, mode=mode, by_alias=by_alias, exclude_none=exclude_none
        )
        return dumped

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Self:
        """A shallow copy with `update`'s fields (Python names) replaced, not validated:
        the values are the caller's, as with pydantic's `model_copy`."""
        cls = type(self)
        changes = update or {}
        unknown = changes.keys() - cls.__dataclass_fields__.keys()
        if unknown:  # a misspelt field would otherwise be dropped without a word
            raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
        copied = cls.__new__(cls)
        for name in cls.__dataclass_fields__:
            value = changes[name] if name in changes else getattr(self, name)
            object.__setattr__(copied, name, value)
        return copied


class _ReadOnlyDict(dict[str, str]):
    """The one empty dict that every object without labels (or annotations) shares:
    25 000 empty dicts at 5000 routes otherwise. Changing it raises, so sharing it can
    never leak one object's labels into another's; readers see a plain empty dict."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("shared empty labels are read-only: copy them first (dict(labels))")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _refuse

    def __reduce__(self) -> Any:
        return (no_labels, ())


_NO_LABELS = _ReadOnlyDict()


def no_labels() -> dict[str, str]:
    """The shared, read-only empty dict (a default factory)."""
    return _NO_LABELS


def field_values(struct: Struct) -> tuple[Any, ...]:
    """The values of `struct`'s fields, in declaration order."""
    return type(struct)._field_values(struct)
