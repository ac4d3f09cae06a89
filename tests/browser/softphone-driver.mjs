#!/usr/bin/env node
// Drives callscope's softphone page in Debian's Chromium (playwright-core, never a
// downloaded browser) for the Rust tests (testkit/src/browser.rs).
//
// Protocol: one JSON command per line on stdin, one JSON reply per command on stdout:
//   {"id":1,"cmd":"open","agent":"a","base_url":"http://127.0.0.1:8080","mic_wav":"/x.wav"}
//   -> {"id":1,"ok":true,...}  or  {"id":1,"ok":false,"error":"..."}
// Every agent is its own persistent browser context (own profile in a fresh temp dir, own
// fake microphone). Every wait is bounded by `timeout_ms` (default 10 s). Diagnostics go
// to stderr. Commands run concurrently; replies carry the command's id.
//
// Commands (all but `quit` take `agent`):
//   open {base_url, mic_wav?, path?}       launch the agent's browser, open the page
//   login {domain, extension, password, base_url?, mic_wav?}
//                                          fill the form, submit, wait for the phone or an error
//   logout                                 click Sign out, wait for the login form
//   set_presence {status}                  available | away, waits for the page to show it
//   wait_for {selector, state?, attr?, value?, text?}
//                                          element state (visible|hidden|attached|detached),
//                                          an attribute value, or contained text
//   click {selector}                       press {key, selector?}
//   answer | reject | hangup | mute | unmute | hold | resume
//   dial {number}   transfer {target}   dtmf {digits}
//   read_state                             everything the page shows, as JSON
//   cookies                                the context's cookies for base_url
//   screenshot {path}                      full page PNG
//   drop_socket                            close the page's WebSocket (page opened with ?test=1)
//   close                                  close the agent's browser
//   quit                                   close everything and exit
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CHROMIUM = process.env.CALLSCOPE_CHROMIUM || '/usr/bin/chromium';
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 300_000;

// agent name -> { context, page, dir, consoleLines, browserPids }
const agents = new Map();

function log(...args) {
  process.stderr.write(`[driver] ${args.join(' ')}\n`);
}

function reply(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function timeoutOf(cmd) {
  const t = Number(cmd.timeout_ms);
  return Number.isFinite(t) && t > 0 ? Math.min(t, MAX_TIMEOUT_MS) : DEFAULT_TIMEOUT_MS;
}

function need(cmd, field) {
  const v = cmd[field];
  if (v === undefined || v === null || v === '') throw new Error(`missing "${field}"`);
  return v;
}

function agentOf(cmd) {
  const name = need(cmd, 'agent');
  const a = agents.get(name);
  if (!a) throw new Error(`agent "${name}" is not open`);
  return a;
}

// Chromium processes this node started (Playwright launches each detached, in its own
// process group): reported to the Rust side so it can stop them by PID if node dies first.
function childBrowserPids() {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      if (Number(fields[1]) === process.pid && stat.slice(stat.indexOf('(') + 1, close).startsWith('chrom')) {
        pids.push(Number(entry));
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

async function open(cmd) {
  const name = need(cmd, 'agent');
  if (agents.has(name)) throw new Error(`agent "${name}" is already open`);
  const baseUrl = need(cmd, 'base_url');
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (run scripts/setup)`);
  const args = [
    '--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (cmd.mic_wav) {
    if (!existsSync(cmd.mic_wav)) throw new Error(`mic_wav ${cmd.mic_wav} does not exist`);
    args.push(`--use-file-for-fake-audio-capture=${cmd.mic_wav}`);
  }
  const before = new Set(childBrowserPids());
  const dir = mkdtempSync(join(tmpdir(), `softphone-${name.replace(/[^A-Za-z0-9_-]/g, '_')}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport: { width: 1280, height: 800 },
    timeout: timeoutOf(cmd),
  });
  const browserPids = childBrowserPids().filter((p) => !before.has(p));
  const page = context.pages()[0] || (await context.newPage());
  const a = { name, context, page, dir, baseUrl, consoleLines: [], browserPids };
  agents.set(name, a);
  page.on('console', (m) => {
    const line = `${m.type()}: ${m.text()}`;
    a.consoleLines.push(line);
    if (a.consoleLines.length > 200) a.consoleLines.shift();
    log(`${name} console ${line}`);
  });
  page.on('pageerror', (e) => {
    a.consoleLines.push(`pageerror: ${e.message}`);
    log(`${name} pageerror ${e.message}`);
  });
  const path = cmd.path || '/softphone/?test=1';
  await page.goto(new URL(path, baseUrl).toString(), { timeout: timeoutOf(cmd) });
  await page.waitForFunction(() => document.getElementById('app')?.dataset.view !== 'loading', null, {
    timeout: timeoutOf(cmd),
  });
  // Other pages of the server (the API reference) have no softphone view to report.
  const view = (await page.locator('#app').count()) > 0 ? await attr(page, '#app', 'data-view') : null;
  return { browser_pids: browserPids, view };
}

async function attr(page, selector, name) {
  return page.locator(selector).getAttribute(name, { timeout: 2000 });
}

// Waits until `selector`'s attribute `name` equals `value`.
async function waitAttr(page, selector, name, value, timeout) {
  await page.waitForFunction(
    ([s, n, v]) => document.querySelector(s)?.getAttribute(n) === v,
    [selector, name, String(value)],
    { timeout, polling: 50 },
  ).catch(async (e) => {
    const [now, notice] = await page
      .evaluate(([s, n]) => [
        document.querySelector(s)?.getAttribute(n),
        document.getElementById('notice')?.hidden ? null : document.getElementById('notice')?.textContent,
      ], [selector, name])
      .catch(() => ['?', null]);
    const shown = notice ? ` (the page says: ${notice})` : '';
    throw new Error(`${selector}[${name}] never became "${value}" within ${timeout} ms (it is "${now}")${shown}: ${e.message.split('\n')[0]}`);
  });
}

async function login(cmd) {
  let a = agents.get(need(cmd, 'agent'));
  if (!a) {
    await open(cmd);
    a = agentOf(cmd);
  }
  const { page } = a;
  const timeout = timeoutOf(cmd);
  await waitAttr(page, '#app', 'data-view', 'login', timeout);
  await page.fill('#login-domain', String(need(cmd, 'domain')), { timeout });
  await page.fill('#login-extension', String(need(cmd, 'extension')), { timeout });
  await page.fill('#login-password', String(cmd.password ?? ''), { timeout });
  // Enter submits, as a person would.
  await page.press('#login-password', 'Enter', { timeout });
  await page.waitForFunction(
    () => document.getElementById('app').dataset.view === 'phone' || !document.getElementById('login-error').hidden,
    null,
    { timeout, polling: 50 },
  );
  const view = await attr(page, '#app', 'data-view');
  if (view !== 'phone') {
    const error = await page.textContent('#login-error', { timeout });
    return { view, login_error: error };
  }
  await waitAttr(page, '#connection', 'data-connection', 'open', timeout);
  return { view, state: await readState(page) };
}

async function readState(page) {
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const call = $('call');
    const quality = $('quality');
    const incoming = $('incoming');
    const num = (v) => (v === '' || v === undefined ? null : Number(v));
    // Another page of the server (the API reference): no softphone state to read.
    if (!$('app')) return null;
    return {
      view: $('app').dataset.view,
      login_error: $('login-error').hidden ? null : $('login-error').textContent,
      notice: $('notice').hidden ? null : $('notice').textContent,
      user: { name: $('agent-name').textContent, extension: $('agent').dataset.extension },
      presence: $('presence').dataset.presence,
      presence_text: $('presence').textContent,
      connection: $('connection').dataset.connection,
      connections: Number($('connection').dataset.hellos),
      dial_number: $('dial-number').value,
      incoming: incoming.hidden
        ? null
        : {
            call_id: incoming.dataset.callId,
            from: $('incoming-from').textContent,
            contact: $('incoming-contact').textContent,
            did: $('incoming-did').textContent,
          },
      call: {
        state: call.dataset.state,
        call_id: call.dataset.callId,
        muted: call.dataset.muted === 'true',
        held: call.dataset.held === 'true',
        reason: call.dataset.reason,
        status: $('call-status').textContent,
        peer: $('call-peer').textContent,
        contact: $('call-contact').textContent,
        timer: $('call-timer').textContent,
        seconds: Number($('call-timer').dataset.seconds),
        dtmf_sent: $('dtmf-sent').textContent,
      },
      quality: {
        level: quality.dataset.quality,
        rtt_ms: num(quality.dataset.rttMs),
        jitter_ms: num(quality.dataset.jitterMs),
        packets_lost: num(quality.dataset.packetsLost),
        text: $('quality-text').textContent,
      },
    };
  });
}

async function clickEnabled(page, selector, timeout) {
  await page.locator(selector).click({ timeout });
}

const commands = {
  open,
  login,

  async logout(cmd) {
    const { page } = agentOf(cmd);
    const timeout = timeoutOf(cmd);
    await clickEnabled(page, '#logout', timeout);
    await waitAttr(page, '#app', 'data-view', 'login', timeout);
    return { state: await readState(page) };
  },

  async set_presence(cmd) {
    const { page } = agentOf(cmd);
    const status = need(cmd, 'status');
    if (status !== 'available' && status !== 'away') throw new Error('status must be available or away');
    const timeout = timeoutOf(cmd);
    const now = await attr(page, '#presence', 'data-presence');
    if (now !== status) await clickEnabled(page, '#presence-toggle', timeout);
    await waitAttr(page, '#presence', 'data-presence', status, timeout);
    return { presence: status };
  },

  async wait_for(cmd) {
    const { page } = agentOf(cmd);
    const selector = need(cmd, 'selector');
    const timeout = timeoutOf(cmd);
    if (cmd.attr !== undefined) {
      if (cmd.value === undefined || cmd.value === null) throw new Error('missing "value"');
      await waitAttr(page, selector, cmd.attr, cmd.value, timeout);
    } else if (cmd.text !== undefined) {
      await page.locator(selector).filter({ hasText: String(cmd.text) }).first().waitFor({ state: 'visible', timeout });
    } else {
      await page.locator(selector).first().waitFor({ state: cmd.state || 'visible', timeout });
    }
    return { state: await readState(page) };
  },

  async click(cmd) {
    const { page } = agentOf(cmd);
    await clickEnabled(page, need(cmd, 'selector'), timeoutOf(cmd));
    return {};
  },

  async press(cmd) {
    const { page } = agentOf(cmd);
    const key = need(cmd, 'key');
    if (cmd.selector) await page.press(cmd.selector, key, { timeout: timeoutOf(cmd) });
    else await page.keyboard.press(key);
    return {};
  },

  async answer(cmd) {
    const { page } = agentOf(cmd);
    const timeout = timeoutOf(cmd);
    await page.locator('#incoming').waitFor({ state: 'visible', timeout });
    const callId = await attr(page, '#incoming', 'data-call-id');
    await clickEnabled(page, '#incoming-answer', timeout);
    return { call_id: callId };
  },

  async reject(cmd) {
    const { page } = agentOf(cmd);
    const timeout = timeoutOf(cmd);
    await page.locator('#incoming').waitFor({ state: 'visible', timeout });
    const callId = await attr(page, '#incoming', 'data-call-id');
    await clickEnabled(page, '#incoming-reject', timeout);
    return { call_id: callId };
  },

  async dial(cmd) {
    const { page } = agentOf(cmd);
    const timeout = timeoutOf(cmd);
    await page.fill('#dial-number', String(need(cmd, 'number')), { timeout });
    await page.press('#dial-number', 'Enter', { timeout });
    await page.waitForFunction(() => document.getElementById('call').dataset.state !== 'idle' && document.getElementById('call').dataset.state !== 'ended', null, { timeout, polling: 50 });
    return { state: await readState(page) };
  },

  async hangup(cmd) {
    const { page } = agentOf(cmd);
    await clickEnabled(page, '#call-hangup', timeoutOf(cmd));
    return {};
  },

  async mute(cmd) {
    return toggle(cmd, '#call-mute', 'data-muted', 'false');
  },
  async unmute(cmd) {
    return toggle(cmd, '#call-mute', 'data-muted', 'true');
  },
  async hold(cmd) {
    return toggle(cmd, '#call-hold', 'data-held', 'false');
  },
  async resume(cmd) {
    return toggle(cmd, '#call-hold', 'data-held', 'true');
  },

  async transfer(cmd) {
    const { page } = agentOf(cmd);
    const timeout = timeoutOf(cmd);
    await page.fill('#transfer-target', String(need(cmd, 'target')), { timeout });
    await page.press('#transfer-target', 'Enter', { timeout });
    return {};
  },

  async dtmf(cmd) {
    const { page } = agentOf(cmd);
    const digits = String(need(cmd, 'digits'));
    if (!/^[0-9*#]{1,32}$/.test(digits)) throw new Error('digits: 0-9, * and #, up to 32');
    const timeout = timeoutOf(cmd);
    await page.locator('#dtmf').waitFor({ state: 'visible', timeout });
    for (const d of digits) {
      await page.locator(`#dtmfpad button[data-dtmf="${d}"]`).click({ timeout });
    }
    return {};
  },

  async read_state(cmd) {
    const a = agentOf(cmd);
    return { state: await readState(a.page), console: a.consoleLines.slice() };
  },

  async cookies(cmd) {
    const a = agentOf(cmd);
    return { cookies: await a.context.cookies(a.baseUrl) };
  },

  async screenshot(cmd) {
    const { page } = agentOf(cmd);
    const path = need(cmd, 'path');
    await page.screenshot({ path, fullPage: true, timeout: timeoutOf(cmd) });
    return { path };
  },

  async drop_socket(cmd) {
    const { page } = agentOf(cmd);
    const dropped = await page.evaluate(() => (window.softphoneTest ? window.softphoneTest.dropSocket() : null));
    if (dropped === null) throw new Error('the page has no test hook: open it with ?test=1');
    if (!dropped) throw new Error('the page had no open socket');
    return {};
  },

  async close(cmd) {
    const a = agentOf(cmd);
    await closeAgent(a);
    return {};
  },
};

// Click `selector` when `attribute` still has `from`, then wait for it to flip.
async function toggle(cmd, selector, attribute, from) {
  const { page } = agentOf(cmd);
  const timeout = timeoutOf(cmd);
  const to = from === 'true' ? 'false' : 'true';
  const now = await attr(page, '#call', attribute);
  if (now !== from) {
    await waitAttr(page, '#call', attribute, to, timeout);
    return {};
  }
  // The page's notices are cleared first, so one that shows up now is this command's error.
  await page.evaluate(() => { document.getElementById('notice').hidden = true; });
  await clickEnabled(page, selector, timeout);
  const handle = await page.waitForFunction(
    ([a, v]) => {
      const notice = document.getElementById('notice');
      if (!notice.hidden) return { error: notice.textContent };
      return document.getElementById('call').getAttribute(a) === v ? { ok: true } : null;
    },
    [attribute, to],
    { timeout, polling: 50 },
  );
  const outcome = await handle.jsonValue();
  if (outcome.error) throw new Error(`the page says: ${outcome.error}`);
  return {};
}

async function closeAgent(a) {
  agents.delete(a.name);
  try {
    await a.context.close();
  } catch (e) {
    log(`closing ${a.name}: ${e.message}`);
  }
  rmSync(a.dir, { recursive: true, force: true });
}

// `quit`, stdin's end and SIGTERM usually come together: one shutdown, which removes every
// profile dir before exiting.
let quitting = null;
function quit() {
  if (!quitting) {
    quitting = (async () => {
      await Promise.all([...agents.values()].map(closeAgent));
      process.exit(0);
    })();
  }
  return quitting;
}

async function run(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    reply({ id: null, ok: false, error: `not JSON: ${e.message}` });
    return;
  }
  const id = cmd.id ?? null;
  if (cmd.cmd === 'quit') {
    reply({ id, ok: true });
    await quit();
    return;
  }
  const handler = commands[cmd.cmd];
  if (!handler) {
    reply({ id, ok: false, error: `unknown command "${cmd.cmd}"` });
    return;
  }
  // A hard bound on every command, whatever Playwright does.
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${cmd.cmd} took longer than ${timeoutOf(cmd) + 5000} ms`)), timeoutOf(cmd) + 5000);
  });
  try {
    const result = await Promise.race([handler(cmd), limit]);
    reply({ id, ok: true, ...result });
  } catch (e) {
    reply({ id, ok: false, error: String(e && e.message ? e.message : e) });
  } finally {
    clearTimeout(timer);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim()) run(line);
});
// The test process went away: nothing may outlive it.
rl.on('close', () => {
  quit();
});
process.on('SIGTERM', () => {
  quit();
});
reply({ id: 0, ok: true, ready: true, playwright: 'playwright-core', chromium: CHROMIUM });
