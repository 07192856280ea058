"""Real Mosquitto brokers for the tests, run from deploy/mosquitto's files.

Contract: :func:`make_pki` writes a throw-away CA and certificates with the openssl CLI
(Debian package openssl; Python's ``cryptography`` is not in .venv). :func:`adapt` turns
a deploy/ config into one this test can run, changing only what must change on a test box:
each ``listener PORT`` becomes ``listener FREE_PORT 127.0.0.1``, bridge addresses point at
the test's ports, ``/etc/mosquitto/edgeseg/`` becomes the test's folder, which is also the
state directory (``persistence_location``, which Debian's mosquitto.conf sets), and log
lines go to stderr. Everything else — TLS settings, password file, ACL, bridge options — is used
as written. :class:`Broker` starts ``mosquitto -c`` as a child process, waits until its
port accepts connections, and :meth:`Broker.stop` kills it (fixtures call it on teardown).
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ETC = "/etc/mosquitto/edgeseg/"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(certs: Path, client_cns: tuple[str, ...] = ()) -> Path:
    """ca.crt/ca.key, server.crt/key for 127.0.0.1, and NAME.crt/key for each client CN."""
    certs.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=edgeseg test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=certs)
    (certs / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (certs / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, cn, ext in [("server", "127.0.0.1", "server.ext"),
                          *[(c, c, "client.ext") for c in client_cns]]:
        _openssl("req", *ec, "-subj", f"/CN={cn}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=certs)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt",
                 cwd=certs)
    return certs


def make_passwd(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file, hashed in place by mosquitto_passwd -U (as the README says)."""
    path.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
    subprocess.run(["mosquitto_passwd", "-U", str(path)], check=True, capture_output=True,
                   timeout=30)
    return path


def adapt(text: str, ports: dict[int, int], etc: Path) -> str:
    """A deploy/ config made runnable here (see the module docstring)."""
    def listener(match: re.Match) -> str:
        return f"listener {ports[int(match.group(1))]} 127.0.0.1"

    def address(match: re.Match) -> str:
        return f"address 127.0.0.1:{ports[int(match.group(1))]}"

    text = re.sub(r"^listener (\d+)$", listener, text, flags=re.M)
    text = re.sub(r"^address \S+:(\d+)$", address, text, flags=re.M)
    text = text.replace(ETC, f"{etc}/")
    # Run as whoever runs the tests: as root, Mosquitto would otherwise switch to the user
    # mosquitto, who cannot read pytest's private temporary folders.
    return text + f"\nlog_dest stderr\nuser {getpass.getuser()}\npersistence_location {etc}/\n"


@dataclass
class Broker:
    config: Path
    port: int
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Broker:
        log = (self.config.parent / f"{self.config.stem}.log").open("wb")
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.config.parent / f"{self.config.stem}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def stage_etc(etc: Path, acl: Path, users: dict[str, str], client_cns=()) -> Path:
    """/etc/mosquitto/edgeseg as the README makes it: certs/, passwd, acl."""
    etc.mkdir(parents=True, exist_ok=True)
    make_pki(etc / "certs", client_cns)
    make_passwd(etc / "passwd", users)
    (etc / "acl").write_text(acl.read_text())
    os.chmod(etc / "passwd", 0o600)
    return etc
