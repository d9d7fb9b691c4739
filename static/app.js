// crier's page: follows /events with the browser's own EventSource and publishes
// through POST /publish. Plain JavaScript, no build step, no dependencies.
//
// Event data is only ever written with textContent, never as HTML: a publisher
// must not be able to inject markup or script into this page.
"use strict";

(() => {
  const MAX_ITEMS = 200; // the feed keeps this many events, newest first
  const BUILTIN = ["message", "new_user", "user_left", "missed"];
  const TOKEN_KEY = "crier.token";
  const NAMES_KEY = "crier.names";
  // Backoff for the rare case where EventSource gives up by itself (a non-200
  // answer such as 503 while the server shuts down or is full).
  const RETRY_MIN = 1000;
  const RETRY_MAX = 30000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"),
    count: $("count"),
    feed: $("feed"),
    empty: $("empty"),
    follow: $("follow"),
    topics: $("topics"),
    names: $("names"),
    streamURL: $("stream-url"),
    publish: $("publish"),
    token: $("token"),
    pubTopic: $("pub-topic"),
    pubEvent: $("pub-event"),
    pubData: $("pub-data"),
    result: $("publish-result"),
    clear: $("clear"),
  };

  let source = null;
  let listening = new Set(); // names with a listener on the current source
  const extraNames = new Set(); // names the user follows or published with
  let topics = [];
  let lastId = "";
  let retryDelay = RETRY_MIN;
  let retryTimer = 0;

  // --- small helpers ---------------------------------------------------------

  function splitList(s) {
    return s.split(/[\s,]+/).filter((x) => x !== "");
  }

  function store(key, value) {
    try {
      if (value) localStorage.setItem(key, value);
      else localStorage.removeItem(key);
    } catch (_) {
      // Storage may be disabled (private mode); the page works without it.
    }
  }

  function load(key) {
    try {
      return localStorage.getItem(key) || "";
    } catch (_) {
      return "";
    }
  }

  function parseJSON(text) {
    try {
      return { ok: true, value: JSON.parse(text) };
    } catch (_) {
      return { ok: false, value: text };
    }
  }

  function el(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  // A topic is 1 to 256 characters with no control characters (see CONTRACT).
  function badTopic(t) {
    // eslint-disable-next-line no-control-regex
    return [...t].length > 256 || /[\u0000-\u001f\u007f-\u009f]/.test(t);
  }

  // --- connection state ------------------------------------------------------

  function setState(s) {
    ui.state.textContent = s;
    ui.state.dataset.state = s;
    // Off the stream the count is only the last one known; the next presence
    // event (our own arrival) makes it current again.
    if (s !== "live") ui.count.dataset.stale = "true";
  }

  function streamURL(withResume) {
    const q = new URLSearchParams();
    for (const t of topics) q.append("topic", t);
    if (withResume && lastId) q.set("lastEventId", lastId);
    const s = q.toString();
    return "/events" + (s ? "?" + s : "");
  }

  // connect opens a new EventSource. A deliberate reconnect (new topics) starts
  // fresh; a recovery after EventSource gave up resumes from the last id seen.
  function connect(resume) {
    clearTimeout(retryTimer);
    if (source) source.close();
    if (!resume) lastId = "";
    listening = new Set();
    setState(resume ? "reconnecting" : "connecting");
    ui.streamURL.textContent = streamURL(false);

    const es = new EventSource(streamURL(resume));
    source = es;
    es.onopen = () => {
      if (es !== source) return;
      retryDelay = RETRY_MIN;
      setState("live");
    };
    es.onerror = () => {
      if (es !== source) return;
      setState("reconnecting");
      if (es.readyState === EventSource.CLOSED) {
        // The browser stops retrying after a non-200 answer; retry ourselves.
        retryTimer = setTimeout(() => connect(true), retryDelay);
        retryDelay = Math.min(retryDelay * 2, RETRY_MAX);
      }
      // Otherwise (CONNECTING) the browser reconnects by itself with Last-Event-ID.
    };
    for (const name of BUILTIN) listen(name);
    for (const name of extraNames) listen(name);
  }

  // EventSource delivers a named event only to a listener for that name.
  function listen(name) {
    if (!source || listening.has(name)) return;
    listening.add(name);
    source.addEventListener(name, onEvent);
  }

  function follow(name) {
    if (BUILTIN.includes(name)) return;
    extraNames.add(name);
    listen(name);
  }

  // --- the feed --------------------------------------------------------------

  function onEvent(ev) {
    if (ev.lastEventId) lastId = ev.lastEventId;
    const parsed = parseJSON(ev.data);
    const d = parsed.value;
    const obj = parsed.ok && d !== null && typeof d === "object" ? d : {};

    switch (ev.type) {
      case "new_user":
      case "user_left": {
        if (typeof obj.subscribers === "number") {
          ui.count.textContent = String(obj.subscribers);
          delete ui.count.dataset.stale;
        }
        const joined = ev.type === "new_user";
        const who = typeof obj.subscriber === "string" ? obj.subscriber : "";
        add({
          type: ev.type,
          kind: "presence",
          id: ev.lastEventId,
          time: obj.time,
          text: joined ? "New user connected" : "User disconnected",
          detail: (who ? "subscriber " + who + " · " : "") +
            (typeof obj.subscribers === "number" ? plural(obj.subscribers, "subscriber") + "\u00a0now" : ""),
        });
        break;
      }
      case "missed":
        add({
          type: ev.type,
          kind: "warning",
          id: ev.lastEventId,
          text: "Warning: some events could not be replayed",
          detail: typeof obj.message === "string" ? obj.message : ev.data,
        });
        break;
      default:
        add({
          type: ev.type,
          kind: "data",
          id: ev.lastEventId,
          text: describe(parsed),
          data: parsed.ok && typeof d !== "string" ? JSON.stringify(d, null, 2) : null,
        });
    }
  }

  function plural(n, word) {
    return n + "\u00a0" + word + (n === 1 ? "" : "s");
  }

  // describe picks a line a person reads: a string payload, or its "message"
  // or "text" field, else a hint that the details follow.
  function describe(parsed) {
    const d = parsed.value;
    if (!parsed.ok || typeof d === "string") return String(d);
    if (d && typeof d === "object") {
      for (const k of ["message", "text", "title"]) {
        if (typeof d[k] === "string") return d[k];
      }
    }
    if (typeof d === "number" || typeof d === "boolean" || d === null) return String(d);
    return "";
  }

  function formatTime(iso) {
    const t = iso ? new Date(iso) : new Date();
    return isNaN(t) ? new Date() : t;
  }

  function add(item) {
    const li = el("li", "item item-" + item.kind);
    li.dataset.event = item.type;
    if (item.id) li.dataset.id = item.id;

    const meta = el("div", "meta");
    const when = formatTime(item.time);
    const time = el("time", "time", when.toLocaleTimeString());
    time.dateTime = when.toISOString();
    meta.append(time, el("span", "type", item.type));
    if (item.id) meta.append(el("span", "id", "#" + item.id));
    li.append(meta);

    if (item.text) li.append(el("p", "text", item.text));
    if (item.detail) li.append(el("p", "detail", item.detail));
    if (item.data !== null && item.data !== undefined) li.append(el("pre", "data", item.data));

    ui.feed.prepend(li);
    while (ui.feed.children.length > MAX_ITEMS) ui.feed.lastElementChild.remove();
    ui.empty.hidden = true;
  }

  // --- forms -----------------------------------------------------------------

  function applyFollow(ev) {
    if (ev) ev.preventDefault();
    const next = splitList(ui.topics.value);
    const bad = next.find(badTopic);
    ui.topics.setCustomValidity(bad ? "A topic is 1 to 256 characters with no control characters." : "");
    if (bad) {
      ui.topics.reportValidity();
      return;
    }
    for (const name of splitList(ui.names.value)) follow(name);
    store(NAMES_KEY, splitList(ui.names.value).join(" "));

    topics = [...new Set(next)];
    const q = new URLSearchParams();
    for (const t of topics) q.append("topic", t);
    const s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
    connect(false);
  }

  function showResult(ok, text) {
    ui.result.textContent = text;
    ui.result.dataset.outcome = ok ? "ok" : "error";
  }

  async function publish(ev) {
    ev.preventDefault();
    const token = ui.token.value.trim();
    store(TOKEN_KEY, token);

    const body = {};
    const topic = ui.pubTopic.value.trim();
    const name = ui.pubEvent.value.trim();
    if (topic) body.topic = topic;
    if (name) {
      body.event = name;
      follow(name); // so the feed shows what this page publishes
    }
    body.data = parseJSON(ui.pubData.value).value;

    showResult(true, "Publishing…");
    let res;
    try {
      res = await fetch("/publish", {
        method: "POST",
        headers: {
          "Authorization": "Bearer " + token,
          "Content-Type": "application/json",
        },
        body: JSON.stringify(body),
      });
    } catch (_) {
      showResult(false, "Error: the server could not be reached.");
      return;
    }
    let answer = null;
    try {
      answer = await res.json();
    } catch (_) {
      // Not JSON: fall back to the status line below.
    }
    if (res.ok && answer && typeof answer.id === "string") {
      let text = "Published: id " + answer.id;
      if (topic && !topics.includes(topic)) text += " (topic \u201c" + topic + "\u201d is not followed here)";
      showResult(true, text);
    } else {
      const why = answer && typeof answer.error === "string" ? answer.error : res.statusText;
      showResult(false, "Error " + res.status + ": " + why);
    }
  }

  // --- start -----------------------------------------------------------------

  ui.token.value = load(TOKEN_KEY);
  ui.names.value = load(NAMES_KEY);
  if (ui.names.value) $("more").open = true;
  const fromURL = new URLSearchParams(location.search).getAll("topic");
  ui.topics.value = fromURL.join(", ");

  ui.follow.addEventListener("submit", applyFollow);
  ui.topics.addEventListener("input", () => ui.topics.setCustomValidity(""));
  ui.publish.addEventListener("submit", publish);
  ui.clear.addEventListener("click", () => {
    ui.feed.replaceChildren();
    ui.empty.hidden = false;
  });
  // Close the stream when the page goes away so the server sees the user
  // leave at once; reopen it if the page comes back from the back/forward cache.
  window.addEventListener("pagehide", () => {
    clearTimeout(retryTimer);
    if (source) source.close();
  });
  window.addEventListener("pageshow", (ev) => {
    if (ev.persisted) connect(true);
  });

  applyFollow(null);
})();
