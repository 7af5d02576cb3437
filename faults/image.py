"""`DiskImage`: what a disk holds, as plain immutable data.

A crash state, the initial state of a run and a scenario's seeded files are all disk
images, so they compare, hash and deduplicate by value and serialise to YAML/JSON.
"""

from __future__ import annotations

import base64
import posixpath
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_TEXT_CONTROL_OK = frozenset("\n\t\r")

#: Directories every fake file system has (the temp dir pyfakefs creates on reset): an
#: image need not list them, so one read off a file system equals the one it started from.
SCRATCH_DIRS: frozenset[str] = frozenset({"/tmp", posixpath.normpath(tempfile.gettempdir())})


def _normalise_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"disk image paths must be absolute POSIX paths, got {path!r}")
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if norm == "/":
        raise ValueError("the root directory is implicit in a disk image")
    return norm


def leaf_dirs(files: Iterable[str], dirs: Iterable[str]) -> tuple[str, ...]:
    """The directories nothing else implies, sorted: the canonical form of `dirs`."""
    listed = set(dirs)
    implied: set[str] = set()
    for path in (*files, *listed):
        implied.update(parents(path))
    return tuple(sorted(listed - implied - SCRATCH_DIRS))


def parents(path: str) -> Iterable[str]:
    """Every proper ancestor of an absolute path, nearest first, root excluded."""
    parent = posixpath.dirname(path)
    while parent != "/":
        yield parent
        parent = posixpath.dirname(parent)


@dataclass(frozen=True, slots=True)
class DiskImage:
    """Files (absolute path -> bytes) and directories (absolute paths).

    Parents are implied: `dirs` keeps only the directories nothing else implies (empty
    ones), so two images of the same disk compare equal however they were written.
    Paths are normalised and sorted on construction; `files` is a read-only mapping.
    """

    files: Mapping[str, bytes] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    _key: tuple[tuple[tuple[str, bytes], ...], tuple[str, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        files: dict[str, bytes] = {}
        for path, data in self.files.items():
            if not isinstance(data, bytes):
                raise ValueError(f"content of {path!r} must be bytes, got {type(data).__name__}")
            files[_normalise_path(path)] = data
        files = dict(sorted(files.items()))
        dirs = tuple(sorted({_normalise_path(d) for d in self.dirs}))
        for path in files:
            if path in dirs:
                raise ValueError(f"{path!r} is both a file and a directory")
            for parent in parents(path):
                if parent in files:
                    raise ValueError(f"{parent!r} is a file but also the parent of {path!r}")
        for d in dirs:
            for parent in parents(d):
                if parent in files:
                    raise ValueError(f"{parent!r} is a file but also the parent of {d!r}")
        dirs = leaf_dirs(files, dirs)
        object.__setattr__(self, "files", MappingProxyType(files))
        object.__setattr__(self, "dirs", dirs)
        object.__setattr__(self, "_key", (tuple(files.items()), dirs))

    @classmethod
    def trusted(cls, files: Mapping[str, bytes], dirs: tuple[str, ...]) -> DiskImage:
        """Build from paths already normalised and consistent (read off a file system).

        Skips validation: crash enumeration builds thousands of images per second.
        """
        image = object.__new__(cls)
        ordered = dict(sorted(files.items()))
        dirs = leaf_dirs(ordered, dirs)
        object.__setattr__(image, "files", MappingProxyType(ordered))
        object.__setattr__(image, "dirs", dirs)
        object.__setattr__(image, "_key", (tuple(ordered.items()), dirs))
        return image

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DiskImage):
            return NotImplemented
        return self._key == other._key

    @property
    def key(self) -> tuple[tuple[tuple[str, bytes], ...], tuple[str, ...]]:
        """A hashable, order-stable value identifying the image."""
        return self._key

    def all_dirs(self) -> tuple[str, ...]:
        """Listed directories plus every parent of a file or directory, sorted."""
        out = set(self.dirs)
        for path in (*self.files, *self.dirs):
            out.update(parents(path))
        return tuple(sorted(out))

    def get(self, path: str) -> bytes | None:
        return self.files.get(path)

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-safe: printable UTF-8 content as text, anything else as base64."""
        files: dict[str, Any] = {}
        for path, data in self.files.items():
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and all(c.isprintable() or c in _TEXT_CONTROL_OK for c in text):
                files[path] = text
            else:
                files[path] = {"base64": base64.b64encode(data).decode("ascii")}
        return {"files": files, "dirs": list(self.dirs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiskImage:
        if not isinstance(data, Mapping):
            raise ValueError(f"a disk image must be a mapping, got {data!r}")
        unknown = sorted(set(data) - {"files", "dirs"})
        if unknown:
            raise ValueError(f"unknown disk image keys {unknown}; allowed: ['dirs', 'files']")
        files: dict[str, bytes] = {}
        for path, value in dict(data.get("files") or {}).items():
            if isinstance(value, str):
                files[path] = value.encode("utf-8")
            elif isinstance(value, Mapping) and set(value) == {"base64"}:
                files[path] = base64.b64decode(value["base64"], validate=True)
            else:
                raise ValueError(f"content of {path!r} must be text or {{base64: ...}}")
        dirs = data.get("dirs") or ()
        if isinstance(dirs, str):
            raise ValueError("'dirs' must be a list of paths")
        return cls(files=files, dirs=tuple(dirs))
