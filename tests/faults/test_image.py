"""DiskImage: normalised, immutable, hashable, serialisable."""

from __future__ import annotations

import json

import pytest
import yaml

from crashkit.faults import DiskImage


def test_paths_are_normalised_and_sorted_and_files_read_only() -> None:
    image = DiskImage({"/b//x": b"1", "/a/./y": b"2"}, ("/z", "/a", "/a"))
    assert list(image.files) == ["/a/y", "/b/x"]
    assert image.dirs == ("/z",)  # /a is implied by /a/y
    assert image.all_dirs() == ("/a", "/b", "/z")
    assert image == DiskImage({"/a/y": b"2", "/b/x": b"1"}, ("/z", "/tmp"))
    with pytest.raises(TypeError):
        image.files["/c"] = b""  # type: ignore[index]


def test_equal_images_hash_equal_and_deduplicate() -> None:
    a = DiskImage({"/d/f": b"x"}, ("/d",))
    b = DiskImage({"/d/f": b"x"}, ("/d",))
    assert a == b
    assert len({a, b, DiskImage({"/d/f": b"y"})}) == 2


@pytest.mark.parametrize(
    ("files", "dirs"),
    [
        ({"relative": b""}, ()),
        ({"/a": "text"}, ()),
        ({"/a": b"", "/a/b": b""}, ()),
        ({"/a": b""}, ("/a",)),
        ({}, ("/",)),
    ],
)
def test_inconsistent_images_are_rejected(files: dict[str, object], dirs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        DiskImage(files, dirs)  # type: ignore[arg-type]


def test_round_trip_keeps_text_readable_and_binary_exact() -> None:
    image = DiskImage(
        {"/s/log": b'{"a":1}\n{"b"', "/s/zeros": b"ab\0\0", "/s/bad": b"\xff"}, ("/e",)
    )
    data = image.to_dict()
    assert data["files"]["/s/log"] == '{"a":1}\n{"b"'
    assert data["files"]["/s/zeros"] == {"base64": "YWIAAA=="}
    assert DiskImage.from_dict(json.loads(json.dumps(data))) == image
    assert DiskImage.from_dict(yaml.safe_load(yaml.safe_dump(data))) == image
