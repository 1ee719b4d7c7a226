// sluice dashboard, Keys view (`#keys`): every gateway key (GET /keys), and managed keys
// created, rotated and revoked from the page. Every value is written as text (textContent,
// text nodes), never parsed as HTML: names, teams and models are user input. Changes carry
// the X-Sluice-Dashboard header, without which the admin listener ignores the session cookie
// for anything but GET. A new secret is shown once, in its box, and dropped when the box is
// closed or the view left.
'use strict';

(function () {
  const NAME = /^[A-Za-z0-9._-]{1,64}$/;

  let seq = 0;
  let confirming = null; // the key whose revocation awaits a second click
  let keys = [];

  // ---- small DOM helpers ----

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function button(text, cls, onClick) {
    const b = el('button', cls, text);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }

  const isShown = () => location.hash === '#keys';
  const setState = (state) => { $('keys-view').dataset.state = state; };

  function fmtDate(secs) {
    if (secs === null || secs === undefined) return '—';
    return new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  }

  // ---- the admin API ----

  // One call; never throws. `status` is 0 when sluice cannot be reached.
  async function call(method, path, body) {
    const opts = { method, credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } };
    if (method !== 'GET') {
      opts.headers['x-sluice-dashboard'] = '1';
      if (body !== undefined) {
        opts.headers['content-type'] = 'application/json';
        opts.body = JSON.stringify(body);
      }
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      return { status: 0, ok: false, body: null, message: 'Cannot reach sluice (' + e.message + ').' };
    }
    const json = await resp.json().catch(() => null);
    const err = (json && json.error) || {};
    const message = (err.param ? err.param + ': ' : '') + (err.message || 'HTTP ' + resp.status);
    return { status: resp.status, ok: resp.ok, body: json, code: err.code, message };
  }

  const keyPath = (name) => '/keys/' + encodeURIComponent(name);

  // ---- loading ----

  async function load() {
    const mine = ++seq;
    const r = await call('GET', '/keys');
    if (mine !== seq || !isShown()) return;
    if (r.status === 401) return signedOut();
    if (!r.ok || !r.body || !Array.isArray(r.body.data)) {
      return problem('The key list failed: ' + r.message);
    }
    keys = r.body.data;
    render(r.body.managed_keys !== false);
  }

  function showNotice(kind, ...children) {
    const n = $('keys-notice');
    n.className = 'notice ' + kind;
    n.replaceChildren(...children);
    n.hidden = false;
  }

  function problem(text) {
    setState('error');
    showNotice('error', el('p', '', text));
  }

  function signedOut() {
    setState('signed-out');
    $('key-create-panel').hidden = true;
    const a = el('a', '', 'Sign in again');
    a.href = '/ui/';
    showNotice('error', el('p', '', 'The admin token is no longer accepted. ', a));
  }

  // ---- rendering ----

  function render(managed) {
    $('keys-notice').hidden = true;
    $('key-create-panel').hidden = !managed;
    if (!managed) {
      showNotice('info',
        el('h2', '', 'Managed keys need the usage store'),
        el('p', '', 'The keys below come from the config file. To create, rotate and revoke keys ' +
          'here, add a ', el('code', '', 'usage:'), ' section to the config and restart sluice; ' +
          'managed keys are kept in its database:'),
        el('pre', '', 'usage:\n  path: /var/lib/sluice/usage.db   # SQLite; default $STATE_DIRECTORY/usage.db'));
    }
    const managedCount = keys.filter((k) => k.source === 'managed').length;
    $('keys-count').textContent = keys.length + (keys.length === 1 ? ' key' : ' keys') +
      ' · ' + managedCount + ' managed';
    renderTable();
    setState(managed ? 'ready' : 'off');
  }

  const COLUMNS = ['Name', 'Source', 'Status', 'Prefix', 'Models', 'Team', 'Expires', 'Created', ''];

  function renderTable() {
    const head = el('tr', '', ...COLUMNS.map((c) => {
      const th = el('th', '', c);
      th.scope = 'col';
      return th;
    }));
    const body = keys.length ? keys.map(row) : [(() => {
      const td = el('td', 'empty', 'No keys.');
      td.colSpan = COLUMNS.length;
      return el('tr', '', td);
    })()];
    $('table-gateway-keys').replaceChildren(el('thead', '', head), el('tbody', '', ...body));
  }

  function row(k) {
    const meta = k.metadata || {};
    const models = Array.isArray(k.models) && k.models.length ? k.models.join(', ') : '*';
    const status = el('td', 'key-status ' + String(k.status), String(k.status));
    if (k.previous_valid_until) {
      status.append(el('span', 'sub', 'previous secret until ' + fmtDate(k.previous_valid_until)));
    }
    if (k.revoked_at) status.append(el('span', 'sub', fmtDate(k.revoked_at)));
    const tr = el('tr', '',
      el('td', 'key-name', String(k.name)),
      el('td', '', String(k.source)),
      status,
      el('td', 'mono', k.prefix ? k.prefix + '…' : '—'),
      el('td', '', models),
      el('td', 'key-team', meta.team === undefined || meta.team === null ? '—' : String(meta.team)),
      el('td', '', k.source === 'managed' ? fmtDate(k.expires_at) : '—'),
      el('td', '', k.source === 'managed' ? fmtDate(k.created_at) : '—'),
      el('td', 'actions', el('div', 'buttons', ...actions(k))));
    tr.dataset.key = String(k.name);
    tr.dataset.source = String(k.source);
    return tr;
  }

  function actions(k) {
    if (k.source !== 'managed') return [el('span', 'dim', 'read-only')];
    if (k.status === 'revoked') return [];
    if (confirming === k.name) {
      return [
        el('span', 'confirm', 'Revoke ' + k.name + '? It stops working at once. '),
        button('Yes, revoke', 'danger revoke-confirm', () => revoke(k.name)),
        button('Cancel', 'plain revoke-cancel', () => { confirming = null; renderTable(); }),
      ];
    }
    const out = [];
    if (k.status === 'active') out.push(button('Rotate', 'plain rotate', () => rotate(k.name)));
    out.push(button('Revoke', 'plain revoke', () => { confirming = k.name; renderTable(); }));
    return out;
  }

  // ---- the secret, shown once ----

  function showSecret(title, secret, note) {
    $('key-secret-title').textContent = title;
    $('key-secret-value').textContent = secret;
    $('key-secret-note').textContent = note || '';
    $('key-secret-hint').textContent = 'Copy selects the key and puts it on the clipboard where ' +
      'the browser allows; otherwise press Ctrl+C (⌘C).';
    $('key-secret').hidden = false;
    $('key-secret').scrollIntoView({ block: 'nearest' });
    $('key-secret-copy').focus();
  }

  function hideSecret() {
    $('key-secret-value').textContent = '';
    $('key-secret').hidden = true;
  }

  function copySecret() {
    const code = $('key-secret-value');
    const range = document.createRange();
    range.selectNodeContents(code);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    const hint = $('key-secret-hint');
    hint.textContent = 'Selected: press Ctrl+C (⌘C) to copy it.';
    // The clipboard API only exists on secure origins (https, localhost) and may be refused.
    if (!navigator.clipboard || !window.isSecureContext) return;
    navigator.clipboard.writeText(code.textContent)
      .then(() => { hint.textContent = 'Copied to the clipboard.'; })
      .catch(() => {});
  }

  // ---- changes ----

  function formError(text) {
    const p = $('key-form-error');
    p.textContent = text;
    p.hidden = !text;
  }

  async function create(ev) {
    ev.preventDefault();
    const form = ev.target;
    const field = (n) => form.elements[n].value.trim();
    const name = field('name');
    if (!NAME.test(name)) {
      return formError('name: must be 1 to 64 letters, digits, ".", "_" or "-".');
    }
    const body = { name };
    if (field('models')) body.models = field('models');
    if (field('expires')) body.expires = field('expires');
    if (field('team')) body.metadata = { team: field('team') };
    formError('');
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    const r = await call('POST', '/keys', body);
    submit.disabled = false;
    if (r.status === 401) return signedOut();
    if (r.status !== 201 || !r.body || !r.body.key) return formError(r.message);
    form.reset();
    showSecret('Key ' + r.body.name + ' created', r.body.key,
      r.body.expires_at ? 'It expires ' + fmtDate(r.body.expires_at) + '.' : 'It does not expire.');
    load();
  }

  async function rotate(name) {
    confirming = null;
    const r = await call('POST', keyPath(name) + '/rotate', {});
    if (r.status === 401) return signedOut();
    if (!r.ok || !r.body || !r.body.key) return problem('Rotating ' + name + ' failed: ' + r.message);
    const until = r.body.previous_valid_until;
    showSecret('New secret for ' + name, r.body.key,
      until ? 'The previous secret keeps working until ' + fmtDate(until) + '.' : 'The previous secret no longer works.');
    load();
  }

  async function revoke(name) {
    confirming = null;
    const r = await call('DELETE', keyPath(name));
    if (r.status === 401) return signedOut();
    if (!r.ok) return problem('Revoking ' + name + ' failed: ' + r.message);
    load();
  }

  // ---- the view ----

  function showView() {
    const shown = isShown();
    $('keys-view').hidden = !shown;
    confirming = null;
    hideSecret();
    if (!shown) {
      seq++;
      return setState('idle');
    }
    setState('loading');
    load();
  }

  $('key-create').addEventListener('submit', create);
  $('key-secret-copy').addEventListener('click', copySecret);
  $('key-secret-done').addEventListener('click', hideSecret);
  window.addEventListener('hashchange', showView);
  showView();
}());
