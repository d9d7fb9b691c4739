// crier.js: crier's browser client; see README.md. The stream is read with fetch, not
// EventSource, which hides a refusal's status and Retry-After and sends no headers.

const BASE = 1000; // first backoff step, ms
const CAP = 30000; // largest backoff step, ms
const KEEP = 1000; // events the shared stream keeps for tabs that come back from a reload

// cmpId orders event ids, decimal strings beyond a Number's precision; "" comes first.
export const cmpId = (a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

// delay is the wait before attempt n (from 0): floor (retry:, Retry-After) plus full
// jitter over an exponential step.
export const delay = (n, floor, rnd = Math.random) =>
  floor + Math.floor(rnd() * Math.min(CAP, BASE * 2 ** Math.min(n, 15)));

// retryAfter reads Retry-After (seconds or a date) as ms.
export function retryAfter(h, now = Date.now()) {
  if (!h) return 0;
  const s = +h;
  return Math.max(0, s >= 0 ? s * 1000 : Date.parse(h) - now || 0);
}

// union is the sorted set of every tab's topics.
export const union = (lists) => [...new Set(lists.flat())].sort();

// parser returns a function fed the stream's text; it calls to.event({id, event, topic,
// data}) and to.retry(ms).
export function parser(to) {
  let buf = "", data = [], name = "", topic = "", id = "", start = true;
  const line = (l) => {
    if (!l) {
      if (data.length) to.event({ id, event: name || "message", topic, data: data.join("\n") });
      data = [];
      name = topic = id = "";
      return;
    }
    const i = l.indexOf(":");
    if (!i) return; // a comment
    const f = i < 0 ? l : l.slice(0, i);
    let v = i < 0 ? "" : l.slice(i + 1);
    if (v[0] === " ") v = v.slice(1);
    if (f === "data") data.push(v);
    else if (f === "event") name = v;
    else if (f === "topic") topic = v;
    else if (f === "id" && !v.includes("\0")) id = v;
    else if (f === "retry" && /^\d+$/.test(v)) to.retry(+v);
  };
  return (chunk) => {
    buf += chunk;
    if (start && buf) {
      start = false;
      if (buf[0] === "\ufeff") buf = buf.slice(1);
    }
    const re = /\r\n|\r|\n/g;
    let at = 0, m;
    while ((m = re.exec(buf))) {
      // A CR at the end may be half a CRLF.
      if (m[0] === "\r" && re.lastIndex === buf.length) break;
      line(buf.slice(at, m.index));
      at = re.lastIndex;
    }
    buf = buf.slice(at);
  };
}

const locks = () => globalThis.navigator?.locks;

// Hub owns the one stream (in the SharedWorker, the leader tab or a lone tab): it follows
// the union of its tabs' topics and sends every event to every tab (out.all; out.to
// reaches one); each tab keeps its topics' events and drops ids it has seen.
export class Hub {
  constructor(url, token, out) {
    Object.assign(this, { url, token, out });
    this.tabs = new Map(); // tab -> its topics
    this.topics = null; // the union, which the stream follows from its next open on
    this.last = ""; // id of the last event
    this.from = null; // buf holds every event of topics this.covers after this id
    this.covers = null; // the open stream's topics
    this.buf = [];
    this.rewind = ""; // an older id a returning tab must resume from
    this.retry = BASE; // the server's retry:
    this.n = 0; // failed attempts in a row
    this.state = "connecting";
    this.error = null;
    this.wait = 0;
    this.rooms = new Set(); // topics a join or leave came for
    this.gen = 0; // streams opened
  }

  recv(m) {
    const { t, tab } = m;
    if (t === "bye") {
      if (!this.tabs.delete(tab)) return;
      this.out.drop?.(tab);
      if (!this.tabs.size) return this.stop();
    } else if (t === "hello" || t === "topics") {
      const known = this.tabs.has(tab);
      this.tabs.set(tab, m.topics);
      if (t === "hello") {
        if (!known) locks()?.request("crier tab " + tab, () => this.recv({ t: "bye", tab }));
        this.greet(m);
      }
    } else return;
    this.follow();
    this.status();
  }

  // greet answers a hello; the tab takes no event before. A new tab starts at the last id;
  // one back from a reload gets what it missed from buf, or takes events from stream g
  // on, which resumes from its id.
  greet({ tab, pos, topics }) {
    const hi = { t: "hi", pos: this.last, es: [], g: 0 };
    if (pos && (!this.last || cmpId(pos, this.last) < 0)) {
      if (this.from !== null && cmpId(pos, this.from) >= 0 && topics.every((x) => this.covers.includes(x)))
        hi.es = this.buf.filter((e) => cmpId(e.id, pos) > 0);
      else {
        if (!this.rewind || cmpId(pos, this.rewind) < 0) this.rewind = pos;
        hi.g = this.gen + 1;
      }
    }
    this.out.to(tab, hi);
  }

  // follow reopens the stream when the union changed or a tab needs a rewind.
  follow() {
    const u = union([...this.tabs.values()]);
    if (this.topics && u.join("\n") === this.topics.join("\n") && !this.rewind) return;
    this.topics = u;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), 30); // one for a burst
  }

  status() {
    const { state, error, wait } = this;
    const rooms = [...this.rooms].filter((x) => this.topics?.includes(x));
    this.out.all({ t: "st", state, error, wait, rooms, tabs: this.tabs.size });
  }

  set(state, error = null, wait = 0) {
    Object.assign(this, { state, error, wait });
    this.status();
  }

  // stop: no tab is left; the next to come starts again.
  stop() {
    clearTimeout(this.timer);
    this.ctl?.abort();
    this.topics = this.from = this.covers = null;
    this.rewind = "";
    this.buf = [];
  }

  async open() {
    clearTimeout(this.timer);
    this.ctl?.abort();
    const ctl = (this.ctl = new AbortController());
    this.gen++;
    const r = this.rewind;
    if (r && (!this.last || cmpId(r, this.last) < 0)) this.last = r;
    this.rewind = "";
    this.from = this.last || null;
    this.covers = this.topics;
    this.buf = [];
    const q = new URLSearchParams(this.topics.map((x) => ["topic", x]));
    q.set("tagged", "1");
    if (this.last) q.set("lastEventId", this.last);
    const headers = { Accept: "text/event-stream" };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    let floor = this.retry, err = null;
    try {
      const res = await fetch(this.url + (this.url.includes("?") ? "&" : "?") + q, {
        headers, signal: ctl.signal, cache: "no-store",
      });
      const s = res.status;
      if (s === 200 && /^text\/event-stream/.test(res.headers.get("Content-Type"))) {
        this.n = 0;
        this.set("live");
        const push = parser({ event: (e) => this.event(e), retry: (ms) => (this.retry = ms) });
        const rd = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (let c; !(c = await rd.read()).done; ) push(c.value);
      } else {
        err = { status: s, message: (await res.json().catch(() => 0))?.error || res.statusText };
        // Asking again cannot change a refusal or a bad request.
        if (s >= 400 && s < 500 && s !== 408 && s !== 429) {
          if (ctl === this.ctl) this.set("closed", err);
          return;
        }
        floor = Math.max(floor, retryAfter(res.headers.get("Retry-After")));
      }
    } catch {
      // network error or cut off: retry
    }
    if (ctl !== this.ctl || ctl.signal.aborted) return;
    const d = delay(this.n++, floor);
    this.set("reconnecting", err, d);
    this.timer = setTimeout(() => this.open(), d);
  }

  event(e) {
    const room = (e.event === "join" || e.event === "leave") && (e.topic || parseData(e.data)?.topic);
    if (room && !this.rooms.has(room)) {
      this.rooms.add(room);
      this.status();
    }
    if (e.id) {
      this.last = e.id;
      if (this.from === null) this.from = e.id;
      if (this.buf.push(e) > KEEP) this.from = this.buf.shift().id;
    }
    this.out.all({ t: "ev", e, g: this.gen });
  }
}

// A SharedWorker running this file runs the hub.
if (typeof SharedWorkerGlobalScope === "function" && self instanceof SharedWorkerGlobalScope) {
  const ports = new Map();
  let hub;
  self.onconnect = ({ ports: [port] }) => {
    port.onmessage = ({ data: m }) => {
      hub ||= new Hub(m.url, m.token, {
        to: (tab, msg) => ports.get(tab)?.postMessage(msg),
        all: (msg) => ports.forEach((p) => p.postMessage(msg)),
        drop: (tab) => ports.delete(tab),
      });
      if (m.t === "hello") ports.set(m.tab, port);
      hub.recv(m);
    };
  };
}

const hash = (s) => [...s].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7).toString(36);

const store = (k, v) => {
  try {
    return v === undefined ? sessionStorage.getItem(k) || "" : sessionStorage.setItem(k, v);
  } catch {
    return ""; // storage disabled
  }
};

function parseData(s) {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

// Feed is a tab's view of the stream (crier.d.ts).
class Feed {
  constructor({ url = "/events", topics = [], token = "", share = true, resume = true, worker } = {}) {
    this.url = new URL(url, location.href).href;
    this.token = token;
    this.topics = [...new Set(topics)];
    this.key = "crier " + this.url + " " + hash(token);
    this.tab = Math.random().toString(36).slice(2) + Date.now().toString(36);
    this.resume = resume;
    this.pos = resume ? store(this.key) : "";
    Object.assign(this, { state: "connecting", error: null, wait: 0, tabs: 1, known: [], sharing: "none" });
    this.fns = new Map();
    const l = locks();
    // The tab holds a lock while it lives: the hub learns it went when the lock is free.
    const held = l
      ? new Promise((ok) => l.request("crier tab " + this.tab, () => (ok(), new Promise((r) => (this.unlock = r)))))
      : Promise.resolve();
    held.then(() => this.closed || this.join(share && l, worker));
    // A page going away may get events after its pagehide, when it saved what it shows:
    // it takes no more, so that the id saved is the last it saw.
    addEventListener("pagehide", () => (this.hidden = true));
    addEventListener("pageshow", (e) => e.persisted && this.send && ((this.hidden = false), this.hello()));
  }

  join(l, worker) {
    if (l && typeof SharedWorker === "function") {
      try {
        const w = new SharedWorker(worker || import.meta.url, { type: "module", name: this.key });
        const p = (this.port = w.port);
        // A worker that cannot start (blocked, cross-origin): a leader tab instead.
        w.onerror = () => this.sharing === "worker" && !this.heard && (p.close(), this.lead(l));
        p.onmessage = ({ data }) => ((this.heard = true), this.recv(data));
        this.send = (m) => p.postMessage(m);
        this.sharing = "worker";
        return this.hello();
      } catch {
        // a leader tab instead
      }
    }
    this.lead(l);
  }

  // lead: the lock's holder runs the hub; the others wait for the lock.
  lead(l) {
    const local = (m) => this.recv(m);
    const mine = (out) => {
      this.hub = new Hub(this.url, this.token, out);
      this.send = (m) => this.hub.recv(m);
    };
    if (!l || typeof BroadcastChannel !== "function") {
      this.sharing = "none";
      mine({ to: (_, m) => local(m), all: local });
      return this.hello();
    }
    const ch = (this.ch = new BroadcastChannel(this.key));
    ch.onmessage = ({ data: m }) => {
      if (this.hub) this.hub.recv(m);
      else if (!m.to || m.to === this.tab) this.recv(m);
    };
    this.sharing = "follower";
    this.send = (m) => ch.postMessage(m);
    this.hello();
    l.request(this.key, () => {
      if (this.closed) return;
      this.sharing = "leader";
      mine({
        to: (tab, m) => (tab === this.tab ? local(m) : ch.postMessage({ ...m, to: tab })),
        all: (m) => (ch.postMessage(m), local(m)),
      });
      this.hello();
      ch.postMessage({ t: "leader" });
      return new Promise((r) => (this.abdicate = r));
    });
  }

  hello() {
    this.ready = false;
    this.send({ t: "hello", tab: this.tab, topics: this.topics, pos: this.pos, url: this.url, token: this.token });
  }

  recv(m) {
    if (this.closed || this.hidden) return;
    if (m.t === "ev") this.ready && m.g >= this.g && this.event(m.e);
    else if (m.t === "hi") {
      this.ready = true;
      this.g = m.g;
      this.pos ||= m.pos && this.save(m.pos);
      m.es.forEach((e) => this.event(e));
    } else if (m.t === "leader") this.hello();
    else if (m.t === "st") {
      Object.assign(this, { state: m.state, error: m.error, wait: m.wait, tabs: m.tabs, known: m.rooms });
      this.emit("", this.status());
    }
  }

  save(id) {
    if (this.resume) store(this.key, id);
    return (this.pos = id);
  }

  event(e) {
    if (e.id) {
      if (cmpId(e.id, this.pos) <= 0) return; // seen already
      this.save(e.id);
    }
    const data = parseData(e.data);
    // Room events name their room in the data too.
    const topic = e.topic || ((e.event === "join" || e.event === "leave") && data?.topic) || "";
    if (topic && !this.topics.includes(topic)) return;
    const ev = { id: e.id, event: e.event, topic, data, text: e.data };
    this.emit(e.event, ev);
    this.emit("*", ev);
  }

  emit(name, v) {
    for (const fn of this.fns.get(name) || []) {
      try {
        fn(v);
      } catch (err) {
        (globalThis.reportError || console.error)(err);
      }
    }
  }

  get rooms() {
    return this.known.filter((x) => this.topics.includes(x));
  }

  status() {
    const { state, tabs, sharing, error, wait, rooms } = this;
    return { state, tabs, sharing, error, wait, rooms };
  }

  on(name, fn) {
    if (!this.fns.has(name)) this.fns.set(name, new Set());
    this.fns.get(name).add(fn);
    return () => this.fns.get(name).delete(fn);
  }

  onStatus(fn) {
    return this.on("", fn);
  }

  // presence: who is in the room now; null for a topic that is not a room.
  async presence(topic) {
    const u = new URL("presence", this.url);
    u.searchParams.set("topic", topic);
    const res = await fetch(u, { headers: this.token ? { Authorization: "Bearer " + this.token } : {} });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error("crier: presence of " + topic + ": " + res.status);
    return res.json();
  }

  setTopics(topics) {
    this.topics = [...new Set(topics)];
    if (this.send && !this.closed) this.send({ t: "topics", tab: this.tab, topics: this.topics });
  }

  close() {
    if (this.closed) return;
    if (this.send) this.send({ t: "bye", tab: this.tab });
    this.closed = true;
    this.hub?.stop();
    this.abdicate?.();
    this.unlock?.();
    this.ch?.close();
    this.port?.close();
    this.state = "closed";
    this.emit("", this.status());
  }
}

// connect opens or joins the browser's stream and returns this tab's feed.
export const connect = (options) => new Feed(options);
