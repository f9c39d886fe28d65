"""Bounded fuzzing (hypothesis): scenario files, and SMTP sessions against the wire server.

Scenario files: a valid scenario with one to three of its values replaced by
anything (numbers of any size, NaN, infinities, text, timestamps with UTC
offsets, lists, mappings), keys dropped or added, and characters inserted
into the text. Loading it either gives a ``Scenario`` or a ``ScenarioError``
whose every problem is one line naming the file: never another exception.

SMTP sessions: a client nobody announced sends a dialogue drawn from SMTP's
commands, garbage bytes and over-long lines, with messages carrying a
Message-ID of the run, another one or none, to a real aiosmtpd server on
127.0.0.1 (some with a fault switched on). The server never fails, never
commits a foreign message to the mail store, says ``queued as foreign/`` as
many times as it kept a message apart, answers only well-formed reply lines,
and still serves the engine's next session.

Both are derandomized (the same examples every run, so CI is repeatable),
bounded in examples and in real time: under a minute together on 2 cores.
"""

from __future__ import annotations

import asyncio
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from simulator.errors import ScenarioError
from simulator.faults import FaultSpec
from simulator.loader import load_scenario
from simulator.receiver import ReceivingServer, SessionContext
from simulator.scenario import Scenario
from simulator.store import MailStores
from simulator.transport import Attempt, SmtpTransport
from simulator.wire import WireServer

BOUNDED = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------- scenario files
BASE: dict[str, Any] = {
    "name": "fuzzed",
    "seed": 3,
    "clock": {"start": "2011-10-26 00:00", "end": "2011-10-28 00:00"},
    "servers": [{"name": "mx", "domains": ["atnex.example"], "preference": 10}],
    "timeline": [
        {"at": "2011-10-26 01:00", "server": "mx", "event": "backup"},
        {"at": "2011-10-26 02:00", "server": "mx", "event": "crash", "mode": "refuse"},
        {"at": "2011-10-26 06:00", "server": "mx", "event": "restore"},
        {
            "at": "2011-10-26 07:00",
            "server": "mx",
            "event": "fault",
            "fault": {"kind": "reply", "stage": "rcpt", "code": 451},
            "until": "2011-10-26 08:00",
        },
    ],
    "senders": [
        {"name": "corp", "count": 2, "policy": "postfix", "traffic": {"rate": "2/h", "until": "2011-10-27 00:00"}},
        {
            "name": "bulk",
            "count": 1,
            "policy": {"retry": "5m,15m,1h", "lifetime": "1d"},
            "traffic": {"at": ["2011-10-26 03:00"]},
        },
    ],
    "windows": [{"label": "outage", "from": "2011-10-26 02:00", "to": "2011-10-26 06:00"}],
    "thresholds": {"delivered_ratio": ["rate>0.5"], "delivery_delay{sender:corp}": ["p(95)<1d"]},
}

ODD_TEXT = st.sampled_from(
    [
        "1e9/h",
        "3601/h",
        ".inf",
        "nan",
        "-5m",
        "0.000001s",
        "2011-10-26 10:00+02:00",
        "9999-01-01 00:00",
        "2011-13-45 99:99",
        "p(1.2.3)<2h",
        "count!=nan",
        "rate>150%",
        "../../etc/passwd",
        "/etc/hostname",
        "!!python/name:os.system",
        "*undefined",
        "&anchor",
        "x" * 300,
        "",
        "\x00",
        "é",
    ]
)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    ODD_TEXT,
)
PLAUSIBLE = st.sampled_from(
    [
        *("2011-10-26 05:00", "2011-10-27 23:00", 1, 5, 10000, "5m", "30d", "postfix", "exim", "gmail", "up"),
        *("down", "refuse", "blackhole", "mx", "atnex.example", "12/h", 3600, 0.5, ["2011-10-26 04:00"], "dot"),
    ]
)
"""Values that belong somewhere in a scenario: they reach the rules beyond the schema."""
VALUE = st.one_of(
    PLAUSIBLE,
    LEAF,
    st.lists(LEAF, max_size=3),
    st.dictionaries(st.text(max_size=8), LEAF, max_size=2),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in *node* a value could be replaced or removed."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


ALL_PATHS = paths(BASE)


def mutated(changes: list[tuple[int, str, Any]]) -> dict[str, Any]:
    data: Any = yaml.safe_load(yaml.safe_dump(BASE))
    for index, how, value in changes:
        path = ALL_PATHS[index % len(ALL_PATHS)]
        parent = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if how == "drop" and isinstance(parent, dict):
                parent.pop(last, None)
            elif how == "add" and isinstance(parent, dict):
                parent[f"x{index}"] = value
            else:
                parent[last] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or reshaped this place
    return data


def as_yaml(data: dict[str, Any]) -> str:
    """YAML text (NaN and infinities as .nan and .inf)."""
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=None)


@settings(BOUNDED, max_examples=250)
@given(
    changes=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.sampled_from(["set", "drop", "add"]), VALUE),
        min_size=1,
        max_size=3,
    ),
    inserted=st.one_of(st.none(), st.tuples(st.integers(min_value=0), st.text(max_size=6))),
)
def test_a_fuzzed_scenario_loads_or_says_what_is_wrong_in_lines(changes, inserted):
    text = as_yaml(mutated(changes))
    if inserted is not None:
        at, chars = inserted
        at %= len(text) + 1
        text = text[:at] + chars + text[at:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            loaded = load_scenario(path)
        except ScenarioError as exc:
            assert exc.problems
            for problem in exc.problems:
                line = str(problem)
                assert "\n" not in line and "\r" not in line, line
                assert problem.file == str(path), line
            event("refused")
        else:
            assert isinstance(loaded, Scenario)
            event("accepted")


def test_the_unfuzzed_base_scenario_loads(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(as_yaml(BASE), encoding="utf-8")
    assert load_scenario(path).name == "fuzzed"


# ---------------------------------------------------------------- SMTP sessions
SENDER = "client@evil.example"
RCPT = "user1@atnex.example"
REPLY = re.compile(rb"^[2-5][0-9][0-9]( |-|$)")
FAULTS: list[dict[str, Any] | None] = [
    None,
    {"kind": "greylist", "delay": 300},
    {"kind": "reply", "stage": "rcpt", "code": 550},
    {"kind": "reply", "stage": "data", "code": 451},
    {"kind": "capacity", "sessions": 1},
    {"kind": "disk-full"},
    {"kind": "accept-then-drop"},
    {"kind": "fail-first", "attempts": 1, "stage": "dot"},
]

ADDRESS = st.one_of(
    st.sampled_from([RCPT, "user2@atnex.example", "someone@other.example", SENDER, "", "<>", "a@b@c"]),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
)


def body_lines() -> st.SearchStrategy[list[bytes]]:
    line = st.binary(max_size=120).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
    return st.lists(line, max_size=6)


@st.composite
def data_block(draw: st.DrawFn) -> bytes:
    message_id = draw(st.sampled_from(["m000001@smtp-outage.invalid", "intruder@evil.example", None, "x" * 500]))
    lines = [b"From: <client@evil.example>", b"Subject: fuzz"]
    if message_id is not None:
        lines.append(f"Message-ID: <{message_id}>".encode())
    lines += [b"", *draw(body_lines())]
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"DATA\r\n" + b"\r\n".join(stuffed) + b"\r\n.\r\n"


def not_data(line: bytes) -> bool:
    """Garbage must not open DATA by accident (the test writes DATA blocks whole)."""
    return not any(part.strip().upper().startswith((b"DATA", b"BDAT")) for part in re.split(rb"[\r\n]", line))


TRANSACTION = data_block().map(
    lambda block: f"EHLO evil.example\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\n".encode() + block
)
"""A whole, well-formed transaction (its message kept apart, unless a fault or the Message-ID says no)."""

COMMAND = st.one_of(
    TRANSACTION,
    st.builds(lambda h: f"EHLO {h}\r\n".encode(), st.sampled_from(["evil.example", "", "x" * 70, "[127.0.0.1]"])),
    st.builds(lambda h: f"HELO {h}\r\n".encode(), st.sampled_from(["evil.example", ""])),
    st.builds(
        lambda a, o: f"MAIL FROM:<{a}>{o}\r\n".encode(),
        ADDRESS,
        st.sampled_from(["", " SIZE=10", " BODY=8BITMIME", " X=Y"]),
    ),
    st.builds(lambda a: f"RCPT TO:<{a}>\r\n".encode(), ADDRESS),
    data_block(),
    st.sampled_from(
        [b"RSET\r\n", b"NOOP\r\n", b"VRFY user1\r\n", b"HELP\r\n", b"STARTTLS\r\n", b"AUTH PLAIN AAAA\r\n"]
    ),
    st.binary(max_size=200).filter(not_data).map(lambda b: b + b"\r\n"),
    st.integers(min_value=1000, max_value=5000).map(lambda n: b"X" * n + b"\r\n"),
)


async def fuzz_session(dialogue: list[bytes], fault: dict[str, Any] | None) -> None:
    commits: list[str] = []
    stores = MailStores(["mx"])
    logic = ReceivingServer(
        "mx", ["atnex.example"], "mx.atnex.example", stores, lambda: 0.0, lambda m, s, t: commits.append(m)
    )
    if fault is not None:
        logic.add_fault(TypeAdapter(FaultSpec).validate_python(fault), until=math.inf)
    wire = WireServer(logic)
    await wire.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
        writer.write(b"".join(dialogue) + b"QUIT\r\n")
        await writer.drain()
        replies = await asyncio.wait_for(reader.read(-1), 20)
        writer.close()
        # The engine's own session still gets through (a capacity limit counts only its sessions).
        plan = logic.plan(SessionContext("m000009", SENDER, RCPT))
        content = b"From: <x@y.example>\r\nMessage-ID: <m000009@smtp-outage.invalid>\r\n\r\nhi\r\n"
        attempt = Attempt("m000009", "mx", wire.address, "engine.example", SENDER, RCPT, content, plan)
        outcome = await SmtpTransport(servers={"mx": wire}).attempt(attempt)
    finally:
        await wire.stop()
    assert logic.errors == []
    lines = [line for line in replies.split(b"\r\n") if line]
    assert all(REPLY.match(line) for line in lines), lines[:5]
    assert replies.count(b"queued as foreign/") == logic.foreign.messages
    assert [m for m in commits if m != "m000009"] == []  # nothing foreign reached the mail store
    assert set(stores.holdings()) <= {"m000009"}
    if fault is None:
        assert outcome.accepted and commits == ["m000009"]
    event(f"messages kept apart: {min(logic.foreign.messages, 2)}+")


@settings(BOUNDED, max_examples=60)
@given(dialogue=st.lists(COMMAND, max_size=10), fault=st.sampled_from(FAULTS))
def test_a_fuzzed_smtp_session_never_reaches_the_ledger(dialogue, fault):
    asyncio.run(fuzz_session(dialogue, fault))
