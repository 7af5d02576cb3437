"""`DiskImage`: what a disk holds, as plain immutable data.

A crash state, the initial state of a run and a scenario's seeded files are all disk
images, so they compare, hash and deduplicate by value and serialise to YAML/JSON.

Symbolic links (`links`: path -> target) exist only where a real program made them (the
FUSE recorder, `crashkit.faults.real`); the in-process layer never has any. A symlink
travels through the crash-state machinery as a file whose content is a `LinkTarget`
(the target's bytes, marked), so that code which only knows files carries it unchanged;
an image built from such content moves it to `links`.
"""

from __future__ import annotations

import base64
import itertools
import os
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


class LinkTarget(bytes):
    """A symlink's target standing in for a file's content (see the module docstring):
    the snapshots of the replay hold symlinks this way, and `DiskImage` turns it back
    into a link. Equal to its plain bytes, so it must not outlive the image it builds."""

    __slots__ = ()

    @property
    def target(self) -> str:
        return os.fsdecode(bytes(self))


def _split_links(
    files: Mapping[str, bytes], links: Mapping[str, str]
) -> tuple[Mapping[str, bytes], Mapping[str, str]]:
    """`files` without the symlinks they carry as `LinkTarget`s, and those with `links`."""
    if not any(isinstance(data, LinkTarget) for data in files.values()):
        return files, links  # (the common case: no copy)
    plain: dict[str, bytes] = {}
    out = dict(links)
    for path, data in files.items():
        if isinstance(data, LinkTarget):
            out[path] = data.target
        else:
            plain[path] = data
    return plain, out


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


#: `DiskImage.key`: files, leaf directories, symlinks (each sorted).
ImageKey = tuple[tuple[tuple[str, bytes], ...], tuple[str, ...], tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class DiskImage:
    """Files (absolute path -> bytes), directories (absolute paths) and symbolic links
    (absolute path -> target, kept verbatim: relative or absolute, dangling or not).

    Parents are implied: `dirs` keeps only the directories nothing else implies (empty
    ones), so two images of the same disk compare equal however they were written.
    Paths are normalised and sorted on construction; `files` and `links` are read-only
    mappings. A file given as a `LinkTarget` is a symlink (moved to `links`).
    """

    files: Mapping[str, bytes] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)
    _key: ImageKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for path, data in self.files.items():
            if not isinstance(data, bytes):
                raise ValueError(f"content of {path!r} must be bytes, got {type(data).__name__}")
        plain, given = _split_links(self.files, self.links)
        files = dict(sorted((_normalise_path(p), d) for p, d in plain.items()))
        links: dict[str, str] = {}
        for path, target in given.items():
            if not isinstance(target, str) or not target:
                raise ValueError(f"the target of link {path!r} must be a non-empty str")
            links[_normalise_path(path)] = target
        links = dict(sorted(links.items()))
        dirs = tuple(sorted({_normalise_path(d) for d in self.dirs}))
        for path in links:
            if path in files or path in dirs:
                raise ValueError(f"{path!r} is a link but also a file or a directory")
        for path in files:
            if path in dirs:
                raise ValueError(f"{path!r} is both a file and a directory")
        for path in itertools.chain(files, dirs, links):
            for parent in parents(path):
                if parent in files or parent in links:
                    kind = "file" if parent in files else "link"
                    raise ValueError(f"{parent!r} is a {kind} but also the parent of {path!r}")
        dirs = leaf_dirs(itertools.chain(files, links), dirs)
        object.__setattr__(self, "files", MappingProxyType(files))
        object.__setattr__(self, "dirs", dirs)
        object.__setattr__(self, "links", MappingProxyType(links))
        object.__setattr__(self, "_key", (tuple(files.items()), dirs, tuple(links.items())))

    @classmethod
    def trusted(
        cls,
        files: Mapping[str, bytes],
        dirs: tuple[str, ...],
        links: Mapping[str, str] | None = None,
    ) -> DiskImage:
        """Build from paths already normalised and consistent (read off a file system).

        Skips validation: crash enumeration builds thousands of images per second.
        """
        image = object.__new__(cls)
        plain, given = _split_links(files, links or {})
        ordered = dict(sorted(plain.items()))
        linked = dict(sorted(given.items()))
        dirs = leaf_dirs(itertools.chain(ordered, linked), dirs)
        object.__setattr__(image, "files", MappingProxyType(ordered))
        object.__setattr__(image, "dirs", dirs)
        object.__setattr__(image, "links", MappingProxyType(linked))
        object.__setattr__(image, "_key", (tuple(ordered.items()), dirs, tuple(linked.items())))
        return image

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DiskImage):
            return NotImplemented
        return self._key == other._key

    @property
    def key(self) -> ImageKey:
        """A hashable, order-stable value identifying the image."""
        return self._key

    def all_dirs(self) -> tuple[str, ...]:
        """Listed directories plus every parent of a file, directory or link, sorted."""
        out = set(self.dirs)
        for path in itertools.chain(self.files, self.dirs, self.links):
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
        out: dict[str, Any] = {"files": files, "dirs": list(self.dirs)}
        if self.links:  # (absent when empty: the images without links keep their form)
            out["links"] = dict(self.links)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiskImage:
        if not isinstance(data, Mapping):
            raise ValueError(f"a disk image must be a mapping, got {data!r}")
        unknown = sorted(set(data) - {"files", "dirs", "links"})
        if unknown:
            raise ValueError(
                f"unknown disk image keys {unknown}; allowed: ['dirs', 'files', 'links']"
            )
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
        links = data.get("links") or {}
        if not isinstance(links, Mapping):
            raise ValueError("'links' must be a mapping of path -> target")
        return cls(files=files, dirs=tuple(dirs), links=dict(links))
