// The platform's web frontend: log in, a watchlist with live prices, the API's
// health. Plain ES module, no framework, no build step; every request goes to
// the page's own origin (nginx sends /api/ to the serving backend colour).
//
// Prices: GET /api/stocks/prices for the first paint, then the price stream
// (WebSocket /api/ws/prices, docs/CONTRACT.md "Price stream"): a snapshot,
// then one message per new quote. A close with 1012 (a deploy handed the
// stream off, or the colour stopped) reconnects at once and lands on the
// colour serving then; other closes reconnect with a growing delay.

const SYMBOL_RE = /^[A-Z][A-Z0-9.\-]{0,9}$/;
const MAX_SYMBOLS = 10; // the API's limit per request and per stream
const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA"];
const HEALTH_EVERY_MS = 15000;
const SESSION_KEY = "investment.session";
const WATCHLIST_KEY = "investment.watchlist";

const $ = (id) => document.getElementById(id);

// --- session ---------------------------------------------------------------------------

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (s && s.token && Date.parse(s.expires_at) > Date.now()) return s;
  } catch { /* a damaged entry is no session */ }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

let session = loadSession();
let expiryTimer = 0;

async function login(username, password) {
  const r = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await r.json().catch(() => ({}));
  if (r.ok) return body;
  if (r.status === 401) throw new Error("Invalid username or password.");
  const retry = r.headers.get("Retry-After");
  throw new Error(`${body.detail || `Login failed (HTTP ${r.status})`}${retry ? ` Retry in ${retry} s.` : ""}`);
}

function startSession(s) {
  session = s;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  showApp();
}

function endSession(message = "") {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  clearTimeout(expiryTimer);
  stream.stop();
  $("app-view").hidden = true;
  $("user").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
}

// --- watchlist -------------------------------------------------------------------------

function loadWatchlist() {
  try {
    const list = JSON.parse(localStorage.getItem(WATCHLIST_KEY) || "null");
    if (Array.isArray(list) && list.length && list.every((s) => SYMBOL_RE.test(s))) {
      return list.slice(0, MAX_SYMBOLS);
    }
  } catch { /* fall back to the default */ }
  return [...DEFAULT_WATCHLIST];
}

let watchlist = loadWatchlist();

function saveWatchlist() {
  localStorage.setItem(WATCHLIST_KEY, JSON.stringify(watchlist));
}

function fmt(n, digits = 2) {
  return typeof n === "number" ? n.toFixed(digits) : "–";
}

function rowOf(symbol) {
  return $("watchlist").querySelector(`tbody tr[data-symbol="${symbol}"]`);
}

function ensureRow(symbol) {
  let tr = rowOf(symbol);
  if (tr) return tr;
  tr = document.createElement("tr");
  tr.dataset.symbol = symbol;
  tr.dataset.updates = "0";
  for (const cls of ["symbol", "price num", "change num", "as-of", "source"]) {
    const td = document.createElement("td");
    td.className = cls;
    tr.append(td);
  }
  tr.cells[0].textContent = symbol;
  tr.cells[1].textContent = "…";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.title = `Remove ${symbol}`;
  remove.textContent = "×";
  remove.addEventListener("click", () => removeSymbol(symbol));
  const td = document.createElement("td");
  td.append(remove);
  tr.append(td);
  $("watchlist").tBodies[0].append(tr);
  return tr;
}

/** Paint one quote (the shape of one item of /api/stocks/prices's `prices`). */
function paintQuote(quote, how) {
  if (!watchlist.includes(quote.symbol)) return;
  const tr = ensureRow(quote.symbol);
  tr.dataset.price = String(quote.price);
  tr.dataset.asOf = quote.as_of || "";
  tr.dataset.source = quote.source || "";
  tr.dataset.via = how; // rest | snapshot | stream
  if (quote.published_at) tr.dataset.publishedAt = quote.published_at;
  tr.cells[1].textContent = `${fmt(quote.price)} ${quote.currency || ""}`.trim();
  const change = tr.cells[2];
  change.textContent = quote.change_percent == null
    ? fmt(quote.change)
    : `${quote.change >= 0 ? "+" : ""}${fmt(quote.change)} (${fmt(quote.change_percent)}%)`;
  change.className = `change num ${quote.change > 0 ? "up" : quote.change < 0 ? "down" : ""}`;
  tr.cells[3].textContent = quote.as_of ? new Date(quote.as_of).toLocaleTimeString() : "–";
  tr.cells[4].textContent = `${quote.provider || ""}${quote.stale ? " (stale)" : ""}`;
  if (how === "stream") {
    tr.dataset.updates = String(Number(tr.dataset.updates) + 1);
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("flash");
  }
}

async function fetchPrices(symbols) {
  const r = await fetch(`/api/stocks/prices?symbols=${symbols.join(",")}`);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const retry = r.headers.get("Retry-After");
    const err = new Error(`${body.detail || `HTTP ${r.status}`}${retry ? ` (retry in ${retry} s)` : ""}`);
    err.status = r.status;
    throw err;
  }
  return body.prices;
}

let firstPricesPainted = false;

async function firstPaint() {
  $("watchlist").tBodies[0].replaceChildren();
  watchlist.forEach(ensureRow);
  $("watchlist-error").textContent = "";
  try {
    for (const quote of await fetchPrices(watchlist)) paintQuote(quote, "rest");
    if (!firstPricesPainted) {
      firstPricesPainted = true;
      // The frame that shows the first prices (its render starts after this).
      requestAnimationFrame(() => performance.mark("prices-rendered"));
    }
  } catch (err) {
    $("watchlist-error").textContent = `Prices: ${err.message}`;
  }
}

async function addSymbol(raw) {
  const symbol = raw.trim().toUpperCase();
  const error = $("watchlist-error");
  error.textContent = "";
  if (!SYMBOL_RE.test(symbol)) { error.textContent = `${raw}: not a ticker symbol.`; return; }
  if (watchlist.includes(symbol)) { error.textContent = `${symbol} is already listed.`; return; }
  if (watchlist.length >= MAX_SYMBOLS) { error.textContent = `At most ${MAX_SYMBOLS} symbols.`; return; }
  let quotes;
  try {
    quotes = await fetchPrices([symbol]);
  } catch (err) {
    error.textContent = err.status === 404 ? `${symbol}: no provider knows this symbol.` : `${symbol}: ${err.message}`;
    return;
  }
  watchlist.push(symbol);
  saveWatchlist();
  quotes.forEach((q) => paintQuote(q, "rest"));
  stream.start(watchlist);
}

function removeSymbol(symbol) {
  watchlist = watchlist.filter((s) => s !== symbol);
  saveWatchlist();
  rowOf(symbol)?.remove();
  if (watchlist.length) stream.start(watchlist); else stream.stop();
}

// --- price stream ----------------------------------------------------------------------

class PriceStream {
  constructor(statusEl) {
    this.status = statusEl;
    this.ws = null;
    this.symbols = [];
    this.retryMs = 0;
    this.timer = 0;
    this.updates = 0;
  }

  setState(state, text) {
    this.status.dataset.state = state;
    this.status.textContent = `stream: ${text}`;
  }

  start(symbols) {
    this.stop();
    this.symbols = [...symbols];
    this.open();
  }

  stop() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    this.setState("closed", "closed");
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/ws/prices?symbols=${this.symbols.join(",")}`);
    this.ws = ws;
    ws.onmessage = (event) => this.onMessage(JSON.parse(event.data));
    ws.onclose = (event) => this.onClose(event);
  }

  onMessage(msg) {
    if (msg.type === "snapshot") {
      this.retryMs = 0;
      msg.quotes.forEach((q) => paintQuote(q, "snapshot"));
      this.status.dataset.colour = msg.colour;
      this.setState("live", `live (${msg.colour} ${msg.version})`);
    } else if (msg.type === "price") {
      this.updates += 1;
      this.status.dataset.updates = String(this.updates);
      paintQuote(msg.quote, "stream");
    }
  }

  onClose(event) {
    this.ws = null;
    // 1012: the server restarts or hands its streams off: come back at once
    // (nginx sends us to the colour serving now). Else back off, up to 10 s.
    const delay = event.code === 1012 ? 100 : Math.min(10000, (this.retryMs = this.retryMs ? this.retryMs * 2 : 500));
    this.status.dataset.lastClose = String(event.code);
    this.setState("reconnecting", `reconnecting (closed ${event.code})`);
    this.timer = setTimeout(() => this.open(), delay);
  }
}

const stream = new PriceStream($("stream-status"));

// --- health and versions ---------------------------------------------------------------

async function pollHealth() {
  const el = $("health");
  try {
    const r = await fetch("/api/health", { cache: "no-store" });
    const h = await r.json();
    el.dataset.status = h.status || (r.ok ? "healthy" : "unhealthy");
    el.textContent = `API ${el.dataset.status} · ${h.version || "?"} · ${h.colour || "?"}`;
  } catch {
    el.dataset.status = "unreachable";
    el.textContent = "API unreachable";
  }
}

async function showFrontendVersion() {
  try {
    const r = await fetch("/version.json", { cache: "no-store" });
    $("frontend-version").textContent = (await r.json()).version;
  } catch { /* keeps "?" */ }
}

// --- views -----------------------------------------------------------------------------

function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("user").hidden = false;
  $("username").textContent = session.username;
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(
    () => endSession("Your session expired; log in again."),
    Math.max(0, Date.parse(session.expires_at) - Date.now()),
  );
  firstPaint().then(() => stream.start(watchlist));
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = event.submitter;
  $("login-error").textContent = "";
  if (button) button.disabled = true;
  try {
    const body = await login($("login-username").value, $("login-password").value);
    $("login-password").value = "";
    startSession({ token: body.access_token, username: body.username, role: body.role, expires_at: body.expires_at });
  } catch (err) {
    $("login-error").textContent = err.message;
  } finally {
    if (button) button.disabled = false;
  }
});

$("add-form").addEventListener("submit", (event) => {
  event.preventDefault();
  addSymbol($("add-symbol").value).then(() => { $("add-symbol").value = ""; });
});

$("logout").addEventListener("click", () => endSession());

pollHealth();
setInterval(pollHealth, HEALTH_EVERY_MS);
showFrontendVersion();
if (session) showApp();
