"""Optical archive targets: each batch also as a verified disc image, burnt when a burner is
configured (刻录光盘, R8).

The archive sweep (:mod:`dockd.sweeps.archive`) stages a batch on an ``optical`` target
as it does on a disk: a BagIt bag of verified copies. Then this module writes the bag
as ``<target>/<station>/<batch>.iso`` (:mod:`dockd.evidence.disc`: ISO 9660 with Rock
Ridge and Joliet, and UDF; the bag validated from its Rock Ridge and UDF trees), records
an ``archive.image`` audit event with the image's BLAKE3 and SHA-256, and runs
``[archive] burn_command`` with the image's path (``archive.burn`` event). A failure is
a warning alert naming the image; the staged copies stay verified and recorded, so the
image can be made or burnt by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from dockd.config.policy import ArchiveTarget
from dockd.context import Context
from dockd.errors import DockdError
from dockd.ledger import audit
from dockd.sweeps.runs import alert_once


class HasFileId(Protocol):
    """An archived copy (:class:`dockd.sweeps.archive.ArchiveItem`), by its file id."""

    @property
    def file_id(self) -> int: ...


def disc_image(
    ctx: Context, bag_dir: Path, batch: str, target: ArchiveTarget, items: Sequence[HasFileId]
) -> str | None:
    """Make, record and burn the image of the batch ``bag_dir``; its path, or None when
    no verified image could be made."""
    from dockd.evidence import disc  # pycdlib: only for archive targets on a disc

    image = bag_dir.with_name(f"{batch}.iso")
    try:
        made = disc.make_image(bag_dir, image, volid=disc.volume_id(f"{batch}_{target.name}"))
    except (OSError, DockdError) as exc:
        _alert(ctx, image, target, f"could not be made and verified: {exc}. Check the medium")
        return None
    _audit(
        ctx,
        "archive.image",
        batch,
        {**made.details(), "target": target.name, "files": [i.file_id for i in items]},
    )
    command = ctx.config.archive.burn_command
    if command:
        try:
            disc.burn(command, image)
        except DockdError as exc:
            _alert(
                ctx,
                image,
                target,
                f"is verified but could not be burnt: {exc}. Fix the burner (or the disc) and "
                "burn the image by hand",
            )
        else:
            _audit(
                ctx,
                "archive.burn",
                batch,
                {"iso": str(image), "target": target.name, "command": list(command)},
            )
    return str(image)


def _audit(ctx: Context, action: str, subject: str, details: dict[str, Any]) -> None:
    with ctx.ledger.session() as s:
        audit.record(
            s,
            at=ctx.clock.now(),
            station=ctx.config.station.id,
            actor=ctx.actor,
            action=action,
            subject_type="archive_batch",
            subject_id=subject,
            details=details,
        )


def _alert(ctx: Context, image: Path, target: ArchiveTarget, what: str) -> None:
    alert_once(
        ctx,
        "archive.disc_failed",
        str(image),
        f"archive target {target.name!r}: the disc image {image} {what}. The batch's copies "
        "stay verified and recorded on the target",
        severity="warning",
        details={"image": str(image), "target": target.name},
    )
