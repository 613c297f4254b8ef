"""A real LDAP directory for the tests: Debian's ``slapd``, started and stopped by the run.

A throw-away server with its own ``slapd.conf`` (mdb backend, a root DN) and database
in a temporary directory, listening on 127.0.0.1 only: ``ldaps://`` with a
certificate made here by ``openssl`` (its own CA, so a test can pass ``ca_file``),
and plain ``ldap://`` for the readiness probe and for loading entries. It is ready
when a real bind as the root DN answers (polled, bounded by a deadline); if slapd
dies or never answers, the error carries its stderr. The people are loaded with
``ldapadd``, each with a salted hash (``slappasswd``) as ``userPassword``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret-for-tests"  # a throw-away server's
SERVICE_DN = f"cn=dockd,{SUFFIX}"
SERVICE_PW = "service-secret-for-tests"
DEADLINE_S = 90.0  # generous: a loaded 2-core CI machine


@dataclass(frozen=True)
class Person:
    uid: str
    password: str

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE}"


#: The people in the directory.
ALICE = Person("alice", "alice-directory-pass")
BOB = Person("bob", "bob-directory-pass-2")


@dataclass(frozen=True)
class DirectoryServer:
    ldap_url: str  # plain, this host only
    ldaps_url: str  # TLS, certificate signed by ca_file
    ca_file: Path
    password_file: Path  # holds SERVICE_PW


def tool(name: str) -> str | None:
    """Where ``name`` is: on PATH, or in /usr/sbin (slapd, slappasswd), which a
    non-root PATH often lacks."""
    found = shutil.which(name)
    if found is None and os.access(sbin := f"/usr/sbin/{name}", os.X_OK):
        found = sbin
    return found


def _run_tool(name: str) -> str:
    found = tool(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (Debian packages slapd, ldap-utils)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    ca_key, ca, key, csr, cert = (
        str(d / n) for n in ("ca.key", "ca.pem", "key.pem", "csr", "cert.pem")
    )
    ext = d / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for command in (
        f"req -x509 -newkey rsa:2048 -nodes -days 2 -keyout {ca_key} -out {ca}",
        f"req -newkey rsa:2048 -nodes -keyout {key} -out {csr}",
        f"x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -days 2 -out {cert} "
        f"-extfile {ext}",
    ):
        subject = ["-subj", "/CN=dockd test CA" if "-x509" in command else "/CN=localhost"]
        args = ["openssl", *command.split(), *(subject if command.startswith("req") else [])]
        subprocess.run(args, check=True, capture_output=True)
    return Path(ca), Path(cert), Path(key)


def unrelated_ca(d: Path) -> Path:
    """A CA certificate that signed nothing the test directory shows."""
    ca = d / "unrelated-ca.pem"
    new_ca = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    subprocess.run(
        [*new_ca, "-keyout", str(d / "unrelated-ca.key"), "-out", str(ca), "-subj", "/CN=other"],
        check=True,
        capture_output=True,
    )
    return ca


def _hash(password: str) -> str:
    out = subprocess.run(
        [_run_tool("slappasswd"), "-s", password], check=True, capture_output=True, text=True
    ).stdout
    return out.strip()


def _conf(d: Path, cert: Path, key: Path) -> Path:
    (d / "db").mkdir()
    conf = d / "slapd.conf"
    schema = Path("/etc/ldap/schema")
    includes = "".join(
        f"include {schema / n}.schema\n" for n in ("core", "cosine", "inetorgperson", "nis")
    )
    conf.write_text(
        f"""{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d / "slapd.pid"}
argsfile {d / "slapd.args"}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}

database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {d / "db"}
access to attrs=userPassword by self read by anonymous auth by * none
access to * by users read by * none
"""
    )
    return conf


def _entries() -> str:
    people = "".join(
        f"""
dn: {p.dn}
objectClass: inetOrgPerson
uid: {p.uid}
cn: {p.uid.title()}
sn: {p.uid.title()}
userPassword: {_hash(p.password)}
"""
        for p in (ALICE, BOB)
    )
    return f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: dockd
userPassword: {_hash(SERVICE_PW)}
{people}"""


def _wait_ready(proc: subprocess.Popen[bytes], url: str, stderr: Path) -> None:
    """Until a real bind as the root DN answers; an error with slapd's stderr otherwise."""
    deadline = time.monotonic() + DEADLINE_S
    probe = ["ldapwhoami", "-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW, "-o", "nettimeout=5"]
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"slapd exited with {proc.returncode}: {stderr.read_text(errors='replace')}"
            )
        with suppress(subprocess.TimeoutExpired):  # a slow answer: ask again
            if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"slapd did not answer a bind within {DEADLINE_S:.0f} s: "
                + stderr.read_text(errors="replace")
            )
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)  # wakes early if slapd dies


@contextmanager
def running_directory() -> Iterator[DirectoryServer]:
    """A slapd with ALICE, BOB and the service account; stopped and removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="dockd-slapd-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        ca, cert, key = _tls(d)
        conf = _conf(d, cert, key)
        plain, tls = _free_port(), _free_port()
        ldap_url, ldaps_url = f"ldap://127.0.0.1:{plain}", f"ldaps://127.0.0.1:{tls}"
        stderr = d / "slapd.stderr"
        with stderr.open("wb") as err:
            # -d none: stay in the foreground (no fork), so this Popen is slapd itself,
            # writing only what is always logged (why it stopped) to stderr.
            proc = subprocess.Popen(
                [_run_tool("slapd"), "-d", "none", "-f", conf, "-h", f"{ldap_url}/ {ldaps_url}/"],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        _wait_ready(proc, ldap_url, stderr)
        subprocess.run(
            ["ldapadd", "-x", "-H", ldap_url, "-D", ROOT_DN, "-w", ROOT_PW],
            input=_entries().encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        password_file = d / "service.pw"
        password_file.write_text(SERVICE_PW + "\n")
        yield DirectoryServer(ldap_url, ldaps_url, ca, password_file)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(d, ignore_errors=True)
