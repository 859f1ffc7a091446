"""index.html opened in a real headless Chromium: the table is there, every image
loaded (naturalWidth > 0, not only a file on disk), and nothing comes from the network.
Needs Debian's chromium (CI installs it; see tests/external_tools.py for when this skips).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest
from external_tools import require
from report_sets import without_pretrained_weights
from resultsets import write_result_set

from catsdogs.report.build import default_out, render_report

#: Appended to a copy of index.html: after every image has loaded or failed, write what
#: the browser saw into the page, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(
      (img) => ({src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth}));
  const table = document.querySelector("table#summary");
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    images: images,
    headers: table ? Array.from(table.querySelectorAll("th")).map((th) => th.textContent) : [],
    rows: table ? Array.from(table.querySelectorAll("tbody tr")).map(
        (tr) => tr.querySelector("td").textContent) : [],
    verdicts: !!document.getElementById("verdicts"),
    environments: document.querySelectorAll("details pre").length,
  });
  document.body.appendChild(probe);
});
</script>"""


def browse(folder: Path, tmp_path: Path) -> dict:
    """What Chromium saw on the report page in `folder`."""
    chromium = require("chromium")
    page = folder / "probe.html"
    page.write_text((folder / "index.html").read_text().replace("</body>", PROBE + "</body>"))
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180)
    page.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    result_set = without_pretrained_weights(write_result_set(root, seeds=[0, 1]))
    render_report([result_set])
    return default_out([result_set])


def test_report_page_shows_the_table_and_every_figure_loads(report, tmp_path):
    seen = browse(report, tmp_path)
    assert seen["headers"][:3] == ["model", "n", "test acc. %"]
    assert len(seen["rows"]) == 4 and seen["rows"][0] == "baseline_cnn (model1)"
    assert "NOT pretrained" in seen["rows"][3]
    assert sorted(image["src"] for image in seen["images"]) == [
        "accuracy_curves.png", "step_times.png", "test_accuracy_bars.png"]
    assert all(image["complete"] and image["width"] > 0 for image in seen["images"]), seen
    assert seen["verdicts"] and seen["environments"] == 1


def test_a_missing_figure_is_seen_as_not_loaded(report, tmp_path):
    """The check above can fail: with one PNG gone, the browser reports width 0."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in report.iterdir():
        if path.name != "step_times.png":
            (copy / path.name).write_bytes(path.read_bytes())
    widths = {image["src"]: image["width"] for image in browse(copy, tmp_path)["images"]}
    assert widths["step_times.png"] == 0 and widths["accuracy_curves.png"] > 0


def test_report_page_needs_no_network(report):
    page = (report / "index.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and not [link for link in links if re.match(r"[a-z]+:", link)], links
    assert "<script" not in page and "@import" not in page
    for link in links:
        assert (report / link).is_file(), link  # every relative link resolves


def test_verdicts_go_into_their_own_section_when_given():
    """The hook for `--baseline SET`: compare's verdicts (HTML) fill #verdicts; without
    them the section says that no baseline was given."""
    import pandas as pd

    from catsdogs.report.html import NO_VERDICTS, render_html

    common = dict(title="t", scope="s", warnings=[], display=pd.DataFrame({"model": ["m"]}),
                  figures=[], table_files=[], provenance=[], environments=[])
    given = render_html(**common, verdicts_html='<p id="verdict">model1: no regression</p>')
    section = given.split('<section id="verdicts">')[1].split("</section>")[0]
    assert '<p id="verdict">model1: no regression</p>' in section
    assert NO_VERDICTS not in given
    assert html.escape(NO_VERDICTS) in render_html(**common).split('<section id="verdicts">')[1]
