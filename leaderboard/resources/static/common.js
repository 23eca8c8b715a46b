/* Shared by the leaderboard pages: JSON requests to the API and its error shape. */
"use strict";

window.Leaderboard = (function () {
  const numbers = new Intl.NumberFormat();

  /* The API's own message from {"error": {"code", "message"}}, or a plain fallback. */
  function errorMessage(data, response) {
    if (data && data.error && typeof data.error.message === "string" && data.error.message) {
      return data.error.message;
    }
    return ("The server answered " + response.status + " " + response.statusText).trim() + ".";
  }

  /* fetch() with JSON in and out; never throws. Resolves to
     {ok, status, data, message, response}; status 0 means the server was not reached. */
  async function request(method, url, body) {
    const init = {
      method: method,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      return {
        ok: false, status: 0, data: null, response: null,
        message: "Could not reach the server. Check the connection and try again.",
      };
    }
    let data = null;
    if ((response.headers.get("Content-Type") || "").includes("json")) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    return {
      ok: response.ok, status: response.status, data: data, response: response,
      message: response.ok ? "" : errorMessage(data, response),
    };
  }

  /* A path on this origin for a link the server gave us, or null for anything else. */
  function sameOriginPath(href) {
    if (typeof href !== "string" || !href) {
      return null;
    }
    try {
      const url = new URL(href, location.href);
      return url.origin === location.origin ? url.pathname + url.search : null;
    } catch (err) {
      return null;
    }
  }

  function boardPath(boardId) {
    return "/boards/" + encodeURIComponent(boardId) + "/";
  }

  /* 401 and 403 both mean this page may not write without a key it does not have. */
  function needsKey(result) {
    return result.status === 401 || result.status === 403;
  }

  return {
    request: request,
    sameOriginPath: sameOriginPath,
    boardPath: boardPath,
    needsKey: needsKey,
    formatScore: function (n) { return numbers.format(n); },
  };
})();
