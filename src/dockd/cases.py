"""Cases and case tagging (R4, R5): which footage belongs to which case."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from dockd.ledger.models import Recording


def tag_on_ingest(session: Session, row: Recording, *, at: datetime, actor: str) -> None:
    """Tag a just-ingested recording with any imported case whose window covers it.

    Called by the ingest pipeline inside the transaction that writes the file row,
    so footage docked after a case import is tagged exactly like footage before it.
    """
