"""A synthetic but realistic receiving server's log: a working day of mail, a full disk, a crash, a restart.

``python -m simulator.maillog.synth OUT [--format postfix|exim] [--days N] [--rate R] [--seed S]``
writes the log of ``mx1``, which receives mail for example.org and
example.net. Mail comes from Google, Microsoft 365, Amazon SES, SendGrid,
Mailgun, Yahoo and small servers no table knows, at a working-day profile;
a few messages are local (cron) or submitted by logged-in users; some
connections are spam, refused at RCPT. On the first day:

* 02:00 a planned restart (stopped, started 36 s later);
* 13:31 the queue's disk fills up: warnings, ``452 4.3.1 Insufficient
  system storage`` to every sender;
* 13:52:07 the machine crashes: the last line is cut short and the first
  line after the reboot starts with NUL bytes, as a real syslog file does;
* 15:26:31 Postfix (or Exim) starts again.

Senders refused while the server is down or full retry on their own
schedules, so the backlog arrives after the restart, as it would. Everything
is seeded: the same arguments write the same bytes. ``tests/data/sample-maillog``
is ``--days 1`` with the defaults; the benchmark writes a million lines.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

__all__ = ["SampleLog", "write_sample", "main"]

BUSINESS = [0.2] * 7 + [0.6, 1.5, 2.0, 2.0, 1.8, 1.2, 1.8, 2.0, 1.8, 1.5, 1.0, 0.6] + [0.4] * 5
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class _Org:
    weight: float
    hosts: tuple[tuple[str, str, str], ...]  # (rdns name, ip, helo)
    sender_domains: tuple[str, ...]
    retry: tuple[float, ...]  # gaps between attempts, the last repeats
    lifetime: float


def _pool(rng: random.Random, n: int, name: str, ip: str, helo: str | None = None) -> tuple[tuple[str, str, str], ...]:
    hosts = []
    for i in range(n):
        a, b = rng.randrange(1, 250), rng.randrange(1, 250)
        host = name.format(i=i, a=a, b=b)
        hosts.append((host, ip.format(i=i, a=a, b=b), (helo or host).format(i=i, a=a, b=b)))
    return tuple(hosts)


def _orgs(rng: random.Random) -> dict[str, _Org]:
    small = [
        ("mail.{x}.example", "198.51.100.{i}"),
        ("smtp.{x}.example", "203.0.113.{i}"),
    ]
    others = []
    for i, x in enumerate(
        ("acme", "globex", "initech", "umbrella", "hooli", "vandelay", "wonka", "stark", "wayne", "tyrell")
    ):
        name, ip = small[i % 2]
        others.append((name.format(x=x), ip.format(i=10 + i), name.format(x=x)))
    for i in range(6):  # no reverse DNS: Postfix says unknown[ip]
        others.append(("unknown", f"192.0.2.{40 + i}", f"mx{i}.partner{i}.example"))
    return {
        "google": _Org(
            35,
            _pool(rng, 30, "mail-wr1-f{a}.google.com", "209.85.221.{a}"),
            ("gmail.com", "customer-a.example", "supplier.example"),
            (362, 1380, 1654, 2528, 3799, 5700, 8550, 12825, 14400),
            172800,
        ),
        "microsoft365": _Org(
            25,
            _pool(
                rng,
                20,
                "mail-db8eur05on20{a}.outbound.protection.outlook.com",
                "40.107.{b}.{a}",
                "EUR05-DB8-obe.outbound.protection.outlook.com",
            ),
            ("outlook.com", "bigcorp.example", "lawfirm.example"),
            (1800, 3600),
            86400,
        ),
        "ses": _Org(
            8,
            _pool(rng, 10, "a8-{a}.smtp-out.amazonses.com", "54.240.8.{a}"),
            ("notify.shop.example", "billing.saas.example"),
            (300, 600, 1200, 2400, 3600),
            43200,
        ),
        "sendgrid": _Org(
            6,
            _pool(rng, 6, "o{a}.outbound-mail.sendgrid.net", "149.72.{b}.{a}"),
            ("newsletter.example",),
            (300, 600, 1200, 2400, 3600),
            259200,
        ),
        "mailgun": _Org(
            4,
            _pool(rng, 5, "m{a}-{b}.mailgun.net", "159.135.{b}.{a}"),
            ("alerts.example",),
            (600, 900, 1800, 3600, 7200, 14400),
            28800,
        ),
        "yahoo": _Org(
            4,
            _pool(rng, 8, "sonic3{a}-{b}.consmr.mail.ne1.yahoo.com", "74.6.{b}.{a}"),
            ("yahoo.com",),
            (900, 1800, 3600),
            432000,
        ),
        "other": _Org(18, tuple(others), ("partner.example", "acme.example"), (300, 600, 1200, 2400, 4000), 432000),
    }


@dataclass
class SampleLog:
    """What the sample log holds: its settings, and the outage it acts out."""

    start: datetime = datetime(2024, 3, 5)
    days: float = 1.25
    rate: float = 30.0  #: messages an hour at a profile weight of 1 (about 640 a day)
    seed: int = 2024
    format: str = "postfix"
    host: str = "mx1"
    planned_stop: timedelta = timedelta(hours=2, seconds=5)
    planned_start: timedelta = timedelta(hours=2, seconds=41)
    disk_full: timedelta = timedelta(hours=13, minutes=31, seconds=10)
    crash: timedelta = timedelta(hours=13, minutes=52, seconds=7)
    restart: timedelta = timedelta(hours=15, minutes=26, seconds=31)

    def down(self, t: datetime) -> bool:
        """True while the server accepts no connection."""
        s = t - self.start
        return self.planned_stop <= s < self.planned_start or self.crash <= s < self.restart

    def full(self, t: datetime) -> bool:
        """True while the queue's disk is full (connections get 452)."""
        return self.disk_full <= t - self.start < self.crash


class _Writer:
    """Renders events as Postfix or Exim lines with the right stamps."""

    def __init__(self, log: SampleLog, rng: random.Random) -> None:
        self.log = log
        self.rng = rng
        self.postfix = log.format == "postfix"
        self._qmgr = [rng.randrange(800, 1200) for _ in range(3)]  # a new queue manager after each start
        self.events: list[tuple[datetime, int, str]] = []
        self.seq = 0
        self.rebooted = False

    def stamp(self, t: datetime) -> str:
        if self.postfix:
            return f"{t:%b} {t.day:2d} {t:%H:%M:%S} {self.log.host}"
        return f"{t:%Y-%m-%d %H:%M:%S}"

    def add(self, t: datetime, text: str, program: str = "", pid: int | None = None) -> None:
        self.seq += 1
        if self.postfix:
            pid_text = f"[{pid}]" if pid is not None else ""
            line = f"{self.stamp(t)} {program}{pid_text}: {text}"
        else:
            line = f"{self.stamp(t)} {text}"
        self.events.append((t, self.seq, line))

    def qmgr(self, t: datetime) -> int:
        """The queue manager's pid at *t*: each start of the mail system has its own."""
        s = t - self.log.start
        return self._qmgr[(s >= self.log.planned_start) + (s >= self.log.restart)]

    def qid(self) -> str:
        if self.postfix:
            return "".join(self.rng.choice("0123456789ABCDEF") for _ in range(10))
        r = self.rng
        return "-".join("".join(r.choice(_B62) for _ in range(n)) for n in (6, 6, 2))


def _message(w: _Writer, t: datetime, org: str, host: tuple[str, str, str], sender: str, rcpts: list[str]) -> None:
    r = w.rng
    name, ip, helo = host
    qid = w.qid()
    size = int(r.lognormvariate(8.6, 1.0)) + 600
    msgid = f"{''.join(r.choice(_B62) for _ in range(16))}@{sender.partition('@')[2]}"
    done = t + timedelta(seconds=r.choice((0, 0, 1)))
    if w.postfix:
        pid = r.randrange(2000, 40000)
        w.add(t, f"connect from {name}[{ip}]", "postfix/smtpd", pid)
        w.add(t, f"{qid}: client={name}[{ip}]", "postfix/smtpd", pid)
        w.add(t, f"{qid}: message-id=<{msgid}>", "postfix/cleanup", r.randrange(2000, 40000))
        w.add(
            done,
            f"{qid}: from=<{sender}>, size={size}, nrcpt={len(rcpts)} (queue active)",
            "postfix/qmgr",
            w.qmgr(done),
        )
        commands = 5 + len(rcpts) + (2 if org != "other" else 0)
        tls = "ehlo=2 starttls=1 " if org != "other" else "ehlo=1 "
        w.add(
            done,
            f"disconnect from {name}[{ip}] {tls}mail=1 rcpt={len(rcpts)} data=1 quit=1 commands={commands}",
            "postfix/smtpd",
            pid,
        )
        lmtp = r.randrange(2000, 40000)
        for rcpt in rcpts:
            delay = r.uniform(0.1, 0.9)
            w.add(
                done,
                f"{qid}: to=<{rcpt}>, relay=mx1.example.org[private/dovecot-lmtp], delay={delay:.2f}, "
                f"delays={delay / 2:.2f}/0.01/0.01/{delay / 2 - 0.02:.2f}, dsn=2.0.0, "
                f"status=sent (250 2.0.0 <{rcpt}> {''.join(r.choice(_B62) for _ in range(22))} Saved)",
                "postfix/lmtp",
                lmtp,
            )
            w.add(done, f"lmtp({rcpt}): msgid=<{msgid}>: saved mail to INBOX", "dovecot", None)
        w.add(done, f"{qid}: removed", "postfix/qmgr", w.qmgr(done))
    else:
        shown = name if name != "unknown" else ""
        h = (
            f"{shown} ({helo}) [{ip}]"
            if shown and helo != shown
            else (f"{shown} [{ip}]" if shown else f"({helo}) [{ip}]")
        )
        tls = " X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no" if org != "other" else ""
        proto = "esmtps" if tls else "esmtp"
        w.add(done, f"{qid} <= {sender} H={h} P={proto}{tls} S={size} id={msgid}")
        for rcpt in rcpts:
            w.add(done, f"{qid} => {rcpt.partition('@')[0]} <{rcpt}> R=local_user T=dovecot_lmtp")
        w.add(done, f"{qid} Completed")


def _refused(w: _Writer, t: datetime, host: tuple[str, str, str], sender: str) -> None:
    """A connection during the full disk: a warning and 452 at MAIL."""
    name, ip, helo = host
    if w.postfix:
        pid = w.rng.randrange(2000, 40000)
        w.add(t, f"connect from {name}[{ip}]", "postfix/smtpd", pid)
        w.add(
            t,
            "warning: not enough free space in mail queue: 1048576 bytes < 1.5*message size limit",
            "postfix/smtpd",
            pid,
        )
        w.add(
            t,
            f"NOQUEUE: reject: MAIL from {name}[{ip}]: 452 4.3.1 Insufficient system storage; proto=ESMTP helo=<{helo}>",
            "postfix/smtpd",
            pid,
        )
        w.add(t, f"disconnect from {name}[{ip}] ehlo=1 mail=0/1 quit=1 commands=2/3", "postfix/smtpd", pid)
    else:
        w.add(t, f"spool directory space check failed: space={w.rng.randrange(2000, 9000)} inodes=31022")


def _spam(w: _Writer, t: datetime) -> None:
    r = w.rng
    ip = f"203.0.113.{r.randrange(100, 250)}"
    helo = f"{''.join(r.choice('abcdefghijklmnop') for _ in range(8))}.example"
    rcpt = f"{r.choice(('info', 'sales', 'admin', 'hr'))}@example.org"
    if w.postfix:
        pid = r.randrange(2000, 40000)
        w.add(t, f"connect from unknown[{ip}]", "postfix/smtpd", pid)
        w.add(
            t,
            f"NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 Service unavailable; Client host [{ip}] blocked "
            f"using zen.spamhaus.org; from=<spam@{helo}> to=<{rcpt}> proto=ESMTP helo=<{helo}>",
            "postfix/smtpd",
            pid,
        )
        w.add(t, f"disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", "postfix/smtpd", pid)
    else:
        w.add(t, f"H=({helo}) [{ip}] F=<spam@{helo}> rejected RCPT <{rcpt}>: blocked using zen.spamhaus.org")


def _local(w: _Writer, t: datetime, authenticated: bool) -> None:
    r = w.rng
    qid = w.qid()
    if w.postfix:
        if authenticated:
            pid = r.randrange(2000, 40000)
            w.add(
                t,
                f"{qid}: client=laptop.example.org[10.1.2.{r.randrange(2, 200)}], sasl_method=PLAIN, sasl_username=bob",
                "postfix/submission/smtpd",
                pid,
            )
        else:
            w.add(t, f"{qid}: uid=0 from=<root>", "postfix/pickup", r.randrange(2000, 40000))
        w.add(
            t,
            f"{qid}: from=<{'bob@example.org' if authenticated else 'root@mx1.example.org'}>, size=912, nrcpt=1 (queue active)",
            "postfix/qmgr",
            w.qmgr(t),
        )
        w.add(t, f"{qid}: removed", "postfix/qmgr", w.qmgr(t))
    elif authenticated:
        w.add(t, f"{qid} <= bob@example.org H=laptop.example.org [10.1.2.7] P=esmtpsa A=plain:bob S=912")
        w.add(t, f"{qid} Completed")
    else:
        w.add(t, f"{qid} <= root@mx1.example.org U=root P=local S=912")
        w.add(t, f"{qid} Completed")


def _daemon(w: _Writer, log: SampleLog) -> None:
    r = w.rng
    start = log.start
    if w.postfix:
        master = r.randrange(700, 900)
        w.add(
            start + log.planned_stop - timedelta(seconds=1),
            "stopping the Postfix mail system",
            "postfix/postfix-script",
            r.randrange(2000, 40000),
        )
        w.add(start + log.planned_stop, "terminating on signal 15", "postfix/master", master)
        for at in (log.planned_start, log.restart):
            master = r.randrange(700, 900)
            w.add(start + at, "starting the Postfix mail system", "postfix/postfix-script", r.randrange(2000, 40000))
            w.add(
                start + at + timedelta(seconds=1),
                "daemon started -- version 3.7.11, configuration /etc/postfix",
                "postfix/master",
                master,
            )
        w.add(
            start + log.crash - timedelta(seconds=40),
            "fatal: cleanup: write queue file: No space left on device",
            "postfix/cleanup",
            r.randrange(2000, 40000),
        )
    else:
        for at in (log.planned_start, log.restart):
            w.add(
                start + at,
                f"exim 4.96 daemon started: pid={r.randrange(700, 9000)}, -q30m, listening for SMTP on port 25 (IPv6 and IPv4)",
            )
        w.add(
            start + log.crash - timedelta(seconds=40),
            "Failed to create spool file /var/spool/exim4/input//1rhxyz-000AbC-9Q-D: No space left on device",
        )


def _arrival(
    log: SampleLog, org: _Org, t: datetime, w: _Writer, host: tuple[str, str, str], sender: str
) -> datetime | None:
    """When the sender's attempts first find the server accepting (logging 452s on a full disk); None: it gave up."""
    first = t
    k = 0
    while True:
        if log.full(t):
            _refused(w, t, host, sender)
        elif not log.down(t):
            return t
        t += timedelta(seconds=org.retry[min(k, len(org.retry) - 1)])
        k += 1
        if (t - first).total_seconds() > org.lifetime:
            return None


def _submissions(log: SampleLog, rng: random.Random) -> Iterator[datetime]:
    end = log.start + timedelta(days=log.days)
    peak = max(BUSINESS)
    t = log.start
    while True:
        t += timedelta(seconds=rng.expovariate(log.rate * peak / 3600))
        if t >= end:
            return
        if rng.random() * peak <= BUSINESS[t.hour]:
            yield t.replace(microsecond=0)


def write_sample(out: TextIO, log: SampleLog) -> int:
    """Write the sample log to *out*; returns the number of lines."""
    rng = random.Random(log.seed)
    orgs = _orgs(rng)
    names, weights = list(orgs), [o.weight for o in orgs.values()]
    w = _Writer(log, rng)
    _daemon(w, log)
    written = 0
    day_end = log.start
    for t in _submissions(log, rng):
        r = rng.random()
        if r < 0.08:
            _spam(w, t)
        elif r < 0.11:
            _local(w, t, authenticated=r < 0.095)
        else:
            name = rng.choices(names, weights)[0]
            org = orgs[name]
            host = rng.choice(org.hosts)
            sender = f"{rng.choice(('anna', 'ben', 'chen', 'dana', 'eli', 'fatima', 'noreply', 'billing'))}{rng.randrange(1, 99)}@{rng.choice(org.sender_domains)}"
            rcpts = [
                f"{rng.choice(('alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'))}@example.{'org' if rng.random() < 0.9 else 'net'}"
                for _ in range(1 + (rng.random() < 0.15))
            ]
            arrived = _arrival(log, org, t, w, host, sender)
            if arrived is not None:
                _message(w, arrived, name, host, sender, sorted(set(rcpts)))
        if t >= day_end + timedelta(hours=6):
            written += _flush(out, w, log, before=t - timedelta(hours=6))
            day_end = t
    return written + _flush(out, w, log, before=None)


def _flush(out: TextIO, w: _Writer, log: SampleLog, before: datetime | None) -> int:
    """Write the events before *before* (all when None) in time order, acting out the crash."""
    w.events.sort()
    keep = (
        len(w.events) if before is None else next((i for i, e in enumerate(w.events) if e[0] >= before), len(w.events))
    )
    crash, restart = log.start + log.crash, log.start + log.restart
    n = 0
    for t, _, line in w.events[:keep]:
        if crash <= t < restart:
            continue  # nothing is written while the machine is down
        if t >= restart and not w.rebooted:
            w.rebooted = True  # the line being written when the machine died, cut short
            out.write(f"{w.stamp(crash)} postfix/sm\n" if w.postfix else f"{w.stamp(crash)[:15]}\n")
            out.write("\x00" * 37)
            n += 1
        out.write(line + "\n")
        n += 1
    del w.events[:keep]
    return n


def main(argv: list[str] | None = None) -> int:
    """Write a sample log: ``python -m simulator.maillog.synth OUT [--format F] [--days N] [--rate R] [--seed S]``."""
    parser = argparse.ArgumentParser(
        description="Write a synthetic receiving server's mail log with a crash and a restart."
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--format", choices=("postfix", "exim"), default="postfix")
    parser.add_argument(
        "--days", type=float, default=1.25, help="days of traffic (default 1.25: a day and the next night)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=30.0,
        help="messages an hour at an hourly weight of 1; the busiest hours are 2 (default 30)",
    )
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    log = SampleLog(days=args.days, rate=args.rate, seed=args.seed, format=args.format)
    with args.out.open("w", encoding="utf-8", newline="\n") as f:
        lines = write_sample(f, log)
    print(f"{args.out}: {lines} lines, {log.format}, from {log.start:%Y-%m-%d %H:%M} for {args.days:g} day(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
