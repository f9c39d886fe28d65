"""A private Postfix instance: relays to a live server, timers in seconds, nothing else touched.

For the fidelity check and its benchmark (and for anyone who wants to try a
real Postfix against ``smtp-outage serve`` by hand). It follows
``real-mtas.md``: everything under one directory (``config_directory``,
``queue_directory``, ``data_directory``; ``meta_directory`` stays
``/etc/postfix``), no ``smtpd`` listener at all (no port 25), ``relayhost``
pointing at the live server, its own ``maillog_file``. ``/etc/postfix`` is
only read.

It needs root (the master runs as root and the daemons as ``postfix``) and
Debian's ``postfix`` package: ``unavailable()`` says why not, for a caller
that skips. The master runs in the foreground (``postfix start-fg``) in a
session of its own, so that its shutdown signal to its process group never
reaches the caller; ``stop()`` ends exactly the processes it started, by
PID, and removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ..scenario import Scenario
from .serve import LiveResult, serve_scenario

__all__ = ["PrivatePostfix", "SCALED_TIMERS", "unavailable", "main_cf", "relay_through_postfix"]

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
SENDMAIL = "/usr/sbin/sendmail"

SCALED_TIMERS = {
    "queue_run_delay": "4s",
    "minimal_backoff_time": "4s",
    "maximal_backoff_time": "32s",
    "maximal_queue_lifetime": "2m",
    "bounce_queue_lifetime": "2m",
    "smtp_connect_timeout": "2s",
}
"""The retry timers of real-mtas.md: Postfix's defaults scaled down to seconds."""


def unavailable() -> str | None:
    """Why a private Postfix cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "a private Postfix needs root (its master runs as root, its daemons as the postfix user)"
    for path in (POSTFIX, POSTCONF, SENDMAIL):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: install Debian's postfix package"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "there is no postfix user: install Debian's postfix package"
    if not Path("/etc/postfix/master.cf").exists():
        return "/etc/postfix/master.cf is missing: install Debian's postfix package"
    return None


def main_cf(root: Path, relay: tuple[str, int], timers: Mapping[str, str]) -> str:
    """The ``main.cf`` of an instance under *root* that relays everything to *relay*."""
    host, port = relay
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(root / "queue"),
        "data_directory": str(root / "data"),
        "meta_directory": "/etc/postfix",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mydestination": "",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "myhostname": "probe.localdomain",
        "default_transport": "smtp",
        "relayhost": f"[{host}]:{port}",
        "smtp_tls_security_level": "none",
        "transport_maps": "inline:{example.org=discard:}",  # bounces to the envelope sender stay here
        "delay_warning_time": "0",
        "maillog_file": str(root / "maillog"),
        "maillog_file_prefixes": "/var, /dev/stdout, /tmp",
        **dict(timers),
    }
    return "".join(f"{key} = {value}\n" for key, value in settings.items())


class PrivatePostfix:
    """One private Postfix under a fresh directory in ``/tmp`` (world-traversable for the postfix user)."""

    def __init__(self, relay: tuple[str, int], timers: Mapping[str, str] = SCALED_TIMERS) -> None:
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self.root = Path(tempfile.mkdtemp(prefix="smtp-outage-postfix-"))
        self.root.chmod(0o755)
        self.conf = self.root / "conf"
        self.log = self.root / "maillog"
        self.relay = relay
        self.timers = dict(timers)
        self._master: subprocess.Popen[bytes] | None = None
        self._submitted = 0

    def _postconf(self, *args: str) -> None:
        subprocess.run([POSTCONF, "-c", str(self.conf), *args], check=True, capture_output=True)

    def start(self, timeout: float = 30.0) -> None:
        """Write the configuration, start the master in the foreground, wait until its queue manager runs."""
        self.conf.mkdir()
        (self.root / "queue").mkdir()
        data = self.root / "data"
        data.mkdir()
        owner = pwd.getpwnam("postfix")
        os.chown(data, owner.pw_uid, owner.pw_gid)
        data.chmod(0o700)
        shutil.copy("/etc/postfix/master.cf", self.conf / "master.cf")
        (self.conf / "main.cf").write_text(main_cf(self.root, self.relay, self.timers))
        self._postconf("-M#", "smtp/inet")  # no smtpd listener at all
        self._postconf("-F", "*/*/chroot = n")
        self._master = subprocess.Popen(
            [POSTFIX, "-c", str(self.conf), "start-fg"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the master signals its whole process group when it stops
        )
        deadline = time.monotonic() + timeout
        while "qmgr" not in self._children():
            if self._master.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the private Postfix did not start; see {self.log}")
            time.sleep(0.05)

    def submit(self, recipient: str, sender: str = "a@example.org", *, wait: float | None = 10.0) -> None:
        """Queue one message through ``sendmail``; with *wait*, until its first delivery attempt is logged.

        Waiting keeps each new message's first delivery on its own, as mail
        that arrives one message at a time into an idle queue manager is
        (the case the ``postfix`` preset models); a burst queued faster than
        the delivery agents report back is handed out like a retry round.
        """
        self._submitted += 1
        before = self.attempts_logged()
        body = f"Subject: probe {self._submitted}\nFrom: <{sender}>\nTo: <{recipient}>\n\nprobe\n"
        subprocess.run(
            [SENDMAIL, "-C", str(self.conf), "-f", sender, recipient],
            input=body.encode(),
            check=True,
            capture_output=True,
        )
        if wait is None:
            return
        deadline = time.monotonic() + wait
        while self.attempts_logged() <= before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no delivery attempt was logged for message {self._submitted} in {wait:g}s")
            time.sleep(0.01)

    def attempts_logged(self) -> int:
        """Delivery lines (``status=``) in the maillog so far."""
        try:
            return self.log.read_bytes().count(b" status=")
        except FileNotFoundError:
            return 0

    def _session(self) -> list[int]:
        """PIDs of the processes started for this instance: ``postfix start-fg`` and its descendants
        (the master, which makes a session of its own, its daemons and their children)."""
        if self._master is None:
            return []
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])  # field 4 of stat: the parent's pid
        found = [self._master.pid] if self._master.pid in parents else []
        frontier = [self._master.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent]
            found.extend(children)
            frontier.extend(children)
        return found

    def _children(self) -> str:
        names = []
        for pid in self._session():
            try:
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            except OSError:
                continue
        return " ".join(names)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the instance and every process it started, by PID; remove its directory."""
        master = self._master
        if master is not None:
            if master.poll() is None:
                subprocess.run([POSTFIX, "-c", str(self.conf), "stop"], capture_output=True, timeout=timeout)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    master.wait(timeout=timeout)
            for pid in reversed(self._session()):  # anything left behind, one by one, children first
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if master.poll() is None:
                master.wait(timeout=timeout)
            self._master = None
        shutil.rmtree(self.root, ignore_errors=True)

    def keep_log(self, to: Path) -> Path:
        """Copy the maillog to *to* (before ``stop`` removes the directory)."""
        shutil.copy(self.log, to)
        return to

    def __enter__(self) -> PrivatePostfix:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def relay_through_postfix(
    scenario: Scenario,
    *,
    speed: float,
    messages: int,
    out: Path,
    timers: Mapping[str, str] = SCALED_TIMERS,
    recipient_domain: str | None = None,
) -> tuple[LiveResult, Path]:
    """Serve *scenario* live (port 0) and relay *messages* through a private Postfix to it until its clock ends.

    Returns the live run (its results folder in *out*/``served``) and the
    Postfix maillog copied to *out*/``maillog``. The Postfix instance is
    stopped, by PID, whatever happens.
    """
    ready = asyncio.Event()
    address: dict[str, tuple[str, int]] = {}

    def on_ready(found: dict[str, tuple[str, int]]) -> None:
        address.update(found)
        ready.set()

    domain = recipient_domain or scenario.servers[0].domains[0]
    serving = asyncio.create_task(
        serve_scenario(scenario, speed=speed, out=out / "served", on_ready=on_ready, report=False)
    )
    postfix: PrivatePostfix | None = None
    try:
        await asyncio.wait_for(ready.wait(), 60)
        postfix = PrivatePostfix(address[scenario.servers[0].name], timers)
        await asyncio.to_thread(postfix.start)
        for i in range(messages):
            await asyncio.to_thread(postfix.submit, f"b{i}@{domain}")
        live = await serving
        log = postfix.keep_log(out / "maillog")
    finally:
        if postfix is not None:
            await asyncio.to_thread(postfix.stop)
        if not serving.done():
            serving.cancel()
    return live, log
