"""The course website (``cgan_course.site``): the concept map's conversion, the build (strict, from
the committed notebooks), the offline link check, and the built pages in headless Chromium with the
network cut. The build needs Graphviz's ``dot`` (CI: ``apt-get install graphviz``)."""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from cgan_course import site

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "runs" / "site-screenshots"  # the browser test leaves its screenshots here
REPO_URL = "https://github.com/example/cgan-course"
NO_DOT = "Graphviz's dot not found; install it with `apt-get install graphviz`"


def require_dot() -> None:
    """Skip without Graphviz, except in CI (.ci/run sets CGAN_COURSE_CI), where a missing dot must
    not turn the site's tests into skips."""
    if shutil.which("dot") is None:
        if os.environ.get("CGAN_COURSE_CI"):
            pytest.fail(NO_DOT)
        pytest.skip(NO_DOT)


def readme_map() -> str:
    return re.search(r"^```mermaid\n(.*?)^```$", (ROOT / "README.md").read_text(), re.S | re.M).group(1)


# ----------------------------------------------------------------------------------------------
# The concept map


def test_the_readme_concept_map_becomes_graphviz_with_every_node_and_edge():
    source = readme_map()
    dot = site.mermaid_to_dot(source)
    assert dot.count("subgraph cluster_") == source.count("subgraph ")
    for label in re.findall(r'\["([^"]*)"\]', source):
        assert f'label="{label}"' in dot, label
    visible = [line for line in dot.splitlines() if "->" in line and "invis" not in line]
    assert len(visible) == source.count("-->")
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=dot, text=True, check=True, capture_output=True)


@pytest.mark.parametrize("source, problem", [
    ("graph XY\n a --> b", "must start with"),
    ("flowchart TD\n a -.-> b", "line 2"),
    ("flowchart TD\n subgraph A\n subgraph B\n end\n end", "nested"),
    ("flowchart TD\n subgraph A\n a", "not closed"),
    ("flowchart TD\n end", "without a subgraph"),
    ('flowchart TD\n a["x"] --> b["y"]; click a', "line 2"),
    ("flowchart TD\n subgraph S\n a\n end\n b --> S", "both a subgraph and a node"),
])
def test_mermaid_outside_the_supported_subset_is_refused_not_drawn_wrong(source, problem):
    with pytest.raises(site.SiteError, match=problem):
        site.mermaid_to_dot(source)


def test_labels_are_escaped_for_graphviz():
    dot = site.mermaid_to_dot('flowchart LR\n a["a \\\\ b"] --> b["c"]')
    assert "rankdir=LR" in dot and 'label="a \\\\\\\\ b"' in dot
    assert '"node" -> "edge"' in site.mermaid_to_dot("flowchart TD\n node --> edge")  # DOT keywords as ids


# ----------------------------------------------------------------------------------------------
# Pieces of the build


def test_the_committed_exercises_page_is_current():
    assert (ROOT / site.EXERCISES_PAGE).read_text() == site.exercises_page(), (
        f"run: python -m cgan_course.site exercises > {site.EXERCISES_PAGE}")


def test_widget_outputs_become_a_note_and_the_saved_widget_state_is_dropped(tmp_path):
    source = ROOT / "notebooks" / "07_class_sampler.ipynb"
    original = source.read_text()
    dest = tmp_path / source.name
    replaced = site._prepare_notebook(source, dest, "07_x.html", REPO_URL)
    assert replaced == original.count(site.WIDGET_MIME) >= 2
    nb = json.loads(dest.read_text())
    assert site.WIDGET_MIME not in dest.read_text() and "widgets" not in nb["metadata"]
    notes = [o for c in nb["cells"] for o in c.get("outputs", []) if "widget-stand-in" in o.get("data", {}).get("text/html", "")]
    assert len(notes) == replaced and 'href="07_x.html"' in notes[0]["data"]["text/html"]
    assert f"git clone {REPO_URL}.git" in "".join(nb["cells"][1]["source"])  # the Colab note
    assert source.read_text() == original  # the committed notebook is untouched


def test_out_must_be_new_empty_or_a_previous_site(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(site.SiteError, match="is a file"):
        site._check_out(tmp_path / "file")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    with pytest.raises(site.SiteError, match="not a previous site build"):
        site._check_out(tmp_path / "work")
    (tmp_path / "empty").mkdir()
    site._check_out(tmp_path / "empty")
    site._check_out(tmp_path / "new")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / site.MARKER).write_text("")
    (tmp_path / "old" / "index.html").write_text("")
    site._check_out(tmp_path / "old")


def test_the_link_check_finds_missing_files_anchors_and_escapes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<h1 id="top">x</h1><a href="sub/page.html#here">ok</a><a href="#top">ok</a>'
        '<a href="https://example.org/x">external</a><img src="//cdn.example.org/x.png">'
        '<a href="sub/page.html#gone">anchor</a><img src="missing.png"><a href="../outside.html">out</a>')
    (tmp_path / "sub" / "page.html").write_text('<p id="here">x</p><a href="../index.html#top">back</a>')
    broken = site.check_links(tmp_path)
    assert broken == ["index.html: sub/page.html#gone (no anchor #gone)",
                      "index.html: missing.png (no such file)",
                      "index.html: ../outside.html (outside the site)"]
    with pytest.raises(site.SiteError, match="build the site first"):
        site.check_links(tmp_path / "sub")


@pytest.mark.parametrize("args, message", [
    (["build", "--out", "{tmp}/s", "--repo-url", "http://example.org/x"], "--repo-url must be the repository's https URL"),
    (["build", "--out", "{tmp}/s", "--repo-url", "https://github.com/a/b/"], "no trailing slash"),
    (["build", "--out", "{tmp}/s", "--repo-url", "https://github.com/a/b.git"], "no .git"),
    (["build", "--out", "{tmp}/s", "--branch", " "], "--branch must be"),
    (["check", "{tmp}"], "has no index.html"),
    (["serve", "{tmp}"], "has no index.html"),
])
def test_bad_commands_get_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        site.main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------------------------
# The build


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    require_dot()
    out = tmp_path_factory.mktemp("site") / "site"
    info = site.build_site(out, repo_url=REPO_URL)
    assert info["notebooks"] == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    return out


def test_every_chapter_and_page_is_built_and_every_internal_link_resolves(built):
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        page = (built / "notebooks" / f"{nb.stem}.html").read_text()
        assert "cell_output" in page, f"{nb.name}: no outputs on its page"
    for page in site.PAGES:
        assert (built / page).with_suffix(".html").is_file()
    assert (built / "running.html").is_file() and (built / "searchindex.js").is_file()
    assert site.check_links(built) == []


def test_pages_load_nothing_from_outside_the_folder(built):
    loads = re.compile(r"<(?:script|img|link|iframe|source|object)\b[^>]*?\b(?:src|href|data)=\"((?:https?:)?//[^\"]+)\"")
    for page in built.rglob("*.html"):
        if "_static" not in page.parts:
            assert loads.findall(page.read_text()) == [], page.relative_to(built)
    assert (built / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "mathjax/tex-chtml.js" in (built / "notebooks" / "01_gan_theory.html").read_text()


def test_launch_links_come_from_the_repository_url(built):
    page = (built / "notebooks" / "04_training.html").read_text()
    assert 'href="https://colab.research.google.com/github/example/cgan-course/blob/main/notebooks/04_training.ipynb"' in page
    assert 'href="../_sources/notebooks/04_training.ipynb"' in page  # the download button: the committed notebook
    assert ((built / "_sources" / "notebooks" / "04_training.ipynb").read_bytes()
            == (ROOT / "notebooks" / "04_training.ipynb").read_bytes())


def test_the_concept_map_and_the_sampler_stand_in_are_on_the_site(built):
    svg = next(built.glob("_images/graphviz-*.svg")).read_text()
    assert "01 GAN theory" in svg and "08 Your data and service" in svg
    sampler = (built / "notebooks" / "07_class_sampler.html").read_text()
    assert sampler.count("widget-stand-in") == 2 and site.WIDGET_MIME not in sampler


def _small_repo(folder: Path, readme: str = "# Course\n\n## Hardware\n\ntext\n") -> Path:
    """A repository with every page, one notebook and ``readme``: a build in a few seconds."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "docs").mkdir()
    for page in site.PAGES:
        (folder / page).write_text(f"# {Path(page).stem}\n")
    shutil.copy(ROOT / "notebooks" / "02_cifar10_preprocessing.ipynb", folder / "notebooks")
    (folder / "README.md").write_text(readme)
    return folder


def test_a_rebuild_replaces_the_previous_site_and_other_folders_are_refused(built, tmp_path):
    require_dot()
    out = tmp_path / "site"
    shutil.copytree(built, out)
    (out / "stale.html").write_text("old")
    site.build_site(out, repo=_small_repo(tmp_path / "repo"))  # no repo_url this time
    assert not (out / "stale.html").exists() and (out / "index.html").is_file()
    assert not (out / "notebooks" / "04_training.html").exists()
    assert "colab.research.google.com" not in (out / "notebooks" / "02_cifar10_preprocessing.html").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(site.SiteError, match="not a previous site build"):
        site.build_site(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_a_failed_build_leaves_the_previous_site_as_it_was(built, tmp_path):
    require_dot()
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "README.md").write_text("# no split heading\n")
    shutil.copy(ROOT / "notebooks" / "02_cifar10_preprocessing.ipynb", repo / "notebooks")
    out = tmp_path / "site"
    shutil.copytree(built, out)
    with pytest.raises(site.SiteError, match="Hardware"):
        site.build_site(out, repo=repo)
    assert (out / "index.html").read_bytes() == (built / "index.html").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "site"]  # no staging folder left


def test_serve_answers_on_loopback(built):
    from http.server import ThreadingHTTPServer

    servers = []
    real = ThreadingHTTPServer

    class Recorded(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            servers.append(self)

    site.http.server.ThreadingHTTPServer = Recorded
    try:
        thread = threading.Thread(target=site.serve_site, args=(built, 0), daemon=True)
        thread.start()
        for _ in range(100):
            if servers:
                break
            threading.Event().wait(0.05)
        host, port = servers[0].server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as r:
            assert r.status == 200 and b"Conditional GANs" in r.read()
    finally:
        site.http.server.ThreadingHTTPServer = real
        for s in servers:
            s.shutdown()


def test_the_build_fails_on_a_warning(tmp_path):
    require_dot()
    """Strict: a missing image in the README is an error, not a page with a hole."""
    repo = _small_repo(tmp_path / "repo", "# Course\n\n![grid](data/missing.png)\n\n## Hardware\n\ntext\n")
    with pytest.raises(site.SiteError, match="missing.png"):
        site.build_site(tmp_path / "out", repo=repo)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# In a browser, with the network cut


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not found; install it with `apt-get install -y chromium`")
def test_the_site_in_chromium_offline(built):
    sync_api = pytest.importorskip("playwright.sync_api")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(built)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    outside, errors = [], []
    names = {"index.html": "landing", "notebooks/01_gan_theory.html": "theory",
             "notebooks/04_training.html": "training", "notebooks/07_class_sampler.html": "sampler"}
    pages = {p.relative_to(built).as_posix(): None for p in sorted(built.rglob("*.html"))
             if p.parts[len(built.parts)] not in ("_static", "_sources") and p.name not in ("genindex.html", "search.html")}
    pages.update(names)  # every page is opened; these four are also looked at closely and photographed
    try:
        with sync_api.sync_playwright() as p:
            # no DNS at all: a request to any other host fails, as in a classroom without network
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})

                def route(r):
                    if r.request.url.startswith(base) or r.request.url.startswith("data:"):
                        r.continue_()
                    else:
                        outside.append(r.request.url)
                        r.abort()
                page.route("**/*", route)
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                for path, name in pages.items():  # the pages looked at closely wait for the network to go quiet
                    page.goto(base + path, wait_until="networkidle" if name else "load")
                    page.wait_for_function("() => !window.MathJax || !MathJax.startup || !MathJax.startup.promise"
                                           " || MathJax.startup.promise.then(() => true)")
                    if name:
                        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
                    images = page.evaluate("() => Array.from(document.images).map(i => [i.src, i.naturalWidth])")
                    assert [src for src, width in images if width == 0] == [], f"{path}: images that did not load"
                    text = page.evaluate("() => document.querySelector('article').innerText")
                    for raw in ("$$", "\\(", "\\[", "\\begin{"):  # MyST writes \( \) and \[ \]; MathJax replaces them
                        assert raw not in text, f"{path}: raw math left ({raw})"
                    if name in ("theory", "training"):
                        assert page.locator("mjx-container").count() > 0, f"{path}: no math rendered"
                        assert len(images) >= 3, f"{path}: figures missing"
                    if name == "landing":
                        box = page.locator("object.graphviz").bounding_box()
                        assert box and box["width"] > 300, "the concept map is not visible"
                    if name == "sampler":
                        assert page.locator(".widget-stand-in").first.is_visible()
                        assert len(images) >= 3  # the sampler's static pictures, the class x seed grid among them
                page.goto(base + "search.html?q=slerp", wait_until="networkidle")
                page.wait_for_selector("#search-results li", timeout=20_000)
                assert page.locator("#search-results li").count() >= 1
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert outside == [], f"requests outside the local server: {outside[:5]}"
    assert errors == [], f"console errors: {errors[:5]}"
