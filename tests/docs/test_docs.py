"""The README and docs/: every relative link resolves, and every metric is in the README's table.

The README is what a new user reads and the docs are split by audience, so a moved section must
not leave a dead link behind, and the metrics table must follow the code (a project rule).
"""

from __future__ import annotations

import re
from pathlib import Path

from exporter.exposition import families
from exporter.exposition.families import Family

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = (README, *sorted((ROOT / "docs").glob("*.md")))
# [text](target) and ![alt](target); the target ends at whitespace (a title may follow) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...
TABLE_ROW = re.compile(r"^\| `(aivoice_[a-z_]+)` \| ([^|]+) \|")
# How the README's table names each family type (an info metric is a gauge of value 1).
README_TYPES = {
    "gauge": "gauge",
    "counter": "counter",
    "histogram": "histogram",
    "info": "gauge (1)",
}
CODE_NAME = re.compile(r'"(aivoice_[a-z_]+)"')


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the file's headings, duplicates numbered as GitHub numbers them."""
    found: set[str] = set()
    for line in prose_lines(path):
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if not heading:
            continue
        base = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        anchor, n = base, 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return found


def relative_links(path: Path) -> list[str]:
    links = []
    for line in prose_lines(path):
        links += LINK.findall(INLINE_CODE.sub("", line))
    return [link for link in links if not EXTERNAL.match(link)]


def broken_links(path: Path) -> list[str]:
    broken = []
    for link in relative_links(path):
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading with that anchor in {file.relative_to(ROOT)}")
    return broken


def readme_metric_rows() -> dict[str, str]:
    """The README metrics table: metric name -> type column."""
    rows = (TABLE_ROW.match(line) for line in prose_lines(README))
    return {row.group(1): row.group(2).strip() for row in rows if row}


def exposed_families() -> dict[str, str]:
    """Every family the exporter renders, by the name /metrics shows -> the README's type."""
    declared = [value for value in vars(families).values() if isinstance(value, Family)]
    suffix = {"counter": "_total", "info": "_info"}
    return {f.name + suffix.get(f.kind, ""): README_TYPES[f.kind] for f in declared}


def test_the_link_check_sees_the_readme_links_into_docs() -> None:
    assert "docs/runbook.md" in relative_links(README)
    assert any("#" in link for link in relative_links(README))


def test_every_relative_link_in_readme_and_docs_resolves() -> None:
    broken = {str(path.relative_to(ROOT)): broken_links(path) for path in DOCS}
    assert not {path: links for path, links in broken.items() if links}


def test_every_rendered_metric_has_a_readme_row_with_its_type() -> None:
    families, rows = exposed_families(), readme_metric_rows()
    assert families
    assert {name: rows.get(name) for name in families} == families


def test_every_metric_row_in_the_readme_is_one_the_exporter_renders() -> None:
    rows = readme_metric_rows()
    assert rows
    assert set(rows) <= set(exposed_families())


def test_every_aivoice_name_in_the_code_appears_in_the_readme() -> None:
    names = {
        name
        for source in (ROOT / "exporter").rglob("*.py")
        for name in CODE_NAME.findall(source.read_text(encoding="utf-8"))
    }
    readme = README.read_text(encoding="utf-8")
    assert names
    assert sorted(name for name in names if name not in readme) == []
