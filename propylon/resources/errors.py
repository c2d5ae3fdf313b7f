"""Errors raised while turning a document into a typed resource."""

from __future__ import annotations


class ResourceError(ValueError):
    """A document is not a valid object. `field` is a dotted YAML path
    (`spec.rules[0].backendRefs[0].port`), empty when the problem is the whole object."""

    def __init__(self, kind: str, namespace: str, name: str, field: str, message: str) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.field = field
        self.message = message
        super().__init__(str(self))

    @property
    def object_ref(self) -> str:
        ident = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind or '<no kind>'} {ident or '<no name>'}"

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.object_ref}: {where}{self.message}"

    def __reduce__(self) -> tuple[type[ResourceError], tuple[str, str, str, str, str]]:
        return (type(self), (self.kind, self.namespace, self.name, self.field, self.message))


class UnknownKindError(ResourceError):
    """The apiVersion/kind pair is not one Propylon reads; sources report and skip it."""
