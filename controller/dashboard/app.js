// The Fleetwave dashboard: signs in with an API token and uses the controller's API (the same one as the CLI).
import { views } from './views.js';

const TOKEN_KEY = 'fleetwave-token';

/** Builds an element: h('a', { href: '#/x' }, 'text', child…). Text is always text (never parsed as HTML). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const token = () => sessionStorage.getItem(TOKEN_KEY);

/** A JSON call to the API; an error carries the API's code and message. */
export async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      authorization: `Bearer ${token()}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (res.status === 401) {
    signOut('Your token was not accepted: sign in again.');
    throw new Error('not signed in');
  }
  if (!res.ok) throw new Error(data?.error ? `${data.error.code}: ${data.error.message}` : `HTTP ${res.status}`);
  return data;
}

/** Server-sent events over fetch (EventSource cannot send the Authorization header); reconnects with Last-Event-ID. */
function subscribe(path, onEvent, onState) {
  let stopped = false;
  let lastId = '';
  const ctrl = new AbortController();
  void (async () => {
    while (!stopped) {
      try {
        const res = await fetch(path, {
          headers: {
            authorization: `Bearer ${token()}`,
            accept: 'text/event-stream',
            ...(lastId && { 'last-event-id': lastId }),
          },
          signal: ctrl.signal,
        });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        onState(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i = buf.indexOf('\n\n');
          while (i >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = block
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).trim())
              .join('\n');
            const id = block.split('\n').find((l) => l.startsWith('id:'));
            if (id) lastId = id.slice(3).trim();
            if (data) onEvent(JSON.parse(data));
            i = buf.indexOf('\n\n');
          }
        }
      } catch {
        if (stopped) return;
      }
      onState(false);
      await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  return () => {
    stopped = true;
    ctrl.abort();
  };
}

const live = document.getElementById('live');
const view = document.getElementById('view');
let unsubscribe;
let refreshTimer;
let current;

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  unsubscribe?.();
  unsubscribe = undefined;
  renderLogin(message);
}

function renderLogin(message) {
  document.getElementById('signout').hidden = true;
  live.textContent = 'signed out';
  const input = h('input', {
    id: 'token',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    size: 40,
  });
  const error = h('p', { class: 'error', role: 'alert' }, message ?? '');
  const form = h(
    'form',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        const value = input.value.trim();
        const res = await fetch('/api/devices', { headers: { authorization: `Bearer ${value}` } }).catch(() => null);
        if (!res?.ok) {
          error.textContent = `Sign-in failed (${res ? `HTTP ${res.status}` : 'the controller did not answer'}). Use a token from "fleetwave token create" or the controller's admin-token file.`;
          return;
        }
        sessionStorage.setItem(TOKEN_KEY, value);
        start();
      },
    },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Sign in')),
    error,
  );
  view.replaceChildren(form);
  input.focus();
}

/**
 * Renders the page of the current hash (#/fleet, #/device/<id>, #/rollouts, #/rollout/<id>, #/telemetry, #/events,
 * #/cluster).
 */
async function route(focus = true) {
  if (!token()) return renderLogin();
  const [, page = 'fleet', ...rest] = (location.hash || '#/fleet').split('/');
  const arg = rest.map(decodeURIComponent).join('/');
  for (const a of document.querySelectorAll('header nav a')) {
    const target = a.getAttribute('href').split('/')[1];
    if (target === page || (page === 'device' && target === 'fleet') || (page === 'rollout' && target === 'rollouts')) {
      a.setAttribute('aria-current', 'page');
    } else a.removeAttribute('aria-current');
  }
  const render = views[page] ?? views.fleet;
  const key = `${page}/${arg}`;
  const hashAtStart = location.hash;
  try {
    const content = await render(arg, { h, api, refresh: () => route(false) });
    if (location.hash !== hashAtStart) return; // the operator moved on meanwhile
    view.replaceChildren(content);
    // after a navigation, focus moves to the new page (not on the first load: the skip link stays first)
    if (focus && current !== undefined && current !== key) view.focus();
    current = key;
  } catch (err) {
    if (err.message !== 'not signed in') view.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message));
  }
}

/** Re-renders the current page soon (coalescing bursts of events), unless the operator is typing in a form. */
function soon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const active = document.activeElement;
    if (active && (active.tagName === 'TEXTAREA' || active.tagName === 'INPUT' || active.tagName === 'SELECT')) return;
    void route(false);
  }, 300);
}

function start() {
  document.getElementById('signout').hidden = false;
  live.textContent = 'connecting…';
  unsubscribe?.();
  unsubscribe = subscribe('/api/rollouts/events', soon, (up) => {
    live.textContent = up ? 'live' : 'reconnecting…';
  });
  void route();
}

document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', () => route());
// presence and health change without rollout events: the fleet and device pages also refresh every 5 s
setInterval(() => {
  if (token() && /^#\/(fleet|device|telemetry)/.test(location.hash || '#/fleet')) soon();
}, 5000);
if (token()) start();
else renderLogin();
