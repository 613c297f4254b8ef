"""Under systemd, dockd's events reach journald as native fields: a ``PRIORITY`` per level
(``journalctl -p warning``), ``SYSLOG_IDENTIFIER=dockd`` and every context value as a
``DOCKD_`` field (``journalctl DOCKD_DEVICE=CAM-0042``).

Most tests' journal is a datagram socket in the test's directory, read back and parsed the
way journald parses its native protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/),
so the test sees exactly the bytes journald would receive. The ``root`` test sends to a
real systemd-journald (a journal namespace of its own, started by the test, since a
container runs no journald) and reads the entry back with ``journalctl``.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from dockd.config.logs import LoggingConfig
from dockd.logs import setup_logging
from tests.helpers.skips import need

_FD = struct.calcsize("i")


@dataclass
class Message:
    """One message as journald would store it."""

    fields: dict[str, str]
    binary: set[str]  # fields sent in the length-prefixed form (values with newlines)
    via_memfd: bool


def parse(data: bytes) -> tuple[dict[str, str], set[str]]:
    """The native protocol: ``KEY=VALUE\\n``, or ``KEY\\n`` + little-endian u64 length +
    value + ``\\n`` for values that may hold newlines."""
    fields: dict[str, str] = {}
    binary: set[str] = set()
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = end + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + size]
            assert data[end + 9 + size : end + 10 + size] == b"\n", "binary field not closed"
            binary.add(key.decode())
            i = end + 10 + size
        assert key.decode() not in fields, f"field {key!r} sent twice"
        fields[key.decode()] = value.decode()
    return fields, binary


@dataclass
class Journal:
    path: Path
    sock: socket.socket

    def received(self) -> list[Message]:
        """Every message queued on the socket (sending is synchronous: a logged event is
        already here when the log call returns)."""
        out: list[Message] = []
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(
                    1 << 20, socket.CMSG_SPACE(_FD), socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                return out
            via_memfd = False
            for level, kind, payload in anc:
                assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
                (fd,) = struct.unpack("i", payload[:_FD])
                try:
                    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
                    assert seals & fcntl.F_SEAL_WRITE, "journald refuses an unsealed memfd"
                    assert data == b"", "a memfd message carries no payload of its own"
                    # journald maps the memfd: read from its start, whatever its offset.
                    data = os.pread(fd, os.fstat(fd).st_size, 0)
                finally:
                    os.close(fd)
                via_memfd = True
            fields, binary = parse(data)
            out.append(Message(fields, binary, via_memfd))

    def one(self) -> Message:
        got = self.received()
        assert len(got) == 1, f"expected one message, got {len(got)}"
        return got[0]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    path = tmp_path / "journal.socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield Journal(path, sock)
    sock.close()


def log() -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger("dockd.test")  # type: ignore[no-any-return]


def test_a_warning_reaches_the_journal_with_priority_4_and_its_context(
    journal: Journal,
) -> None:
    stderr = io.StringIO()
    setup_logging("info", "journald", stream=stderr, journal_socket=journal.path)
    with structlog.contextvars.bound_contextvars(session_id="S-0001", device="CAM-0042"):
        log().bind(officer="A1234").warning(
            "low free space on the recorder", free_bytes=1024, file="DCIM/100/a.mp4"
        )
    msg = journal.one()
    assert msg.fields["PRIORITY"] == "4"
    assert msg.fields["SYSLOG_IDENTIFIER"] == "dockd"
    assert msg.fields["DOCKD_SESSION_ID"] == "S-0001"
    assert msg.fields["DOCKD_DEVICE"] == "CAM-0042"
    assert msg.fields["DOCKD_OFFICER"] == "A1234"
    assert msg.fields["DOCKD_FILE"] == "DCIM/100/a.mp4"
    assert msg.fields["DOCKD_FREE_BYTES"] == "1024"
    # What `journalctl -u dockd` shows: the event, then which device and which file.
    assert msg.fields["MESSAGE"].startswith("low free space on the recorder ")
    assert "device=CAM-0042" in msg.fields["MESSAGE"]
    assert "file=DCIM/100/a.mp4" in msg.fields["MESSAGE"]
    assert not {"DOCKD_LEVEL", "DOCKD_EVENT", "DOCKD_TIMESTAMP"} & msg.fields.keys()
    assert stderr.getvalue() == "", "an event the journal took is not written twice"


@pytest.mark.parametrize(
    ("method", "priority"),
    [("debug", "7"), ("info", "6"), ("warning", "4"), ("error", "3"), ("critical", "2")],
)
def test_each_level_has_its_syslog_priority(journal: Journal, method: str, priority: str) -> None:
    setup_logging("debug", "journald", stream=io.StringIO(), journal_socket=journal.path)
    getattr(log(), method)("dock finished", device="CAM-0042")
    assert journal.one().fields["PRIORITY"] == priority


def test_the_configured_level_still_filters(journal: Journal) -> None:
    setup_logging("warning", "journald", stream=io.StringIO(), journal_socket=journal.path)
    log().info("copy starting")
    log().error("dock failed", error="recorder removed")
    assert [m.fields["PRIORITY"] for m in journal.received()] == ["3"]


def test_a_traceback_arrives_intact_in_the_binary_form(journal: Journal) -> None:
    setup_logging("info", "journald", stream=io.StringIO(), journal_socket=journal.path)
    try:
        raise ValueError("bad MP4 header\nat offset 0x20")
    except ValueError:
        log().exception("dock failed", device="CAM-0042")
    msg = journal.one()
    assert msg.fields["PRIORITY"] == "3"
    assert "MESSAGE" in msg.binary
    first, *rest = msg.fields["MESSAGE"].split("\n")
    assert first == "dock failed device=CAM-0042"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-2:] == ["ValueError: bad MP4 header", "at offset 0x20"]
    assert msg.fields["DOCKD_DEVICE"] == "CAM-0042"
    assert "DOCKD_DEVICE" not in msg.binary


def test_a_value_with_newlines_is_one_field(journal: Journal) -> None:
    setup_logging("info", "journald", stream=io.StringIO(), journal_socket=journal.path)
    log().error("unmount failed", error="umount: target is busy\n(in use by 1234)")
    msg = journal.one()
    assert msg.fields["DOCKD_ERROR"] == "umount: target is busy\n(in use by 1234)"
    assert "DOCKD_ERROR" in msg.binary
    assert 'error="umount: target is busy\\n(in use by 1234)"' in msg.fields["MESSAGE"]


def test_a_message_too_big_for_a_datagram_goes_through_a_sealed_memfd(
    journal: Journal,
) -> None:
    setup_logging("info", "journald", stream=io.StringIO(), journal_socket=journal.path)
    listing = "\n".join(f"DCIM/100/FILE{i:05}.MP4" for i in range(200_000))  # ~4.6 MB
    log().warning("files left on the recorder", files=listing, device="CAM-0042")
    msg = journal.one()
    assert msg.via_memfd
    assert msg.fields["DOCKD_FILES"] == listing
    assert msg.fields["DOCKD_DEVICE"] == "CAM-0042"
    assert msg.fields["PRIORITY"] == "4"


def test_odd_keys_and_undecodable_file_names_become_valid_fields(journal: Journal) -> None:
    """journald drops a field whose name is not A-Z, 0-9 and ``_``; a FAT name that is
    not UTF-8 (kept by Python as surrogates) must not make logging raise."""
    setup_logging("info", "journald", stream=io.StringIO(), journal_socket=journal.path)
    log().info("file copied", **{"file-name": "a\udcff.mp4", "bytes": 10, "ok": True})
    msg = journal.one()
    assert msg.fields["DOCKD_FILE_NAME"] == "a\\udcff.mp4"
    assert msg.fields["DOCKD_BYTES"] == "10"
    assert msg.fields["DOCKD_OK"] == "true"


def _journal_stream(f: io.TextIOWrapper) -> str:
    st = os.fstat(f.fileno())
    return f"{st.st_dev}:{st.st_ino}"


def test_auto_picks_journald_only_when_stderr_is_the_journal(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd sets JOURNAL_STREAM to the DEVICE:INODE of the stream it gives the
    service; ``dockd ... 2>file`` inside that service is no longer the journal."""
    with open(tmp_path / "stderr", "w") as stderr, open(tmp_path / "other", "w") as other:
        monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(stderr))
        setup_logging("info", "auto", stream=stderr, journal_socket=journal.path)
        log().warning("clock wrong", device="CAM-0042")
        assert journal.one().fields["DOCKD_DEVICE"] == "CAM-0042"

        monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(other))
        setup_logging("info", "auto", stream=stderr, journal_socket=journal.path)
        log().warning("clock wrong", device="CAM-0043")

        monkeypatch.delenv("JOURNAL_STREAM")
        setup_logging("info", "auto", stream=stderr, journal_socket=journal.path)
        log().warning("clock wrong", device="CAM-0044")

        # The journal's stream, but no journal socket to send to (a container, a chroot).
        monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(stderr))
        setup_logging("info", "auto", stream=stderr, journal_socket=tmp_path / "absent")
        log().warning("clock wrong", device="CAM-0045")
    assert journal.received() == []
    lines = [json.loads(line) for line in (tmp_path / "stderr").read_text().splitlines()]
    assert [(e["event"], e["level"], e["device"]) for e in lines] == [
        ("clock wrong", "warning", d) for d in ("CAM-0043", "CAM-0044", "CAM-0045")
    ]


@pytest.mark.parametrize("how", ["socket removed", "nobody listening"])
def test_a_dead_journal_falls_back_to_json_on_stderr(
    journal: Journal, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    setup_logging("info", "journald", journal_socket=journal.path)
    journal.sock.close()
    if how == "socket removed":
        journal.path.unlink()
    with structlog.contextvars.bound_contextvars(session_id="S-0001", device="CAM-0042"):
        log().warning("low free space on the recorder", free_bytes=1024)
        try:
            raise OSError("recorder removed")
        except OSError:
            log().exception("dock failed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first == {
        "session_id": "S-0001",
        "device": "CAM-0042",
        "event": "low free space on the recorder",
        "free_bytes": 1024,
        "level": "warning",
        "timestamp": first["timestamp"],
    }
    assert (second["event"], second["level"]) == ("dock failed", "error")
    assert second["exception"][0]["exc_value"] == "recorder removed"


def test_journald_is_a_format_the_config_accepts() -> None:
    assert LoggingConfig.model_validate({"format": "journald"}).format == "journald"


_JOURNALD = Path("/lib/systemd/systemd-journald")


@contextlib.contextmanager
def running_journald(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real systemd-journald serving a journal namespace of its own (so the test
    touches no other journal, and works where systemd is not PID 1); its namespace and
    native socket. Ready when it says so over ``NOTIFY_SOCKET``, as under systemd."""
    namespace = f"dockd-test-{uuid.uuid4().hex[:12]}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)  # only a guard against a journald that never starts
    machine = Path("/etc/machine-id").read_text().strip()
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), SYSTEMD_LOG_TARGET="console")
    with open(tmp_path / "journald.out", "w") as out:
        proc = subprocess.Popen([str(_JOURNALD), namespace], env=env, stdout=out, stderr=out)
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
        yield namespace, Path(f"/run/systemd/journal.{namespace}/socket")
    finally:
        notify.close()
        proc.terminate()
        proc.wait()
        for state in (
            Path(f"/run/systemd/journal.{namespace}"),
            Path(f"/var/log/journal/{machine}.{namespace}"),
            Path(f"/run/log/journal/{machine}.{namespace}"),
        ):
            shutil.rmtree(state, ignore_errors=True)


@pytest.mark.root
def test_journalctl_finds_dockd_events_by_priority_and_device(tmp_path: Path) -> None:
    need(
        root=True,
        tools=("journalctl", str(_JOURNALD)),
        why="starts a systemd-journald of its own (Debian package systemd)",
    )
    device = f"CAM-{uuid.uuid4().hex[:8]}"
    with running_journald(tmp_path) as (namespace, sock):
        setup_logging("info", "journald", stream=io.StringIO(), journal_socket=sock)
        with structlog.contextvars.bound_contextvars(session_id="S-0001", device=device):
            log().info("copy starting", files=3)
            log().warning("clock wrong", drift_seconds=3600)
            try:
                raise OSError("read error\nat sector 2048")
            except OSError:
                log().exception("dock failed")
        journalctl = ["journalctl", f"--namespace={namespace}"]
        subprocess.run([*journalctl, "--sync"], check=True)  # every entry sent is written
        found = subprocess.run(
            [*journalctl, "-o", "json", "-p", "warning", "SYSLOG_IDENTIFIER=dockd",
             f"DOCKD_DEVICE={device}"],
            check=True, capture_output=True, text=True,
        ).stdout.splitlines()  # fmt: skip
    warning, error = (json.loads(line) for line in found)  # not the info
    assert (warning["PRIORITY"], warning["DOCKD_DRIFT_SECONDS"]) == ("4", "3600")
    assert warning["MESSAGE"].startswith("clock wrong ")
    assert error["PRIORITY"] == "3"
    assert error["DOCKD_SESSION_ID"] == "S-0001"
    assert error["MESSAGE"].startswith("dock failed ")
    assert error["MESSAGE"].endswith("OSError: read error\nat sector 2048")
