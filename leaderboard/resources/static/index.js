/* The board list at "/": pages through GET /boards/ and creates boards with POST /boards/. */
"use strict";

(function () {
  const LB = window.Leaderboard;
  const body = document.body;
  const byId = function (id) { return document.getElementById(id); };
  const list = byId("board-list");
  const status = byId("boards-status");
  const more = byId("more-boards");
  const keyNote = byId("key-note");
  const form = byId("create-board");
  const nameInput = byId("board-name-input");
  const idInput = byId("board-id-input");
  const formMessage = byId("create-board-message");
  const READ_ONLY_NOTE = "Creating boards needs an API key, so this page is read-only.";

  let nextUrl = "/boards/";
  let loading = false;
  let shown = 0;

  function describe(board) {
    if (typeof board.players === "number") {
      if (board.players === 0) {
        return "no players yet";
      }
      return board.players === 1 ? "1 player" : LB.formatScore(board.players) + " players";
    }
    if (Array.isArray(board.players)) {
      const leader = board.players[0];
      return leader ? "led by " + leader.name : "no players yet";
    }
    return "";
  }

  function addItem(board) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = LB.boardPath(board.id);
    link.textContent = board.name;
    li.append(link);
    const detail = describe(board);
    if (detail) {
      const span = document.createElement("span");
      span.className = "board-detail";
      span.textContent = detail;
      li.append(" ", span);
    }
    list.append(li);
    shown += 1;
  }

  /* The next page: the server's "next" link, or one computed from offset/limit/total. */
  function nextPage(data) {
    if ("next" in data) {
      return LB.sameOriginPath(data.next);
    }
    if (typeof data.total === "number" && typeof data.offset === "number" &&
        typeof data.limit === "number" && data.offset + data.limit < data.total) {
      return "/boards/?offset=" + (data.offset + data.limit) + "&limit=" + data.limit;
    }
    return null;
  }

  async function load() {
    if (loading || !nextUrl) {
      return;
    }
    loading = true;
    more.setAttribute("aria-busy", "true");
    status.textContent = shown ? "Loading more boards\u2026" : "Loading boards\u2026";
    const result = await LB.request("GET", nextUrl);
    loading = false;
    more.removeAttribute("aria-busy");
    if (!result.ok || !result.data || !Array.isArray(result.data.boards)) {
      status.textContent = "Could not load the boards: " +
        (result.message || "the answer was not a board list.");
      return;
    }
    const firstNew = list.children.length;
    const moreHadFocus = document.activeElement === more;
    result.data.boards.forEach(addItem);
    nextUrl = nextPage(result.data);
    more.hidden = !nextUrl;
    if (shown === 0) {
      status.textContent = "There are no boards yet.";
    } else {
      status.textContent = shown === 1 ? "1 board." : shown + " boards" + (nextUrl ? " so far." : ".");
    }
    /* The last "Show more" hides itself: move keyboard focus to the first new board. */
    if (moreHadFocus && more.hidden && list.children[firstNew]) {
      list.children[firstNew].querySelector("a").focus();
    }
  }

  more.addEventListener("click", load);

  function setReadOnly() {
    body.dataset.writesNeedKey = "true";
    keyNote.textContent = READ_ONLY_NOTE;
    keyNote.hidden = false;
    const active = document.activeElement;
    if (active && active.closest && active.closest(".write-control")) {
      keyNote.focus();
    }
  }

  let creating = false;
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (creating) {
      return;
    }
    const name = nameInput.value.trim();
    const id = idInput.value.trim();
    if (!name) {
      formMessage.textContent = "Enter a name for the board.";
      nameInput.focus();
      return;
    }
    const request = { name: name };
    if (id) {
      request.id = id;
    }
    creating = true;
    form.setAttribute("aria-busy", "true");
    const result = await LB.request("POST", "/boards/", request);
    creating = false;
    form.removeAttribute("aria-busy");
    if (result.ok) {
      const where = LB.sameOriginPath(result.response.headers.get("Location")) ||
        (result.data && result.data.id ? LB.boardPath(result.data.id) : null);
      if (where) {
        location.assign(where);
        return;
      }
      formMessage.textContent = "Created " + name + ".";
    } else if (LB.needsKey(result)) {
      formMessage.textContent = "";
      setReadOnly();
    } else {
      formMessage.textContent = result.message;
      const code = result.data && result.data.error ? result.data.error.code : "";
      const aboutId = id && (code === "already_exists" || /\bid\b/.test(result.message));
      (aboutId ? idInput : nameInput).focus();
    }
  });

  if (body.dataset.writesNeedKey === "true") {
    keyNote.hidden = false;
  }
  load();
})();
