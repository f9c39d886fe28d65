"""The report opened from disk in a real browser (headless Chromium): figures decode, tables render, no errors.

`.ci/run` installs Chromium and sets SMTP_OUTAGE_REQUIRE_BROWSER=1, so in CI
these tests fail without it. Elsewhere (a fresh machine with only Python and
pip) they are skipped, with a reason, when no Chromium is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from simulator.report import FIGURES

SECTIONS = (
    "summary",
    "timeline",
    "what-happened",
    "bounces",
    "outcomes",
    "senders",
    "queues",
    "delays",
    "recovery",
    "thresholds",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found:
        return found
    if os.environ.get("SMTP_OUTAGE_REQUIRE_BROWSER") == "1":
        pytest.fail("headless Chromium is needed to check the HTML report: apt-get install chromium (.ci/run does)")
    pytest.skip("no Chromium installed (apt-get install chromium); CI requires it")


def browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def body(dom: str) -> str:
    match = re.search(r"<body[^>]*>", dom)
    assert match, dom[:500]
    return match.group(0)


def test_browser_renders_every_figure_and_section_without_errors(small_report, tmp_path):
    dom = browse(small_report / "report.html", tmp_path, "--dump-dom").stdout
    assert f'data-images="{len(FIGURES)}/{len(FIGURES)}"' in body(dom)
    assert 'data-ready="yes"' in body(dom)
    assert re.search(r'<ul id="report-errors">\s*</ul>', dom), re.search(r'<ul id="report-errors">.*?</ul>', dom, re.S)
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom, section
    assert dom.count("<tr>") > 20


def test_screenshot_shows_the_page(small_report, tmp_path):
    shot = tmp_path / "report.png"
    browse(small_report / "report.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 2000)
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500, "the screenshot is (nearly) blank"
    seen = {c for _, c in colours}
    # The timeline's "up" band and the table's delivered/stranded numbers are on the first screen.
    assert (0x81, 0xC7, 0x84) in seen
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert white < 0.9 * 1280 * 2000


def test_a_broken_image_is_reported_by_the_page(small_report, tmp_path):
    broken = tmp_path / "broken.html"
    page = (small_report / "report.html").read_text(encoding="utf-8")
    broken.write_text(page.replace("</main>", '<img src="missing.png" alt="missing"></main>', 1), encoding="utf-8")
    dom = browse(broken, tmp_path, "--dump-dom").stdout
    assert 'data-ready="no"' in body(dom)
    assert re.search(r'<ul id="report-errors"><li>failed to load file://.*missing\.png</li>', dom)
