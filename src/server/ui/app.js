// sluice usage dashboard: fetches GET /usage/report and draws it. Plain DOM and SVG, no
// dependencies. Every value from the report is written as text (textContent, text nodes,
// attributes), never parsed as HTML: key and model names come from the config. The Keys view
// (`#keys`) is keys.js's; this script only steps aside while it shows.
'use strict';

(function () {
  const RANGES = ['1h', '24h', '7d', '30d'];
  const REFRESH_MS = 30000;
  const HOUR = 3600e3;
  const SVG = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f',
    '#edc948', '#b07aa1', '#ff9da7', '#9c755f'];
  const OTHER_COLOR = '#bab0ac';
  const MAX_SERIES = 8;

  let since = rangeFromHash() || '24h';
  let report = null;
  let seq = 0;
  const sorts = {};

  // ---- small DOM helpers ----

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setText(id, text) { $(id).textContent = text; }

  // ---- formatting ----

  const intFmt = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => intFmt.format(Math.round(n || 0));

  function fmtCompact(n) {
    const a = Math.abs(n);
    if (a >= 1e9) return trim(n / 1e9) + 'G';
    if (a >= 1e6) return trim(n / 1e6) + 'M';
    if (a >= 1e3) return trim(n / 1e3) + 'k';
    return trim(n);
  }

  function trim(n) { return String(Number(n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2))); }

  function fmtUsd(v) {
    v = v || 0;
    const digits = v === 0 || Math.abs(v) >= 1 ? 2 : 4;
    return '$' + v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // Axis ticks: short, no trailing zeros.
  function fmtUsdTick(v) {
    return '$' + (v >= 1000 ? fmtCompact(v) : String(Number(v.toPrecision(3))));
  }

  function fmtPct(part, whole) {
    if (!whole) return '0%';
    const p = (100 * part) / whole;
    return (p === 0 || p >= 10 ? p.toFixed(0) : p.toFixed(1)) + '%';
  }

  function fmtMs(v) {
    if (v === null || v === undefined) return '—';
    return v >= 10000 ? (v / 1000).toFixed(1) + ' s' : fmtInt(v) + ' ms';
  }

  function fmtTime(ms) {
    return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
  }

  const tokens = (r) => (r.prompt_tokens || 0) + (r.completion_tokens || 0);
  const label = (v, none) => (v === null || v === undefined || v === '' ? none : String(v));

  // ---- loading ----

  function rangeFromHash() {
    const m = /since=([0-9a-z]+)/.exec(location.hash);
    return m && RANGES.includes(m[1]) ? m[1] : null;
  }

  const keysView = () => location.hash === '#keys';

  async function load() {
    if (keysView()) return;
    const mine = ++seq;
    let resp;
    let body = null;
    try {
      resp = await fetch('/usage/report?since=' + encodeURIComponent(since), {
        credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' },
      });
      body = await resp.json().catch(() => null);
    } catch (e) {
      if (mine === seq) showError('Cannot reach sluice (' + e.message + '). Retrying every 30 s.');
      return;
    }
    if (mine !== seq || keysView()) return;
    if (resp.status === 401) return showSignedOut();
    const code = body && body.error && body.error.code;
    if (resp.status === 404 && code === 'usage_off') return showLedgerOff();
    if (!resp.ok || !body || !body.totals) {
      const msg = (body && body.error && body.error.message) || 'HTTP ' + resp.status;
      return showError('The report failed: ' + msg);
    }
    report = body;
    render();
  }

  function setState(state) { document.body.dataset.state = state; }

  function showNotice(kind, ...children) {
    const n = $('notice');
    n.className = 'notice ' + kind;
    n.replaceChildren(...children);
    n.hidden = false;
  }

  function showError(text) {
    setState('error');
    setText('status', 'Not updated');
    showNotice('error', el('p', '', text));
  }

  function showSignedOut() {
    setState('signed-out');
    $('content').hidden = true;
    setText('status', '');
    const a = el('a', '', 'Sign in again');
    a.href = '/ui/';
    showNotice('error', el('p', '', 'The admin token is no longer accepted. ', a));
  }

  function showLedgerOff() {
    setState('off');
    $('content').hidden = true;
    setText('status', '');
    showNotice('info',
      el('h2', '', 'The usage ledger is off'),
      el('p', '', 'This dashboard draws the usage ledger, which records one line per request. ' +
        'Turn it on with a ', el('code', '', 'usage:'), ' section in the config and restart sluice:'),
      el('pre', '', 'usage:\n  path: /var/lib/sluice/usage.db   # SQLite; default $STATE_DIRECTORY/usage.db\n  retention: 90d'));
  }

  // ---- rendering ----

  function render() {
    const r = report;
    $('notice').hidden = true;
    $('content').hidden = false;
    renderTotals(r.totals);
    renderCharts(r);
    renderGroupTable('table-keys', 'Key', r.by_key || [], 'key', '(no key)');
    renderGroupTable('table-models', 'Model', r.by_model || [], 'model', '(no model)');
    renderLatency(r.latency || []);
    renderBudgets(r.budgets || []);
    renderGuardrails(r.guardrails || []);
    renderFailures(r.failures || []);
    setText('status', 'Updated ' + fmtTime(r.now_ms) + ' UTC · every 30 s');
    setState('ready');
  }

  function renderTotals(t) {
    setText('total-requests', fmtInt(t.requests));
    setText('total-requests-sub', 'last ' + since);
    setText('total-error-rate', fmtPct(t.errors, t.requests));
    setText('total-errors', fmtInt(t.errors) + ' failed');
    setText('total-tokens', fmtInt(tokens(t)));
    setText('total-tokens-sub', fmtInt(t.prompt_tokens) + ' prompt · ' + fmtInt(t.completion_tokens) + ' completion');
    setText('total-spend', fmtUsd(t.cost_usd));
    setText('total-spend-sub', t.requests ? fmtUsd(t.cost_usd / t.requests) + ' per request' : '');
  }

  // Buckets: an hour each for up to a week, wider for longer ranges (at most ~200 bars).
  function buckets(r) {
    const span = Math.max(r.now_ms - r.since_ms, HOUR);
    const hours = [1, 2, 3, 6, 12, 24].find((h) => span / (h * HOUR) <= 200) || 24;
    const size = hours * HOUR;
    const start = Math.floor(r.since_ms / size) * size;
    const count = Math.floor((r.now_ms - start) / size) + 1;
    return { size, start, count, hours };
  }

  function renderCharts(r) {
    const b = buckets(r);
    setText('bucket-note', b.hours === 1 ? 'per hour (UTC)' : 'per ' + b.hours + ' hours (UTC)');
    for (const [field, legendId, none] of [['key', 'legend-key', '(no key)'], ['model', 'legend-model', '(no model)']]) {
      const rows = r['by_hour_' + field] || [];
      const series = seriesOf(rows, field, none, b);
      drawLegend($(legendId), series);
      drawStacked($('chart-spend-' + field), b, series, 'cost_usd', fmtUsdTick, fmtUsd);
      drawStacked($('chart-tokens-' + field), b, series, 'tokens', fmtCompact, fmtInt);
    }
  }

  // One series per group (the biggest spenders first; past MAX_SERIES they share "other"),
  // each with per-bucket spend (cost_usd) and tokens.
  function seriesOf(rows, field, none, b) {
    const blank = (name) => ({ name, sumCost: 0, sumTokens: 0, cost_usd: new Array(b.count).fill(0), tokens: new Array(b.count).fill(0) });
    const byName = new Map();
    for (const row of rows) {
      const t = Date.parse(row.hour);
      if (Number.isNaN(t)) continue;
      const name = label(row[field], none);
      if (!byName.has(name)) byName.set(name, blank(name));
      const s = byName.get(name);
      const i = Math.min(b.count - 1, Math.max(0, Math.floor((t - b.start) / b.size)));
      s.cost_usd[i] += row.cost_usd || 0;
      s.tokens[i] += tokens(row);
      s.sumCost += row.cost_usd || 0;
      s.sumTokens += tokens(row);
    }
    let all = [...byName.values()].sort((x, y) =>
      y.sumCost - x.sumCost || y.sumTokens - x.sumTokens || compare(x.name, y.name));
    if (all.length > MAX_SERIES) {
      const rest = all.slice(MAX_SERIES - 1);
      const other = blank('other (' + rest.length + ')');
      other.color = OTHER_COLOR;
      for (const s of rest) {
        s.cost_usd.forEach((v, i) => { other.cost_usd[i] += v; });
        s.tokens.forEach((v, i) => { other.tokens[i] += v; });
      }
      all = all.slice(0, MAX_SERIES - 1).concat([other]);
    }
    all.forEach((s, i) => { s.color = s.color || PALETTE[i % PALETTE.length]; });
    return all;
  }

  function drawLegend(ul, series) {
    ul.replaceChildren(...series.map((s) => {
      const sw = svg('svg', { width: 10, height: 10, 'aria-hidden': 'true' });
      sw.append(svg('rect', { width: 10, height: 10, rx: 2, fill: s.color }));
      return el('li', '', sw, s.name);
    }));
  }

  function niceStep(max, ticks) {
    const raw = max / ticks;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  }

  function bucketLabel(b, i, full) {
    const iso = new Date(b.start + i * b.size).toISOString();
    const day = iso.slice(5, 10);
    const hour = iso.slice(11, 16);
    if (full) return b.hours === 24 ? day : day + ' ' + hour;
    return hour === '00:00' ? day : hour;
  }

  // Hours between axis labels: a round number that leaves room for each label.
  function labelStep(b, width) {
    const fit = Math.max(1, Math.floor(width / 64));
    const steps = [1, 2, 3, 4, 6, 12, 24, 48, 72, 168, 336].filter((h) => h % b.hours === 0);
    return steps.find((h) => (b.count * b.hours) / h <= fit) || steps[steps.length - 1];
  }

  // Stacked bars: one bar per bucket, one segment per series, a tooltip per segment.
  function drawStacked(box, b, series, metric, fmtTick, fmt) {
    const W = Math.max(box.clientWidth || 0, 280);
    const H = 200;
    const m = { l: 56, r: 8, t: 8, b: 24 };
    const iw = W - m.l - m.r;
    const ih = H - m.t - m.b;
    const sums = new Array(b.count).fill(0);
    for (const s of series) s[metric].forEach((v, i) => { sums[i] += v; });
    const max = Math.max(...sums, 0);
    const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart-svg' });
    root.append(svg('title', {}, box.parentElement.querySelector('figcaption').textContent +
      ': ' + fmt(sums.reduce((a, v) => a + v, 0)) + ' in total'));
    const step = max > 0 ? niceStep(max, 4) : 1;
    const top = max > 0 ? Math.ceil(max / step) * step : 1;
    const y = (v) => m.t + ih - (v / top) * ih;
    for (let v = 0; v <= top + step / 2; v += step) {
      root.append(svg('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: v === 0 ? 'axis' : 'grid' }));
      root.append(svg('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmtTick(v)));
    }
    const slot = iw / b.count;
    const bw = Math.max(1, slot * 0.8);
    const every = labelStep(b, iw);
    for (let i = 0; i < b.count; i++) {
      const x = m.l + i * slot + (slot - bw) / 2;
      let acc = 0;
      for (const s of series) {
        const v = s[metric][i];
        if (!v) continue;
        const rect = svg('rect', { x, width: bw, y: y(acc + v), height: Math.max(0.5, y(acc) - y(acc + v)), fill: s.color });
        rect.append(svg('title', {}, s.name + ' · ' + bucketLabel(b, i, true) + ' UTC · ' + fmt(v)));
        root.append(rect);
        acc += v;
      }
      if (((b.start + i * b.size) / HOUR) % every === 0) {
        root.append(svg('text', { x: m.l + i * slot + slot / 2, y: H - 6, 'text-anchor': 'middle', class: 'tick' }, bucketLabel(b, i, false)));
      }
    }
    if (max === 0) {
      root.append(svg('text', { x: m.l + iw / 2, y: m.t + ih / 2, 'text-anchor': 'middle', class: 'empty' }, 'nothing in this range'));
    }
    box.replaceChildren(root);
  }

  // ---- tables ----

  // cols: [title, value(row), format(value), class]; groups: optional [title, span] above.
  function table(id, cols, rows, empty, defaultSort, groups) {
    const t = $(id);
    const sort = sorts[id] || (sorts[id] = defaultSort);
    const sorted = sort ? [...rows].sort((a, b) => compare(cols[sort.col][1](a), cols[sort.col][1](b)) * sort.dir) : rows;
    const head = el('tr', '', ...cols.map(([title, , , cls], i) => {
      const th = el('th', cls || '', title);
      th.scope = 'col';
      if (sort) {
        const btn = el('button', 'sort', title + (sort.col === i ? (sort.dir < 0 ? ' ▾' : ' ▴') : ''));
        btn.type = 'button';
        btn.addEventListener('click', () => {
          sorts[id] = { col: i, dir: sort.col === i ? -sort.dir : (cls === 'num' ? -1 : 1) };
          render();
        });
        th.replaceChildren(btn);
        if (sort.col === i) th.setAttribute('aria-sort', sort.dir < 0 ? 'descending' : 'ascending');
      }
      return th;
    }));
    const body = sorted.length
      ? sorted.map((row) => el('tr', '', ...cols.map(([, get, fmt, cls]) => el('td', cls || '', fmt ? fmt(get(row)) : get(row)))))
      : [el('tr', '', (() => { const td = el('td', 'empty', empty); td.colSpan = cols.length; return td; })())];
    const top = groups ? [el('tr', 'groups', ...groups.map(([title, span]) => {
      const th = el('th', title ? 'group' : '', title);
      th.colSpan = span;
      return th;
    }))] : [];
    t.replaceChildren(el('thead', '', ...top, head), el('tbody', '', ...body));
  }

  function compare(a, b) {
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a).localeCompare(String(b));
  }

  function renderGroupTable(id, title, rows, field, none) {
    table(id, [
      [title, (r) => label(r[field], none)],
      ['Requests', (r) => r.requests || 0, fmtInt, 'num'],
      ['Errors', (r) => r.errors || 0, fmtInt, 'num'],
      ['Error rate', (r) => (r.requests ? r.errors / r.requests : 0), (v) => fmtPct(v, 1), 'num'],
      ['Prompt tokens', (r) => r.prompt_tokens || 0, fmtInt, 'num'],
      ['Completion tokens', (r) => r.completion_tokens || 0, fmtInt, 'num'],
      ['Cost', (r) => r.cost_usd || 0, fmtUsd, 'num'],
    ], rows, 'No requests in this range.', { col: 6, dir: -1 });
  }

  function renderLatency(rows) {
    const pct = (obj, p) => (obj ? obj[p] : null);
    const num = (v) => (v === null || v === undefined ? -1 : v);
    table('table-latency', [
      ['Model', (r) => (r.model === null || r.model === undefined ? 'All models' : String(r.model))],
      ['Requests', (r) => r.requests || 0, fmtInt, 'num'],
      ['p50', (r) => num(pct(r.latency_ms, 'p50')), fmtLat, 'num'],
      ['p95', (r) => num(pct(r.latency_ms, 'p95')), fmtLat, 'num'],
      ['p99', (r) => num(pct(r.latency_ms, 'p99')), fmtLat, 'num'],
      ['p50', (r) => num(pct(r.ttft_ms, 'p50')), fmtLat, 'num'],
      ['p95', (r) => num(pct(r.ttft_ms, 'p95')), fmtLat, 'num'],
      ['p99', (r) => num(pct(r.ttft_ms, 'p99')), fmtLat, 'num'],
    ], rows, 'No answered requests in this range.', null,
    [['', 2], ['Latency', 3], ['Time to first token (streams)', 3]]);
  }

  function fmtLat(v) { return v < 0 ? '—' : fmtMs(v); }

  function renderFailures(rows) {
    table('table-failures', [
      ['Time (UTC)', (r) => fmtTime(r.ts_ms)],
      ['Key', (r) => label(r.key, '—')],
      ['Model', (r) => label(r.model, '—')],
      ['Provider', (r) => label(r.provider, '—')],
      ['API', (r) => label(r.api, '—') + (r.stream ? ' · stream' : '')],
      ['Status', (r) => r.status, String, 'num'],
      ['Error', (r) => label(r.error, '—')],
      ['Limit', (r) => label(r.limit, '—')],
      ['Latency', (r) => r.latency_ms, fmtMs, 'num'],
      ['Attempts', (r) => r.attempts, String, 'num'],
      ['Request id', (r) => label(r.request_id, '—'), null, 'mono'],
    ], rows, 'No failed requests in this range.', null);
  }

  // ---- budgets and guardrails: labelled horizontal bars ----

  function bar(fraction, cls) {
    const s = svg('svg', { class: 'bar', viewBox: '0 0 100 8', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    s.append(svg('rect', { width: 100, height: 8, rx: 2, class: 'bar-bg' }));
    const w = Math.max(0, Math.min(1, fraction)) * 100;
    if (w > 0) s.append(svg('rect', { width: Math.max(w, 1), height: 8, rx: 2, class: 'bar-fill ' + (cls || '') }));
    return s;
  }

  function renderBudgets(rows) {
    const box = $('budgets');
    if (!rows.length) return box.replaceChildren(el('p', 'empty', 'No spend budgets configured.'));
    box.replaceChildren(...rows.map((b) => {
      const frac = b.budget_usd > 0 ? b.spent_usd / b.budget_usd : 0;
      const cls = frac >= 1 ? 'over' : frac >= 0.8 ? 'warn' : 'ok';
      const row = el('div', 'meter budget ' + cls,
        el('span', 'meter-name', label(b.key, '(no key)')),
        el('span', 'meter-period', b.period),
        bar(frac, cls),
        el('span', 'meter-value', fmtUsd(b.spent_usd) + ' of ' + fmtUsd(b.budget_usd) + ' · ' + fmtPct(b.spent_usd, b.budget_usd)));
      row.dataset.key = label(b.key, '');
      return row;
    }));
  }

  function renderGuardrails(rows) {
    const box = $('guardrails');
    if (!rows.length) return box.replaceChildren(el('p', 'empty', 'No guardrail actions in this range.'));
    const max = Math.max(...rows.map((g) => g.count), 1);
    box.replaceChildren(...[...rows].sort((a, b) => b.count - a.count).map((g) => {
      const kinds = Object.keys(g.kinds || {}).join(', ');
      const row = el('div', 'meter guardrail',
        el('span', 'meter-name', String(g.guardrail)),
        el('span', 'meter-period', [g.direction, g.action].filter(Boolean).join(' · ')),
        bar(g.count / max, 'ok'),
        el('span', 'meter-value', fmtInt(g.count)));
      if (kinds) row.title = kinds;
      return row;
    }));
  }

  // ---- controls ----

  function selectRange(value) {
    since = value;
    for (const b of document.querySelectorAll('#range button')) {
      b.setAttribute('aria-pressed', String(b.dataset.since === since));
    }
    setText('status', 'Loading…');
    if (document.body.dataset.state === 'ready') setState('loading');
    load();
  }

  // The usage view or the Keys view, as the URL's hash says.
  function showView() {
    const keys = keysView();
    for (const b of document.querySelectorAll('#views button')) {
      b.setAttribute('aria-pressed', String((b.dataset.view === 'keys') === keys));
    }
    $('range').hidden = keys;
    if (!keys) return selectRange(rangeFromHash() || '24h');
    seq++;
    $('content').hidden = true;
    $('notice').hidden = true;
    setText('status', '');
  }

  function start() {
    for (const b of document.querySelectorAll('#range button')) {
      b.addEventListener('click', () => {
        if (location.hash !== '#since=' + b.dataset.since) location.hash = 'since=' + b.dataset.since;
        else selectRange(b.dataset.since);
      });
    }
    for (const b of document.querySelectorAll('#views button')) {
      b.addEventListener('click', () => {
        location.hash = b.dataset.view === 'keys' ? 'keys' : 'since=' + since;
      });
    }
    window.addEventListener('hashchange', showView);
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (report) renderCharts(report); }, 150);
    });
    setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) load(); });
    showView();
  }

  start();
}());
