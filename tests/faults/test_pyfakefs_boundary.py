"""pyfakefs is reached through `crashkit.faults._pyfakefs` only, so an upgrade breaks there."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import crashkit.faults
from crashkit.faults import CrashFS, _pyfakefs

FAULTS = Path(crashkit.faults.__file__).resolve().parent


def _imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_boundary_module_imports_pyfakefs() -> None:
    offenders = {
        path.name: sorted(
            m
            for m in _imported_modules(path.read_text())
            if m == "pyfakefs" or m.startswith("pyfakefs.")
        )
        for path in sorted(FAULTS.glob("*.py"))
        if path.name != "_pyfakefs.py"
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_every_documented_touch_exists() -> None:
    doc = _pyfakefs.__doc__ or ""
    for name in _pyfakefs.__all__:
        assert hasattr(_pyfakefs, name), name
    assert _pyfakefs.CHECKED_VERSION in doc


def test_the_fast_attribute_rule_answers_as_pyfakefs_does() -> None:
    """`wrapper_getattribute` (on every descriptor of the fake os.open) is pyfakefs's own
    `__getattribute__` rule from a set: the same object, or the same error, per name."""
    names = [
        "filedes", "file_object", "_io", "read", "write", "flush", "truncate", "seek",
        "tell", "close", "fileno", "readable", "writable", "closed", "name", "mode",
        "__class__", "__dict__", "no_such_attribute",
    ]  # fmt: skip
    with CrashFS(record=False) as crash_fs:
        fd = os.open("/f", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            handle: Any = _pyfakefs.open_file(crash_fs.filesystem, fd)
            assert type(handle) is _pyfakefs.RawBinaryFile
            for name in names:
                fast = _outcome(lambda n=name: getattr(handle, n))
                _retype(handle, _pyfakefs.FakeBinaryFileWrapper)
                slow = _outcome(lambda n=name: getattr(handle, n))
                _retype(handle, _pyfakefs.RawBinaryFile)
                if name == "__class__":
                    continue  # (the class is what differs, by design)
                assert fast == slow, name
            assert os.write(fd, b"abc") == 3
            os.lseek(fd, 0, os.SEEK_SET)
            assert os.read(fd, 10) == b"abc"
        finally:
            os.close(fd)


def _retype(obj: Any, cls: type) -> None:
    obj.__class__ = cls


def _outcome(get: object) -> tuple[str, object]:
    """What an attribute access gives, comparable across two classes: the value (bound
    methods by their function), or the error type."""
    assert callable(get)
    try:
        value = get()
    except AttributeError:
        return ("AttributeError", None)
    func = getattr(value, "__func__", None)
    if func is not None:
        return ("method", func)
    if callable(value) and getattr(value, "__name__", None):
        return ("callable", value.__name__)
    return ("value", value if isinstance(value, int | str | bool | type(None)) else type(value))
