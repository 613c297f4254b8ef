"""Evidence export (R10, R11): a BagIt bag (RFC 8493) of originals, byte for byte.

``dockd export --case C --to DIR`` (or file ids) writes::

    DIR/
      bagit.txt                 BagIt-Version 1.0, UTF-8
      bag-info.txt              unit, extractor, approvers, grant, reason, time, case, chain head
      manifest-sha256.txt       payload manifests (RFC 8493)
      manifest-sha512.txt
      blake3sums.txt            the ledger's BLAKE3 of each file (``b3sum -c`` format)
      recording-form.csv        摄录情况记录表: the recording form filled from the ledger
      recording-form.html       the same form, printable, labelled in Chinese and English
      tagmanifest-sha256.txt    hashes of the tag files above
      tagmanifest-sha512.txt
      data/<YYYY>/<MM>/<DD>/... the originals, at their store paths

This module is the export flow: choose the files, check the access, copy, register.
Each original is read once (:func:`dockd.evidence.bag.copy_in`), hashed with BLAKE3,
SHA-256 and SHA-512 while it is copied, and its BLAKE3 and size are checked against
the ledger: a mismatch aborts the whole export with an error naming the file and a
critical alert. The bag (:mod:`dockd.evidence.bag`, written with bagit-python) and
the form (:mod:`dockd.evidence.form`) are built in a hidden sibling directory and
renamed into place in the transaction that registers the export, so ``DIR`` is
either a complete bag recorded in the audit trail or absent.

With ``--iso FILE`` the finished bag is also written as a disc image for burning
(:mod:`dockd.evidence.disc`: ISO 9660 with Rock Ridge and Joliet, and UDF, volume id
from the case number), read back and its bag validated from the image before the export is
registered; the image's path, BLAKE3 and SHA-256 go into each export event, and it
gets its name in the same step as the bag. An existing ``FILE`` is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.context import NO_PROGRESS, Progress
from dockd.errors import DockdError, NotFound, UsageError
from dockd.evidence import bag, disc
from dockd.evidence.access import Access, check, files_by_id, register
from dockd.evidence.bycase import original_path
from dockd.evidence.form import FORM_CSV, FORM_HTML, FormRow, describe, form_csv, form_html
from dockd.ledger.db import Ledger
from dockd.ledger.models import AuditEvent, Recording

BLAKE3_TAG_FILE = "blake3sums.txt"
ALGORITHMS = ("sha256", "sha512")
EXPORT_MODE = 0o444  # the copies in a handed-over bag: read-only for everyone


class ExportError(DockdError):
    """An original did not match the ledger (or vanished): nothing was exported."""

    exit_code = 65  # EX_DATAERR


@dataclass
class _Item:
    row_id: int
    src: Path
    rel: PurePosixPath  # inside data/
    size: int
    blake3: str
    info: dict[str, Any]
    copied: bag.Payload | None = None

    @property
    def sha256(self) -> str:
        assert self.copied is not None
        return self.copied.hashes["sha256"]


@dataclass(frozen=True)
class Purpose:
    """What a bag is for when it is not a case's evidence export (the quarterly
    hand-over, :mod:`dockd.evidence.handover`): its identifier and description in
    bag-info.txt, tag files of its own, whether the finished bag is validated as its
    receiver would (every file re-read) before it is registered, and a row of its own
    written in the transaction that registers the export (given the session, the
    result and the finished bag, before it is renamed into place)."""

    identifier: str
    description: str
    tag_files: Mapping[str, str] = field(default_factory=dict)
    validate: bool = False
    record: Callable[[Session, ExportResult, Path], None] | None = None


@dataclass(frozen=True)
class ExportResult:
    bag: Path
    export_id: str
    files: int
    bytes: int
    file_ids: tuple[int, ...]
    image: disc.DiscImage | None = None


# ----------------------------------------------------------------------------- select


def select_files(
    session: Session, *, file_ids: Sequence[int], case: str | None, station: str
) -> list[Recording]:
    """This station's stored files of a case, or the given ids; refuses removed files and
    files kept at another station (a shared PostgreSQL ledger)."""
    if bool(file_ids) == bool(case):
        raise UsageError("give either --case or file ids (not both, not neither)")
    if case:
        rows = list(
            session.scalars(
                select(Recording)
                .where(
                    Recording.case_number == case,
                    Recording.state == "stored",
                    Recording.station == station,
                )
                .order_by(Recording.recorded_start, Recording.id)
            )
        )
        if not rows:
            raise NotFound(
                f"no footage stored at station {station} is tagged with case {case!r}; "
                "see `dockd tag`"
            )
        return rows
    rows = files_by_id(session, file_ids)
    elsewhere = [f"{r.id} (at {r.station})" for r in rows if r.station != station]
    if elsewhere:
        raise UsageError(
            f"file(s) {', '.join(elsewhere)} are stored at another station; export them there"
        )
    removed = [r.id for r in rows if r.state != "stored"]
    if removed:
        raise UsageError(
            f"file(s) {', '.join(map(str, removed))} are trashed or purged; only stored "
            "originals can be exported"
        )
    return rows


# ----------------------------------------------------------------------------- export


def _chain_head(session: Session) -> str | None:
    return session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))


def _check_dest(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise UsageError(f"{dest} already exists and is not an empty directory; choose a new --to")


def export_bag(
    *,
    config: Config,
    ledger: Ledger,
    alerts: AlertSink,
    clock: Clock,
    dest: Path,
    access: Access,
    file_ids: Sequence[int] = (),
    case: str | None = None,
    iso: Path | None = None,
    purpose: Purpose | None = None,
    progress: Progress = NO_PROGRESS,
) -> ExportResult:
    """Write an evidence bag of the chosen files to ``dest``, registered as export events;
    with ``iso``, also a verified disc image of the bag at that (new) file. ``progress``
    is told of each file copied (a bar on a terminal)."""
    dest = dest.absolute()
    _check_dest(dest)
    if iso is not None:
        iso = iso.absolute()
        disc.refuse_existing(iso)
        if iso.is_relative_to(dest):
            raise UsageError(f"--iso {iso} is inside the bag --to {dest}; write it elsewhere")
    with ledger.session() as s:
        rows = select_files(s, file_ids=file_ids, case=case, station=config.station.id)
        check(access, rows, what="exporting")
        items = []
        for row in rows:
            prefix = PurePosixPath("quarantine") if row.in_quarantine else PurePosixPath()
            items.append(
                _Item(
                    row_id=row.id,
                    src=original_path(config, row),
                    rel=prefix / row.store_path,
                    size=row.size_bytes,
                    blake3=row.blake3,
                    info=describe(s, row, config),
                )
            )
        head = _chain_head(s)
    export_id = uuid.uuid4().hex
    now = clock.now()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.partial-{export_id[:8]}"
    work.mkdir(mode=0o750)
    image: disc.DiscImage | None = None
    image_tmp: Path | None = None
    try:
        progress.begin("export", len(items), sum(i.size for i in items))
        for item in items:
            _copy_one(alerts, item, work, export_id)
            progress.step(item.size)
        meta = {
            "unit": config.station.unit,
            "case": case or ", ".join(sorted({i.info["case_number"] or "" for i in items} - {""})),
            "by": access.by or "",
            "approved_by": access.approved_by or "",
            "time": now.astimezone(config.station.tz).isoformat(timespec="seconds"),
            "reason": access.reason or "",
            "on_behalf": access.on_behalf or "",
            "grant": "" if access.grant_id is None else str(access.grant_id),
            "export_id": export_id,
            "chain_head": head or "",
        }
        _write_bag(work, items, meta, config, purpose)
        if purpose is not None and purpose.validate:
            bag.validate(work)
        if iso is not None:
            image_tmp = disc.temporary_name(iso)
            made = disc.write_image(
                work,
                image_tmp,
                volid=disc.volume_id(meta["case"], fallback=f"DOCKD_{export_id[:8]}"),
            )
            image = disc.DiscImage(iso, made.volume_id, made.size, made.blake3, made.sha256)
        result = ExportResult(
            bag=dest,
            export_id=export_id,
            files=len(items),
            bytes=sum(i.size for i in items),
            file_ids=tuple(i.row_id for i in items),
            image=image,
        )
        _register_and_publish(
            ledger, items, access, work, result, case, image_tmp, purpose, now=now
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if image_tmp is not None:
            with contextlib.suppress(OSError):
                image_tmp.unlink()
        raise
    return result


def _copy_one(alerts: AlertSink, item: _Item, work: Path, export_id: str) -> None:
    def matches_ledger(copied: bag.Payload) -> None:
        if copied.blake3 != item.blake3 or copied.size != item.size:
            _mismatch(
                alerts,
                item,
                export_id,
                f"its original {item.src} has BLAKE3 {copied.blake3} ({copied.size} bytes) but "
                f"the ledger recorded {item.blake3} ({item.size} bytes) at ingest: the stored "
                "original has changed",
            )

    try:
        item.copied = bag.copy_in(
            item.src, work, item.rel, ALGORITHMS, mode=EXPORT_MODE, check=matches_ledger
        )
    except FileNotFoundError as exc:
        if str(exc.filename) != str(item.src):
            raise ExportError(f"cannot copy file {item.row_id}: {exc}; nothing exported") from exc
        _mismatch(alerts, item, export_id, f"its original {item.src} is missing from the store")
    except OSError as exc:
        raise ExportError(
            f"cannot copy file {item.row_id} ({item.src}): {exc.strerror or exc}; nothing exported"
        ) from exc


def _mismatch(alerts: AlertSink, item: _Item, export_id: str, what: str) -> NoReturn:
    alerts.raise_alert(
        "export.integrity",
        f"file:{item.row_id}",
        f"evidence export aborted: file {item.row_id} does not match the ledger: {what}. "
        "Do not use this file as evidence before it is investigated",
        severity="critical",
        details={"file_id": item.row_id, "export_id": export_id, "path": str(item.src)},
    )
    raise ExportError(
        f"file {item.row_id} does not match the ledger: {what}. The export was aborted and "
        "nothing was written; a critical alert was raised"
    )


def _write_bag(
    work: Path,
    items: Sequence[_Item],
    meta: dict[str, str],
    config: Config,
    purpose: Purpose | None,
) -> None:
    form = [
        FormRow(
            no=n,
            file_id=i.row_id,
            size_bytes=i.size,
            blake3=i.blake3,
            sha256=i.sha256,
            bag_path="data/" + i.rel.as_posix(),
            **i.info,
        )
        for n, i in enumerate(items, start=1)
    ]
    info = {
        "Source-Organization": meta["unit"],
        "Bagging-Date": meta["time"][:10],
        "External-Identifier": (
            purpose.identifier if purpose else meta["case"] or meta["export_id"]
        ),
        "External-Description": (
            purpose.description
            if purpose
            else f"Evidence export of {len(items)} body-worn recorder original(s)"
        ),
        "Internal-Sender-Identifier": meta["export_id"],
        "Unit": meta["unit"],
        "Station": config.station.id,
        "Case-Number": meta["case"],
        "Extracted-By": meta["by"],
        "Approved-By": meta["approved_by"],
        "Export-Reason": meta["reason"],
        "On-Behalf-Of": meta["on_behalf"],
        "Access-Grant": meta["grant"],
        "Export-Time": meta["time"],
        "Audit-Chain-Head": meta["chain_head"],
    }
    bag.write_bag(
        work,
        [i.copied for i in items if i.copied is not None],
        info,
        algorithms=ALGORITHMS,
        blake3_name=BLAKE3_TAG_FILE,
        tag_files={
            FORM_CSV: form_csv(form),
            FORM_HTML: form_html(form, meta),
            **(purpose.tag_files if purpose else {}),
        },
    )


def _register_and_publish(
    ledger: Ledger,
    items: Sequence[_Item],
    access: Access,
    work: Path,
    result: ExportResult,
    case: str | None,
    image_tmp: Path | None,
    purpose: Purpose | None,
    *,
    now: datetime,
) -> None:
    """Audit the export and move the bag (and its image) into place in one step: all or
    none."""
    dest, export_id, image = result.bag, result.export_id, result.image
    renamed = False
    published: Path | None = None
    try:
        with ledger.session() as s:
            rows = files_by_id(s, [i.row_id for i in items])
            sums = {i.row_id: i.sha256 for i in items}
            for row in rows:
                register(
                    s,
                    [row],
                    access,
                    action="file.export",
                    at=now,
                    extra={
                        "export_id": export_id,
                        "bag": str(dest),
                        "sha256": sums[row.id],
                        "export_case": case,
                        **(image.details() if image is not None else {}),
                    },
                )
            if purpose is not None and purpose.record is not None:
                purpose.record(s, result, work)
            _check_dest(dest)
            with contextlib.suppress(FileNotFoundError):
                dest.rmdir()  # an empty directory given as --to
            os.rename(work, dest)
            renamed = True
            if image is not None and image_tmp is not None:
                disc.publish(image_tmp, image.path)
                published = image.path
    except BaseException:
        if published is not None:
            published.unlink()
        if renamed:
            os.rename(dest, work)
        raise
