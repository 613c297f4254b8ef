"""Delivery of an alert once its row is committed: the log line and the notify command.

The notify command gets the alert as JSON on stdin, run as an argument list (never
via a shell), bounded by ``alerts.notify_timeout_s`` and, while the daemon stops, by
its stop (:func:`notify_deadline`). A notify command that fails is logged, not fatal.

Given the caller's session, an alert is delivered only once that session's outermost
transaction has committed (:func:`after_commit_of`): nothing is sent if it rolls
back, nor for a savepoint that rolls back, and never while a lock is held.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from dockd.config.alerts import AlertsConfig

log = structlog.get_logger("dockd.alerts")

_deadline: float | None = None


def notify_deadline(at: float) -> None:
    """From now on no notify command may run past ``at`` (time.monotonic()): the
    daemon is stopping, and its stop is bounded."""
    global _deadline
    _deadline = at


def run_notify(config: AlertsConfig, payload: dict[str, Any]) -> None:
    """Hand ``payload`` to the configured notify command, if any; log a failure."""
    if not config.notify_command:
        return
    data = json.dumps(payload, ensure_ascii=False)
    timeout = config.notify_timeout_s
    if _deadline is not None:  # the daemon is stopping: its bound comes first
        timeout = max(0.1, min(timeout, _deadline - time.monotonic()))
    try:
        proc = subprocess.run(
            list(config.notify_command),
            input=data.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error(
            "alert notify failed",
            alert_id=payload["id"],
            command=config.notify_command[0],
            error=str(exc),
        )
        return
    if proc.returncode != 0:
        log.error(
            "alert notify failed",
            alert_id=payload["id"],
            command=config.notify_command[0],
            exit_code=proc.returncode,
            stderr=proc.stderr.decode("utf-8", "replace")[-500:],
        )


@dataclass
class Written:
    """An alert row as written, and what to do once it is committed."""

    config: AlertsConfig
    payload: dict[str, Any]
    first: bool
    item: str | None
    holder: SessionTransaction | None = None  # innermost transaction holding the row
    committed: bool = False

    @property
    def alert_id(self) -> int:
        alert_id: int = self.payload["id"]
        return alert_id

    def deliver(self) -> None:
        """Log it and, for a first occurrence, run the notify command (after commit)."""
        p = self.payload
        which = {"alert_id": p["id"], "kind": p["kind"], "group": p["group"]}
        if self.first:
            what = {"severity": p["severity"], "subject": p["subject"], "message": p["message"]}
            log.warning("alert", **which, **what)
            run_notify(self.config, p)
        else:
            log.info("alert repeated", **which, occurrences=p["occurrences"], item=self.item)


# ------------------------------------------------------- delivery after a commit

_PENDING = "dockd.alerts.pending"


def after_commit_of(session: Session, written: Written) -> None:
    """Deliver ``written`` once ``session``'s outermost transaction has committed.

    The session's listeners are registered once per session (``session.info`` holds
    what is pending), so a long transaction raising many alerts adds no listeners.
    ``after_commit`` also fires when a savepoint is released; only the outermost
    commit counts. A rollback of the transaction (or savepoint) holding the row
    drops it. Delivery happens at ``after_transaction_end`` of the outermost
    transaction, when the session no longer holds a connection or any lock.
    """
    written.holder = session.get_nested_transaction() or session.get_transaction()
    pending: list[Written] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _on_commit)
        event.listen(session, "after_soft_rollback", _on_soft_rollback)
        event.listen(session, "after_transaction_end", _on_transaction_end)
    pending.append(written)


def _chain(t: SessionTransaction | None) -> Iterator[SessionTransaction]:
    while t is not None:
        yield t
        t = t.parent


def _on_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the outer transaction may still roll back
    for w in session.info.get(_PENDING, ()):
        w.committed = True


def _on_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[Written] = session.info.get(_PENDING, [])
    pending[:] = [w for w in pending if previous_transaction not in _chain(w.holder)]


def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    pending: list[Written] = session.info.get(_PENDING, [])
    done, pending[:] = list(pending), []
    for w in done:
        if not w.committed:
            # Rolled back with its transaction (often because the ledger failed): no
            # notification for a row that does not exist, but the log keeps the alert.
            log.error("alert not written: its transaction rolled back", **w.payload)
            continue
        try:
            w.deliver()
        except Exception:  # never let a notification break the caller's commit
            log.exception("alert delivery failed", alert_id=w.payload["id"])
