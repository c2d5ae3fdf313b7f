"""Sources of objects. The file source: `FileSource` / `load_paths` read manifests into a
`ChangeSet` with diagnostics; `watch` yields a new ChangeSet per batch of file events."""

from propylon.sources.files import FileSource, ParseFn, load_paths
from propylon.sources.watch import watch

__all__ = ["FileSource", "ParseFn", "load_paths", "watch"]
