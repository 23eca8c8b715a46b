# -*- test-case-name: tests.test_page -*-
"""The live page's HTML: escaping, accessibility landmarks, no inline code; the static whitelist."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from leaderboard.resources import page

HOSTILE = "<script>alert('x')</script> & \"quoted\""


class Collect(HTMLParser):
    """Every start tag with its attributes, the text of <title>, and all text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data

    def find(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]

    def by_id(self, element_id: str) -> dict[str, str | None]:
        [attrs] = [attrs for _, attrs in self.tags if attrs.get("id") == element_id]
        return attrs


def parse(document: bytes) -> Collect:
    parser = Collect()
    parser.feed(document.decode("utf-8"))
    parser.close()
    return parser


def test_board_page_escapes_the_name_everywhere() -> None:
    document = page.board_page("demo", HOSTILE, False)
    assert b"<script>alert" not in document
    assert b"\"quoted\"" not in document
    parsed = parse(document)
    assert parsed.title == f"{HOSTILE} \u00b7 Leaderboard"
    assert parsed.find("body")[0]["data-board-name"] == HOSTILE
    assert HOSTILE in parsed.text


def test_board_page_escapes_the_id() -> None:
    parsed = parse(page.board_page('a"><img src=x>', "Name", False))
    assert parsed.find("body")[0]["data-board-id"] == 'a"><img src=x>'
    assert parsed.find("img") == []


@pytest.mark.parametrize("need_key", [True, False])
def test_board_page_says_whether_writes_need_a_key(need_key: bool) -> None:
    parsed = parse(page.board_page("demo", "Demo", need_key))
    assert parsed.find("body")[0]["data-writes-need-key"] == ("true" if need_key else "false")
    note = parsed.by_id("key-note")
    assert ("hidden" in note) is not need_key
    assert "write-control" in (parsed.by_id("add-player")["class"] or "")


def test_board_page_is_an_accessible_table() -> None:
    parsed = parse(page.board_page("demo", "Demo", False))
    assert parsed.find("html")[0]["lang"] == "en"
    assert any(m.get("name") == "viewport" for m in parsed.find("meta"))
    assert len(parsed.find("caption")) == 1
    headers = parsed.find("th")
    assert headers and all(h.get("scope") == "col" for h in headers)
    assert parsed.by_id("announcer")["aria-live"] == "polite"
    assert parsed.by_id("connection")["role"] == "status"
    assert parsed.by_id("player-name")["id"] == parsed.find("label")[0]["for"]


@pytest.mark.parametrize(
    "document",
    [page.board_page("demo", "Demo", True), page.index_page(False)],
    ids=["board", "index"],
)
def test_pages_need_no_inline_script_or_style(document: bytes) -> None:
    """The server's Content-Security-Policy allows only files from 'self'."""
    parsed = parse(document)
    scripts = parsed.find("script")
    assert scripts and all((s.get("src") or "").startswith("/static/") for s in scripts)
    assert b"<script>" not in document
    assert parsed.find("style") == []
    for _, attrs in parsed.tags:
        assert "style" not in attrs
        assert not any(k.startswith("on") for k in attrs)


@pytest.mark.parametrize(
    "document",
    [page.board_page("demo", "Demo", True), page.index_page(True)],
    ids=["board", "index"],
)
def test_every_referenced_asset_is_served(document: bytes) -> None:
    parsed = parse(document)
    refs = [s["src"] for s in parsed.find("script")]
    refs += [link["href"] for link in parsed.find("link")]
    assert refs
    for ref in refs:
        assert ref is not None and ref.startswith("/static/")
        assert page.static_file(ref.removeprefix("/static/")) is not None, ref


@pytest.mark.parametrize("need_key", [True, False])
def test_index_page(need_key: bool) -> None:
    parsed = parse(page.index_page(need_key))
    assert parsed.title == "Leaderboards"
    assert parsed.find("body")[0]["data-writes-need-key"] == ("true" if need_key else "false")
    assert ("hidden" in parsed.by_id("key-note")) is not need_key
    assert {"board-list", "create-board", "board-name-input", "board-id-input"} <= {
        attrs.get("id") for _, attrs in parsed.tags
    }


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("board.js", "text/javascript; charset=utf-8"),
        ("index.js", "text/javascript; charset=utf-8"),
        ("common.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_file_types(name: str, content_type: str) -> None:
    found = page.static_file(name)
    assert found is not None
    content, ctype = found
    assert ctype == content_type
    assert len(content) > 100
    content.decode("utf-8")


def test_static_file_is_cached() -> None:
    first = page.static_file("board.js")
    second = page.static_file("board.js")
    assert first is not None and second is not None
    assert first[0] is second[0]


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../page.py",
        "..%2Fpage.py",
        "/etc/passwd",
        "static/board.js",
        "./board.js",
        "board.js/",
        "BOARD.JS",
        "board.js\x00.css",
        "page.py",
        "__init__.py",
    ],
)
def test_static_file_refuses_anything_off_the_list(name: str) -> None:
    assert page.static_file(name) is None
