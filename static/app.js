// crier's page: a live feed through crier's browser client (/crier.js: one stream for all
// of the browser's tabs, resumed across reloads), room members, and a form that publishes
// through POST /publish. No build step, no dependencies, nothing inline: the page works
// under Content-Security-Policy: default-src 'self'.
//
// Event data is only ever written with textContent, never as HTML: a publisher must not
// be able to inject markup or script into this page.
import { connect, delay } from "/crier.js";

const MAX_ITEMS = 200; // the feed keeps this many events, newest first
// sessionStorage, never localStorage: the token goes when the tab does, and the feed
// survives a reload of the tab (the client resumes the stream where it was).
const TOKEN_KEY = "crier.token";
const FEED_KEY = "crier.feed";

const $ = (id) => document.getElementById(id);
const ui = {
  state: $("state"),
  stateDetail: $("state-detail"),
  tabs: $("tabs"),
  count: $("count"),
  feed: $("feed"),
  empty: $("empty"),
  follow: $("follow"),
  topics: $("topics"),
  streamURL: $("stream-url"),
  rooms: $("rooms"),
  roomList: $("room-list"),
  publish: $("publish"),
  token: $("token"),
  pubTopic: $("pub-topic"),
  pubEvent: $("pub-event"),
  pubData: $("pub-data"),
  result: $("publish-result"),
  clear: $("clear"),
};

let feed = null;
let topics = [];
let kept = []; // what the feed shows, newest first, to restore after a reload
let lastState = "";
let lastRooms = "";
const rooms = new Map(); // room topic -> Map(user -> connections)

// --- small helpers ---------------------------------------------------------

const splitList = (s) => s.split(/[\s,]+/).filter((x) => x !== "");

function session(key, value) {
  try {
    if (value === undefined) return sessionStorage.getItem(key) || "";
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch {
    // Storage may be disabled; the page works without it.
  }
  return "";
}

function el(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = text;
  return n;
}

const plural = (n, word) => n + "\u00a0" + word + (n === 1 ? "" : "s");

// A topic is 1 to 256 characters with no control characters (see CONTRACT).
// eslint-disable-next-line no-control-regex
const badTopic = (t) => [...t].length > 256 || /[\u0000-\u001f\u007f-\u009f]/.test(t);

const isObject = (d) => d !== null && typeof d === "object";

// --- connection state ------------------------------------------------------

function showStatus(st) {
  ui.state.textContent = st.state;
  ui.state.dataset.state = st.state;
  let detail = "";
  if (st.error) detail = st.error.status + ": " + st.error.message;
  if (st.state === "reconnecting" && st.wait) {
    detail = (detail ? detail + ", " : "") + "next try in " + Math.ceil(st.wait / 1000) + "\u00a0s";
  }
  ui.stateDetail.textContent = detail;
  // Off the stream the count is only the last one known; the next presence event
  // (the stream's own arrival) makes it current again.
  if (st.state !== "live") ui.count.dataset.stale = "true";

  ui.tabs.dataset.tabs = String(st.tabs);
  ui.tabs.dataset.sharing = st.sharing;
  ui.tabs.textContent = st.tabs > 1 ? "shared by " + st.tabs + " tabs" : "this tab only";
  ui.tabs.title = {
    worker: "The stream runs in a shared worker for every tab of this site.",
    leader: "This tab holds the stream and relays it to the site's other tabs.",
    follower: "Another tab of this site holds the stream and relays it here.",
    none: "This browser cannot share the stream between tabs.",
  }[st.sharing];

  // Room events sent while the stream was down are not replayed: ask again.
  const known = st.rooms.join("\n");
  if ((st.state === "live" && lastState !== "live") || known !== lastRooms) refreshRooms(st.rooms);
  lastState = st.state;
  lastRooms = known;
}

// --- the feed --------------------------------------------------------------

function onEvent(ev) {
  const d = ev.data;
  const obj = isObject(d) ? d : {};
  switch (ev.event) {
    case "new_user":
    case "user_left": {
      if (typeof obj.subscribers === "number") {
        ui.count.textContent = String(obj.subscribers);
        delete ui.count.dataset.stale;
      }
      const joined = ev.event === "new_user";
      const who = typeof obj.subscriber === "string" ? obj.subscriber : "";
      add({
        type: ev.event,
        kind: "presence",
        id: ev.id,
        time: obj.time,
        text: joined ? "New user connected" : "User disconnected",
        detail: (who ? "subscriber " + who + " · " : "") +
          (typeof obj.subscribers === "number" ? plural(obj.subscribers, "subscriber") + "\u00a0now" : ""),
      });
      break;
    }
    case "join":
    case "leave": {
      roomEvent(ev.event, obj);
      add({
        type: ev.event,
        kind: "presence",
        id: ev.id,
        time: obj.time,
        text: String(obj.user) + (ev.event === "join" ? " joined " : " left ") + String(obj.topic),
        detail: typeof obj.members === "number" ? plural(obj.members, "member") + "\u00a0now" : "",
      });
      break;
    }
    case "missed":
      add({
        type: ev.event,
        kind: "warning",
        id: ev.id,
        text: "Warning: some events could not be replayed",
        detail: typeof obj.message === "string" ? obj.message : ev.text,
      });
      break;
    default:
      add({
        type: ev.event,
        kind: "data",
        id: ev.id,
        topic: ev.topic,
        text: describe(d),
        data: typeof d === "string" ? null : JSON.stringify(d, null, 2),
      });
  }
}

// describe picks a line a person reads: a string payload, or its "message", "text" or
// "title" field; otherwise the JSON below the line says it all.
function describe(d) {
  if (typeof d === "string") return d;
  if (isObject(d)) {
    for (const k of ["message", "text", "title"]) {
      if (typeof d[k] === "string") return d[k];
    }
    return "";
  }
  return String(d);
}

function add(item) {
  kept.unshift(item);
  kept.length = Math.min(kept.length, MAX_ITEMS);
  render(item);
}

function render(item) {
  const li = el("li", "item item-" + item.kind);
  li.dataset.event = item.type;
  if (item.id) li.dataset.id = item.id;

  const meta = el("div", "meta");
  let when = new Date(item.time || item.seen || Date.now());
  if (isNaN(when)) when = new Date();
  item.seen ||= when.toISOString();
  const time = el("time", "time", when.toLocaleTimeString());
  time.dateTime = when.toISOString();
  meta.append(time, el("span", "type", item.type));
  if (item.topic) meta.append(el("span", "topic", item.topic));
  if (item.id) meta.append(el("span", "id", "#" + item.id));
  li.append(meta);

  if (item.text) li.append(el("p", "text", item.text));
  if (item.detail) li.append(el("p", "detail", item.detail));
  if (item.data !== null && item.data !== undefined) li.append(el("pre", "data", item.data));

  ui.feed.prepend(li);
  while (ui.feed.children.length > MAX_ITEMS) ui.feed.lastElementChild.remove();
  ui.empty.hidden = true;
}

function restoreFeed() {
  try {
    kept = JSON.parse(session(FEED_KEY) || "[]");
  } catch {
    kept = [];
  }
  if (!Array.isArray(kept)) kept = [];
  for (const item of [...kept].reverse()) render(item);
}

// --- rooms -----------------------------------------------------------------

// refreshRooms asks who is in the followed rooms now. Only topics known to be rooms (a
// join or leave came for them) are asked about: a 404 for every other topic would fill
// the browser's console with errors.
function refreshRooms(list) {
  for (const t of list) {
    feed.presence(t).then((p) => {
      if (!topics.includes(t)) return;
      if (!p || !Array.isArray(p.users)) {
        rooms.delete(t);
      } else {
        rooms.set(t, new Map(p.users.map((u) => [String(u.user), u.connections])));
      }
      renderRooms();
    }, () => {
      // The room list is a courtesy; the feed goes on without it.
    });
  }
}

function roomEvent(kind, d) {
  const t = d.topic;
  if (typeof t !== "string" || !topics.includes(t)) return;
  if (!rooms.has(t)) rooms.set(t, new Map());
  const members = rooms.get(t);
  if (kind === "join") members.set(String(d.user), d.connections);
  else members.delete(String(d.user));
  renderRooms();
}

function renderRooms() {
  const boxes = [];
  for (const [t, members] of rooms) {
    if (!topics.includes(t)) continue;
    const box = el("div", "room");
    box.dataset.topic = t;
    const head = el("h3", "room-name", t + " ");
    head.append(el("span", "members", plural(members.size, "member")));
    box.append(head);
    const list = el("ul", "users");
    for (const [user, n] of [...members].sort((a, b) => a[0].localeCompare(b[0]))) {
      const li = el("li", "user", user);
      li.dataset.user = user;
      if (n > 1) li.append(el("span", "connections", " · " + plural(n, "connection")));
      list.append(li);
    }
    box.append(list);
    boxes.push(box);
  }
  ui.roomList.replaceChildren(...boxes);
  ui.rooms.hidden = boxes.length === 0;
}

// --- plain EventSource -----------------------------------------------------

// plainFeed follows /events with the browser's plain EventSource, one stream per tab,
// with the surface of /crier.js's feed that this page uses. EventSource resumes by itself
// with Last-Event-ID after an error, but not after a reload: the last id is kept in
// sessionStorage, as /crier.js does, and sent as lastEventId. An EventSource that gives
// up (an answer other than a stream, such as a 503 while crier shuts down) is opened
// again after /crier.js's backoff. It hands over only the event names it listens for:
// these, and "message".
const PLAIN_NAMES = ["message", "new_user", "user_left", "missed", "join", "leave"];
const LAST_KEY = "crier.last";
function plainFeed(initial) {
  const fns = new Map();
  const st = { state: "connecting", tabs: 1, sharing: "none", error: null, wait: 0, rooms: [] };
  const emit = (name, v) => (fns.get(name) || []).forEach((fn) => fn(v));
  let es = null;
  let list = initial;
  let fails = 0;
  let timer = 0;
  const open = () => {
    clearTimeout(timer);
    if (es) es.close();
    const q = new URLSearchParams(list.map((t) => ["topic", t]));
    const last = session(LAST_KEY);
    if (last) q.set("lastEventId", last);
    const s = q.toString();
    es = new EventSource("/events" + (s ? "?" + s : ""));
    es.onopen = () => {
      fails = 0;
      emit("", Object.assign(st, { state: "live", wait: 0 }));
    };
    es.onerror = () => {
      const wait = es.readyState === EventSource.CLOSED ? delay(fails++, 1000) : 0;
      if (wait) timer = setTimeout(open, wait);
      emit("", Object.assign(st, { state: "reconnecting", wait }));
    };
    for (const name of PLAIN_NAMES) {
      es.addEventListener(name, (e) => {
        if (e.lastEventId) session(LAST_KEY, e.lastEventId);
        let data = e.data;
        try {
          data = JSON.parse(e.data);
        } catch {
          // text, as published
        }
        const topic = (name === "join" || name === "leave") && data ? data.topic : "";
        emit("*", { id: e.lastEventId, event: name, topic, data, text: e.data });
      });
    }
  };
  // The feed is saved at pagehide: the id saved must be the last event it shows.
  window.addEventListener("pagehide", () => (clearTimeout(timer), es.close()));
  window.addEventListener("pageshow", (e) => e.persisted && open());
  open();
  return {
    on: (name, fn) => fns.set(name, [...(fns.get(name) || []), fn]),
    onStatus: (fn) => fns.set("", [...(fns.get("") || []), fn]),
    status: () => st,
    setTopics: (next) => {
      list = next;
      open();
    },
    presence: (t) => fetch("/presence?topic=" + encodeURIComponent(t)).then((r) => (r.ok ? r.json() : null)),
    close: () => es.close(),
  };
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
  topics = [...new Set(next)];
  const q = new URLSearchParams(topics.map((t) => ["topic", t]));
  const s = q.toString();
  history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  ui.streamURL.textContent = "/events" + (s ? "?" + s : "");
  for (const t of rooms.keys()) if (!topics.includes(t)) rooms.delete(t);
  renderRooms();
  if (feed) {
    feed.setTopics(topics);
    refreshRooms(feed.status().rooms);
  } else {
    // /crier.js reads the stream with fetch, as text through a TextDecoderStream; a browser
    // that cannot gets the browser's own EventSource instead.
    const streams = "body" in Response.prototype && "TextDecoderStream" in window;
    feed = streams ? connect({ topics }) : plainFeed(topics);
    feed.onStatus(showStatus);
    feed.on("*", onEvent);
  }
}

function showResult(ok, text) {
  ui.result.textContent = text;
  ui.result.dataset.outcome = ok ? "ok" : "error";
}

async function publish(ev) {
  ev.preventDefault();
  const token = ui.token.value.trim();
  session(TOKEN_KEY, token);

  const body = {};
  const topic = ui.pubTopic.value.trim();
  const name = ui.pubEvent.value.trim();
  if (topic) body.topic = topic;
  if (name) body.event = name;
  try {
    body.data = JSON.parse(ui.pubData.value);
  } catch {
    body.data = ui.pubData.value;
  }

  showResult(true, "Publishing…");
  let res;
  try {
    res = await fetch("/publish", {
      method: "POST",
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    showResult(false, "Error: the server could not be reached.");
    return;
  }
  const answer = await res.json().catch(() => null);
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

// Earlier versions of the page kept the token in localStorage; it does not belong there.
try {
  localStorage.removeItem(TOKEN_KEY);
} catch {
  // Storage disabled: nothing was kept.
}
ui.token.value = session(TOKEN_KEY);
ui.topics.value = new URLSearchParams(location.search).getAll("topic").join(", ");
restoreFeed();

ui.follow.addEventListener("submit", applyFollow);
ui.topics.addEventListener("input", () => ui.topics.setCustomValidity(""));
ui.publish.addEventListener("submit", publish);
ui.clear.addEventListener("click", () => {
  ui.feed.replaceChildren();
  kept = [];
  ui.empty.hidden = false;
});
window.addEventListener("pagehide", () => session(FEED_KEY, JSON.stringify(kept)));

applyFollow(null);
