"""A real rsyslogd on loopback (UDP, TCP and TLS listeners) writing what it receives to a file, for the sink tests."""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import Child
from tests.support.tls_files import TlsFiles, write_tls_files

SEPARATOR = "|#|"
FIELDS = ("input", "pri", "app", "msgid", "sd", "msg")


def rsyslogd() -> str | None:
    """The rsyslogd binary (Debian package ``rsyslog``; TLS needs ``rsyslog-openssl``)."""
    return shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if Path(p).exists()), None
    )


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
global(workDirectory="{work}" DefaultNetstreamDriverCAFile="{tls.ca}"
       DefaultNetstreamDriverCertFile="{tls.cert}" DefaultNetstreamDriverKeyFile="{tls.key}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" name="udp" address="127.0.0.1" port="{udp}")
input(type="imtcp" name="tcp" address="127.0.0.1" port="{tcp}")
input(type="imtcp" name="tls" address="127.0.0.1" port="{tls_port}"
      StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
template(name="fields" type="string"
         string="%inputname%{sep}%pri%{sep}%app-name%{sep}%msgid%{sep}%structured-data%{sep}%msg%\\n")
action(type="omfile" file="{out}" template="fields")
"""


@dataclass
class Rsyslog:
    """A running rsyslogd: its ports, its CA, and the file it writes."""

    child: Child
    udp: int
    tcp: int
    tls_port: int
    tls: TlsFiles
    out: Path

    @classmethod
    def start(cls, folder: Path, binary: str, timeout: float = 30.0) -> Rsyslog:
        """Write a config, start ``rsyslogd -n`` and wait (bounded) until its TCP listeners accept."""
        folder.mkdir(parents=True, exist_ok=True)
        tls = write_tls_files(folder / "tls")
        udp, tcp, tls_port = (
            _free_port(socket.SOCK_DGRAM),
            _free_port(socket.SOCK_STREAM),
            _free_port(socket.SOCK_STREAM),
        )
        out = folder / "received.log"
        config = folder / "rsyslog.conf"
        config.write_text(CONFIG.format(work=folder, tls=tls, udp=udp, tcp=tcp, tls_port=tls_port, out=out,
                                        sep=SEPARATOR))  # fmt: skip
        child = Child([binary, "-n", "-f", str(config), "-i", str(folder / "rsyslogd.pid")],
                      stderr_path=folder / "rsyslogd.stderr")  # fmt: skip
        server = cls(child, udp, tcp, tls_port, tls, out)
        deadline = time.monotonic() + timeout
        for port in (tcp, tls_port):
            while True:
                if child.proc.poll() is not None:
                    raise RuntimeError(f"rsyslogd exited {child.proc.returncode}: {child.stderr()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        child.kill()
                        raise TimeoutError(f"rsyslogd did not listen on {port}: {child.stderr()}") from None
                    time.sleep(0.05)  # polling a listener with a deadline, not standing in for a signal
        server._probe_udp(deadline)
        return server

    def _probe_udp(self, deadline: float) -> None:
        """Send probe datagrams until one is written: the UDP listener is up (UDP says nothing else)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not any(line["input"] == "udp" for line in self.lines()):
                if time.monotonic() > deadline:
                    self.child.kill()
                    raise TimeoutError(f"rsyslogd wrote no UDP probe: {self.child.stderr()}")
                sock.sendto(b"<13>1 - - probe - probe - ready", ("127.0.0.1", self.udp))
                time.sleep(0.05)  # polling the file with a deadline

    def lines(self) -> list[dict[str, str]]:
        """What rsyslogd wrote so far, one dict per message."""
        if not self.out.exists():
            return []
        return [dict(zip(FIELDS, line.split(SEPARATOR, 5), strict=True))
                for line in self.out.read_text().splitlines() if line]  # fmt: skip

    def wait_for(self, predicate: object, timeout: float = 20.0) -> list[dict[str, str]]:
        """Poll the output file until ``predicate(lines)`` holds; raise TimeoutError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.lines()
            if predicate(found):  # type: ignore[operator]
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"rsyslogd wrote {len(found)} lines, not what was expected: {found[-3:]}")
            time.sleep(0.05)  # polling the file with a deadline

    def stop(self) -> None:
        """Kill it (bounded wait)."""
        self.child.kill(timeout=10)
