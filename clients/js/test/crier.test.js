// Unit tests of the client's logic that needs no browser: id order, backoff, topic union,
// the stream parser and the hub's bookkeeping. The browser tests (e2e/browser) drive the
// whole library in Chromium against a real crier.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cmpId, delay, retryAfter, union, parser, Hub } from "../crier.js";

test("cmpId orders ids as numbers, beyond a double's precision", () => {
  const cases = [
    ["", "1", -1],
    ["9", "10", -1],
    ["10", "9", 1],
    ["42", "42", 0],
    ["18446744073709551614", "18446744073709551615", -1],
    ["9007199254740993", "9007199254740992", 1],
  ];
  for (const [a, b, want] of cases) {
    assert.equal(Math.sign(cmpId(a, b)), want, `cmpId(${a}, ${b})`);
  }
});

test("delay: at least the floor, full jitter over a doubling step, bounded", () => {
  const cases = [
    // attempt, floor, random, want
    [0, 3000, 0, 3000],
    [0, 3000, 0.999999, 3999],
    [1, 0, 0.5, 1000],
    [3, 500, 0.5, 4500],
    [10, 0, 0.999999, 29999], // 1024 s would be the step: the cap is 30 s
    [1e6, 2000, 0.5, 17000], // no overflow to Infinity
  ];
  for (const [n, floor, r, want] of cases) {
    assert.equal(delay(n, floor, () => r), want, `delay(${n}, ${floor}, ${r})`);
  }
  for (let n = 0; n < 40; n++) {
    const d = delay(n, 1000);
    assert.ok(d >= 1000 && d < 31000, `delay(${n}) = ${d}`);
  }
});

test("retryAfter reads seconds and HTTP dates", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  const cases = [
    [null, 0],
    ["", 0],
    ["2", 2000],
    ["0", 0],
    ["Thu, 01 Jan 2026 00:00:05 GMT", 5000],
    ["Wed, 31 Dec 2025 23:59:00 GMT", 0], // in the past
    ["soon", 0],
    ["-3", 0],
  ];
  for (const [h, want] of cases) assert.equal(retryAfter(h, now), want, `retryAfter(${h})`);
});

test("union is the sorted set of every tab's topics", () => {
  assert.deepEqual(union([]), []);
  assert.deepEqual(union([["b", "a"], ["a", "c"], []]), ["a", "b", "c"]);
});

// feed runs text through a parser in the given chunks and returns what came out.
function parse(chunks) {
  const out = { events: [], retries: [] };
  const push = parser({ event: (e) => out.events.push(e), retry: (ms) => out.retries.push(ms) });
  chunks.forEach(push);
  return out;
}

test("parser reads crier's events, whatever the chunking", () => {
  const wire =
    "\ufeffretry: 3000\n\n" +
    ": heartbeat\n\n" +
    "id: 7\nevent: new_user\ndata: {\"subscribers\":1}\n\n" +
    "topic: orders\nid: 8\nevent: order_shipped\ndata: line one\ndata: line two\n\n" +
    "id: 9\r\ndata: crlf\r\n\r\n" +
    "id: 10\rdata:no space\r\r" +
    "data\n\n" + // a field without a colon: empty data
    "id: 11\nevent: ignored, no data\n\n" +
    "id: 12\ndata: last\n\n";
  const want = {
    events: [
      { id: "7", event: "new_user", topic: "", data: "{\"subscribers\":1}" },
      { id: "8", event: "order_shipped", topic: "orders", data: "line one\nline two" },
      { id: "9", event: "message", topic: "", data: "crlf" },
      { id: "10", event: "message", topic: "", data: "no space" },
      { id: "", event: "message", topic: "", data: "" },
      { id: "12", event: "message", topic: "", data: "last" },
    ],
    retries: [3000],
  };
  assert.deepEqual(parse([wire]), want, "one chunk");
  assert.deepEqual(parse([...wire]), want, "one character at a time");
  for (let cut = 1; cut < wire.length; cut++) {
    assert.deepEqual(parse([wire.slice(0, cut), wire.slice(cut)]), want, `cut at ${cut}`);
  }
});

test("parser: an event is only dispatched at its blank line", () => {
  const out = parse(["id: 1\ndata: half"]);
  assert.deepEqual(out.events, []);
});

// A fake tab side: every message a hub sends, by tab ("*" for all).
function hubWithTabs() {
  const got = [];
  const hub = new Hub("http://crier.test/events", "", {
    to: (tab, m) => got.push([tab, m]),
    all: (m) => got.push(["*", m]),
  });
  hub.open = () => {
    hub.opened = (hub.opened || 0) + 1;
  };
  return { hub, got };
}

// opened sets a hub up as if its stream had opened after id from, on its union.
function opened(hub, from) {
  hub.from = from;
  hub.covers = hub.topics;
}

test("hub follows the union of its tabs' topics and reopens only when it changes", async () => {
  const { hub } = hubWithTabs();
  hub.recv({ t: "hello", tab: "a", topics: ["x"], pos: "" });
  hub.recv({ t: "hello", tab: "b", topics: ["y", "x"], pos: "" });
  assert.deepEqual(hub.topics, ["x", "y"]);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(hub.opened, 1, "one reopen for the burst");

  hub.recv({ t: "topics", tab: "a", topics: ["y"] });
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(hub.opened, 1, "the union did not change");

  hub.recv({ t: "bye", tab: "b" });
  assert.deepEqual(hub.topics, ["y"]);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(hub.opened, 2, "b's leaving narrowed the union");

  hub.recv({ t: "bye", tab: "a" });
  assert.equal(hub.topics, null, "no tab left: the stream stops");
  hub.recv({ t: "hello", tab: "d", topics: ["y"], pos: "" });
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(hub.opened, 3, "a tab that comes later starts it again");
});

test("hub brings a tab back from a reload up to date from what it kept", () => {
  const { hub, got } = hubWithTabs();
  hub.recv({ t: "hello", tab: "a", topics: ["x"], pos: "" });
  opened(hub, "10");
  for (const id of ["11", "12", "13"]) hub.event({ id, event: "message", topic: "x", data: id });
  assert.equal(hub.last, "13");
  got.length = 0;

  hub.recv({ t: "hello", tab: "b", topics: ["x"], pos: "11" });
  const hi = (tab) => got.find(([to, m]) => to === tab && m.t === "hi")[1];
  assert.deepEqual(hi("b").es.map((e) => e.id), ["12", "13"]);
  assert.equal(hi("b").g, 0, "nothing to wait for");
  assert.equal(hub.rewind, "", "no rewind needed");

  hub.recv({ t: "hello", tab: "c", topics: ["x"], pos: "" });
  assert.deepEqual(hi("c"), { t: "hi", pos: "13", es: [], g: 0 }, "a new tab starts at the last id");
  hub.recv({ t: "hello", tab: "d", topics: ["x"], pos: "13" });
  assert.deepEqual(hi("d"), { t: "hi", pos: "13", es: [], g: 0 }, "an up-to-date tab gets nothing");
});

test("hub rewinds the stream for a tab older than what it kept, or with a new topic", () => {
  const { hub, got } = hubWithTabs();
  hub.recv({ t: "hello", tab: "a", topics: ["x"], pos: "" });
  opened(hub, "10");
  hub.event({ id: "11", event: "message", topic: "x", data: "" });

  hub.gen = 4;
  hub.recv({ t: "hello", tab: "b", topics: ["x"], pos: "9" });
  assert.equal(hub.rewind, "9");
  const hi = got.find(([to, m]) => to === "b" && m.t === "hi")[1];
  assert.deepEqual(hi.es, []);
  assert.equal(hi.g, 5, "the tab takes events from the next stream on, which resumes from its id");
  hub.recv({ t: "hello", tab: "c", topics: ["x"], pos: "5" });
  assert.equal(hub.rewind, "5", "the oldest id wins");

  const h2 = hubWithTabs().hub;
  h2.recv({ t: "hello", tab: "a", topics: ["x"], pos: "" });
  opened(h2, "10");
  h2.event({ id: "11", event: "message", topic: "x", data: "" });
  h2.event({ id: "12", event: "message", topic: "x", data: "" });
  h2.recv({ t: "hello", tab: "b", topics: ["y"], pos: "11" });
  assert.equal(h2.rewind, "11", "kept events lack topic y: resume from the tab's id");
});

test("hub replays what it kept only for the topics the open stream follows", () => {
  const { hub, got } = hubWithTabs();
  hub.recv({ t: "hello", tab: "a", topics: ["x"], pos: "" });
  opened(hub, "10");
  hub.event({ id: "11", event: "message", topic: "x", data: "" });
  hub.event({ id: "12", event: "message", topic: "x", data: "" });
  // b widens the union to y: the stream follows y from its next open on, not yet.
  hub.recv({ t: "hello", tab: "b", topics: ["x", "y"], pos: "" });
  assert.deepEqual(hub.topics, ["x", "y"]);

  hub.gen = 2;
  hub.recv({ t: "hello", tab: "c", topics: ["y"], pos: "11" });
  const hi = got.find(([to, m]) => to === "c" && m.t === "hi")[1];
  assert.deepEqual(hi.es, [], "kept events lack y");
  assert.equal(hi.g, 3, "the tab waits for the next stream");
  assert.equal(hub.rewind, "11", "which resumes from its id");
});

test("hub forgets a rewind for tabs that are gone", () => {
  const { hub } = hubWithTabs();
  hub.recv({ t: "hello", tab: "a", topics: ["x"], pos: "" });
  opened(hub, "10");
  hub.event({ id: "11", event: "message", topic: "x", data: "" });
  hub.recv({ t: "hello", tab: "b", topics: ["x"], pos: "5" });
  assert.equal(hub.rewind, "5");
  hub.recv({ t: "bye", tab: "b" });
  hub.recv({ t: "bye", tab: "a" });
  assert.equal(hub.rewind, "", "no tab is left to rewind for");
  assert.deepEqual(hub.buf, []);

  hub.recv({ t: "hello", tab: "c", topics: ["x"], pos: "11" });
  assert.equal(hub.rewind, "", "the next tab resumes from its own id");
});

test("hub keeps a bounded window of events", () => {
  const { hub } = hubWithTabs();
  hub.from = "0";
  for (let i = 1; i <= 1500; i++) hub.event({ id: String(i), event: "message", topic: "", data: "" });
  assert.equal(hub.buf.length, 1000);
  assert.equal(hub.from, "500");
  assert.equal(hub.buf[0].id, "501");
});

// A stream answer for the hub's fetch.
function answer(status, headers, body) {
  return new Response(body, { status, headers });
}

async function until(cond, what) {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), what);
}

test("hub's stream: resumes with the last id, stops on 401, honours Retry-After", async (t) => {
  t.mock.method(Math, "random", () => 0); // no jitter: the waits are the floors
  const requests = [];
  const answers = [];
  t.mock.method(globalThis, "fetch", async (url, init) => {
    requests.push({ url: new URL(url), init });
    return answers.shift()();
  });
  const got = [];
  const hub = new Hub("http://crier.test/events", "tok", { to: () => {}, all: (m) => got.push(m) });

  answers.push(() => answer(200, { "Content-Type": "text/event-stream" },
    "retry: 10\n\ntopic: x\nid: 5\nevent: hi\ndata: {}\n\n"));
  answers.push(() => answer(503, { "Retry-After": "0", "Content-Type": "application/json" },
    JSON.stringify({ error: "too many streams" })));
  answers.push(() => answer(401, { "Content-Type": "application/json" }, JSON.stringify({ error: "no token" })));
  hub.recv({ t: "hello", tab: "a", topics: ["x"], pos: "3" });

  await until(() => hub.state === "closed", "the 401 closes the stream");
  assert.equal(requests.length, 3);
  const [first, second] = requests;
  assert.deepEqual(first.url.searchParams.getAll("topic"), ["x"]);
  assert.equal(first.url.searchParams.get("lastEventId"), "3", "resumes from the tab's id");
  assert.equal(first.url.searchParams.get("tagged"), "1");
  assert.equal(first.init.headers.Authorization, "Bearer tok");
  assert.equal(second.url.searchParams.get("lastEventId"), "5", "then from the last event");
  assert.deepEqual(got.filter((m) => m.t === "ev").map((m) => [m.e.id, m.e.topic, m.e.event]), [["5", "x", "hi"]]);
  const states = got.filter((m) => m.t === "st").map((m) => m.state);
  assert.deepEqual(states.slice(-4), ["live", "reconnecting", "reconnecting", "closed"]);
  const busy = got.filter((m) => m.t === "st" && m.error?.status === 503)[0];
  assert.equal(busy.error.message, "too many streams");
  assert.equal(busy.wait, 10, "waits the server's retry: (Retry-After: 0 is shorter)");
  assert.deepEqual(got.at(-1).error, { status: 401, message: "no token" });
});
