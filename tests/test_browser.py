"""The built book in a real browser (`make book-check` runs this after the book build).

A server on localhost serves `_build/html`; headless Chromium (the machine's own: Debian's
`chromium` or `$CHROMIUM`, driven by Playwright for Python; no browser is downloaded) opens
every page of _toc.yml and checks that it loads with no console error, no failed request and no
request to another host (they are blocked and reported), that its equations are typeset by
MathJax (no raw TeX left, no TeX error), that its mermaid diagrams are drawn as SVG, and that
its images load, and that no code cell (source or printed output) is wider than the text
column at a 1280-pixel window, and that its audio players load their sound. Chapter 15 must
show at least two players with sound and two animations. The search page must find
"diffusion". A screenshot of each page's first screen, and of its first diagram and first
displayed equation, go to `_build/screenshots/`, with `report.json` summing up what each page
showed (audio players, broken ones and their durations, and animations included).

Skips when the book, Chromium or Playwright is missing, unless AIGC_REQUIRE_BOOK_CHECKS=1.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from book_build import HTML, SCREENSHOTS, chromium, need, need_built_book, toc_pages

# As the machine notes prescribe for a closed network: no background connections, no sandbox
# (CI runs as root), no GPU. Playwright adds --headless and a fresh --user-data-dir itself.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
RENDER_TIMEOUT_MS = 30_000
# How long an <audio> element may take to read its sound's metadata (a data: URI of a few
# hundred kilobytes at most decodes in milliseconds); longer counts as broken.
AUDIO_TIMEOUT_MS = 5_000
REPORT: dict[str, dict] = {}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def server():
    need_built_book()
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(server):
    executable = chromium()
    need(
        executable is not None and Path(executable).exists(),
        "no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)",
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "Playwright for Python is not installed (pip install -r requirements-dev.txt)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        yield chrome
        chrome.close()
    (SCREENSHOTS / "report.json").write_text(json.dumps(REPORT, indent=2, ensure_ascii=False) + "\n")


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == "127.0.0.1"


class Tab:
    """One page in a fresh browser context, recording everything that goes wrong."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.remote: list[str] = []
        self.page.on("console", self.on_console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))
        self.page.on("requestfailed", self.on_failed)
        self.page.on("response", self.on_response)
        self.page.route("**/*", self.on_route)

    def on_console(self, msg):
        if msg.type == "error":
            where = msg.location.get("url", "") if msg.location else ""
            self.problems.append(f"console error: {msg.text} [{where}]")

    def on_failed(self, request):
        if is_local(request.url):
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def on_response(self, response):
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def on_route(self, route):
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.remote.append(url)
            route.abort()

    def close(self):
        self.context.close()


RENDERED = """() => {
    const pending = [...document.querySelectorAll('.mermaid')].filter(e =>
        !e.hasAttribute('data-mermaid-deferred') && !e.querySelector('svg')
        && !e.hasAttribute('data-mermaid-render-failed'));
    const mathjax = window.MathJax && window.MathJax.startup;
    return pending.length === 0 && (!document.querySelector('.math') || !!mathjax);
}"""

INSPECT = """async (audioTimeout) => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    const math = [...document.querySelectorAll('span.math, div.math')];
    const raw = math.filter(e => !e.querySelector('mjx-container'));
    const texErrors = [...document.querySelectorAll('mjx-merror')].map(
        e => e.getAttribute('data-mjx-error') || e.textContent);
    const diagrams = [...document.querySelectorAll('.mermaid')];
    const undrawn = diagrams.filter(e => !e.querySelector('svg'));
    const badDiagrams = diagrams.filter(e => e.querySelector('svg[aria-roledescription="error"]'));
    // A code cell (its source or its printed output) wider than the text column scrolls
    // sideways: the reader sees half a line. Report the longest line of each such block.
    const code = [...document.querySelectorAll('div.cell div.cell_input pre, div.cell div.cell_output pre')];
    const wide = code.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => {
        const longest = e.textContent.split('\\n').reduce((a, l) => (l.length > a.length ? l : a), '');
        return `${e.scrollWidth} px > ${e.clientWidth} px: ${longest.length} chars: ${longest.slice(0, 60)}`;
    });
    const images = [...document.images];
    const broken = [];
    await Promise.all(images.map(img => {
        img.loading = 'eager';
        return img.decode().then(
            () => { if (!(img.naturalWidth > 0)) broken.push(img.getAttribute('src')); },
            () => broken.push(img.getAttribute('src')));
    }));
    // Each <audio> reloads and must read its metadata (duration) without an error in time.
    const audios = [...document.querySelectorAll('audio')];
    const brokenAudio = [];
    const durations = audios.map(() => 0);
    await Promise.all(audios.map((a, i) => new Promise(resolve => {
        const source = a.querySelector('source');
        const src = (a.getAttribute('src') || (source && source.getAttribute('src')) || '').slice(0, 40);
        const timer = setTimeout(() => {
            brokenAudio.push(`${src}… (no metadata after ${audioTimeout} ms)`);
            resolve();
        }, audioTimeout);
        a.addEventListener('loadedmetadata', () => {
            clearTimeout(timer);
            durations[i] = a.duration;
            resolve();
        }, {once: true});
        a.addEventListener('error', () => {
            clearTimeout(timer);
            brokenAudio.push(`${src}… (error ${a.error ? a.error.code : '?'})`);
            resolve();
        }, {once: true});
        a.preload = 'metadata';
        a.load();
    })));
    const animations = images.filter(img => (img.getAttribute('src') || '').startsWith('data:image/gif'));
    return {
        math: math.length, typeset: math.length - raw.length,
        raw_tex: raw.slice(0, 3).map(e => e.textContent.slice(0, 80)),
        tex_errors: texErrors.slice(0, 5),
        diagrams: diagrams.length, drawn: diagrams.length - undrawn.length,
        diagram_errors: badDiagrams.length,
        images: images.length, broken_images: broken,
        code_blocks: code.length, wide_code: wide.slice(0, 5),
        audio: audios.length, broken_audio: brokenAudio, audio_durations: durations,
        animations: animations.length,
    };
}"""


def shot_name(docname: str) -> str:
    return docname.rsplit("/", 1)[-1]


@pytest.mark.parametrize("docname", toc_pages())
def test_page_renders_offline_without_errors(browser, server, docname):
    tab = Tab(browser)
    try:
        response = tab.page.goto(server + f"{docname}.html", wait_until="load")
        assert response is not None and response.ok, f"{docname}.html: HTTP {response and response.status}"
        try:
            tab.page.wait_for_function(RENDERED, timeout=RENDER_TIMEOUT_MS)
        except Exception as exc:  # reported with everything else below
            tab.problems.append(f"equations or diagrams not rendered after {RENDER_TIMEOUT_MS} ms: {exc}")
        seen = tab.page.evaluate(INSPECT, AUDIO_TIMEOUT_MS)
        name = shot_name(docname)
        tab.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
        shots = [f"{name}.png"]
        for what, selector in (("diagram", ".mermaid svg"), ("equation", "div.math mjx-container")):
            first = tab.page.locator(selector).first
            if first.count():
                first.screenshot(path=str(SCREENSHOTS / f"{name}-{what}.png"))
                shots.append(f"{name}-{what}.png")
        REPORT[docname] = {
            **seen,
            "problems": tab.problems,
            "remote_requests": tab.remote,
            "screenshots": shots,
        }
    finally:
        tab.close()

    problems = list(tab.problems)
    if tab.remote:
        problems.append(f"requests to other hosts (blocked): {sorted(set(tab.remote))}")
    if seen["typeset"] != seen["math"]:
        problems.append(
            f"{seen['math'] - seen['typeset']} of {seen['math']} equations not typeset: {seen['raw_tex']}"
        )
    if seen["tex_errors"]:
        problems.append(f"TeX errors: {seen['tex_errors']}")
    if seen["drawn"] != seen["diagrams"] or seen["diagram_errors"]:
        problems.append(
            f"mermaid: {seen['drawn']} of {seen['diagrams']} diagrams drawn, "
            f"{seen['diagram_errors']} with a syntax error"
        )
    if seen["wide_code"]:
        problems.append(f"code cells wider than the page (they scroll sideways): {seen['wide_code']}")
    if seen["broken_images"]:
        problems.append(f"images that do not load: {seen['broken_images']}")
    if seen["broken_audio"]:
        problems.append(f"audio that does not load: {seen['broken_audio']}")
    assert not problems, f"{docname}:\n  " + "\n  ".join(problems)


# Chapter 15 (audio and video) shows its sounds as <audio> players and its videos as GIFs.
CHAPTER_15 = [docname for docname in toc_pages() if docname.endswith("15_audio_and_video")]
MIN_PLAYERS = 2  # at least the data's notes and the generated ones
MIN_ANIMATIONS = 2  # at least the data's clips and the generated ones


@pytest.mark.parametrize(
    "docname",
    CHAPTER_15
    or [
        pytest.param(None, marks=pytest.mark.skip(reason="no page ending in 15_audio_and_video in _toc.yml"))
    ],
)
def test_chapter_15_plays_sound_and_shows_animations(browser, server, docname):
    tab = Tab(browser)
    try:
        response = tab.page.goto(server + f"{docname}.html", wait_until="load")
        assert response is not None and response.ok, f"{docname}.html: HTTP {response and response.status}"
        seen = tab.page.evaluate(INSPECT, AUDIO_TIMEOUT_MS)
    finally:
        tab.close()
    playing = [d for d in seen["audio_durations"] if d and d > 0]
    assert not seen["broken_audio"], f"audio that does not load: {seen['broken_audio']}"
    assert len(playing) >= MIN_PLAYERS, (
        f"{docname}: {len(playing)} of {seen['audio']} audio players have a sound with a positive "
        f"duration (durations {seen['audio_durations']}), want >= {MIN_PLAYERS}"
    )
    assert seen["animations"] >= MIN_ANIMATIONS, (
        f"{docname}: {seen['animations']} animations (data:image/gif images), want >= {MIN_ANIMATIONS}"
    )


def test_search_finds_diffusion(browser, server):
    tab = Tab(browser)
    try:
        tab.page.goto(server + "search.html?q=diffusion", wait_until="load")
        tab.page.wait_for_function(
            "() => /Search finished/.test(document.querySelector('.search-summary, #search-results')"
            "?.textContent || '')",
            timeout=RENDER_TIMEOUT_MS,
        )
        results = tab.page.eval_on_selector_all(
            "#search-results ul.search li a", "links => links.map(a => a.getAttribute('href'))"
        )
        tab.page.screenshot(path=str(SCREENSHOTS / "search.png"))
        REPORT["search?q=diffusion"] = {
            "results": results,
            "problems": tab.problems,
            "remote_requests": tab.remote,
        }
    finally:
        tab.close()
    assert not tab.problems and not tab.remote, tab.problems + tab.remote
    assert any("chapters/" in href for href in results), f"no chapter among the results: {results}"
