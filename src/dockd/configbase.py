"""The base of every config section: frozen, and unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A TOML table. Frozen once loaded; an unknown key is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
