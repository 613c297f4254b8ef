"""The base of every config section: frozen, unknown keys are errors, numbers are numbers."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

_NUMBERS = (int, float)


def _number_kind(annotation: Any) -> str | None:
    """``"int"``/``"float"`` when a field holds only a number (or None), else None."""
    if annotation in _NUMBERS:
        return "float" if annotation is float else "int"
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if args and all(a in _NUMBERS for a in args):
            return "float" if float in args else "int"
    return None


def toml_repr(value: Any) -> str:
    """A value the way it stands in the TOML file (``true``, ``"24"``), for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"{str(value)!r} must be an absolute path")
    return value


#: A path key that must be absolute (the trash, an archive target, the report folder).
AbsolutePath = Annotated[Path, AfterValidator(_absolute)]


class Section(BaseModel):
    """A TOML table. Frozen once loaded; an unknown key is an error, never ignored.

    A number key takes a TOML number only: pydantic would read ``true`` as 1 and
    ``"24"`` as 24, so a slip of the pen (``clock_tolerance_hours = true``) would
    pass ``dockd config check`` as a policy nobody wrote. An integer where a float
    goes is fine; a float where an integer goes is pydantic's own error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, bool | str) or info.field_name is None:
            return value
        field = cls.model_fields.get(info.field_name)
        kind = _number_kind(field.annotation) if field is not None else None
        if kind is not None:
            what = "a number" if kind == "float" else "a whole number"
            raise ValueError(f"must be {what}, not {toml_repr(value)}")
        return value
