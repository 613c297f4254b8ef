"""``[access]``: who approves access to footage, and how long a grant lasts (issue 12).

A rule is a list of steps; a step is a list of roles, any one of which approves it; a
request is granted once every step has an approval, each from a different person. The
defaults follow the regulations (003 §16, 000 §16, R15): viewing needs legal or the
leader; exporting needs legal *and* the leader; release outside the unit needs the
leader; footage tagged ``restricted`` needs the leader in addition (a step the rule
already has is not asked twice).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from dockd.config.base import Section

#: The roles a step may name: the words of ``dockd.auth.roles.Role`` but the auditor, who
#: changes nothing (config sits below auth, so they are repeated here; a test compares).
ROLE_WORDS = ("officer", "device-manager", "custodian", "legal", "leader", "admin")
Kind = Literal["view", "export", "external"]
KINDS: tuple[Kind, ...] = ("view", "export", "external")

Steps = tuple[tuple[str, ...], ...]


def _steps(value: Steps) -> Steps:
    if not value:
        raise ValueError('a rule needs at least one step, e.g. [["legal", "leader"]]')
    for step in value:
        if not step:
            raise ValueError("a step names at least one role; remove the empty []")
        unknown = [r for r in step if r not in ROLE_WORDS]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} is not a role; the roles are: "
                + ", ".join(ROLE_WORDS)
            )
    return tuple(tuple(dict.fromkeys(step)) for step in value)


class GrantHours(Section):
    """How long a grant of each kind lasts, in hours from its last approval."""

    view: Annotated[float, Field(gt=0, le=24 * 366)] = 72.0
    export: Annotated[float, Field(gt=0, le=24 * 366)] = 168.0
    external: Annotated[float, Field(gt=0, le=24 * 366)] = 168.0


class AccessConfig(Section):
    """The approval rule of each kind of access, the extra step for restricted footage,
    and the grants' lifetimes."""

    view: Steps = (("legal", "leader"),)
    export: Steps = (("legal",), ("leader",))
    external: Steps = (("leader",),)
    restricted: Steps = (("leader",),)
    # Asked for the party concerned or a higher office (004 全过程 §27, 001 §20): the
    # leader approves in addition, as for restricted footage.
    on_behalf: Steps = (("leader",),)
    grant_hours: GrantHours = GrantHours()

    @field_validator("view", "export", "external", "restricted", "on_behalf")
    @classmethod
    def _valid_steps(cls, value: Steps) -> Steps:
        return _steps(value)

    def steps_for(self, kind: Kind, *, restricted: bool, on_behalf: bool = False) -> Steps:
        """The steps a request of ``kind`` needs; restricted footage adds the
        ``restricted`` steps, a request for someone outside the ``on_behalf`` steps, each
        only where the rule does not already have them."""
        rule = {"view": self.view, "export": self.export, "external": self.external}[kind]
        extra = (self.restricted if restricted else ()) + (self.on_behalf if on_behalf else ())
        for step in extra:
            if frozenset(step) not in {frozenset(s) for s in rule}:
                rule = (*rule, step)
        return rule

    def hours_for(self, kind: Kind) -> float:
        return float(getattr(self.grant_hours, kind))
