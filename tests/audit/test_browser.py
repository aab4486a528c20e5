"""The audit page in a real browser: headless Chromium, driven by Playwright.

A tiny toy run is trained and audited once (short budgets), and a second, hand-made run is
added with a section of each status and the widest content a report can carry (a table of
many columns, a long unbroken path and command), so the side-by-side tables are built too.
The page is opened as a ``file://`` URL in headless Chromium and checked for what html5lib
cannot see: every section rendered and visible with its figures and decoded images, no
console error, no request leaving the page, no sideways scrolling on a phone, print styles
applied (and a PDF printed), and a full-page screenshot in which no section is blank.

The browser is Debian's Chromium (``/usr/bin/chromium``, installed by ``make setup`` where it
can) or the one ``$STALWART_CHROMIUM`` names; Playwright's own download of a browser is not
used. Without a Chromium the tests are skipped, saying how to install one. The screenshot is
kept in ``$STALWART_SCREENSHOT_DIR`` when it is set (to look at, or keep from CI).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from tests.conftest import TOY_RUN

from stalwart.audit import audit
from stalwart.audit.side_by_side import side_by_side
from stalwart.experiments.configs import parse_config
from stalwart.experiments.run import run
from stalwart.report.html import Plot, Section
from stalwart.report.tables import ResultTable

try:
    from PIL import Image, ImageStat
    from playwright.sync_api import sync_playwright
except ImportError as error:  # a dev dependency: the environment is incomplete, not the code
    raise ImportError(f"{error}; install the test dependencies: pip install -e '.[dev]'") from None

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, Chromium keeps trying to reach Google's hosts on a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1000, "height": 800}
MIN_SPREAD = 8.0
"""A section's screenshot is blank when its grey levels vary less than this (std, 0-255)."""


def find_chromium() -> str | None:
    """``$STALWART_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else ``chromium`` on PATH."""
    named = os.environ.get("STALWART_CHROMIUM")
    if named:
        if not Path(named).is_file():
            raise FileNotFoundError(f"$STALWART_CHROMIUM names {named!r}, which is not a file")
        return named
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium for the browser test: `make setup` installs Debian's chromium as root "
    "(apt-get install -y chromium), or set $STALWART_CHROMIUM to a Chromium executable",
)


def wide_run() -> list[Section]:
    """Hand-made sections: every status, and the widest things a section shows."""
    ok = Section("groups", "Worst-group accuracy", seconds=0.4, budget=3)
    ok.figure("test accuracy", 0.91, "%", "higher")
    ok.figure("worst-group accuracy", 0.42, "%", "higher")
    ok.figure("worst group", "y=1, a=0")
    table = ResultTable(["group", *(f"column number {i}" for i in range(14))], title="wide")
    table.add("y=0, a=0", *(f"{i * 1.5:.1f}" for i in range(14)))
    ok.tables.append(table)
    ok.command = "stalwart runs " + "/very/long/path/without/any/space" * 8
    ok.notes.append("a_note_that_is_one_long_word_" * 10)
    partial = Section("robustness", "Adversarial robustness (PGD)", "partial", seconds=3.2,
                      budget=3, reason="ran out of its 3 s budget at ε = 0.1")  # fmt: skip
    partial.figure("clean accuracy", 0.9, "%", "higher")
    failed = Section("certified", "Certified robustness", "failed", seconds=0.1, budget=3,
                     reason="RuntimeError: " + "x" * 300)  # fmt: skip
    inapplicable = Section("simplicity", "Reliance on simple features", "not_applicable",
                           reason="the data declares no input blocks")  # fmt: skip
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' width='200' height='60'>"
        "<rect width='200' height='60' fill='#fff'/><rect x='10' y='10' width='120' "
        "height='40' fill='#1a7f37'/></svg>"
    )
    inapplicable.plots.append(Plot(svg, caption="an SVG plot"))
    return [ok, partial, failed, inapplicable]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    run(parse_config({**TOY_RUN, "out": str(root / "toy")}))
    report = audit([root / "toy"], checks=["groups", "robustness", "certified", "simplicity"],
                   budget_s=3.0)  # fmt: skip
    report.runs["hand-made/with-a-long-label"] = wide_run()
    report.paths["hand-made/with-a-long-label"] = "/runs/" + "deep/" * 40 + "seed0"
    report.side_by_side = side_by_side(report.runs)
    return report


@pytest.fixture(scope="module")
def url(report, tmp_path_factory):
    page, _ = report.write(tmp_path_factory.mktemp("page") / "report.html")
    return page.resolve().as_uri()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Opened:
    """A page loaded in a fresh context, with every console error, page error and request."""

    def __init__(self, browser, url: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport, device_scale_factor=1)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url, wait_until="load")

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def opened(browser, url):
    pages: list[Opened] = []

    def open_page(viewport=DESKTOP) -> Opened:
        pages.append(Opened(browser, url, viewport))
        return pages[-1]

    yield open_page
    for page in pages:
        page.close()


def expected_sections(report) -> list[tuple[str, Section]]:
    """Each section of the page, in page order, with the run it belongs to ("" side by side)."""
    found = [("", s) for s in report.side_by_side]
    for label, sections in report.runs.items():
        found += [(label, s) for s in sections]
    return found


def test_every_section_renders_with_its_figures_and_plots(report, url, opened):
    view = opened()
    page = view.page
    expected = expected_sections(report)
    sections = page.locator("section.check")
    assert sections.count() == len(expected)
    for position, (label, section) in enumerate(expected):
        element = sections.nth(position)
        assert element.is_visible(), (label, section.key)
        assert section.title in element.locator("h3").inner_text()
        names = element.locator("dl.figures dt").all_inner_texts()
        values = element.locator("dl.figures dd").all_inner_texts()
        assert names == list(section.figures), (label, section.key)
        assert values == [f.text() for f in section.figures.values()], (label, section.key)
        assert element.locator("table").count() == len(section.tables)
        images = element.locator("figure img")
        assert images.count() == len(section.plots), (label, section.key)
        for i in range(images.count()):
            image = images.nth(i)
            assert image.is_visible()
            # Decoded, not a broken-image icon: the data: URI holds a real image.
            assert image.evaluate("img => img.complete && img.naturalWidth > 0"), (label, i)
            box = image.bounding_box()
            assert box["width"] > 50 and box["height"] > 30
    # A run heading per run, the side-by-side heading, and the real plots of the toy run.
    headings = page.locator("h2").all_inner_texts()
    assert headings == ["Side by side", *report.runs]
    assert sum(len(s.plots) for s in report.runs["toy"]) >= 2
    assert view.errors == []
    # Offline and alone: the page itself is the only request (images are data: URIs).
    assert [r for r in view.requests if not r.startswith("data:")] == [url]


def test_a_phone_scrolls_only_inside_the_tables(opened):
    page = opened(PHONE).page
    width = page.evaluate("window.innerWidth")
    assert width == PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("document.body.scrollWidth") <= width
    # Nothing sticks out on the right, and the wide table scrolls in its own box.
    overflowing = page.evaluate(
        """w => [...document.querySelectorAll('main *')]
              .filter(e => !e.closest('.table-scroll') || e.matches('.table-scroll'))
              .filter(e => e.getBoundingClientRect().right > w + 0.5)
              .map(e => e.tagName + '.' + e.className)""",
        width,
    )
    assert overflowing == []
    assert page.evaluate(
        "[...document.querySelectorAll('.table-scroll')]"
        ".some(box => box.scrollWidth > box.clientWidth)"
    )


def test_print_media_applies_the_print_styles_and_prints(opened):
    page = opened().page
    page.emulate_media(media="print")
    assert page.evaluate("matchMedia('print').matches")
    styles = page.evaluate(
        """() => ({
            scroll: getComputedStyle(document.querySelector('.table-scroll')).overflowX,
            badge: getComputedStyle(document.querySelector('.status')).backgroundImage
                   + ' ' + getComputedStyle(document.querySelector('.status')).backgroundColor,
            cell: getComputedStyle(document.querySelector('td')).whiteSpace,
            section: getComputedStyle(document.querySelector('section.check')).breakInside,
        })"""
    )
    assert styles == {
        "scroll": "visible",  # wide tables print whole, not cut at the box
        "badge": "none rgba(0, 0, 0, 0)",  # status badges print as outlined text
        "cell": "normal",
        "section": "avoid",
    }
    pdf = page.pdf(format="A4", print_background=False)
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)  # each page object, not /Pages
    assert pdf.startswith(b"%PDF") and len(pages) > 1


def test_screenshot_shows_every_section(report, opened, tmp_path):
    page = opened().page
    boxes = page.evaluate(
        """() => [...document.querySelectorAll('section.check')].map(e => {
            const r = e.getBoundingClientRect();
            return [r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY];
        })"""
    )
    assert len(boxes) == len(expected_sections(report))
    saved = Path(os.environ.get("STALWART_SCREENSHOT_DIR", tmp_path)) / "report.png"
    page.screenshot(path=saved, full_page=True)
    shot = Image.open(saved).convert("L")
    assert shot.width == DESKTOP["width"] and shot.height >= max(bottom for *_, bottom in boxes)
    blank = []
    for position, (left, top, right, bottom) in enumerate(boxes):
        region = shot.crop((int(left), int(top), int(right), int(bottom)))
        assert region.width > 100 and region.height > 30, position
        if ImageStat.Stat(region).stddev[0] < MIN_SPREAD:
            blank.append(position)
    assert blank == []
    # The plots themselves are drawn, not blank boxes.
    for image in page.locator("figure img").all():
        box = image.bounding_box()
        top = box["y"] + page.evaluate("scrollY")
        region = shot.crop((int(box["x"]), int(top), int(box["x"] + box["width"]),
                            int(top + box["height"])))  # fmt: skip
        assert ImageStat.Stat(region).stddev[0] > MIN_SPREAD
