'use strict';
// Peer (b) of the fan-out benchmark: what a Node.js developer writes on the `ws` package.
//
// The same protocol subset and schedule as the Python peers (../peerlib.py): welcome on
// connect when the X-CMC_PRO_API_KEY header is there, ack for market@crypto_latest_price
// subscriptions, pong for ping, and cmcstream's own market frames (--frames) every
// cadence of simulated time, --speed times faster than real time. Each push is built
// once per tick and sent with ws.send() to each subscriber: ws frames it per send and
// writes it at once (no coalescing). A subscriber holding more than DROP_ABOVE unsent
// bytes gets nothing that tick, so a stuck reader cannot grow memory without bound.

const fs = require('fs');
const { performance } = require('perf_hooks');
const { WebSocketServer, WebSocket } = require('ws');

const MARKET = 'market@crypto_latest_price';
const SUB_LIMIT = 100;
const DROP_ABOVE = 4 * 1024 * 1024;

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0, speed: 1, hold: false };
  for (let i = 2; i < argv.length; i += 1) {
    const name = argv[i].replace(/^--/, '');
    if (name === 'hold') {
      args.hold = true;
    } else {
      args[name] = argv[i + 1];
      i += 1;
    }
  }
  if (!args.frames || !args.start) throw new Error('--frames and --start are required');
  return {
    host: args.host,
    port: Number(args.port),
    frames: args.frames,
    speed: Number(args.speed),
    start: Number(args.start),
    hold: args.hold,
  };
}

const args = parseArgs(process.argv);
const doc = JSON.parse(fs.readFileSync(args.frames, 'utf8'));
const cadenceMs = doc.cadence_ms;
const known = new Set(doc.ids);
const heads = new Map(Object.entries(doc.heads).map(([cid, head]) => [Number(cid), Buffer.from(head)]));

const origin = performance.now();
function nowMs() {
  return args.start + Math.floor((performance.now() - origin) * args.speed);
}
function wallDelayMs(simMs) {
  return Math.max(simMs, 0) / args.speed;
}

const byId = new Map(); // cid -> Set of sockets
const ofSocket = new Map(); // socket -> Set of cids

function subscribe(ws, ids) {
  let mine = ofSocket.get(ws);
  if (!mine) {
    mine = new Set();
    ofSocket.set(ws, mine);
  }
  for (const cid of ids) {
    if (mine.has(cid)) continue;
    mine.add(cid);
    let set = byId.get(cid);
    if (!set) {
      set = new Set();
      byId.set(cid, set);
    }
    set.add(ws);
  }
  return mine.size;
}

function drop(ws) {
  const mine = ofSocket.get(ws);
  if (!mine) return;
  ofSocket.delete(ws);
  for (const cid of mine) {
    const set = byId.get(cid);
    if (!set) continue;
    set.delete(ws);
    if (set.size === 0) byId.delete(cid);
  }
}

function handleRequest(data, ws) {
  let request;
  try {
    request = JSON.parse(data);
  } catch (err) {
    return JSON.stringify({ type: 'error', code: 2201, msg: 'Invalid request.', ts: nowMs() });
  }
  const id = request.id;
  if (request.method === 'ping') {
    return JSON.stringify({ type: 'pong', id, code: 0, ts: nowMs() });
  }
  if (request.method === 'subscribe' && request.channel === MARKET) {
    let ids = (request.params || {}).crypto_ids || [];
    ids = typeof ids === 'number' ? [ids] : ids.filter((cid) => known.has(cid));
    const count = subscribe(ws, ids);
    return JSON.stringify({
      type: 'ack', id, code: 0, msg: 'ok', channel: MARKET, sub_count: count, sub_limit: SUB_LIMIT,
    });
  }
  return JSON.stringify({ type: 'error', id, code: 2301, msg: 'Unknown channel.', ts: nowMs() });
}

function publish(now) {
  const ts = Buffer.from(String(now) + '}');
  for (const [cid, set] of byId) {
    const frame = Buffer.concat([heads.get(cid), ts]);
    for (const ws of set) {
      if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount <= DROP_ABOVE) {
        ws.send(frame, { binary: false });
      }
    }
  }
}

// cmcstream's schedule: every cadence of simulated time; more than a cadence behind,
// skip to the latest tick.
let due = 0;
function tick() {
  const now = nowMs();
  if (now - due > cadenceMs) due = now - (now % cadenceMs);
  publish(Date.now()); // ts is the wall-clock send time, as cmcstream stamps it
  due += cadenceMs;
  setTimeout(tick, wallDelayMs(due - nowMs()));
}

const wss = new WebSocketServer({ host: args.host, port: args.port, clientTracking: false });
wss.on('connection', (ws, req) => {
  if (!req.headers['x-cmc_pro_api_key']) {
    ws.close(4001, 'API key missing');
    return;
  }
  ws.send(JSON.stringify({ type: 'welcome', ping_interval_ms: 10000, ts: nowMs() }));
  ws.on('message', (data) => {
    const reply = handleRequest(data, ws);
    if (reply) ws.send(reply);
  });
  ws.on('close', () => drop(ws));
  ws.on('error', () => drop(ws));
});
function startTicking() {
  due = nowMs();
  due = due - (due % cadenceMs) + cadenceMs;
  setTimeout(tick, wallDelayMs(due - nowMs()));
}

wss.on('listening', () => {
  console.log(`READY port=${wss.address().port} pid=${process.pid}`);
  // With --hold, ticks start on SIGUSR2, once the harness has every subscription acked.
  if (args.hold) process.once('SIGUSR2', startTicking);
  else startTicking();
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
