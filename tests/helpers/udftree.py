"""The UDF tree of a disc image as pycdlib reads it, for tests to compare with the bag."""

from __future__ import annotations

from pathlib import Path

import pycdlib


def udf_tree(image: Path) -> dict[str, bytes]:
    """Each file of the UDF tree of ``image``: its path ("/data/x") -> its content.

    Paths are built here one level at a time: pycdlib's ``walk()`` decodes a parent's
    name with its child's encoding ("data" above a Chinese name comes back garbled)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        out: dict[str, bytes] = {}
        todo = [""]
        while todo:
            at = todo.pop()
            walk = iso.walk(udf_path=at or "/")
            _here, dirs, names = next(walk)
            walk.close()
            todo += [f"{at}/{d}" for d in dirs]
            for name in names:
                with iso.open_file_from_iso(udf_path=f"{at}/{name}") as fh:
                    out[f"{at}/{name}"] = fh.read()
        return out
    finally:
        iso.close()
