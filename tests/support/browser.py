"""Pages as a browser sees them: headless Chromium (Debian's `chromium`) for the DOM it builds
and for screenshots, and a small reader of that DOM (the standard library's html.parser).

Chromium runs with a fresh profile in a directory the caller owns and nothing that reaches
beyond the page asked for (no updates, sync or background requests), one process per call.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from tests.support.tools import require_tool

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Chromium starts slowly on a busy machine; a page that never loads still ends the test.
TIMEOUT_SECONDS = 120.0
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


def _chromium(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    chromium = require_tool("chromium")
    with tempfile.TemporaryDirectory(dir=directory, prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=True,
        )


def dump_dom(url: str, directory: Path) -> str:
    """The DOM Chromium built from `url`, serialised; `directory` holds its throwaway profile."""
    return _chromium(directory, "--dump-dom", url).stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = (1400, 900)) -> Path:
    """A PNG of `url` as Chromium draws it in a window of `size`, written to `path`."""
    width, height = size
    _chromium(path.parent, f"--screenshot={path}", f"--window-size={width},{height}", url)
    return path


@dataclass
class Element:
    """One element of a parsed page: its tag, attributes, children and text, in order."""

    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    content: list[str | Element] = field(default_factory=list)  # Text and children, in order.

    @property
    def children(self) -> list[Element]:
        return [part for part in self.content if isinstance(part, Element)]

    @property
    def text(self) -> str:
        """All the text inside, children's included, with runs of whitespace made one space."""
        return " ".join("".join(self._texts()).split())

    def _texts(self) -> Iterator[str]:
        for part in self.content:
            if isinstance(part, Element):
                yield " "
                yield from part._texts()
                yield " "
            else:
                yield part

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self) -> Iterator[Element]:
        """This element and every one inside it, in document order."""
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Element]:
        return [e for e in self.iter() if e.tag == tag and (cls is None or cls in e.classes())]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self._open[-1]
        element = Element(tag, dict(attrs))
        parent.content.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._open[-1].content.append(data)


def parse(page: str) -> Element:
    """The element tree of an HTML document (as the page or as Chromium serialised it)."""
    builder = _Builder()
    builder.feed(page)
    builder.close()
    return builder.root
