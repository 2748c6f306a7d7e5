// The playground: one WebSocket to /v1, requests built from the channel registry
// the server describes, every frame logged, and a live chart of prices and candles.

const LOG_CAP = 200; // frames kept in the log
const POINTS_CAP = 600; // points kept per charted subscription
const KEY_STORE = "cmcstream.playground.key";
// PROTOCOL.md §12: what each close code means.
const CLOSE_MEANINGS = {
  1000: "Normal close", 1001: "Write idle timeout", 1006: "Connection lost",
  1011: "Send failure", 1012: "Frame sink cancellation", 1013: "Close topic signal",
  1014: "Unknown close reason", 4004: "Connection limit", 4100: "API key invalid",
  4101: "API key disabled", 4102: "Plan not support WS",
};
const CHARTED = {
  "market@crypto_latest_price": {
    label: (p) => `price of #${p.crypto_ids}${assetName(p.crypto_ids)}`,
    series: [{ label: "price (USD)", stroke: "#3861fb", width: 2 }],
    point: (push) => [push.ts / 1000, push.data.p],
  },
  "onchain@kline": {
    label: (p) => `${p.interval} candles of ${tokenName(p.platform_id, p.address)}`,
    series: [
      { label: "close (USD)", stroke: "#3fb950", width: 2 },
      { label: "high", stroke: "#8b949e", width: 1, dash: [4, 4] },
      { label: "low", stroke: "#8b949e", width: 1, dash: [4, 4] },
    ],
    point: (push) => [push.data.ot / 1000, push.data.c, push.data.h, push.data.l],
  },
};

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

let registry = { channels: [], choices: null };
let ws = null;
let nextId = 1;
let pending = []; // requests waiting for the welcome
let pingTimer = null;
const counts = { data: 0, other: 0, skipped: 0 };
const lists = {}; // param name -> chosen list items
const series = new Map(); // topic -> {channel, params, points: [[x, ...ys]]}
let shown = null; // the charted topic
let chart = null;

// -- the choices ------------------------------------------------------------------------------

function world() {
  return registry.choices || { assets: [], platforms: [], tokens: [], pools: [], wallets: [] };
}

function assetName(id) {
  const asset = world().assets.find((a) => a.id === Number(id));
  return asset ? ` ${asset.symbol}` : "";
}

function tokenName(platform, address) {
  const token = world().tokens.find((t) => t.platform_id === platform && t.address === address);
  return token ? token.symbol : `${address.slice(0, 10)}…`;
}

function platformsFor(spec) {
  const known = world().platforms.filter((p) => !spec.holders_only || p.holders);
  return known.length ? known : [{ id: 14, name: "BSC", holders: true }];
}

// Options for a list param: [value, label] pairs.
function optionsFor(param, platform) {
  const w = world();
  if (param.kind === "ids") {
    return w.assets.map((a) => [String(a.id), `${a.symbol} · ${a.name} · rank ${a.rank}`]);
  }
  if (param.name === "pool_address") {
    return w.pools.filter((p) => p.platform_id === platform).map((p) => [p.address, `${p.pair} · ${p.dex}`]);
  }
  if (param.name === "wallet_address") {
    return w.wallets.filter((x) => x.platform_id === platform)
      .map((x) => [x.address, x.tags.length ? x.tags.join(", ") : "wallet"]);
  }
  return w.tokens.filter((t) => t.platform_id === platform).map((t) => [t.address, `${t.symbol} · ${t.name}`]);
}

// -- the request form -------------------------------------------------------------------------

function spec() {
  return registry.channels.find((c) => c.name === $("channel").value);
}

function platformValue() {
  const select = $("param-platform_id");
  return select ? Number(select.value) : null;
}

function listField(param) {
  const box = el("div", { className: "chips" });
  const input = el("input", { id: `param-${param.name}`, placeholder: "type to search, Enter to add" });
  input.setAttribute("list", `options-${param.name}`);
  const datalist = el("datalist", { id: `options-${param.name}` });
  const draw = () => {
    const options = optionsFor(param, platformValue());
    datalist.replaceChildren(...options.slice(0, 5000).map(([value, label]) => el("option", { value, label })));
    const labels = new Map(options);
    box.replaceChildren(...lists[param.name].map((value, i) => el("span", { className: "chip", title: value },
      el("span", { textContent: labels.has(value) ? `${labels.get(value).split(" · ")[0]} ${short(value)}` : value }),
      el("button", { type: "button", textContent: "×", title: "remove", onclick: () => {
        lists[param.name].splice(i, 1); draw(); preview();
      } }))));
  };
  const add = () => {
    for (const raw of input.value.split(/[\s,]+/)) {
      const value = raw.trim();
      if (value && !lists[param.name].includes(value)) lists[param.name].push(value);
    }
    input.value = "";
    draw();
    preview();
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); add(); } });
  // Picking an option from the datalist fires `input` with the whole value: add it at once.
  input.addEventListener("input", (e) => { if (e.inputType === "insertReplacementText") add(); });
  input.addEventListener("change", add);
  field(param).redraw = draw;
  return el("label", { textContent: `${param.name} ` }, input, datalist, box);
}

function short(value) {
  return value.length > 16 ? `${value.slice(0, 8)}…${value.slice(-4)}` : "";
}

const fields = {};
function field(param) {
  return (fields[param.name] ||= {});
}

function defaultList(param, platform) {
  if (param.kind === "ids") return ["1", "1027"];
  const options = optionsFor(param, platform);
  return options.length ? [options[0][0]] : [];
}

function buildParams() {
  const channel = spec();
  const box = $("params");
  box.replaceChildren();
  for (const name of Object.keys(fields)) delete fields[name];
  for (const param of channel.params) {
    if (param.kind === "platform") {
      const previous = platformValue();
      const select = el("select", { id: "param-platform_id" },
        ...platformsFor(channel).map((p) => el("option", { value: String(p.id), textContent: `${p.id} · ${p.name}` })));
      if (previous && [...select.options].some((o) => o.value === String(previous))) select.value = String(previous);
      select.addEventListener("change", () => {
        for (const p of channel.params) {
          if (p.kind === "addresses") { lists[p.name] = defaultList(p, platformValue()); field(p).redraw?.(); }
        }
        preview();
      });
      box.append(el("label", { textContent: "platform_id " }, select));
    } else if (param.kind === "interval") {
      const select = el("select", { id: `param-${param.name}` },
        ...param.choices.map((c) => el("option", { value: c, textContent: c })));
      select.addEventListener("change", preview);
      box.append(el("label", { textContent: `${param.name} ` }, select));
    }
  }
  for (const param of channel.params) {
    if (param.kind === "ids" || param.kind === "addresses") {
      if (!lists[param.name] || param.kind === "addresses") lists[param.name] = defaultList(param, platformValue());
      box.append(listField(param));
      field(param).redraw();
    }
  }
  preview();
}

function params() {
  const out = {};
  for (const param of spec().params) {
    if (param.kind === "platform") out[param.name] = platformValue();
    else if (param.kind === "interval") out[param.name] = $(`param-${param.name}`).value;
    else if (param.kind === "ids") out[param.name] = lists[param.name].map(Number);
    else out[param.name] = [...lists[param.name]];
  }
  return out;
}

function request(method) {
  const message = { id: nextId, method };
  if (method === "subscribe" || method === "unsubscribe") {
    message.channel = spec().name;
    message.params = params();
  }
  return message;
}

function preview() {
  $("preview").value = JSON.stringify(request("subscribe"), null, 2);
}

// -- the connection ---------------------------------------------------------------------------

function endpoint() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1`;
}

function setState(state, text) {
  $("state").dataset.state = state;
  $("state").textContent = text;
  $("connect").disabled = state === "open" || state === "connecting";
  $("disconnect").disabled = !(state === "open" || state === "connecting");
}

function connect() {
  if (ws && ws.readyState <= WebSocket.OPEN) return;
  const key = $("key").value.trim();
  localStorage.setItem(KEY_STORE, key);
  const url = key ? `${endpoint()}?CMC_PRO_API_KEY=${encodeURIComponent(key)}` : endpoint();
  setState("connecting", "connecting…");
  $("close-info").textContent = "";
  $("close-info").className = "info";
  ws = new WebSocket(url);
  ws.onmessage = (event) => receive(event.data);
  ws.onclose = (event) => closed(event);
}

function closed(event) {
  clearInterval(pingTimer);
  pingTimer = null;
  pending = [];
  ws = null;
  const meaning = CLOSE_MEANINGS[event.code] || "";
  const reason = event.reason || meaning;
  const normal = event.code === 1000;
  setState(normal ? "closed" : "failed", `closed ${event.code}`);
  const info = $("close-info");
  info.textContent = `Closed with code ${event.code}${reason ? ` (${reason})` : ""}.`;
  info.className = normal ? "info" : "info bad";
  logFrame("close", { code: event.code, reason, clean: event.wasClean });
}

function send(method) {
  const message = request(method);
  nextId += 1;
  preview();
  if (!ws) {
    pending.push(message);
    connect();
    return;
  }
  if (ws.readyState !== WebSocket.OPEN || pending.length) {
    pending.push(message);
    return;
  }
  transmit(message);
}

function transmit(message) {
  ws.send(JSON.stringify(message));
  logFrame("sent", message);
}

function receive(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    logFrame("other", text);
    return;
  }
  if (frame.type === "data") {
    counts.data += 1;
    chartPush(frame);
  } else {
    counts.other += 1;
  }
  if (frame.type === "welcome") {
    setState("open", "connected");
    const every = Math.max(1000, frame.ping_interval_ms || 10000);
    // The server closes a connection that says nothing for a while (1001): keep it alive.
    pingTimer = setInterval(() => ws && ws.send(JSON.stringify({ id: nextId++, method: "ping" })), every);
    const waiting = pending;
    pending = [];
    waiting.forEach(transmit);
  } else if (frame.type === "ack" && frame.sub_count !== undefined) {
    $("sub-info").className = "info";
    $("sub-info").textContent = `${frame.sub_count} of ${frame.sub_limit} subscriptions in use${frame.duplicate ? " (duplicate request)" : ""}.`;
  } else if (frame.type === "error") {
    const status = frame.status || {};
    $("sub-info").className = "info bad";
    $("sub-info").textContent = `Error ${status.error_code}: ${status.error_message}${status.error_detail ? ` ${status.error_detail}` : ""}`;
  }
  logFrame(frame.type, frame);
}

// -- the frame log ----------------------------------------------------------------------------

function logFrame(type, body) {
  $("counts").textContent = `${counts.data} pushes, ${counts.other} other${counts.skipped ? `, ${counts.skipped} not shown (paused)` : ""}`;
  if ($("pause").checked && type === "data") {
    counts.skipped += 1;
    return;
  }
  const log = $("log");
  const when = new Date().toISOString().slice(11, 23);
  const title = type === "sent" ? `→ ${body.method}` : type;
  const item = el("li", { className: `frame frame-${type}` },
    el("div", { className: "meta" },
      el("span", { textContent: when }),
      el("span", { className: `type type-${type}`, textContent: title }),
      el("span", { textContent: body.channel || "" })),
    el("pre", { textContent: typeof body === "string" ? body : JSON.stringify(body, null, 2) }));
  log.prepend(item);
  while (log.children.length > LOG_CAP) log.lastElementChild.remove();
}

// -- the chart --------------------------------------------------------------------------------

function topicOf(push) {
  return `${push.channel}|${Object.values(push.params).join("|")}`;
}

function chartPush(push) {
  const kind = CHARTED[push.channel];
  if (!kind) return;
  const topic = topicOf(push);
  let entry = series.get(topic);
  if (!entry) {
    entry = { channel: push.channel, params: push.params, points: [] };
    series.set(topic, entry);
    $("series").append(el("option", { value: topic, textContent: kind.label(push.params) }));
    if (!shown) {
      $("series").value = topic;
      show(topic);
    }
  }
  const point = kind.point(push);
  const last = entry.points[entry.points.length - 1];
  if (last && last[0] === point[0]) entry.points[entry.points.length - 1] = point;
  else if (!last || last[0] < point[0]) entry.points.push(point);
  if (entry.points.length > POINTS_CAP) entry.points.shift();
  if (topic === shown) redraw();
}

function columns(points, width) {
  return Array.from({ length: width }, (_, i) => points.map((p) => p[i]));
}

function show(topic) {
  shown = topic;
  const entry = series.get(topic);
  const kind = CHARTED[entry.channel];
  chart?.destroy();
  const box = $("chart");
  chart = new uPlot({
    width: Math.max(300, box.clientWidth),
    height: 300,
    series: [{}, ...kind.series],
    axes: [
      { stroke: "#8b949e", grid: { stroke: "#30363d" }, ticks: { stroke: "#30363d" } },
      { stroke: "#8b949e", grid: { stroke: "#30363d" }, ticks: { stroke: "#30363d" }, size: 80,
        values: (_, ticks) => ticks.map(price) },
    ],
    scales: { x: { time: true } },
  }, columns(entry.points, kind.series.length + 1), box);
  $("chart-note").textContent = kind.label(entry.params);
}

function redraw() {
  const entry = series.get(shown);
  chart.setData(columns(entry.points, CHARTED[entry.channel].series.length + 1));
}

function price(value) {
  if (value == null) return "";
  const digits = Math.abs(value) >= 100 ? 2 : Math.abs(value) >= 1 ? 4 : 8;
  return `$${value.toLocaleString("en-US", { maximumFractionDigits: digits })}`;
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  $("endpoint").value = endpoint();
  $("key").value = localStorage.getItem(KEY_STORE) || "";
  $("show-key").onclick = () => {
    const hidden = $("key").type === "password";
    $("key").type = hidden ? "text" : "password";
    $("show-key").textContent = hidden ? "hide" : "show";
  };
  $("connect").onclick = connect;
  $("disconnect").onclick = () => ws?.close(1000);
  $("subscribe").onclick = () => send("subscribe");
  $("unsubscribe").onclick = () => send("unsubscribe");
  $("unsubscribe-all").onclick = () => send("unsubscribe_all");
  $("ping").onclick = () => send("ping");
  $("clear").onclick = () => { $("log").replaceChildren(); counts.skipped = 0; };
  $("series").onchange = () => show($("series").value);
  window.addEventListener("resize", () => chart?.setSize({ width: Math.max(300, $("chart").clientWidth), height: 300 }));
  const response = await fetch("/playground/choices.json");
  registry = await response.json();
  $("channel").replaceChildren(...registry.channels.map((c) => el("option", { value: c.name, textContent: c.name })));
  $("channel").onchange = buildParams;
  buildParams();
  setState("closed", "disconnected");
  document.body.dataset.ready = "true";
}

// What the browser tests read: the points behind each chart.
window.playground = {
  points: (topic) => (series.get(topic) || { points: [] }).points.length,
  shown: () => shown,
};

start();
