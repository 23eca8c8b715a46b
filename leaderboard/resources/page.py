# -*- test-case-name: tests.test_page -*-
"""The live page's HTML documents and its static assets (no inline script or style)."""

from __future__ import annotations

import functools
from html import escape
from importlib.resources import files

#: The files under ``static/`` the server may answer, and their content types. Nothing
#: else is served: a name is looked up here, never joined onto a path.
STATIC_TYPES: dict[str, str] = {
    "board.js": "text/javascript; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "index.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title}</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<script src="/static/common.js" defer></script>
<script src="/static/{script}" defer></script>
</head>
"""

_NOSCRIPT = """<noscript><p class="message">This page needs JavaScript to show the board \
live. The API answers JSON at the same address.</p></noscript>
"""

_BOARD = """<body class="board-page" data-board-id="{board_id}" data-board-name="{name}" \
data-writes-need-key="{need_key}">
<header class="top">
<nav aria-label="Site"><a href="/">All boards</a></nav>
<p id="connection" class="connection" data-state="connecting" role="status">\
<span class="dot" aria-hidden="true"></span><span id="connection-text">Connecting\u2026</span></p>
</header>
<main>
<h1 id="board-name">{name}</h1>
{noscript}<p id="board-message" class="message" role="alert" tabindex="-1" hidden></p>
<p id="key-note" class="note" tabindex="-1"{key_note_hidden}>{key_note}</p>
<p id="action-message" class="message" role="alert" hidden></p>
<table id="board" class="board">
<caption>Leaderboard <span id="caption-name">{name}</span>, \
<span id="caption-count">top players</span>, updated live</caption>
<thead>
<tr><th scope="col" class="rank">Rank</th><th scope="col">Player</th>\
<th scope="col" class="score">Score</th>\
<th scope="col" class="actions write-control">\
<span class="visually-hidden">Add a point</span></th></tr>
</thead>
<tbody id="standings">
<tr class="placeholder"><td colspan="4">Waiting for the board\u2026</td></tr>
</tbody>
</table>
<form id="add-player" class="add-player write-control" novalidate>
<h2>Add a player</h2>
<div class="row">
<div class="field">
<label for="player-name">Name</label>
<input id="player-name" name="name" type="text" required maxlength="64" autocomplete="off">
</div>
<button type="submit">Add player</button>
</div>
<p id="add-player-message" class="form-message" role="status"></p>
</form>
<div id="announcer" class="visually-hidden" aria-live="polite" aria-atomic="true"></div>
</main>
</body>
</html>
"""

_INDEX = """<body class="index-page" data-writes-need-key="{need_key}">
<main>
<h1>Leaderboards</h1>
{noscript}<section aria-labelledby="boards-heading">
<h2 id="boards-heading">Boards</h2>
<p id="boards-status" role="status">Loading boards\u2026</p>
<ul id="board-list" class="board-list"></ul>
<button id="more-boards" type="button" class="link-button" hidden>Show more boards</button>
</section>
<p id="key-note" class="note" tabindex="-1"{key_note_hidden}>{key_note}</p>
<section class="write-control" aria-labelledby="create-heading">
<h2 id="create-heading">Create a board</h2>
<form id="create-board" novalidate>
<div class="field">
<label for="board-name-input">Name</label>
<input id="board-name-input" name="name" type="text" required maxlength="64" autocomplete="off">
</div>
<div class="field">
<label for="board-id-input">Id <span class="hint">(optional: letters, digits, _ and -; \
it becomes the address)</span></label>
<input id="board-id-input" name="id" type="text" maxlength="64" pattern="[A-Za-z0-9_\\-]{{1,64}}" \
autocomplete="off" spellcheck="false" autocapitalize="off">
</div>
<button type="submit">Create board</button>
<p id="create-board-message" class="form-message" role="status"></p>
</form>
</section>
</main>
</body>
</html>
"""

_BOARD_KEY_NOTE = "Changing this board needs an API key, so this page is read-only."
_INDEX_KEY_NOTE = "Creating boards needs an API key, so this page is read-only."


def _flag(value: bool) -> str:
    return "true" if value else "false"


def board_page(board_id: str, board_name: str, writes_need_key: bool) -> bytes:
    """The live page of one board: the data comes from an EventSource on its own URL."""
    name = escape(board_name, quote=True)
    html = _HEAD.format(title=f"{name} \u00b7 Leaderboard", script="board.js") + _BOARD.format(
        board_id=escape(board_id, quote=True),
        name=name,
        need_key=_flag(writes_need_key),
        noscript=_NOSCRIPT,
        key_note=escape(_BOARD_KEY_NOTE),
        key_note_hidden="" if writes_need_key else " hidden",
    )
    return html.encode("utf-8")


def index_page(writes_need_key: bool) -> bytes:
    """The board list: the page fetches ``/boards/`` itself and can create a board."""
    html = _HEAD.format(title="Leaderboards", script="index.js") + _INDEX.format(
        need_key=_flag(writes_need_key),
        noscript=_NOSCRIPT,
        key_note=escape(_INDEX_KEY_NOTE),
        key_note_hidden="" if writes_need_key else " hidden",
    )
    return html.encode("utf-8")


@functools.cache
def _read(name: str) -> bytes:
    return (files("leaderboard.resources") / "static" / name).read_bytes()


def static_file(name: str) -> tuple[bytes, str] | None:
    """The content and content type of a whitelisted file in ``static/``, else None."""
    content_type = STATIC_TYPES.get(name)
    if content_type is None:
        return None
    return _read(name), content_type
