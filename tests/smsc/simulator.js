#!/usr/bin/env node
// An independent SMSC for the tests and the benchmark: node-smpp's server (npm `smpp`, pinned in
// package.json) plus an HTTP JSON control port through which a test injects faults (rejected
// binds, throttling, dropped connections, delayed or withheld receipts), sends MO messages and
// reads what arrived.
//
//   node tests/smsc/simulator.js --port P --control-port Q --system-id ID --password PW
//
// Port 0 picks a free port. When both ports listen, ONE JSON line goes to stdout:
//   {"ready":true,"port":..,"control_port":..}
// Everything else (logs) goes to stderr.
//
// It is deliberately not the project's code: the gateway's SMPP side is tested against a peer
// written by somebody else. The control API is documented in tests/smsc/README.md.
'use strict';

const http = require('http');
const smpp = require('smpp');

// The simulator decodes short_message / message_payload itself (GSM 7-bit, UCS-2, UDH) from the
// raw bytes: node-smpp's own filter decodes each part separately and loses the bytes that a
// reassembly of a concatenated message needs.
smpp.commands.submit_sm.params.short_message.filter = null;
smpp.commands.deliver_sm.params.short_message.filter = null;
smpp.tlvs.message_payload.filter = null;

const E = smpp.errors;
const STATES = smpp.consts.MESSAGE_STATE;

// ---------------------------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const args = {port: 0, controlPort: 0, host: '127.0.0.1', systemId: null, password: null, messageIds: 'unique'};
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[i + 1];
    if (key === '--port') { args.port = Number(value); i++; }
    else if (key === '--control-port') { args.controlPort = Number(value); i++; }
    else if (key === '--host') { args.host = value; i++; }
    else if (key === '--system-id') { args.systemId = value; i++; }
    else if (key === '--password') { args.password = value; i++; }
    else if (key === '--message-ids') { args.messageIds = value; i++; }
    else { usage(`unknown argument ${key}`); }
  }
  if (!Number.isInteger(args.port) || !Number.isInteger(args.controlPort)) usage('ports must be integers');
  if (!args.systemId || !args.password) usage('--system-id and --password are required');
  if (!['unique', 'counter'].includes(args.messageIds)) usage('--message-ids must be unique or counter');
  return args;
}

function usage(problem) {
  process.stderr.write(`simulator: ${problem}\nusage: node simulator.js --port P --control-port Q ` +
    '--system-id ID --password PW [--host 127.0.0.1] [--message-ids unique|counter]\n');
  process.exit(2);
}

const ARGS = parseArgs(process.argv);

function log(...parts) {
  process.stderr.write(`[smsc ${new Date().toISOString()}] ${parts.join(' ')}\n`);
}

// ---------------------------------------------------------------------------------------------
// GSM 03.38 (unpacked: one septet per octet, as SMPP carries data_coding 0) and UCS-2

const GSM_BASIC = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT = {0x0a: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2f: '\\', 0x3c: '[', 0x3d: '~',
  0x3e: ']', 0x40: '|', 0x65: '€'};
const GSM_ENC = new Map();
for (let i = 0; i < GSM_BASIC.length; i++) if (i !== 0x1b) GSM_ENC.set(GSM_BASIC[i], [i]);
for (const [code, ch] of Object.entries(GSM_EXT)) GSM_ENC.set(ch, [0x1b, Number(code)]);

function gsmDecode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] & 0x7f;
    if (b === 0x1b && i + 1 < bytes.length) {
      const ext = GSM_EXT[bytes[i + 1] & 0x7f];
      out += ext === undefined ? ' ' : ext;
      i++;
    } else {
      out += GSM_BASIC[b];
    }
  }
  return out;
}

/** GSM 7-bit bytes for `text`, or null when a character is outside the alphabet. */
function gsmEncode(text) {
  const out = [];
  for (const ch of text) {
    const codes = GSM_ENC.get(ch);
    if (!codes) return null;
    out.push(...codes);
  }
  return Buffer.from(out);
}

function ucs2Decode(bytes) {
  const even = Buffer.from(bytes.subarray(0, bytes.length - (bytes.length % 2)));
  return even.swap16().toString('utf16le');
}

function ucs2Encode(text) {
  return Buffer.from(text, 'utf16le').swap16();
}

function decodeText(bytes, dataCoding) {
  const scheme = dataCoding & 0xff;
  if (scheme === 0 || scheme === 1) return gsmDecode(bytes);  // 1 = IA5/ASCII, a subset here
  if (scheme === 8) return ucs2Decode(bytes);
  if (scheme === 3) return bytes.toString('latin1');
  return bytes.toString('hex');
}

/** User data split into its header (the concatenation IE, when present) and its payload. */
function splitUserData(bytes, esmClass) {
  if (!(esmClass & 0x40) || bytes.length === 0) return {payload: bytes, concat: null};
  const udhl = bytes[0];
  if (udhl + 1 > bytes.length) throw new Error(`UDH length ${udhl} exceeds the user data (${bytes.length} bytes)`);
  let concat = null;
  let i = 1;
  while (i + 1 < udhl + 1) {
    const iei = bytes[i];
    const len = bytes[i + 1];
    const data = bytes.subarray(i + 2, i + 2 + len);
    if (iei === 0x00 && len === 3) concat = {ref: data[0], total: data[1], seq: data[2]};
    else if (iei === 0x08 && len === 4) concat = {ref: data.readUInt16BE(0), total: data[2], seq: data[3]};
    i += 2 + len;
  }
  if (concat && (concat.total === 0 || concat.seq === 0 || concat.seq > concat.total)) {
    throw new Error(`bad concatenation IE: part ${concat.seq} of ${concat.total}`);
  }
  return {payload: bytes.subarray(udhl + 1), concat};
}

// ---------------------------------------------------------------------------------------------
// State: configuration (set through the control port), statistics, sessions

const DEFAULT_CONFIG = {
  reject_bind: false,          // false | "password" | "bindfail"
  throttle_ms: 0,              // ESME_RTHROTTLED to every submit for that long (from the POST)
  msgqful_ms: 0,               // ESME_RMSGQFUL to every submit for that long (from the POST)
  drop_after: null,            // close the bind that makes the Nth accepted submit from now (one-shot)
  drop_before_resp: false,     // with drop_after: close before that submit's response is written
  receipt_delay_ms: 0,
  withhold_receipts: false,
  receipt_stat: {},            // {"<destination suffix>": "UNDELIV"|"EXPIRED"|"REJECTD"|...}
  receipt_id_decimal: false,   // the receipt text's id: in decimal (TLV stays as submit_sm_resp)
  resp_delay_ms: 0,
  no_resp_every: 0,            // withhold the response of every Nth submit (the submit is lost)
  enquire_link_ms: 0,          // the SMSC's own enquire_link on each bind this often; 0 = never
};
const CONFIG_KEYS = new Set([...Object.keys(DEFAULT_CONFIG), 'throttle_ms', 'msgqful_ms']);

let config;
let throttleUntil;
let msgqfulUntil;
let stats;
let submitsSeen;            // every submit_sm received while bound, for no_resp_every
let withheld;               // receipts waiting for POST /receipts/release
let undelivered;            // receipts with no receiver bound (or whose bind closed un-acked)
let concatParts;            // "dest|ref|total" -> Map(seq -> {bytes, dataCoding})
let texts;                  // destination -> [whole message text, ...]
let accepts;                // [[accept time in ms since the epoch, fractional; destination], ...]

// By default unique across restarts on the same port (it starts at the start time in µs). With
// `--message-ids counter` it starts at 1 in every process, as SMSCs whose counter restarts (or
// wraps) do: after a restart it hands out the ids it used before.
let nextMessageId = ARGS.messageIds === 'counter' ? 1 : Date.now() * 1000;

function reset() {
  config = JSON.parse(JSON.stringify(DEFAULT_CONFIG));
  throttleUntil = 0;
  msgqfulUntil = 0;
  submitsSeen = 0;
  withheld = [];
  undelivered = [];
  concatParts = new Map();
  texts = new Map();
  accepts = [];
  stats = {
    submits_accepted: 0,
    submits_rejected: 0,
    rejected_by_status: {},
    submits_unanswered: 0,
    by_destination: {},
    per_second: {},
    receipts_sent: 0,
    receipts_acked: 0,
    mo_sent: 0,
    mo_acked: 0,
    mo_timeouts: 0,
    enquire_links_received: 0,
    enquire_links_sent: 0,
    ignored_while_silent: 0,
    bad_pdus: 0,
    drops: 0,
    binds_rejected: 0,
    max_in_flight_seen: 0,
  };
}
reset();

const binds = new Set();    // the sessions that are bound: {session, systemId, mode, ...}
let bindSerial = 0;

function receivers(systemId) {
  return [...binds].filter(b => b.mode !== 'transmitter' && !b.closing && !b.silent &&
    (!systemId || b.systemId === systemId));
}

// ---------------------------------------------------------------------------------------------
// SMPP server

const BIND_MODES = {bind_transceiver: 'transceiver', bind_transmitter: 'transmitter', bind_receiver: 'receiver'};

const server = smpp.createServer((session) => {
  // Responses are small writes; without this Nagle's algorithm holds them back behind the
  // peer's delayed ACKs and the SMSC, not the ESME, would set the pace.
  session.socket.setNoDelay(true);
  const peer = `${session.socket.remoteAddress}:${session.socket.remotePort}`;
  const state = {session, peer, systemId: null, mode: null, id: null, inFlight: 0, submits: 0,
    closing: false, dropping: false, silent: false, probe: null, unackedReceipts: new Map()};

  session.on('error', (err) => {
    // A socket error (err.code: ECONNRESET …) or a stream node-smpp cannot parse; either way the
    // stream is out of step, so that connection goes and the server keeps serving the others.
    if (err.code) {
      log(`connection from ${peer}: ${err.message}`);
    } else {
      stats.bad_pdus++;
      log(`bad PDU from ${peer}: ${err.message}; closing that connection`);
    }
    closeBind(state);
    session.destroy();
  });
  session.on('close', () => closeBind(state));

  session.on('pdu', (pdu) => {
    if (state.closing || state.dropping) return;
    if (state.silent) { stats.ignored_while_silent++; return; }
    try {
      handlePdu(state, pdu);
    } catch (err) {
      // A PDU we cannot make sense of gets a generic_nack; the session carries on.
      stats.bad_pdus++;
      log(`cannot handle ${pdu.command} from ${peer}: ${err.message}`);
      if (!pdu.isResponse()) session.send(new smpp.PDU('generic_nack', {sequence_number: pdu.sequence_number, command_status: E.ESME_RSYSERR}));
    }
  });
});

function handlePdu(state, pdu) {
  const {session} = state;
  if (pdu.command in BIND_MODES) return handleBind(state, pdu);
  switch (pdu.command) {
    case 'enquire_link':
      stats.enquire_links_received++;
      return session.send(pdu.response());
    case 'unbind':
      session.send(pdu.response());
      closeBind(state);
      return session.close();
    case 'submit_sm':
      return handleSubmit(state, pdu);
    case 'deliver_sm_resp':
      return handleDeliverResp(state, pdu);
    case 'enquire_link_resp':
    case 'generic_nack':
      return undefined;
    case 'unknown':
      stats.bad_pdus++;
      log(`unknown command id 0x${pdu.command_id.toString(16)} from ${state.peer}`);
      return session.send(pdu.response());
    default:
      if (pdu.isResponse()) return undefined;
      return session.send(pdu.response({command_status: E.ESME_RINVCMDID}));
  }
}

function handleBind(state, pdu) {
  const {session} = state;
  const reply = (status) => session.send(pdu.response({command_status: status, system_id: 'burgernet-sim'}));
  if (state.mode) return reply(E.ESME_RALYBND);
  let status = E.ESME_ROK;
  if (config.reject_bind === 'password') status = E.ESME_RINVPASWD;
  else if (config.reject_bind === 'bindfail') status = E.ESME_RBINDFAIL;
  else if (pdu.system_id !== ARGS.systemId) status = E.ESME_RINVSYSID;
  else if (pdu.password !== ARGS.password) status = E.ESME_RINVPASWD;
  if (status !== E.ESME_ROK) {
    stats.binds_rejected++;
    log(`${pdu.command} from ${state.peer} as ${JSON.stringify(pdu.system_id)} rejected (status 0x${status.toString(16)})`);
    reply(status);
    return undefined;
  }
  state.systemId = pdu.system_id;
  state.mode = BIND_MODES[pdu.command];
  state.id = ++bindSerial;
  state.boundAt = new Date().toISOString();
  binds.add(state);
  reply(E.ESME_ROK);
  log(`${state.mode} bind #${state.id} from ${state.peer} as ${state.systemId}`);
  state.probe = startProbing(state);
  if (state.mode !== 'transmitter') flushUndelivered();
  return undefined;
}

function closeBind(state) {
  if (state.closing) return;
  state.closing = true;
  if (binds.delete(state)) log(`bind #${state.id} (${state.mode}) closed`);
  if (state.probe) clearInterval(state.probe);
  // A receipt the ESME never acknowledged is sent again to the next receiver, as an SMSC does.
  for (const receipt of state.unackedReceipts.values()) undelivered.push(receipt);
  state.unackedReceipts.clear();
  if (undelivered.length) setImmediate(flushUndelivered);
}

function destinationKey(pdu) {
  const addr = String(pdu.destination_addr || '');
  return pdu.dest_addr_ton === 1 && !addr.startsWith('+') ? `+${addr}` : addr;
}

function handleSubmit(state, pdu) {
  const {session} = state;
  if (!state.mode || state.mode === 'receiver') {
    return session.send(pdu.response({command_status: E.ESME_RINVBNDSTS}));
  }
  submitsSeen++;
  if (config.no_resp_every > 0 && submitsSeen % config.no_resp_every === 0) {
    stats.submits_unanswered++;
    return undefined;  // lost on the way: no response, not accepted, no receipt
  }
  const now = Date.now();
  let status = E.ESME_ROK;
  if (now < throttleUntil) status = E.ESME_RTHROTTLED;
  else if (now < msgqfulUntil) status = E.ESME_RMSGQFUL;

  let message = null;
  if (status === E.ESME_ROK) {
    try {
      message = readMessage(pdu);
    } catch (err) {
      stats.bad_pdus++;
      log(`submit_sm from ${state.peer} with unreadable user data: ${err.message}`);
      status = E.ESME_RINVMSGLEN;
    }
  }
  if (status !== E.ESME_ROK) {
    stats.submits_rejected++;
    stats.rejected_by_status[status] = (stats.rejected_by_status[status] || 0) + 1;
    return respond(state, pdu.response({command_status: status}));
  }

  const messageId = (nextMessageId++).toString(16);
  accept(state, pdu, message, messageId, now);
  const resp = pdu.response({message_id: messageId});

  if (config.drop_after !== null && config.drop_after !== undefined) {
    config.drop_after--;
    if (config.drop_after <= 0) {
      config.drop_after = null;
      stats.drops++;
      state.dropping = true;  // ignore whatever else this connection already sent
      session.pause();
      log(`drop_after reached: closing bind #${state.id}` + (config.drop_before_resp ? ' before the response' : ''));
      if (config.drop_before_resp) {
        closeBind(state);
        session.destroy();
      } else {
        session.send(resp, () => { closeBind(state); session.destroy(); });
      }
      scheduleReceipt(state, pdu, message, messageId, now);
      return undefined;
    }
  }
  respond(state, resp);
  scheduleReceipt(state, pdu, message, messageId, now);
  return undefined;
}

/** The text, its encoding and concatenation header of a submit_sm. */
function readMessage(pdu) {
  let bytes = pdu.short_message;
  if (!Buffer.isBuffer(bytes) || bytes.length === 0) {
    bytes = Buffer.isBuffer(pdu.message_payload) ? pdu.message_payload : Buffer.alloc(0);
  }
  const {payload, concat} = splitUserData(bytes, pdu.esm_class || 0);
  return {payload, concat, dataCoding: pdu.data_coding || 0};
}

function accept(state, pdu, message, messageId, now) {
  stats.submits_accepted++;
  state.submits++;
  const second = Math.floor(now / 1000);
  stats.per_second[second] = (stats.per_second[second] || 0) + 1;
  const dest = destinationKey(pdu);
  // Each accept's own time (sub-millisecond): a rate is judged over sliding windows, not seconds.
  accepts.push([performance.timeOrigin + performance.now(), dest]);
  const entry = stats.by_destination[dest] || (stats.by_destination[dest] = {submits: 0, messages: 0});
  entry.submits++;

  // RULE (simulator): a message counts once it is whole: a single-part submit at once; a
  // concatenated one when every part 1..total of one (destination, reference, total) group has
  // been accepted. Its parts then start afresh, so a full resend counts as a second message.
  let whole = null;
  if (!message.concat || message.concat.total === 1) {
    whole = decodeText(message.payload, message.dataCoding);
  } else {
    const key = `${dest}|${message.concat.ref}|${message.concat.total}`;
    let parts = concatParts.get(key);
    if (!parts) concatParts.set(key, parts = new Map());
    parts.set(message.concat.seq, message.payload);
    if (parts.size === message.concat.total) {
      concatParts.delete(key);
      const ordered = [];
      for (let seq = 1; seq <= message.concat.total; seq++) ordered.push(parts.get(seq));
      whole = decodeText(Buffer.concat(ordered), message.dataCoding);
    }
  }
  if (whole !== null) {
    entry.messages++;
    let list = texts.get(dest);
    if (!list) texts.set(dest, list = []);
    list.push(whole);
  }
}

function respond(state, resp) {
  const delay = config.resp_delay_ms;
  state.inFlight++;
  if (state.inFlight > stats.max_in_flight_seen) stats.max_in_flight_seen = state.inFlight;
  const send = () => {
    state.inFlight--;
    if (!state.closing && !state.silent) state.session.send(resp);
  };
  if (delay > 0) setTimeout(send, delay);
  else send();
}

/** The SMSC's own keep-alive: an enquire_link every `enquire_link_ms` (0, the default: never —
 * as SMSCs that leave probing to the ESME). */
function startProbing(state) {
  let last = Date.now();
  return setInterval(() => {
    const every = config.enquire_link_ms;
    if (!every || state.closing || state.silent || Date.now() - last < every) return;
    last = Date.now();
    stats.enquire_links_sent++;
    state.session.send(new smpp.PDU('enquire_link', {}));
  }, 50);
}

/** Every bound connection goes silent (half-open, as behind a NAT that forgot it): the TCP
 * connection stays, nothing is answered or sent on it any more. New connections are served. */
function silence() {
  let count = 0;
  for (const b of binds) {
    if (b.closing || b.silent) continue;
    b.silent = true;
    count++;
    log(`bind #${b.id} silenced (connection kept open)`);
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// Delivery receipts

const STAT_STATE = {DELIVRD: STATES.DELIVERED, EXPIRED: STATES.EXPIRED, DELETED: STATES.DELETED,
  UNDELIV: STATES.UNDELIVERABLE, ACCEPTD: STATES.ACCEPTED, UNKNOWN: STATES.UNKNOWN,
  REJECTD: STATES.REJECTED, ENROUTE: STATES.ENROUTE};

function smppDate(ms) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return two(d.getUTCFullYear() % 100) + two(d.getUTCMonth() + 1) + two(d.getUTCDate()) +
    two(d.getUTCHours()) + two(d.getUTCMinutes());
}

function statFor(dest) {
  let best = null;
  for (const [suffix, stat] of Object.entries(config.receipt_stat || {})) {
    if (dest.endsWith(suffix) && (!best || suffix.length > best[0].length)) best = [suffix, stat];
  }
  return best ? best[1] : 'DELIVRD';
}

function scheduleReceipt(state, pdu, message, messageId, submittedAt) {
  const wanted = (pdu.registered_delivery || 0) & 0x03;
  if (wanted === 0) return;
  const dest = destinationKey(pdu);
  const stat = statFor(dest);
  if (wanted === 2 && stat === 'DELIVRD') return;  // receipt on failure only
  const text = decodeText(message.payload, message.dataCoding).slice(0, 20).replace(/[^ -~]/g, '?');
  const receipt = {
    systemId: state.systemId,
    messageId,
    params: {
      source_addr_ton: pdu.dest_addr_ton, source_addr_npi: pdu.dest_addr_npi, source_addr: pdu.destination_addr,
      dest_addr_ton: pdu.source_addr_ton, dest_addr_npi: pdu.source_addr_npi, destination_addr: pdu.source_addr,
      esm_class: 0x04, data_coding: 0,
      receipted_message_id: messageId,
      message_state: STAT_STATE[stat] === undefined ? STATES.UNKNOWN : STAT_STATE[stat],
    },
    text: (doneAt) => {
      const id = config.receipt_id_decimal ? BigInt(`0x${messageId}`).toString(10) : messageId;
      const delivered = stat === 'DELIVRD' ? '001' : '000';
      const err = stat === 'DELIVRD' ? '000' : '001';
      return `id:${id} sub:001 dlvrd:${delivered} submit date:${smppDate(submittedAt)} ` +
        `done date:${smppDate(doneAt)} stat:${stat} err:${err} text:${text}`;
    },
  };
  const go = () => {
    if (config.withhold_receipts) withheld.push(receipt);
    else sendReceipt(receipt, state);
  };
  if (config.receipt_delay_ms > 0) setTimeout(go, config.receipt_delay_ms);
  else go();
}

let receiverTurn = 0;

/** Sends a receipt to a receiver of its system_id (the submitting bind first when it can take it). */
function sendReceipt(receipt, preferred) {
  let target = preferred && !preferred.closing && !preferred.silent && preferred.mode === 'transceiver' ? preferred : null;
  if (!target) {
    const candidates = receivers(receipt.systemId);
    if (!candidates.length) { undelivered.push(receipt); return; }
    target = candidates[receiverTurn++ % candidates.length];
  }
  if (receipt.doneAt === undefined) receipt.doneAt = Date.now();
  const params = Object.assign({short_message: Buffer.from(receipt.text(receipt.doneAt), 'latin1')}, receipt.params);
  const pdu = new smpp.PDU('deliver_sm', params);
  if (!target.session.send(pdu)) { undelivered.push(receipt); return; }
  stats.receipts_sent++;
  target.unackedReceipts.set(pdu.sequence_number, receipt);
}

function flushUndelivered() {
  const waiting = undelivered;
  undelivered = [];
  for (const receipt of waiting) sendReceipt(receipt, null);
}

function handleDeliverResp(state, pdu) {
  const receipt = state.unackedReceipts.get(pdu.sequence_number);
  if (receipt) {
    state.unackedReceipts.delete(pdu.sequence_number);
    if (pdu.command_status === 0) stats.receipts_acked++;
    else log(`receipt ${receipt.messageId} refused by bind #${state.id} (status 0x${pdu.command_status.toString(16)})`);
    return;
  }
  const mo = pendingMo.get(`${state.id}:${pdu.sequence_number}`);
  if (mo) {
    pendingMo.delete(`${state.id}:${pdu.sequence_number}`);
    mo(pdu.command_status);
  }
}

// ---------------------------------------------------------------------------------------------
// MO messages (POST /mo)

const pendingMo = new Map();  // "<bind id>:<sequence>" -> callback(status)
let moReference = 0;
const MO_ACK_TIMEOUT_MS = 5000;

function moParts(text, reference) {
  const gsm = gsmEncode(text);
  if (gsm && gsm.length <= 160) return {dataCoding: 0, esmClass: 0, parts: [gsm]};
  if (!gsm && text.length <= 70) return {dataCoding: 8, esmClass: 0, parts: [ucs2Encode(text)]};
  // Concatenated: 153 septets / 134 bytes (67 UTF-16 units) per part, never tearing an ESC pair
  // or a surrogate pair.
  const bytes = gsm || ucs2Encode(text);
  const room = gsm ? 153 : 134;
  const chunks = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + room, bytes.length);
    if (gsm && end < bytes.length && bytes[end - 1] === 0x1b) end--;
    if (!gsm && end < bytes.length && (bytes[end - 2] & 0xfc) === 0xd8) end -= 2;
    chunks.push(bytes.subarray(start, end));
    start = end;
  }
  const ref = Number.isInteger(reference) ? reference % 256 : (moReference = (moReference + 1) % 256);
  const parts = chunks.map((chunk, i) => Buffer.concat([Buffer.from([5, 0, 3, ref, chunks.length, i + 1]), chunk]));
  return {dataCoding: gsm ? 0 : 8, esmClass: 0x40, parts};
}

function sendMo(body, done) {
  const {from, to, text} = body;
  if (typeof from !== 'string' || typeof to !== 'string' || typeof text !== 'string' || !from || !to) {
    return done(400, {error: 'body needs string fields "from", "to" and "text"'});
  }
  const candidates = receivers(body.system_id || null);
  if (!candidates.length) return done(409, {acked: false, error: 'no receiver or transceiver bound'});
  const target = candidates[receiverTurn++ % candidates.length];
  const international = from.startsWith('+');
  const {dataCoding, esmClass, parts} = moParts(text, body.reference);
  const pdus = parts.map((part) => new smpp.PDU('deliver_sm', {
    source_addr_ton: international ? 1 : 0, source_addr_npi: 1, source_addr: international ? from.slice(1) : from,
    dest_addr_ton: 0, dest_addr_npi: 1, destination_addr: to,
    esm_class: esmClass, data_coding: dataCoding, short_message: part,
  }));
  if (body.one_at_a_time || body.resend_part || body.only_parts) return sendMoInTurn(target, pdus, body, done);
  let waiting = pdus.length;
  let worst = 0;
  let finished = false;
  const finish = (code, result) => { if (!finished) { finished = true; done(code, result); } };
  const timer = setTimeout(() => finish(200, {acked: false, error: 'no deliver_sm_resp in time', parts: parts.length}),
    MO_ACK_TIMEOUT_MS);
  for (const pdu of pdus) {
    if (!target.session.send(pdu)) {
      clearTimeout(timer);
      return finish(409, {acked: false, error: 'the receiver connection is closed'});
    }
    stats.mo_sent++;
    pendingMo.set(`${target.id}:${pdu.sequence_number}`, (status) => {
      if (status !== 0) worst = status;
      if (--waiting === 0) {
        clearTimeout(timer);
        if (worst === 0) stats.mo_acked++;
        finish(200, {acked: worst === 0, command_status: worst, parts: parts.length, bind: target.id});
      }
    });
  }
  if (body.wait === false) finish(202, {sent: true, parts: parts.length, bind: target.id});
  return undefined;
}

/** One MO part written and its deliver_sm_resp awaited: {part, status, ms}; status null when
 * none came within `timeoutMs` (the SMSC then counts the part as failed and moves on). */
function sendMoPart(target, pdu, part, timeoutMs) {
  return new Promise((resolve) => {
    const started = Date.now();
    if (!target.session.send(pdu)) {
      resolve({part, status: null, ms: 0, error: 'the receiver connection is closed'});
      return;
    }
    stats.mo_sent++;
    const key = `${target.id}:${pdu.sequence_number}`;  // numbered by send()
    const timer = setTimeout(() => {
      pendingMo.delete(key);
      stats.mo_timeouts++;
      resolve({part, status: null, ms: Date.now() - started});
    }, timeoutMs);
    pendingMo.set(key, (status) => {
      clearTimeout(timer);
      resolve({part, status, ms: Date.now() - started});
    });
  });
}

/** MO parts as SMSCs with a window of 1 deliver them: each part only after the previous part's
 * response (or its timeout); `only_parts` [k, …]: just those, in that order (a part lost, or the
 * rest sent later: give `reference` to keep the message's); with `resend_part` k, part k once
 * more afterwards (same reference), as an SMSC does whose response got lost. Answers every
 * part's outcome. */
async function sendMoInTurn(target, pdus, body, done) {
  const timeoutMs = Number.isFinite(body.part_timeout_ms) ? body.part_timeout_ms : MO_ACK_TIMEOUT_MS;
  const order = Array.isArray(body.only_parts) ? body.only_parts : pdus.map((_, i) => i + 1);
  if (order.some(k => !pdus[k - 1])) return done(400, {error: `only_parts ${JSON.stringify(order)} of ${pdus.length} part(s)`});
  const results = [];
  for (const k of order) {
    results.push(await sendMoPart(target, new smpp.PDU('deliver_sm', pickParams(pdus[k - 1])), k, timeoutMs));
  }
  let resent = null;
  if (body.resend_part) {
    const index = body.resend_part - 1;
    if (!pdus[index]) return done(400, {error: `resend_part ${body.resend_part} of ${pdus.length} part(s)`});
    const again = new smpp.PDU('deliver_sm', pickParams(pdus[index]));
    resent = await sendMoPart(target, again, body.resend_part, timeoutMs);
  }
  const all = resent ? [...results, resent] : results;
  const acked = all.every(r => r.status === 0);
  if (results.every(r => r.status === 0)) stats.mo_acked++;
  return done(200, {acked, parts: pdus.length, results, resent, bind: target.id});
}

function pickParams(pdu) {
  const keys = ['source_addr_ton', 'source_addr_npi', 'source_addr', 'dest_addr_ton', 'dest_addr_npi',
    'destination_addr', 'esm_class', 'data_coding', 'short_message'];
  return Object.fromEntries(keys.map(k => [k, pdu[k]]));
}

// ---------------------------------------------------------------------------------------------
// Control port

function publicStats(withDestinations) {
  const out = Object.assign({}, stats, {
    binds: [...binds].map(b => ({id: b.id, system_id: b.systemId, mode: b.mode, peer: b.peer,
      bound_at: b.boundAt, submits: b.submits, in_flight: b.inFlight, silent: b.silent})),
    receipts_withheld: withheld.length,
    receipts_waiting_for_receiver: undelivered.length,
    incomplete_concatenated: concatParts.size,
  });
  if (!withDestinations) delete out.by_destination;
  return out;
}

function applyConfig(body) {
  const unknown = Object.keys(body).filter(k => !CONFIG_KEYS.has(k));
  if (unknown.length) throw new Error(`unknown setting(s): ${unknown.join(', ')}`);
  if ('reject_bind' in body && ![false, 'password', 'bindfail'].includes(body.reject_bind)) {
    throw new Error('reject_bind must be false, "password" or "bindfail"');
  }
  for (const key of ['throttle_ms', 'msgqful_ms', 'receipt_delay_ms', 'resp_delay_ms', 'no_resp_every', 'enquire_link_ms']) {
    if (key in body && !(Number.isFinite(body[key]) && body[key] >= 0)) throw new Error(`${key} must be a number >= 0`);
  }
  if ('drop_after' in body && body.drop_after !== null && !(Number.isInteger(body.drop_after) && body.drop_after > 0)) {
    throw new Error('drop_after must be a positive integer or null');
  }
  if ('receipt_stat' in body) {
    if (typeof body.receipt_stat !== 'object' || body.receipt_stat === null) throw new Error('receipt_stat must be an object');
    for (const stat of Object.values(body.receipt_stat)) {
      if (!(stat in STAT_STATE)) throw new Error(`unknown receipt stat ${JSON.stringify(stat)}`);
    }
  }
  const wasWithholding = config.withhold_receipts;
  Object.assign(config, body);
  const now = Date.now();
  if ('throttle_ms' in body) throttleUntil = now + body.throttle_ms;
  if ('msgqful_ms' in body) msgqfulUntil = now + body.msgqful_ms;
  if (wasWithholding && body.withhold_receipts === false) log('withhold_receipts off (withheld ones wait for /receipts/release)');
  log(`config: ${JSON.stringify(body)}`);
}

function releaseReceipts() {
  const released = withheld;
  withheld = [];
  for (const receipt of released) sendReceipt(receipt, null);
  return released.length;
}

const control = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://control');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const reply = (code, body) => {
      const text = JSON.stringify(body);
      res.writeHead(code, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text)});
      res.end(text);
    };
    let body = {};
    if (chunks.length) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        return reply(400, {error: `body is not JSON: ${err.message}`});
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return reply(400, {error: 'body must be a JSON object'});
    }
    const route = `${req.method} ${url.pathname}`;
    try {
      switch (route) {
        case 'GET /stats':
          return reply(200, publicStats(url.searchParams.get('destinations') !== '0'));
        case 'GET /texts': {
          const dest = url.searchParams.get('destination');
          if (!dest) return reply(400, {error: 'query parameter destination is required'});
          return reply(200, {destination: dest, texts: texts.get(dest) || []});
        }
        case 'GET /accepts': {
          const from = Number(url.searchParams.get('from') || 0);
          return reply(200, {accepts: accepts.slice(from)});
        }
        case 'GET /config':
          return reply(200, config);
        case 'POST /config':
          applyConfig(body);
          return reply(200, config);
        case 'POST /silence':
          return reply(200, {silenced: silence()});
        case 'POST /receipts/release':
          return reply(200, {released: releaseReceipts()});
        case 'POST /mo':
          return sendMo(body, reply);
        case 'POST /reset':
          reset();
          return reply(200, {reset: true});
        default:
          return reply(404, {error: `no route ${route}`});
      }
    } catch (err) {
      return reply(400, {error: err.message});
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Start: both ports listening, then the ready line

server.on('error', (err) => { log(`SMPP server error: ${err.message}`); process.exit(1); });
control.on('error', (err) => { log(`control server error: ${err.message}`); process.exit(1); });

server.listen(ARGS.port, ARGS.host, () => {
  control.listen(ARGS.controlPort, ARGS.host, () => {
    const ready = {ready: true, port: server.address().port, control_port: control.address().port};
    process.stdout.write(`${JSON.stringify(ready)}\n`);
    log(`listening: SMPP ${ready.port}, control ${ready.control_port}, system_id ${ARGS.systemId}`);
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    log(`${signal}: stopping`);
    for (const b of binds) b.session.destroy();
    process.exit(0);
  });
}
