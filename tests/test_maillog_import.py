"""Importing a log: organisations, pseudonyms, what is left out, proposed outages and the moved backlog."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from simulator.errors import ScenarioError
from simulator.maillog import Client, ImportOptions, Pseudonyms, import_log, load_organisations
from simulator.maillog.outages import backfill, propose
from simulator.maillog.pseudonym import key_from_log


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Files are shown relative to the working directory: work where the logs are."""
    monkeypatch.chdir(tmp_path)


GOOGLE = "mail-wr1-f54.google.com[209.85.221.54]"
OTHER = "mail.acme.example[198.51.100.7]"
DAY = datetime(2024, 3, 5)


def stamp(t: datetime) -> str:
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


def message(
    t: datetime, n: int, client: str = GOOGLE, rcpt: str = "bob@example.org", sender: str = "a@gmail.com"
) -> list[str]:
    qid = f"{n:010X}"
    s = stamp(t)
    return [
        f"{s} mx1 postfix/smtpd[1]: {qid}: client={client}",
        f"{s} mx1 postfix/qmgr[2]: {qid}: from=<{sender}>, size=100, nrcpt=1 (queue active)",
        f"{s} mx1 postfix/local[3]: {qid}: to=<{rcpt}>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (ok)",
        f"{s} mx1 postfix/qmgr[2]: {qid}: removed",
    ]


def every(start: str, end: str, minutes: float) -> list[datetime]:
    t, stop = DAY + _hm(start), DAY + _hm(end)
    out = []
    while t < stop:
        out.append(t)
        t += timedelta(minutes=minutes)
    return out


def _hm(text: str) -> timedelta:
    h, m, *s = (int(x) for x in text.split(":"))
    return timedelta(hours=h, minutes=m, seconds=s[0] if s else 0)


def log(tmp_path: Path, *events: tuple[datetime, str] | list[tuple[datetime, str]], times: list[datetime] = ()) -> Path:
    """A maillog with a message at each of *times* and extra (time, text) lines, in time order."""
    lines: list[tuple[datetime, int, int, str]] = []
    for n, t in enumerate(times):
        lines += [(t, n, i, line) for i, line in enumerate(message(t, n + 1))]
    for k, (t, text) in enumerate(events):
        lines.append((t, 10**6 + k, 0, f"{stamp(t)} mx1 {text}"))
    path = tmp_path / "maillog"
    path.write_text("".join(line + "\n" for *_, line in sorted(lines)), encoding="utf-8")
    return path


def imported(path: Path, **options):
    return import_log([path], ImportOptions(format="postfix", year=2024, key=b"k", **options))


def test_organisations_are_recognised_by_reverse_dns_then_helo_and_the_rule_is_named():
    orgs = load_organisations()
    google = orgs.match(Client("mail-wr1-f54.google.com", "209.85.221.54"), None)
    assert google is not None and (google.organisation.name, google.organisation.preset, google.rule) == (
        "google",
        "gmail",
        "rdns *.google.com",
    )
    assert google.table == "built-in organisations.yaml"
    m365 = orgs.match(Client("unknown", "40.107.1.1"), "EUR05-DB8-obe.outbound.protection.outlook.com")
    assert m365 is not None and m365.rule == "helo *.outbound.protection.outlook.com"
    yahoo = orgs.match(Client("sonic301-3.consmr.mail.ne1.yahoo.com", "74.6.1.1"), None)
    assert yahoo is not None and yahoo.organisation.preset is None
    assert orgs.match(Client("mail.acme.example", "198.51.100.7"), "mail.acme.example") is None
    assert orgs.match(None, None) is None


def test_a_users_table_comes_first_and_is_checked_with_file_and_line(tmp_path):
    table = tmp_path / "orgs.yaml"
    table.write_text(
        "organisations:\n"
        "  - name: acme\n"
        "    preset: exim\n"
        '    match: {rdns: ["*.acme.example"]}\n'
        "    source: our partner runs Exim\n"
        "  - name: workspace\n"
        "    preset: postfix\n"
        '    match: {rdns: ["mail-wr1-*.google.com"]}\n'
        "    source: a test\n",
        encoding="utf-8",
    )
    orgs = load_organisations(table)
    assert orgs.match(Client("mail.acme.example", "198.51.100.7"), None).organisation.name == "acme"
    found = orgs.match(Client("mail-wr1-f54.google.com", "209.85.221.54"), None)
    assert (found.organisation.name, found.table) == ("workspace", str(table))
    table.write_text(
        "organisations:\n  - name: acme\n    preset: gmial\n    match: {rdns: []}\n    source: x\n    colour: red\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_organisations(table)
    assert [str(p) for p in caught.value.problems] == [
        f"{table}:3: organisations.0.preset: unknown preset 'gmial' (did you mean gmail?); see smtp-outage policies list, or null for none",
        f"{table}:6: organisations.0.colour: unknown key (an organisation has name, preset, match {{rdns, helo}} and source)",
    ]


def test_pseudonyms_are_stable_per_key_keep_domains_and_are_usable_local_parts():
    one, other = Pseudonyms(b"key one"), Pseudonyms(b"key two")
    token = one.address("Bob.Smith@Example.org")
    assert token == one.address("bob.smith@example.org")
    local, _, domain = token.partition("@")
    assert domain == "example.org" and len(local) == 13 and local.startswith("u") and local[1:].isalnum()
    assert token != one.address("alice@example.org")
    assert other.address("bob.smith@example.org") != token
    assert other.address("bob.smith@example.org").endswith("@example.org")
    hidden = Pseudonyms(b"key one", domains=True).address("bob.smith@example.org")
    assert hidden.startswith(local + "@d") and hidden.endswith(".invalid")
    assert Pseudonyms(b"key one", raw=True).address("Bob@example.org") == "Bob@example.org"


def test_the_default_key_comes_from_the_log_itself(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("Mar  5 10:00:00 mx1 postfix/master[1]: daemon started\n", encoding="utf-8")
    b.write_text("Mar  5 10:00:01 mx1 postfix/master[1]: daemon started\n", encoding="utf-8")
    assert key_from_log(a) == key_from_log(a) != key_from_log(b)


def test_arrivals_by_group_host_and_recipient_and_what_is_left_out(tmp_path):
    t = DAY + timedelta(hours=10)
    lines = message(t, 1) + message(t + timedelta(minutes=1), 2, client=OTHER, rcpt="carol@example.net")
    lines += message(t + timedelta(minutes=2), 3, client="localhost[127.0.0.1]")
    lines += message(t + timedelta(minutes=3), 4, client="mail-wr1-f9.google.com[209.85.221.9]")
    lines += [
        f"{stamp(t)} mx1 postfix/pickup[4]: 00000000AA: uid=0 from=<root>",
        f"{stamp(t)} mx1 postfix/qmgr[2]: 00000000AA: from=<root@mx1>, size=1, nrcpt=1 (queue active)",
        f"{stamp(t)} mx1 postfix/submission/smtpd[5]: 00000000BB: client=laptop[10.0.0.2], sasl_method=PLAIN, sasl_username=bob",
        f"{stamp(t)} mx1 postfix/qmgr[2]: 00000000BB: from=<bob@example.org>, size=1, nrcpt=1 (queue active)",
    ]
    path = tmp_path / "maillog"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imp = imported(path)
    assert [(r.at.minute, r.group, r.mta) for r in imp.rows] == [(0, "google", 0), (1, "other", 0), (3, "google", 1)]
    assert imp.rows[0].rcpt == Pseudonyms(b"k").address("bob@example.org").partition("@")[0]
    assert imp.rows[1].domain == "example.net"
    assert imp.skipped == {
        "handed back by a local content filter (loopback)": 1,
        "submitted locally or generated by the server (bounces)": 1,
        "submitted by logged-in users": 1,
    }
    assert dict(imp.recipient_domains) == {"example.org": 2, "example.net": 1}
    assert imp.host == "mx1"
    assert imported(path, max_mtas=1).rows[2].mta == 0
    raw = imported(path, raw_addresses=True)
    assert [r.rcpt for r in raw.rows] == ["bob", "carol", "bob"]
    window = imported(path, start=t + timedelta(minutes=1), end=t + timedelta(minutes=3))
    assert [r.group for r in window.rows] == ["other"]
    assert window.skipped["before --from"] == 1 and window.skipped["after --to"] == 1


def test_a_log_without_mail_lines_or_without_arrivals_is_bad_input(tmp_path):
    path = tmp_path / "maillog"
    path.write_text("Mar  5 10:00:00 mx1 dovecot: imap-login: Login: user=<bob>\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="no Postfix log lines in 1 line"):
        imported(path)
    path.write_text("Mar  5 10:00:00 mx1 postfix/master[1]: daemon started -- version 3.7.11\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="no message arrived from another server"):
        imported(path)


def test_a_restart_with_no_stop_is_an_outage_from_the_last_line_before_it(tmp_path):
    times = every("10:00", "11:01", 2) + every("12:01", "13:00", 2)
    imp = imported(
        log(tmp_path, (DAY + _hm("12:00"), "postfix/master[9]: daemon started -- version 3.7.11"), times=times)
    )
    (p,) = propose(imp).proposals
    assert (p.start, p.end, p.event, p.title) == (DAY + _hm("11:00"), DAY + _hm("12:00"), "down", "Postfix down 1h")
    assert p.reasons[0].startswith("Postfix started again (maillog:")
    assert p.reasons[0].endswith(
        "with no stop logged before it (a crash or a reboot); its last line before was at 03/05 11:00:00"
    )
    # 30 arrivals 10:00-10:58 and the one at 11:00 in the 2 h before; 31 * 61 min / 120 min = 15.8
    assert (
        p.reasons[1]
        == "no mail accepted from 03/05 11:00:00 to 03/05 12:01:00, 1h1m: 31 arrived in the 2h before, so about 16 were expected"
    )


def test_a_stop_and_a_start_and_a_quick_restart(tmp_path):
    times = every("10:00", "13:00", 5)
    events = [
        (DAY + _hm("11:00:30"), "postfix/master[9]: terminating on signal 15"),
        (DAY + _hm("11:20"), "postfix/master[10]: daemon started -- version 3.7.11"),
        (DAY + _hm("12:00:10"), "postfix/master[10]: terminating on signal 15"),
        (DAY + _hm("12:00:40"), "postfix/master[11]: daemon started -- version 3.7.11"),
    ]
    outages = propose(imported(log(tmp_path, *events, times=times)))
    (p,) = outages.proposals
    assert (p.start, p.end, p.title) == (DAY + _hm("11:00:30"), DAY + _hm("11:20"), "Postfix down 20m")
    assert p.reasons[0].startswith("Postfix was stopped (maillog:") and "terminating on signal 15" in p.reasons[0]
    assert outages.notes[0].endswith("Postfix restarted within a minute at 03/05 12:00:40: not an outage to replay")


def test_gaps_are_proposed_when_mail_was_expected_and_noted_when_quiet(tmp_path):
    # every 20 min 08:00-09:40, then nothing until 10:20: 6 in the 2 h before 09:40 and 09:40 itself,
    # 6 * 40 / 120 = 2 expected: quiet. Then every minute 10:20-11:59, nothing until 12:30:
    # 100 in the 2 h before 11:59 (10:20-11:58 and 11:59 itself), 100 * 31 / 120 = 25.8: an outage.
    times = every("08:00", "09:41", 20) + every("10:20", "12:00", 1) + [DAY + _hm("12:30")]
    outages = propose(imported(log(tmp_path, times=times)))
    (p,) = outages.proposals
    assert (p.start, p.end, p.title) == (DAY + _hm("11:59"), DAY + _hm("12:30"), "no mail for 31m")
    assert p.reasons == [
        "no mail accepted from 03/05 11:59:00 to 03/05 12:30:00, 31m: 100 arrived in the 2h before, so about 26 were expected"
    ]
    assert outages.notes == [
        "no mail accepted from 03/05 09:40:00 to 03/05 10:20:00, 40m: 6 arrived in the 2h before, so about 2 were expected: a quiet time, not proposed"
    ]


def test_fatal_lines_and_a_full_disk(tmp_path):
    times = every("10:00", "11:00", 1) + every("11:40", "12:00", 1)
    events = [
        (DAY + _hm("10:30:05"), "postfix/smtpd[7]: fatal: smtpd_recipient_restrictions: unknown restriction"),
        (DAY + _hm("11:00:05"), "postfix/qmgr[2]: panic: myfree: corrupt or unallocated memory block"),
        (DAY + _hm("11:45"), "postfix/cleanup[3]: warning: 4ABC: write queue file: No space left on device"),
        (DAY + _hm("11:50"), "postfix/cleanup[3]: warning: 4ABD: write queue file: No space left on device"),
    ]
    outages = propose(imported(log(tmp_path, *events, times=times)))
    down, full = outages.proposals
    assert (down.start, down.end, down.title) == (DAY + _hm("11:00:05"), DAY + _hm("11:40"), "no mail after a panic")
    assert down.reasons[0].startswith("panic at maillog:")
    assert "no mail accepted until 03/05 11:40:00" in down.reasons[0]
    assert (full.start, full.end, full.event) == (DAY + _hm("11:45"), DAY + _hm("11:50"), "fault")
    assert full.reasons[0].startswith("2 line(s) saying the disk was full, 03/05 11:45:00 to 03/05 11:50:00")
    assert outages.notes[0].startswith("fatal at maillog:") and outages.notes[0].endswith(
        "mail kept arriving (03/05 10:31:00): not proposed"
    )


def test_the_backlog_after_an_outage_is_moved_into_it(tmp_path):
    # 20 arrivals in the 2 h before the 10:00 stop (every 6 min from 08:00), so 20 are usual in the
    # 2 h after the 11:00 start; 30 arrive in a burst (every 20 s from 11:00:30) and 18 more every
    # 6 min from 11:12: 48 - 20 = 28 moved, the first 28 to arrive, spread over 10:00-11:00.
    times = every("08:00", "10:00", 6) + [DAY + _hm("11:00:30") + timedelta(seconds=20 * j) for j in range(30)]
    times += every("11:12", "12:55", 6)
    events = [
        (DAY + _hm("10:00"), "postfix/master[9]: terminating on signal 15"),
        (DAY + _hm("11:00"), "postfix/master[10]: daemon started -- version 3.7.11"),
    ]
    imp = imported(log(tmp_path, *events, times=times))
    outages = propose(imp)
    assert backfill(imp, outages.proposals) == 28
    (p,) = outages.proposals
    assert p.applied and p.moved == 28
    assert p.backfill_note == (
        "48 arrived in the 2h after 03/05 11:00:00, 20 expected at the rate of the 2h before 03/05 10:00:00 "
        "(10/h, so about 10 sent during the 1h from 03/05 10:00:00)"
    )
    moved = [r for r in imp.rows if r.moved_from is not None]
    assert len(moved) == 28
    assert moved[0].at == DAY + _hm("10:01:04")  # 10:00 + floor(0.5 * 3600 / 28) s
    assert moved[-1].at == DAY + _hm("10:58:55")  # 10:00 + floor(27.5 * 3600 / 28) s
    assert moved[0].moved_from == DAY + _hm("11:00:30") and moved[-1].moved_from == DAY + _hm("11:09:30")
    assert [r.at for r in imp.rows] == sorted(r.at for r in imp.rows)


def test_log_lines_quoted_as_reasons_have_their_addresses_pseudonymised(tmp_path):
    reject = (
        "postfix/smtpd[4]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]: 452 4.3.1 Insufficient system storage; "
        "from=<ann@a.example> to=<bob@example.org> proto=ESMTP helo=<a.example>"
    )
    imp = imported(log(tmp_path, (DAY + _hm("10:30"), reject), times=every("10:00", "11:00", 5)))
    (full,) = propose(imp).proposals
    names = Pseudonyms(b"k")
    assert "bob@example.org" not in full.reasons[0] and "ann@a.example" not in full.reasons[0]
    assert f"to=<{names.address('bob@example.org')}>" in full.reasons[0]
    assert names.scrub("no address here") == "no address here"
    assert Pseudonyms(b"k", raw=True).scrub("to=<bob@example.org>") == "to=<bob@example.org>"


def test_other_is_not_an_organisation_name(tmp_path):
    table = tmp_path / "orgs.yaml"
    table.write_text(
        "organisations:\n  - name: other\n    preset: null\n    match: {}\n    source: x\n", encoding="utf-8"
    )
    with pytest.raises(ScenarioError) as caught:
        load_organisations(table)
    assert [str(p) for p in caught.value.problems] == [
        f"{table}:2: organisations.0.name: 'other' is the group of clients no organisation matches; choose another name"
    ]
