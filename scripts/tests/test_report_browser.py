"""The report page in a real browser: headless Chromium renders the sample pages written by
`cargo run --example report_sample` (a 100-loop chain with failed loops, and three runs compared), and the
page the real `rd-chain report` writes for a chain run by the simulated rdagent (scripts/fake-rdagent).

Checks that the screenshots are not blank and show the marks of every decision in their colours, that light
and dark mode both apply, and (through --dump-dom of a copy with a measuring script appended) that every
chart's SVG has a non-zero size with the aspect of its viewBox and that no hypothesis became an element.

Skips when Chromium is missing, unless RD_CHAIN_TEST_REQUIRE_CHROMIUM=1 (CI: scripts/ensure-chromium.sh
installs it). Set RD_CHAIN_CHROMIUM to use a particular binary. Needs only the standard library (PNGs are
decoded with zlib); Python 3.9+.
"""

import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
CHART_COUNT = {"run.html": 10, "comparison.html": 10, "chain.html": 10}
# The light-mode colours of page.css.
ACCEPTED = (0x09, 0x69, 0xDA)
REJECTED = (0xB3, 0x59, 0x00)
FAILED = (0xCF, 0x22, 0x2E)
SOTA = (0x82, 0x50, 0xDF)
BEST = (0x0E, 0x8A, 0x72)


def find_chromium():
    explicit = os.environ.get("RD_CHAIN_CHROMIUM")
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            pytest.fail("RD_CHAIN_CHROMIUM={} is not an executable; unset it or point it at Chromium".format(explicit))
        return found
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        message = (
            "headless Chromium not found (tried RD_CHAIN_CHROMIUM, chromium, chromium-browser, google-chrome): "
            "run scripts/ensure-chromium.sh to install it"
        )
        if os.environ.get("RD_CHAIN_TEST_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message + " (RD_CHAIN_TEST_REQUIRE_CHROMIUM=1)")
        pytest.skip(message)
    return path


CHAIN_FACTOR_LOOPS = 12
CHAIN_MODEL_LOOPS = 4


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    subprocess.run(
        ["cargo", "run", "--quiet", "--example", "report_sample", "--", str(out)],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # A chain run by the simulated rdagent, then its page from `rd-chain report RUN -o chain.html`.
    subprocess.run(["cargo", "build", "--quiet"], cwd=REPO, check=True)
    rd_chain = REPO / "target" / "debug" / "rd-chain"
    project = tmp_path_factory.mktemp("chain")
    subprocess.run(
        [str(rd_chain), "--rdagent", str(REPO / "scripts" / "fake-rdagent"), "--no-report",
         "--factor-loops", str(CHAIN_FACTOR_LOOPS), "--model-loops", str(CHAIN_MODEL_LOOPS)],
        cwd=project,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (record,) = (project / "log" / "rd-chain").glob("*.json")
    printed = subprocess.run(
        [str(rd_chain), "report", record.stem, "-o", str(out / "chain.html")],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert printed == "{}\n".format(out / "chain.html")
    return out


def run_chromium(chromium, *args):
    with tempfile.TemporaryDirectory(prefix="rd-chain-chromium-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            "--user-data-dir=" + profile,
            *args,
        ]
        result = subprocess.run(cmd, capture_output=True, timeout=120)
    assert result.returncode == 0, "chromium failed: {}\n{}".format(cmd, result.stderr.decode(errors="replace"))
    return result.stdout.decode()


def screenshot(chromium, page, png, width, height, *extra):
    run_chromium(chromium, "--window-size={},{}".format(width, height), "--screenshot=" + str(png), *extra, page)
    return decode_png(png.read_bytes())


def decode_png(data):
    """(width, height, rows of (r, g, b) bytes) of an 8-bit RGB or RGBA PNG, with the standard library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = channels = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    assert len(raw) == height * (stride + 1), "truncated image data"
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = prev[i]
                c = prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            assert kind == 0, "unknown PNG filter {}".format(kind)
        rows.append(bytes(line) if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


def pixels(rows):
    for row in rows:
        for i in range(0, len(row), 3):
            yield row[i], row[i + 1], row[i + 2]


def near(colour, target, tolerance=40):
    return sum(abs(a - b) for a, b in zip(colour, target)) <= tolerance


def test_run_page_charts_are_drawn(chromium, pages, tmp_path):
    # The header, and the factor loop's first four charts below it.
    width, height, rows = screenshot(chromium, (pages / "run.html").as_uri(), tmp_path / "run.png", 1280, 2400)
    assert (width, height) == (1280, 2400)
    colours = Counter(pixels(rows))
    background = tuple(rows[0][:3])
    total = width * height
    assert total - colours[background] > total * 0.05, "the page looks blank"
    assert len(colours) > 200, "too few colours for text and charts: {}".format(len(colours))
    # 13 accepted, 76 rejected, 11 failed loops on each visible chart, the SOTA rings, the step lines.
    for name, target in (
        ("accepted", ACCEPTED),
        ("rejected", REJECTED),
        ("failed", FAILED),
        ("sota", SOTA),
        ("best", BEST),
    ):
        count = sum(n for colour, n in colours.items() if near(colour, target))
        assert count > 300, "{} marks not visible: {} pixels".format(name, count)


def test_chain_report_of_the_real_command_is_drawn(chromium, pages, tmp_path):
    width, height, rows = screenshot(chromium, (pages / "chain.html").as_uri(), tmp_path / "chain.png", 1280, 2400)
    colours = Counter(pixels(rows))
    background = tuple(rows[0][:3])
    total = width * height
    assert total - colours[background] > total * 0.05, "the page looks blank"
    assert len(colours) > 200, "too few colours for text and charts: {}".format(len(colours))
    # The simulated run's loops on the factor charts: accepted and rejected marks, the SOTA ring, the step line.
    for name, target in (("accepted", ACCEPTED), ("rejected", REJECTED), ("sota", SOTA), ("best", BEST)):
        count = sum(n for colour, n in colours.items() if near(colour, target))
        assert count > 100, "{} marks not visible: {} pixels".format(name, count)


def test_dark_mode_and_light_mode_both_apply(chromium, pages, tmp_path):
    page = (pages / "run.html").as_uri()
    _, _, light = screenshot(chromium, page, tmp_path / "light.png", 400, 200)
    _, _, dark = screenshot(chromium, page, tmp_path / "dark.png", 400, 200, "--force-dark-mode")
    assert sum(light[5][:3]) > 3 * 240, light[5][:3]
    assert sum(dark[5][:3]) < 3 * 40, dark[5][:3]


@pytest.mark.parametrize("name", sorted(CHART_COUNT))
def test_every_chart_svg_has_a_size_and_no_text_became_markup(chromium, pages, tmp_path, name):
    source = (pages / name).read_text(encoding="utf-8")
    # The page forbids scripts; the measuring copy drops exactly that policy and appends one script.
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="[^"]*">\n', source)
    assert policy, "the page carries its Content-Security-Policy"
    probe = (
        "<script>"
        "document.body.setAttribute('data-probe', JSON.stringify({"
        "svgs: [...document.querySelectorAll('svg.chart')].map(s => {"
        "  const r = s.getBoundingClientRect(), v = s.viewBox.baseVal;"
        "  return [r.width, r.height, v.width, v.height]; }),"
        "scripts: document.scripts.length,"
        "details: document.querySelectorAll('details').length,"
        "marks: [...document.querySelectorAll('svg.chart g.mark')].filter(g => !g.classList.contains('key')"
        "  && g.getBoundingClientRect().width > 0).length,"
        "bold: document.querySelectorAll('main b').length,"
        "width: document.documentElement.scrollWidth}));"
        "</script>"
    )
    measured = source.replace(policy.group(0), "").replace("</body>", probe + "</body>")
    copy = tmp_path / name
    copy.write_text(measured, encoding="utf-8")
    dom = run_chromium(chromium, "--window-size=1280,900", "--dump-dom", copy.as_uri())
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the probe did not run: {}".format(dom[:300])
    probe = json.loads(html.unescape(found.group(1)))
    svgs = probe["svgs"]
    assert len(svgs) == CHART_COUNT[name]
    for w, h, vw, vh in svgs:
        assert w > 300 and h > 100, svgs
        assert abs(h / w - vh / vw) < 0.01, "chart stretched: {}".format(svgs)
    assert probe["scripts"] == 1, "only the probe is a script: hypotheses stay text"
    assert probe["bold"] == 0, "no <b> from a factor description became an element"
    assert probe["width"] <= 1280, "nothing overflows the window horizontally"
    if name == "run.html":
        assert probe["details"] > 10
    if name == "chain.html":
        # Every loop of both phases is a mark on each of its phase's five charts.
        assert probe["marks"] == 5 * (CHAIN_FACTOR_LOOPS + CHAIN_MODEL_LOOPS), probe["marks"]
