/* The live board page: one EventSource on this page's own URL; rows that change rank
   glide to their new place (FLIP), changed scores flash, changes are announced politely. */
"use strict";

(function () {
  const LB = window.Leaderboard;
  const body = document.body;
  const boardId = body.dataset.boardId;
  const streamUrl = location.pathname + location.search;
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  const HIGHLIGHT_MS = 1600;
  const ANNOUNCE_MS = 1000;
  const FIRST_RETRY_MS = 1000;
  const MAX_RETRY_MS = 30000;
  const READ_ONLY_NOTE =
    "Changing this board needs an API key, so this page is read-only.";

  const byId = function (id) { return document.getElementById(id); };
  const tbody = byId("standings");
  const connection = byId("connection");
  const connectionText = byId("connection-text");
  const boardMessage = byId("board-message");
  const actionMessage = byId("action-message");
  const announcer = byId("announcer");
  const keyNote = byId("key-note");
  const form = byId("add-player");
  const nameInput = byId("player-name");
  const formMessage = byId("add-player-message");
  const heading = byId("board-name");
  const captionName = byId("caption-name");
  const captionCount = byId("caption-count");

  /* player id -> {id, name, score, rank, tr, rankCell, nameCell, scoreValue, delta, button, timer} */
  const rows = new Map();
  let boardName = body.dataset.boardName || "";
  let source = null;
  let retryTimer = 0;
  let retryDelay = FIRST_RETRY_MS;
  let ended = false;
  let rendered = false;
  const pendingNotes = new Map();
  let announceTimer = 0;

  /* -- connection indicator ------------------------------------------------------------ */

  const STATES = {
    connecting: "Connecting\u2026",
    live: "Live",
    reconnecting: "Reconnecting\u2026",
    ended: "Not live",
  };

  function setConnection(state) {
    if (connection.dataset.state === state) {
      return;
    }
    connection.dataset.state = state;
    connectionText.textContent = STATES[state];
  }

  /* -- the stream ---------------------------------------------------------------------- */

  function connect() {
    if (ended) {
      return;
    }
    clearTimeout(retryTimer);
    const es = new EventSource(streamUrl);
    source = es;
    es.addEventListener("open", function () {
      if (source === es) {
        setConnection("live");
      }
    });
    es.addEventListener("update", function (event) {
      if (source !== es) {
        return;
      }
      let board;
      try {
        board = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      retryDelay = FIRST_RETRY_MS;
      setConnection("live");
      render(board);
    });
    es.addEventListener("deleted", function () {
      if (source === es) {
        endBoard("This board was deleted.");
      }
    });
    es.addEventListener("error", function () {
      if (source !== es || ended) {
        return;
      }
      setConnection(rendered ? "reconnecting" : "connecting");
      if (es.readyState === EventSource.CLOSED) {
        /* The browser gave up (an HTTP error, or not an event stream): find out why. */
        es.close();
        source = null;
        checkBoard();
      }
    });
  }

  /* Ask the same URL for JSON: a 4xx (board gone, bad ?limit=) ends the page with the
     server's message; anything else is a reason to retry, with backoff. */
  async function checkBoard() {
    const result = await LB.request("GET", streamUrl);
    if (ended || source !== null) {
      return;  /* ended meanwhile, or already reconnected (the browser came back online) */
    }
    if (result.status >= 400 && result.status < 500 && result.status !== 408 &&
        result.status !== 429) {
      endBoard("This board is not available: " + result.message);
      return;
    }
    const wait = retryDelay + Math.random() * retryDelay * 0.3;
    retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
    retryTimer = setTimeout(connect, wait);
  }

  function endBoard(message) {
    ended = true;
    clearTimeout(retryTimer);
    if (source) {
      source.close();
      source = null;
    }
    setConnection("ended");
    body.dataset.boardEnded = "true";
    boardMessage.textContent = message;
    boardMessage.hidden = false;
    moveFocusOffWrites(boardMessage);
  }

  window.addEventListener("online", function () {
    if (!ended && source === null) {
      retryDelay = FIRST_RETRY_MS;
      connect();
    }
  });

  /* -- rendering ----------------------------------------------------------------------- */

  function makeRow(p) {
    const tr = document.createElement("tr");
    tr.dataset.playerId = p.id;
    const rankCell = document.createElement("td");
    rankCell.className = "rank";
    const nameCell = document.createElement("th");
    nameCell.scope = "row";
    nameCell.className = "name";
    const scoreCell = document.createElement("td");
    scoreCell.className = "score";
    const scoreValue = document.createElement("span");
    scoreValue.className = "score-value";
    const delta = document.createElement("span");
    delta.className = "delta";
    delta.setAttribute("aria-hidden", "true");
    scoreCell.append(delta, scoreValue);
    const actionCell = document.createElement("td");
    actionCell.className = "actions write-control";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "add-one";
    button.textContent = "+1";
    actionCell.append(button);
    tr.append(rankCell, nameCell, scoreCell, actionCell);

    const row = {
      id: p.id, name: null, score: null, rank: null, tr: tr, rankCell: rankCell,
      nameCell: nameCell, scoreValue: scoreValue, delta: delta, button: button, timer: 0,
    };
    button.addEventListener("click", function () { addOne(row); });
    tr.addEventListener("transitionend", function (event) {
      if (event.target === tr) {
        tr.classList.remove("moving", "rising");
      }
    });
    fill(row, p);
    return row;
  }

  function fill(row, p) {
    if (row.name !== p.name) {
      row.name = p.name;
      row.nameCell.textContent = p.name;
      row.button.setAttribute("aria-label", "Add one point to " + p.name);
    }
    if (row.rank !== p.rank) {
      row.rank = p.rank;
      row.rankCell.textContent = String(p.rank);
      row.tr.dataset.rank = String(p.rank);
    }
    if (row.score !== p.score) {
      row.score = p.score;
      row.scoreValue.textContent = LB.formatScore(p.score);
    }
  }

  function placeholder(text) {
    let tr = tbody.querySelector("tr.placeholder");
    if (text === null) {
      if (tr) {
        tr.remove();
      }
      return;
    }
    if (!tr) {
      tr = document.createElement("tr");
      tr.className = "placeholder";
      const td = document.createElement("td");
      td.colSpan = 4;
      tr.append(td);
      tbody.append(tr);
    }
    tr.firstChild.textContent = text;
  }

  function setBoardName(name) {
    if (typeof name !== "string" || name === boardName) {
      return;
    }
    boardName = name;
    heading.textContent = name;
    captionName.textContent = name;
    document.title = name + " \u00b7 Leaderboard";
  }

  function render(board) {
    if (!board || !Array.isArray(board.players)) {
      return;
    }
    setBoardName(board.name);
    const players = board.players;
    const animate = rendered && !reducedMotion.matches;
    const focused = document.activeElement;

    /* First: where every row is now (transforms of a move in progress included). */
    const before = new Map();
    if (animate) {
      rows.forEach(function (row) { before.set(row.id, row.tr.getBoundingClientRect().top); });
    }
    rows.forEach(function (row) {
      row.tr.classList.remove("moving", "rising");
      row.tr.style.transform = "";
    });

    const seen = new Set();
    const flashes = [];
    placeholder(players.length ? null : "No players yet.");
    players.forEach(function (p, index) {
      seen.add(p.id);
      let row = rows.get(p.id);
      if (!row) {
        row = makeRow(p);
        rows.set(p.id, row);
        if (rendered) {
          note(p.id, p.name + " entered at rank " + p.rank + " with " + LB.formatScore(p.score));
          flashes.push([row, 0]);
        }
      } else {
        /* Announce the players whose score changed; the ones they pass are implied. */
        const change = p.score - row.score;
        if (change && p.rank !== row.rank) {
          note(p.id, p.name + " moved " + (p.rank < row.rank ? "up" : "down") + " to rank " +
               p.rank + " with " + LB.formatScore(p.score));
        } else if (change) {
          note(p.id, p.name + " now has " + LB.formatScore(p.score));
        }
        if (change) {
          flashes.push([row, change]);
        }
        fill(row, p);
      }
      const here = tbody.rows[index];
      if (here !== row.tr) {
        tbody.insertBefore(row.tr, here || null);
      }
    });
    rows.forEach(function (row, id) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
        clearTimeout(row.timer);
        note(id, row.name + " left the top " + players.length);
      }
    });
    captionCount.textContent = players.length ? "top " + players.length : "no players yet";

    /* Moving a row in the DOM blurs a button inside it: give keyboard users focus back. */
    if (focused && focused !== document.activeElement && focused.isConnected) {
      focused.focus({ preventScroll: true });
    }

    /* Last, Invert, Play: put moved rows back where they were, then let them glide. */
    if (animate) {
      const moved = [];
      rows.forEach(function (row) {
        const top = before.get(row.id);
        if (top === undefined) {
          return;
        }
        const dy = top - row.tr.getBoundingClientRect().top;
        if (Math.abs(dy) >= 1) {
          row.tr.style.transform = "translateY(" + dy + "px)";
          /* A row climbing the board passes over the ones it overtakes. */
          row.tr.classList.toggle("rising", dy > 0);
          moved.push(row.tr);
        }
      });
      if (moved.length) {
        void tbody.offsetHeight;
        moved.forEach(function (tr) {
          tr.classList.add("moving");
          tr.style.transform = "";
        });
      }
    }

    if (flashes.length) {
      flashes.forEach(function (item) { item[0].tr.classList.remove("bumped", "entered"); });
      void tbody.offsetHeight;
      flashes.forEach(function (item) { flash(item[0], item[1]); });
    }
    rendered = true;
    body.dataset.playerCount = String(players.length);
  }

  function flash(row, change) {
    const tr = row.tr;
    if (change === 0) {
      tr.classList.add("entered");
    } else {
      tr.classList.add("bumped");
      tr.dataset.trend = change > 0 ? "up" : "down";
      row.delta.textContent = (change > 0 ? "+" : "\u2212") + LB.formatScore(Math.abs(change));
    }
    clearTimeout(row.timer);
    row.timer = setTimeout(function () {
      tr.classList.remove("bumped", "entered");
      delete tr.dataset.trend;
      row.delta.textContent = "";
    }, HIGHLIGHT_MS);
  }

  /* -- announcements: at most one per second, the latest news per player ---------------- */

  function note(key, text) {
    if (!rendered) {
      return;
    }
    pendingNotes.delete(key);
    pendingNotes.set(key, text);
    if (!announceTimer) {
      announceTimer = setTimeout(flushNotes, ANNOUNCE_MS);
    }
  }

  function flushNotes() {
    announceTimer = 0;
    const notes = Array.from(pendingNotes.values());
    pendingNotes.clear();
    if (!notes.length) {
      return;
    }
    let text = notes.slice(0, 3).join(". ") + ".";
    if (notes.length > 3) {
      text += " And " + (notes.length - 3) + " more changes.";
    }
    announcer.textContent = text;
  }

  /* -- writes -------------------------------------------------------------------------- */

  function moveFocusOffWrites(target) {
    const active = document.activeElement;
    if (active && active.closest && active.closest(".write-control")) {
      target.focus();
    }
  }

  function setReadOnly() {
    body.dataset.writesNeedKey = "true";
    keyNote.textContent = READ_ONLY_NOTE;
    keyNote.hidden = false;
    moveFocusOffWrites(keyNote);
  }

  function showActionMessage(text) {
    actionMessage.textContent = text;
    actionMessage.hidden = !text;
  }

  async function addOne(row) {
    const url = LB.boardPath(boardId) + "players/" + encodeURIComponent(row.id) + "/score-add/";
    const result = await LB.request("POST", url);
    if (result.ok) {
      showActionMessage("");
    } else if (LB.needsKey(result)) {
      setReadOnly();
    } else {
      showActionMessage("Could not add a point to " + row.name + ": " + result.message);
    }
  }

  let adding = false;
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (adding) {
      return;
    }
    const name = nameInput.value.trim();
    formMessage.dataset.kind = "error";
    if (!name) {
      formMessage.textContent = "Enter the new player's name.";
      nameInput.focus();
      return;
    }
    adding = true;
    form.setAttribute("aria-busy", "true");
    const result = await LB.request("POST", LB.boardPath(boardId) + "players/", { name: name });
    adding = false;
    form.removeAttribute("aria-busy");
    if (result.ok) {
      form.reset();
      formMessage.dataset.kind = "ok";
      formMessage.textContent = "Added " + name + ".";
      nameInput.focus();
    } else if (LB.needsKey(result)) {
      formMessage.textContent = "";
      setReadOnly();
    } else {
      formMessage.textContent = result.message;
      nameInput.focus();
    }
  });

  if (body.dataset.writesNeedKey === "true") {
    keyNote.hidden = false;
  }
  setConnection("connecting");
  connect();
})();
