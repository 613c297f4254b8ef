"""The gap report names, for each gap, the explanation that covers it when there are
several devices, officers and explanations: one of the gap's device or of its
officer, whose span holds the whole gap; an approved one before one awaiting
approval, the first written before later ones. On SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.ledger.db import Ledger
from dockd.ledger.models import Device, Explanation, Officer
from tests.helpers.ledgers import BACKENDS
from tests.integration.test_reports_sql import T0, _file, _report

M = timedelta(minutes=1)


def _explain(s: Session, start: int, end: int, *, approved: bool = False, **who: Any) -> int:
    """An explanation of a gap from ``start`` to ``end`` minutes after T0."""
    row = Explanation(
        kind="gap",
        start_at=T0 + start * M,
        end_at=T0 + end * M,
        reason="test",
        station="st-test",
        written_by="olga",
        written_at=T0,
        approved_by="lena" if approved else None,
        approved_at=T0 if approved else None,
        **who,
    )
    s.add(row)
    s.flush()
    return row.id


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_each_gap_gets_the_explanation_of_its_device_or_officer_that_covers_it(
    config: Config, ledger: Ledger
) -> None:
    with ledger.session() as s:
        s.add(Device(number="DV-1", registered_at=T0 - timedelta(days=30)))
        s.add(Device(number="DV-2", registered_at=T0 - timedelta(days=30)))
        s.add(Officer(id=1, badge="012345", name="Li", created_at=T0 - timedelta(days=30)))
        s.add(Officer(id=2, badge="054321", name="Wu", created_at=T0 - timedelta(days=30)))
        s.flush()
        for minute in (0, 70, 140):  # DV-1, worn by 012345: gaps 10-70 and 80-140
            _file(s, T0 + minute * M, T0 + (minute + 10) * M)
        for minute in (0, 70):  # DV-2, worn by 054321: gap 10-70
            _file(s, T0 + minute * M, T0 + (minute + 10) * M, device_ref="DV-2", officer_id=2)
        pending_dv1 = _explain(s, 5, 75, device_ref="DV-1")
        approved_officer = _explain(s, 10, 70, approved=True, officer_badge="012345")
        _explain(s, 81, 140, approved=True, officer_badge="012345")  # from after the gap start
        _explain(s, 0, 200, approved=True, device_ref="DV-9")  # another device
        _explain(s, 0, 200, device_ref="DV-2")  # pending
        _explain(s, 0, 200, officer_badge="054321")  # pending, written later
        both = _explain(s, 9, 71, approved=True, device_ref="DV-2", officer_badge="054321")
        _explain(s, 0, 200, approved=True, officer_badge="099999")  # nobody's here
    rows = _report(ledger, config, "gaps").rows
    assert [
        (r["device"], r["officer"], r["gap_minutes"], r["explained"], r["explanation"])
        for r in rows
    ] == [
        ("DV-1", "012345", 60.0, "approved", approved_officer),
        ("DV-1", "012345", 60.0, "no", None),
        ("DV-2", "054321", 60.0, "approved", both),
    ]
    assert pending_dv1 not in [r["explanation"] for r in rows]


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_pending_explanation_shows_when_it_is_the_only_one(
    config: Config, ledger: Ledger
) -> None:
    with ledger.session() as s:
        s.add(Device(number="DV-1", registered_at=T0 - timedelta(days=30)))
        s.add(Officer(id=1, badge="012345", name="Li", created_at=T0 - timedelta(days=30)))
        s.flush()
        _file(s, T0, T0 + 10 * M)
        _file(s, T0 + 70 * M, T0 + 80 * M)
        first = _explain(s, 10, 70, device_ref="DV-1")
        _explain(s, 10, 70, officer_badge="012345")
    (row,) = _report(ledger, config, "gaps").rows
    assert (row["explained"], row["explanation"]) == ("pending", first)
    assert (row["gap_from"], row["gap_to"]) == (
        "2026-03-14T08:10:00+08:00",
        "2026-03-14T09:10:00+08:00",
    )
