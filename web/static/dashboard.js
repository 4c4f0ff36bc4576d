// TrustScore Stream live dashboard: plain ES2020, no build step, no third-party code.
//
// Three Server-Sent Event streams (CONTRACT §4): the firehose (?all=1) feeds the feed,
// ?entity=<id> feeds the detail panel, ?user=me feeds notifications. Incoming events only
// touch plain arrays; the DOM and the canvases are updated at most once per animation frame,
// so a burst of 1,000 updates/s costs one render per frame, not one per event.
"use strict";

(() => {
  const FEED_ROWS = 200; // DOM rows kept in the feed
  const CHART_POINTS = 500; // history points kept for the chart
  const CHANGES_ROWS = 10; // "recent changes" list in the detail panel
  const NOTES_MAX = 100;
  const HISTORY_LIMIT = 200; // initial points from /history
  const DETAIL_REFRESH_MS = 1000; // at most one full score refetch per second while live
  const FLASH_RATE = 20; // above this many updates/s a flash per new row only tints the feed
  const BUSY_RATE = 150; // above this many updates/s the feed renders less often
  // While busy the feed redraws ~10 times a second: nobody reads rows moving at 60 fps,
  // and each redraw relays out and repaints the whole table.
  const BUSY_FEED_INTERVAL_MS = 100;
  const TOKEN_KEY = "trustscore.token";

  const LEVEL_NAMES = {
    high_trust: "High trust",
    moderate: "Moderate",
    caution: "Caution",
    high_risk: "High risk",
  };
  const LEVEL_BANDS = [
    ["high_risk", 0, 40],
    ["caution", 40, 60],
    ["moderate", 60, 80],
    ["high_trust", 80, 100],
  ];

  const $ = (id) => document.getElementById(id);
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(`--${name}`).trim() || "#888";

  // ---------------------------------------------------------------- formatting

  function levelFor(score) {
    if (score >= 80) return "high_trust";
    if (score >= 60) return "moderate";
    if (score >= 40) return "caution";
    return "high_risk";
  }

  function parseTime(iso) {
    if (!iso) return NaN;
    // Python writes microseconds; trim to milliseconds so every engine parses it.
    return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  const two = (n) => String(n).padStart(2, "0");
  function clock(ms) {
    if (!Number.isFinite(ms)) return "––:––:––";
    const d = new Date(ms);
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }

  function ago(ms) {
    if (!Number.isFinite(ms)) return "–";
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 2) return "just now";
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return new Date(ms).toLocaleDateString();
  }

  const fmtScore = (x) => (typeof x === "number" ? x.toFixed(1) : "–");
  const fmtInt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  function fmtDelta(delta) {
    if (typeof delta !== "number") return { text: "new", cls: "flat" };
    if (Math.abs(delta) < 0.05) return { text: "· 0.0", cls: "flat" };
    if (delta > 0) return { text: `▲ ${delta.toFixed(1)}`, cls: "up" };
    return { text: `▼ ${(-delta).toFixed(1)}`, cls: "down" };
  }

  const shortAddress = (a) => (a && a.length > 12 ? `${a.slice(0, 6)}…${a.slice(-4)}` : a || "");

  // "nft:eth:0xabc…:42" -> {kind: "nft", label: "0x5af0…25a5", token: "#42", parent}
  function describe(id) {
    const parts = String(id).split(":");
    const kind = parts[0];
    if (kind === "nft" && parts.length >= 4) {
      return {
        kind,
        label: shortAddress(parts[2]),
        token: `#${parts.slice(3).join(":")}`,
        parent: `collection:${parts[1]}:${parts[2]}`,
      };
    }
    if ((kind === "collection" || kind === "wallet") && parts.length >= 3) {
      return { kind, label: shortAddress(parts[2]), token: "", parent: null };
    }
    return { kind: "?", label: String(id), token: "", parent: null };
  }

  const KIND_LABEL = { nft: "NFT", collection: "Coll", wallet: "Wallet", "?": "?" };

  function entityNode(id) {
    const d = describe(id);
    const wrap = document.createElement("span");
    wrap.className = "ent";
    wrap.title = id;
    const kind = document.createElement("span");
    kind.className = `kind kind-${d.kind}`;
    kind.textContent = KIND_LABEL[d.kind] || d.kind;
    const label = document.createElement("span");
    label.className = "ent-label";
    label.textContent = d.label;
    wrap.append(kind, label);
    if (d.token) {
      const token = document.createElement("span");
      token.className = "ent-token";
      token.textContent = d.token;
      wrap.append(token);
    }
    return wrap;
  }

  const humanise = (id) => id.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

  function setLevelClass(el, level) {
    for (const name of Object.keys(LEVEL_NAMES)) el.classList.remove(`lvl-${name}`);
    if (level) el.classList.add(`lvl-${level}`);
  }

  function entityPath(id) {
    // Colons are legal in a path segment; keep them readable, escape everything else.
    return encodeURIComponent(id).replace(/%3A/gi, ":");
  }

  // ---------------------------------------------------------------- frame scheduler

  const renderers = new Set();
  let frameRequested = false;

  function requestRender(fn) {
    renderers.add(fn);
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(runFrame);
    }
  }

  function runFrame() {
    frameRequested = false;
    const batch = [...renderers];
    renderers.clear();
    for (const fn of batch) {
      try {
        fn();
      } catch (err) {
        console.error(err);
      }
    }
  }

  // ---------------------------------------------------------------- SSE with state

  // EventSource reconnects by itself (with Last-Event-ID) after a dropped connection, but
  // gives up for good on an HTTP error or a wrong content type; then we start a new one
  // with backoff and tell the owner, which must refetch (the new one has no Last-Event-ID).
  class LiveStream {
    constructor(url, { onEvent, onState, onRestart }) {
      this.url = url;
      this.onEvent = onEvent;
      this.onState = onState || (() => {});
      this.onRestart = onRestart || (() => {});
      this.source = null;
      this.timer = null;
      this.backoff = 1000;
      this.closed = false;
      this.everOpened = false;
      this.needsRestart = false;
      this.open();
    }

    open() {
      if (this.closed) return;
      this.onState(this.everOpened ? "reconnecting" : "connecting");
      const source = new EventSource(this.url);
      this.source = source;
      source.onopen = () => {
        this.backoff = 1000;
        const restarted = this.everOpened && this.needsRestart;
        this.everOpened = true;
        this.needsRestart = false;
        this.onState("live");
        if (restarted) this.onRestart();
      };
      source.onerror = () => {
        if (this.closed || source !== this.source) return;
        if (source.readyState === EventSource.CLOSED) {
          this.onState("offline", Math.round(this.backoff / 1000));
          this.needsRestart = true;
          this.timer = setTimeout(() => this.open(), this.backoff);
          this.backoff = Math.min(this.backoff * 2, 30000);
        } else {
          this.onState("reconnecting");
        }
      };
      for (const type of ["score", "notification", "reset"]) {
        source.addEventListener(type, (msg) => {
          let data;
          try {
            data = JSON.parse(msg.data);
          } catch {
            return; // a malformed frame must not stop the stream
          }
          this.onEvent(type, data);
        });
      }
    }

    close() {
      this.closed = true;
      clearTimeout(this.timer);
      if (this.source) this.source.close();
      this.source = null;
    }
  }

  // ---------------------------------------------------------------- header: status + rate

  const statusEl = $("status");
  const STATUS_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    offline: "Offline",
  };

  function showStatus(state, retryIn) {
    statusEl.dataset.state = state;
    statusEl.textContent =
      state === "offline" && retryIn ? `Offline · retry in ${retryIn}s` : STATUS_TEXT[state];
  }

  const rateEl = $("rate");
  const totalEl = $("total");
  const spark = $("rate-spark");
  const rateHistory = [];
  let received = 0;
  let sinceTick = 0;
  let lastTick = performance.now();
  let currentRate = 0;

  function tickRate() {
    const now = performance.now();
    currentRate = (sinceTick * 1000) / Math.max(1, now - lastTick);
    sinceTick = 0;
    lastTick = now;
    rateHistory.push(currentRate);
    if (rateHistory.length > 60) rateHistory.shift();
    document.body.classList.toggle("busy", currentRate > FLASH_RATE);
    requestRender(renderVitals);
    if (feedPaused) requestRender(renderPauseNote);
  }

  function renderVitals() {
    rateEl.textContent = fmtInt.format(currentRate);
    totalEl.textContent = fmtInt.format(received);
    drawSpark();
  }

  function drawSpark() {
    const fitted = fitCanvas(spark);
    if (!fitted) return;
    const { ctx, w, h } = fitted;
    ctx.clearRect(0, 0, w, h);
    if (rateHistory.length < 2) return;
    const max = Math.max(10, ...rateHistory) * 1.4; // headroom: a steady rate reads as a line
    const step = w / 59;
    const x0 = w - (rateHistory.length - 1) * step;
    ctx.beginPath();
    rateHistory.forEach((v, i) => {
      const x = x0 + i * step;
      const y = h - 2 - (v / max) * (h - 4);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = colour("accent");
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(w, h);
    ctx.lineTo(x0, h);
    ctx.closePath();
    ctx.fillStyle = "rgba(124,140,255,0.10)";
    ctx.fill();
  }

  // A canvas sized for its CSS box and the device pixel ratio; draws in CSS pixels.
  function fitCanvas(canvas) {
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return null;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx, w, h };
  }

  // ---------------------------------------------------------------- live feed

  // Rows are divs in a CSS grid (ARIA table roles), not a <table>: rows off screen can then
  // skip layout and paint (content-visibility), which a table row cannot.
  const feedBody = $("feed-body");
  const feedWrap = $("feed-wrap");
  const feedEmpty = $("feed-empty");
  const feedNote = $("feed-note");
  const mixSegs = [...document.querySelectorAll("#level-mix .mix-seg")];
  const levelCounts = { high_trust: 0, moderate: 0, caution: 0, high_risk: 0 };
  let feedBuffer = [];
  let feedPaused = false;
  let pausedBacklog = 0;
  let lastFeedRender = 0;
  let feedTimer = null;
  const rowPool = []; // rows trimmed off the bottom, reused for new ones

  function onFirehose(type, data) {
    if (type !== "score") return; // a reset needs nothing here: the feed is only "what's new"
    received += 1;
    sinceTick += 1;
    feedBuffer.push(data);
    // Only the newest FEED_ROWS can ever be shown: drop the rest early (hidden tab, pause).
    if (feedBuffer.length > FEED_ROWS * 2) feedBuffer = feedBuffer.slice(-FEED_ROWS);
    if (feedPaused) pausedBacklog += 1;
    else scheduleFeed();
  }

  function scheduleFeed() {
    if (feedTimer) return; // a render is already booked
    const interval = currentRate > BUSY_RATE ? BUSY_FEED_INTERVAL_MS : 0;
    const wait = interval - (performance.now() - lastFeedRender);
    if (wait <= 0) {
      requestRender(renderFeed);
      return;
    }
    feedTimer = setTimeout(() => {
      feedTimer = null;
      requestRender(renderFeed);
    }, wait);
  }

  function makeRow() {
    const row = document.createElement("div");
    row.className = "row";
    row.setAttribute("role", "row");
    row.setAttribute("data-testid", "feed-row");
    for (const cls of ["t", "e", "s", "d", "l"]) {
      const cell = document.createElement("span");
      cell.className = cls;
      cell.setAttribute("role", "cell");
      row.append(cell);
    }
    const pill = document.createElement("span");
    pill.className = "pill";
    row.lastChild.append(pill);
    return row;
  }

  function fillRow(row, d) {
    const level = d.level || levelFor(d.score);
    row.dataset.entity = d.entity;
    row.dataset.level = level;
    row.dataset.version = String(d.version ?? "");
    row.className = `row fresh lvl-${level}`;
    if (d.entity === detailState.entity) row.classList.add("selected");
    const [t, e, s, dl, l] = row.children;
    t.textContent = clock(parseTime(d.at));
    e.replaceChildren(entityNode(d.entity));
    s.textContent = fmtScore(d.score);
    const delta = fmtDelta(d.delta);
    dl.textContent = delta.text;
    dl.className = `d ${delta.cls}`;
    const pill = l.firstChild;
    pill.textContent = LEVEL_NAMES[level] || level;
    pill.className = `pill lvl-${level}`;
  }

  function renderFeed() {
    if (feedPaused || feedBuffer.length === 0) return;
    lastFeedRender = performance.now();
    const items = feedBuffer.length > FEED_ROWS ? feedBuffer.slice(-FEED_ROWS) : feedBuffer;
    feedBuffer = [];
    const fragment = document.createDocumentFragment();
    for (let i = items.length - 1; i >= 0; i -= 1) {
      const row = rowPool.pop() || makeRow();
      fillRow(row, items[i]);
      levelCounts[row.dataset.level] = (levelCounts[row.dataset.level] || 0) + 1;
      fragment.append(row);
    }
    feedBody.prepend(fragment);
    while (feedBody.childElementCount > FEED_ROWS) {
      const old = feedBody.lastElementChild;
      levelCounts[old.dataset.level] -= 1;
      old.remove();
      if (rowPool.length < FEED_ROWS) rowPool.push(old);
    }
    feedEmpty.hidden = true;
    renderMix();
  }

  function renderMix() {
    const total = feedBody.childElementCount || 1;
    for (const seg of mixSegs) {
      seg.style.width = `${(100 * (levelCounts[seg.dataset.level] || 0)) / total}%`;
    }
  }

  function renderPauseNote() {
    if (feedPaused) feedNote.textContent = `Paused while pointed at · ${fmtInt.format(pausedBacklog)} new`;
  }

  // Rows move under the pointer at high rates: hold the feed still while it is hovered.
  feedWrap.addEventListener("mouseenter", () => {
    feedPaused = true;
    pausedBacklog = 0;
    renderPauseNote();
  });
  feedWrap.addEventListener("mouseleave", () => {
    feedPaused = false;
    feedNote.textContent = "";
    scheduleFeed();
  });
  feedBody.addEventListener("click", (ev) => {
    const row = ev.target.closest(".row");
    if (row && row.dataset.entity) openEntity(row.dataset.entity);
  });

  function markSelectedRows() {
    for (const row of feedBody.children) {
      row.classList.toggle("selected", row.dataset.entity === detailState.entity);
    }
  }

  // ---------------------------------------------------------------- entity detail

  const detailState = {
    entity: null,
    seq: 0, // bumps on every open: answers for an older entity are dropped
    stream: null,
    loading: false,
    pending: [], // live events that arrived while the history was loading
    points: [], // [{t, score, version}] oldest first
    lastVersion: 0,
    refreshTimer: null,
    lastRefresh: 0,
    retryTimer: null,
  };

  const el = {
    empty: $("detail-empty"),
    panel: $("detail"),
    kind: $("detail-kind"),
    entity: $("detail-entity"),
    parent: $("detail-parent"),
    dot: $("detail-stream"),
    message: $("detail-message"),
    score: $("entity-score"),
    level: $("entity-level"),
    confidence: $("entity-confidence"),
    confidenceBar: $("entity-confidence-bar"),
    version: $("entity-version"),
    model: $("entity-model"),
    updated: $("entity-updated"),
    chart: $("history-chart"),
    factors: $("factors"),
    changes: $("changes"),
    input: $("search-input"),
  };
  let updatedAt = NaN;

  function showMessage(text, kind) {
    el.message.hidden = !text;
    el.message.textContent = text || "";
    el.message.className = `message ${kind || ""}`;
  }

  async function fetchJson(url, options) {
    const answer = await fetch(url, { headers: { Accept: "application/json" }, ...options });
    let body = null;
    try {
      body = await answer.json();
    } catch {
      body = null;
    }
    return { status: answer.status, body, retryAfter: answer.headers.get("Retry-After") };
  }

  function openEntity(raw) {
    const id = String(raw || "").trim();
    if (!id) return;
    el.input.value = id;
    if (decodeURIComponent(location.hash.slice(1)) !== `entity=${id}`) {
      history.replaceState(null, "", `#entity=${encodeURIComponent(id)}`);
    }
    const st = detailState;
    if (st.stream) st.stream.close();
    clearTimeout(st.refreshTimer);
    clearTimeout(st.retryTimer);
    Object.assign(st, {
      entity: id,
      seq: st.seq + 1,
      stream: null,
      pending: [],
      points: [],
      lastVersion: 0,
      lastRefresh: 0,
    });
    el.empty.hidden = true;
    el.panel.hidden = false;
    const d = describe(id);
    el.kind.className = `kind kind-${d.kind}`;
    el.kind.textContent = KIND_LABEL[d.kind] || d.kind;
    el.entity.textContent = id;
    el.entity.title = id;
    el.parent.hidden = !d.parent;
    el.parent.textContent = d.parent ? "open collection" : "";
    el.parent.onclick = d.parent ? () => openEntity(d.parent) : null;
    showScore(null);
    el.factors.replaceChildren();
    el.changes.replaceChildren();
    changesBuffer = [];
    showMessage("Loading…", "info");
    markSelectedRows();
    requestRender(drawChart);
    load(st.seq, true);
  }

  // Fetch the score document and the history; on the first load also open the stream.
  async function load(seq, withStream) {
    const st = detailState;
    const id = st.entity;
    st.loading = true;
    if (withStream) {
      // Open the stream before reading history, so nothing falls between the two; events
      // wait in `pending` and are merged by version once the history is in.
      st.stream = new LiveStream(`/api/v1/stream?entity=${encodeURIComponent(id)}`, {
        onEvent: (type, data) => seq === st.seq && onEntityEvent(type, data),
        onState: (state) => {
          el.dot.dataset.state = state;
          el.dot.title = `Entity stream: ${state}`;
        },
        onRestart: () => seq === st.seq && reload(),
      });
    }
    let score;
    let hist;
    try {
      [score, hist] = await Promise.all([
        fetchJson(`/api/v1/scores/${entityPath(id)}`),
        fetchJson(`/api/v1/scores/${entityPath(id)}/history?limit=${HISTORY_LIMIT}`),
      ]);
    } catch (err) {
      if (seq !== st.seq) return;
      st.loading = false;
      showMessage(`Could not reach the server (${err.message}); retrying…`);
      st.retryTimer = setTimeout(() => seq === st.seq && load(seq, false), 3000);
      return;
    }
    if (seq !== st.seq) return;
    st.loading = false;
    st.lastRefresh = performance.now();
    if (score.status === 400) {
      if (st.stream) st.stream.close();
      el.dot.dataset.state = "off";
      const why = score.body && score.body.detail ? `: ${score.body.detail}` : "";
      showMessage(`Not a valid entity id${why}. Ids look like nft:eth:0x…:1234.`);
      return;
    }
    if (score.status === 503) {
      // Partitions are moving between workers: the answer comes back shortly.
      const wait = Math.min(10, Number(score.retryAfter) || 2);
      showMessage(`Workers are rebalancing; retrying in ${wait}s…`, "info");
      st.retryTimer = setTimeout(() => seq === st.seq && load(seq, false), wait * 1000);
      return;
    }
    if (score.status === 404) {
      showMessage("No score for this entity yet. Waiting for its first event…", "info");
    } else if (score.status !== 200 || !score.body) {
      showMessage(`The server answered ${score.status}.`);
    } else {
      showMessage("");
      showScore(score.body);
      showFactors(score.body.factors || {}, []);
    }
    if (hist.status === 200 && Array.isArray(hist.body)) setHistory(hist.body);
    flushPending();
  }

  function reload() {
    // After a reset or a fresh connection: whatever we show may be stale.
    const st = detailState;
    st.points = [];
    st.lastVersion = 0;
    el.changes.replaceChildren();
    changesBuffer = [];
    load(st.seq, false);
  }

  function scheduleRefresh() {
    // Live score frames carry no factor details: refetch the document, at most once a
    // second however busy the entity is.
    const st = detailState;
    if (st.refreshTimer || st.loading) return;
    const wait = Math.max(0, DETAIL_REFRESH_MS - (performance.now() - st.lastRefresh));
    const seq = st.seq;
    st.refreshTimer = setTimeout(async () => {
      st.refreshTimer = null;
      if (seq !== st.seq) return;
      st.lastRefresh = performance.now();
      try {
        const answer = await fetchJson(`/api/v1/scores/${entityPath(st.entity)}`);
        if (seq !== st.seq || answer.status !== 200 || !answer.body) return;
        if ((answer.body.version || 0) < st.lastVersion) return; // an older read: wait
        showMessage("");
        showScore(answer.body);
        showFactors(answer.body.factors || {}, lastChanged);
      } catch {
        // transient: the next live event schedules another refresh
      }
    }, wait);
  }

  let lastChanged = [];

  function onEntityEvent(type, data) {
    const st = detailState;
    if (type === "reset") {
      reload();
      return;
    }
    if (type !== "score") return;
    if (st.loading) {
      st.pending.push(data);
      return;
    }
    applyLive(data);
  }

  function flushPending() {
    const st = detailState;
    const pending = st.pending;
    st.pending = [];
    for (const d of pending) applyLive(d);
  }

  function applyLive(d) {
    const st = detailState;
    if (d.entity !== st.entity) {
      // A collection's stream also carries its NFTs' changes: list them, don't chart them.
      addChange(d, true);
      return;
    }
    if (typeof d.version === "number" && d.version <= st.lastVersion) return;
    st.lastVersion = d.version || st.lastVersion;
    lastChanged = d.factors_changed || [];
    showMessage("");
    showScore({
      score: d.score,
      level: d.level,
      version: d.version,
      model_version: d.model_version,
      updated_at: d.at,
    });
    bump();
    addChange(d, false);
    scheduleRefresh();
  }

  function bump() {
    el.score.classList.remove("bump");
    // Reading layout restarts the CSS animation; once per live event on one element.
    void el.score.offsetWidth;
    el.score.classList.add("bump");
  }

  function showScore(doc) {
    if (!doc) {
      el.score.textContent = "–";
      setLevelClass(el.score, null);
      el.level.textContent = "–";
      el.level.className = "pill";
      el.confidence.textContent = "–";
      el.confidenceBar.style.width = "0";
      el.version.textContent = "–";
      el.model.textContent = "–";
      el.updated.textContent = "–";
      updatedAt = NaN;
      return;
    }
    const level = doc.level || levelFor(doc.score);
    el.score.textContent = fmtScore(doc.score);
    setLevelClass(el.score, level);
    el.level.textContent = LEVEL_NAMES[level] || level;
    el.level.className = `pill lvl-${level}`;
    if (typeof doc.confidence === "number") {
      el.confidence.textContent = `${Math.round(doc.confidence * 100)}%`;
      el.confidenceBar.style.width = `${Math.round(doc.confidence * 100)}%`;
    }
    if (doc.version != null) el.version.textContent = String(doc.version);
    if (doc.model_version != null) el.model.textContent = `v${doc.model_version}`;
    if (doc.updated_at) {
      updatedAt = parseTime(doc.updated_at);
      el.updated.textContent = ago(updatedAt);
      el.updated.title = doc.updated_at;
    }
    if (typeof doc.version === "number" && doc.version > detailState.lastVersion) {
      detailState.lastVersion = doc.version;
    }
    // The document's score is the newest point too (history may lag the table a moment).
    if (typeof doc.version === "number" && typeof doc.score === "number") {
      addPoint(parseTime(doc.updated_at), doc.score, doc.version);
    }
  }

  function showFactors(factors, changed) {
    const ids = Object.keys(factors).sort(
      (a, b) => (factors[b].weight || 0) - (factors[a].weight || 0) || a.localeCompare(b),
    );
    const rows = ids.map((id) => {
      const f = factors[id] || {};
      const value = typeof f.value === "number" ? f.value : null;
      const row = document.createElement("div");
      row.className = `factor lvl-${value == null ? "none" : levelFor(value)}`;
      if (changed.includes(id)) row.classList.add("changed");
      row.setAttribute("data-testid", "factor-row");
      row.dataset.factor = id;
      const name = document.createElement("span");
      name.className = "factor-name";
      name.textContent = humanise(id);
      const bar = document.createElement("span");
      bar.className = "factor-bar";
      const fill = document.createElement("span");
      fill.style.width = `${value == null ? 0 : Math.max(0, Math.min(100, value))}%`;
      bar.append(fill);
      const val = document.createElement("span");
      val.className = "factor-value";
      val.textContent = value == null ? "–" : value.toFixed(1);
      const weight = document.createElement("span");
      weight.className = "factor-weight";
      weight.title = "weight";
      weight.textContent = typeof f.weight === "number" ? `${Math.round(f.weight * 100)}%` : "";
      const evidence = document.createElement("ul");
      evidence.className = "evidence";
      const items = Array.isArray(f.evidence) ? f.evidence : [];
      if (items.length === 0) {
        evidence.classList.add("none");
        const li = document.createElement("li");
        li.textContent = "no evidence yet";
        evidence.append(li);
      }
      for (const text of items) {
        const li = document.createElement("li");
        li.setAttribute("data-testid", "evidence");
        li.textContent = String(text);
        evidence.append(li);
      }
      row.append(name, bar, val, weight, evidence);
      return row;
    });
    el.factors.replaceChildren(...rows);
  }

  function setHistory(rows) {
    const st = detailState;
    // Newest first from the server; the chart wants oldest first.
    const points = [];
    for (let i = rows.length - 1; i >= 0; i -= 1) {
      const r = rows[i];
      points.push({ t: parseTime(r.at), score: r.score, version: r.version });
    }
    const byVersion = new Map();
    for (const p of [...points, ...st.points]) byVersion.set(p.version, p);
    st.points = [...byVersion.values()].sort((a, b) => a.version - b.version).slice(-CHART_POINTS);
    const newest = rows.length ? rows[0].version : 0;
    if (newest > st.lastVersion) st.lastVersion = newest;
    const items = [];
    for (let i = 0; i < rows.length && i < CHANGES_ROWS; i += 1) {
      const r = rows[i];
      const before = rows[i + 1];
      items.push(
        changeItem({
          entity: st.entity,
          at: r.at,
          score: r.score,
          delta: before ? r.score - before.score : null,
          factors_changed: r.factors_changed,
          version: r.version,
        }),
      );
    }
    el.changes.replaceChildren(...items);
    requestRender(drawChart);
  }

  function addPoint(t, score, version) {
    const st = detailState;
    const last = st.points[st.points.length - 1];
    if (last && version <= last.version) return;
    st.points.push({ t, score, version });
    if (st.points.length > CHART_POINTS) st.points.splice(0, st.points.length - CHART_POINTS);
    requestRender(drawChart);
  }

  function changeItem(d, other) {
    const li = document.createElement("li");
    const level = d.level || levelFor(d.score);
    li.className = `lvl-${level}${other ? " other" : ""}`;
    const t = document.createElement("span");
    t.className = "t";
    t.textContent = clock(parseTime(d.at));
    const what = document.createElement("span");
    what.className = "what";
    if (other) {
      what.append(entityNode(d.entity));
      what.onclick = () => openEntity(d.entity);
    } else {
      const changed = (d.factors_changed || []).map(humanise).join(", ");
      what.textContent = `v${d.version}${changed ? ` · ${changed}` : ""}`;
      what.title = d.cause_event_id ? `cause: ${d.cause_event_id}` : "";
    }
    const s = document.createElement("span");
    s.className = "s";
    s.textContent = fmtScore(d.score);
    const delta = fmtDelta(d.delta);
    const dl = document.createElement("span");
    dl.className = `d ${delta.cls}`;
    dl.textContent = delta.text;
    li.append(t, what, s, dl);
    return li;
  }

  // A busy collection's stream carries many NFT changes a second: list them once a frame.
  let changesBuffer = [];

  function addChange(d, other) {
    changesBuffer.push([d, other]);
    if (changesBuffer.length > CHANGES_ROWS) changesBuffer = changesBuffer.slice(-CHANGES_ROWS);
    requestRender(renderChanges);
  }

  function renderChanges() {
    const items = changesBuffer;
    changesBuffer = [];
    const fragment = document.createDocumentFragment();
    for (let i = items.length - 1; i >= 0; i -= 1) fragment.append(changeItem(...items[i]));
    el.changes.prepend(fragment);
    while (el.changes.children.length > CHANGES_ROWS) el.changes.lastElementChild.remove();
  }

  function drawChart() {
    if (el.panel.hidden) return;
    const fitted = fitCanvas(el.chart);
    if (!fitted) return;
    const { ctx, w, h } = fitted;
    const pad = { l: 34, r: 14, t: 12, b: 22 };
    const pw = w - pad.l - pad.r;
    const ph = h - pad.t - pad.b;
    const y = (v) => pad.t + ph - (Math.max(0, Math.min(100, v)) / 100) * ph;
    ctx.clearRect(0, 0, w, h);

    // Level bands behind the line, so a reader sees the thresholds at a glance.
    for (const [level, lo, hi] of LEVEL_BANDS) {
      ctx.fillStyle = colour(level);
      ctx.globalAlpha = 0.07;
      ctx.fillRect(pad.l, y(hi), pw, y(lo) - y(hi));
    }
    ctx.globalAlpha = 1;
    ctx.font = "11px ui-monospace, monospace";
    ctx.fillStyle = colour("muted");
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.strokeStyle = "rgba(135,145,171,0.18)";
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 4]);
    for (const v of [0, 40, 60, 80, 100]) {
      ctx.fillText(String(v), pad.l - 8, y(v));
      ctx.beginPath();
      ctx.moveTo(pad.l, Math.round(y(v)) + 0.5);
      ctx.lineTo(pad.l + pw, Math.round(y(v)) + 0.5);
      ctx.stroke();
    }
    ctx.setLineDash([]);

    const pts = detailState.points.filter((p) => Number.isFinite(p.score));
    if (pts.length === 0) {
      ctx.textAlign = "center";
      ctx.fillText("No history yet", pad.l + pw / 2, pad.t + ph / 2);
      return;
    }
    // Time axis; points without a usable time fall back to evenly spaced.
    const timed = pts.every((p) => Number.isFinite(p.t));
    const t0 = timed ? pts[0].t : 0;
    const tLast = timed ? pts[pts.length - 1].t : pts.length - 1;
    const t1 = timed ? Math.max(tLast, Date.now()) : Math.max(1, tLast);
    const span = Math.max(1, t1 - t0);
    const x = (p, i) => pad.l + (((timed ? p.t : i) - t0) / span) * pw;

    // A score holds until the next version: draw steps, extended to now.
    const line = new Path2D();
    pts.forEach((p, i) => {
      const px = x(p, i);
      if (i === 0) line.moveTo(px, y(p.score));
      else {
        line.lineTo(px, y(pts[i - 1].score));
        line.lineTo(px, y(p.score));
      }
    });
    const last = pts[pts.length - 1];
    const endX = pad.l + pw;
    line.lineTo(endX, y(last.score));
    const lineColour = colour(levelFor(last.score));

    const area = new Path2D(line);
    area.lineTo(endX, pad.t + ph);
    area.lineTo(x(pts[0], 0), pad.t + ph);
    area.closePath();
    const gradient = ctx.createLinearGradient(0, pad.t, 0, pad.t + ph);
    gradient.addColorStop(0, `${lineColour}55`);
    gradient.addColorStop(1, `${lineColour}00`);
    ctx.fillStyle = gradient;
    ctx.fill(area);
    ctx.strokeStyle = lineColour;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.stroke(line);

    const lx = x(last, pts.length - 1);
    ctx.beginPath();
    ctx.arc(lx, y(last.score), 3.5, 0, Math.PI * 2);
    ctx.fillStyle = lineColour;
    ctx.fill();

    ctx.fillStyle = colour("muted");
    ctx.textBaseline = "alphabetic";
    if (timed) {
      ctx.textAlign = "left";
      ctx.fillText(clock(t0), pad.l, h - 6);
      ctx.textAlign = "right";
      ctx.fillText(clock(t1), pad.l + pw, h - 6);
    }
    ctx.textAlign = "center";
    ctx.fillText(`${pts.length} version${pts.length === 1 ? "" : "s"}`, pad.l + pw / 2, h - 6);
  }

  if (window.ResizeObserver) new ResizeObserver(() => requestRender(drawChart)).observe(el.chart);

  window.addEventListener("hashchange", () => {
    const id = new URLSearchParams(location.hash.slice(1)).get("entity");
    if (id && id !== detailState.entity) openEntity(id);
  });

  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    openEntity(el.input.value);
  });

  // ---------------------------------------------------------------- notifications

  const notes = {
    token: null,
    stream: null,
    items: new Map(), // id -> notification
    seq: 0,
  };
  const nel = {
    form: $("token-form"),
    input: $("token-input"),
    signedIn: $("signed-in"),
    user: $("user-name"),
    signOut: $("sign-out"),
    message: $("notes-message"),
    list: $("notes"),
    empty: $("notes-empty"),
    unread: $("notes-unread"),
    dot: $("notes-stream"),
  };

  function notesMessage(text) {
    nel.message.hidden = !text;
    nel.message.textContent = text || "";
  }

  function tokenSubject(token) {
    // Only to greet the user: the server verifies the token, we just read its claims.
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
      return String(claims.name || claims.sub || "user");
    } catch {
      return "user";
    }
  }

  function signIn(token) {
    signOut(false);
    notes.token = token;
    try {
      localStorage.setItem(TOKEN_KEY, token);
    } catch {
      // storage may be disabled; the session still works
    }
    nel.form.hidden = true;
    nel.signedIn.hidden = false;
    nel.user.textContent = tokenSubject(token);
    const seq = ++notes.seq;
    notes.stream = new LiveStream(
      `/api/v1/stream?user=me&access_token=${encodeURIComponent(token)}`,
      {
        onEvent: (type, data) => {
          if (seq !== notes.seq) return;
          if (type === "notification") addNote(data);
          else if (type === "reset") loadNotes(seq);
        },
        onState: (state) => {
          nel.dot.dataset.state = state;
          nel.dot.title = `Notification stream: ${state}`;
          if (state === "offline" && seq === notes.seq) {
            notesMessage("Notification stream unavailable (is the token valid?); retrying…");
          } else if (state === "live") notesMessage("");
        },
        onRestart: () => seq === notes.seq && loadNotes(seq),
      },
    );
    renderNotes();
    loadNotes(seq);
  }

  function signOut(forget) {
    notes.seq += 1;
    if (notes.stream) notes.stream.close();
    notes.stream = null;
    notes.token = null;
    notes.items.clear();
    if (forget) {
      try {
        localStorage.removeItem(TOKEN_KEY);
      } catch {
        // nothing stored
      }
    }
    nel.form.hidden = false;
    nel.signedIn.hidden = true;
    nel.dot.dataset.state = "off";
    notesMessage("");
    renderNotes();
  }

  async function loadNotes(seq) {
    // The list endpoint may not exist on this server yet: then only pushed ones show.
    try {
      const answer = await fetchJson("/api/v1/notifications", {
        headers: { Accept: "application/json", Authorization: `Bearer ${notes.token}` },
      });
      if (seq !== notes.seq) return;
      if (answer.status === 401 || answer.status === 403) {
        notesMessage("The server rejected this token.");
        return;
      }
      if (answer.status === 200 && Array.isArray(answer.body)) {
        for (const n of answer.body) notes.items.set(n.id, n);
        renderNotes();
      }
    } catch {
      // offline: the stream's own state says so
    }
  }

  function addNote(n) {
    if (!n || n.id == null) return;
    notes.items.set(n.id, n);
    requestRender(renderNotes);
  }

  function renderNotes() {
    const sorted = [...notes.items.values()].sort(
      (a, b) => (parseTime(b.created_at) || 0) - (parseTime(a.created_at) || 0),
    );
    for (const n of sorted.slice(NOTES_MAX)) notes.items.delete(n.id);
    const shown = sorted.slice(0, NOTES_MAX);
    const items = shown.map((n) => {
      const li = document.createElement("li");
      li.className = `note sev-${n.severity || "low"}${n.read_at ? "" : " unread"}`;
      li.setAttribute("data-testid", "notification");
      const title = document.createElement("div");
      title.className = "note-title";
      title.textContent = n.title || humanise(String(n.kind || "notification"));
      const body = document.createElement("div");
      body.className = "note-body";
      body.textContent = n.body || "";
      const meta = document.createElement("div");
      meta.className = "note-meta";
      const when = document.createElement("span");
      when.textContent = `${clock(parseTime(n.created_at))} · ${n.severity || ""}`;
      meta.append(n.entity ? entityNode(n.entity) : document.createElement("span"), when);
      li.append(title, body, meta);
      li.onclick = () => {
        if (n.entity) openEntity(n.entity);
        markRead(n);
      };
      return li;
    });
    nel.list.replaceChildren(...items);
    nel.empty.hidden = items.length > 0;
    nel.empty.textContent = notes.token
      ? "No notifications yet. They arrive here live."
      : "Sign in to see the notifications of your subscriptions.";
    const unread = shown.filter((n) => !n.read_at).length;
    nel.unread.hidden = unread === 0;
    nel.unread.textContent = String(unread);
  }

  async function markRead(n) {
    if (n.read_at || !notes.token) return;
    n.read_at = new Date().toISOString(); // optimistic; the server is the record
    renderNotes();
    try {
      await fetch(`/api/v1/notifications/${encodeURIComponent(n.id)}/read`, {
        method: "POST",
        headers: { Authorization: `Bearer ${notes.token}` },
      });
    } catch {
      // best effort
    }
  }

  nel.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = nel.input.value.trim();
    nel.input.value = "";
    if (token) signIn(token);
  });
  nel.signOut.addEventListener("click", () => signOut(true));

  // ---------------------------------------------------------------- start

  function start() {
    const params = new URLSearchParams(location.search);
    const fromUrl = params.get("token");
    if (fromUrl) {
      // Keep the token out of the address bar, the history and any bookmark.
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
    }
    let stored = null;
    try {
      stored = localStorage.getItem(TOKEN_KEY);
    } catch {
      stored = null;
    }
    const token = fromUrl || stored;
    if (token) signIn(token);
    else renderNotes();

    new LiveStream("/api/v1/stream?all=1", { onEvent: onFirehose, onState: showStatus });

    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get("entity")) openEntity(hash.get("entity"));

    setInterval(() => {
      tickRate();
      if (Number.isFinite(updatedAt)) el.updated.textContent = ago(updatedAt);
      // The chart's last step runs to "now": let it move even when nothing changes.
      if (detailState.points.length) requestRender(drawChart);
    }, 1000);
  }

  start();
})();
