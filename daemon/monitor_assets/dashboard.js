// ferry monitor dashboard: polls the daemon's JSON API (docs/monitor.md) every 2 s and updates
// the tables in place. Plain ES2020, no dependencies (hubs may have no internet).
// API strings only ever reach the DOM through textContent / setAttribute, never innerHTML.
'use strict';
(() => {
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // Token: when [monitor] token is set, the daemon wants `Authorization: Bearer TOKEN`. A browser
  // navigation cannot carry that header, so the operator opens the page as `/?token=TOKEN`: the
  // daemon serves the page (static, no data in it) to whoever holds the token in the query, and
  // the page then sends the token as a Bearer header on its own API fetches instead of putting it
  // in more URLs (it then stays out of API request lines and logs). The token is read once here and
  // never written into the page.
  const TOKEN = new URLSearchParams(window.location.search).get('token') || '';
  const HEADERS = TOKEN ? { Authorization: 'Bearer ' + TOKEN } : {};

  const $ = (id) => document.getElementById(id);
  let lastOk = 0; // Date.now() of the last successful refresh

  // ---- formatting -------------------------------------------------------------------------------
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min';
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h';
    return Math.floor(h / 24) + ' d';
  }
  // An age relative to the daemon's clock (now_ms), so browser clock skew does not matter.
  const fmtAgo = (t, now) => (isNum(t) && t > 0 ? fmtDuration(now - t) + ' ago' : 'never');
  const fmtAge = (t, now) => (isNum(t) && t > 0 ? fmtDuration(now - t) : '—');
  const fmtCount = (v) => (isNum(v) ? v.toLocaleString('en-US') : '—');

  function fmtBytes(v) {
    if (!isNum(v)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 || v >= 100 ? Math.round(v) : v.toFixed(1)) + ' ' + units[i];
  }
  function fmtRate(v) {
    if (!isNum(v)) return '—';
    return (v >= 100 ? Math.round(v) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '')) + '/s';
  }
  function fmtRejected(map) {
    if (!map || typeof map !== 'object') return '—';
    const parts = Object.keys(map).sort().filter((k) => map[k]).map((k) => k + '\u00a0' + map[k]); // no break inside an entry
    return parts.length ? parts.join(', ') : '—';
  }
  function rejectedTotal(map) {
    if (!map || typeof map !== 'object') return 0;
    return Object.values(map).reduce((a, b) => a + (isNum(b) ? b : 0), 0);
  }

  // ---- DOM helpers ------------------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setText(e, text) { if (e.textContent !== text) e.textContent = text; }

  function makeBadge() { return el('span', 'badge offline', 'offline'); }
  function setBadge(b, online) {
    b.className = online ? 'badge online' : 'badge offline';
    setText(b, online ? 'online' : 'offline');
  }

  // Sparkline: an inline SVG polyline over the 30 buckets of `rate`, plus the current ops/s.
  const SPARK_W = 80, SPARK_H = 20;
  function makeSpark() {
    const wrap = el('span', 'spark');
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('width', SPARK_W);
    svg.setAttribute('height', SPARK_H);
    svg.setAttribute('viewBox', `0 0 ${SPARK_W} ${SPARK_H}`);
    svg.setAttribute('aria-hidden', 'true');
    const line = document.createElementNS(SVG_NS, 'polyline');
    svg.appendChild(line);
    wrap.appendChild(svg);
    wrap.appendChild(el('span', 'rate', '—'));
    return wrap;
  }
  function setSpark(wrap, rate) {
    const vals = Array.isArray(rate) ? rate.map((v) => (isNum(v) && v > 0 ? v : 0)) : [];
    const max = Math.max(...vals, 0);
    const n = vals.length;
    const pts = vals.map((v, i) => {
      const x = n > 1 ? (i * (SPARK_W - 2)) / (n - 1) + 1 : SPARK_W / 2;
      const y = SPARK_H - 2 - (max > 0 ? (v / max) * (SPARK_H - 4) : 0);
      return x.toFixed(1) + ',' + y.toFixed(1);
    }).join(' ');
    const line = wrap.querySelector('polyline');
    if (line.getAttribute('points') !== pts) line.setAttribute('points', pts);
    const cur = n ? vals[n - 1] : null;
    setText(wrap.lastChild, fmtRate(cur));
    wrap.title = n ? 'peak ' + fmtRate(max) + ' over the last 15 min' : 'no data';
  }

  // Keyed table bodies: rows are created once per name, updated in place, reordered by moving the
  // existing nodes, and removed when the name disappears from the API.
  function syncRows(tbody, items, keyAttr, build, update) {
    const old = new Map();
    for (const tr of tbody.rows) old.set(tr.getAttribute(keyAttr), tr);
    let prev = null;
    for (const item of items) {
      const key = String(item.name ?? '');
      let tr = old.get(key);
      if (tr) old.delete(key);
      else { tr = build(); tr.setAttribute(keyAttr, key); }
      update(tr, item);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of old.values()) tr.remove();
  }

  function addCells(tr, n, numeric) {
    for (let i = 0; i < n; i++) tr.appendChild(el('td', numeric && numeric.includes(i) ? 'num' : ''));
    return tr.cells;
  }

  // ---- stations ---------------------------------------------------------------------------------
  function buildStation() {
    const tr = el('tr');
    const c = addCells(tr, 11, [4, 5, 9, 10]);
    c[0].append(el('span', 'name'), el('span', 'role'), el('span', 'flag silent-flag', 'silent'));
    c[1].appendChild(makeBadge());
    c[7].appendChild(makeSpark());
    c[8].classList.add('wrap');
    return tr;
  }
  function updateStation(tr, s, now) {
    const c = tr.cells;
    const online = s.online === true;
    const silent = s.silent === true;
    tr.dataset.online = String(online);
    tr.dataset.silent = String(silent);
    tr.classList.toggle('silent', silent);
    tr.classList.toggle('offline', !online);
    setText(c[0].firstChild, String(s.name ?? ''));
    setText(c[0].children[1], s.role && s.role !== 'station' ? String(s.role) : '');
    c[0].title = [s.key ? 'key ' + s.key : '', s.version ? 'ferryd ' + s.version : '',
      isNum(s.ops_held) ? s.ops_held + ' ops held here' : ''].filter(Boolean).join('\n');
    setBadge(c[1].firstChild, online);
    setText(c[2], online ? (s.via ? String(s.via) : 'direct') : (s.via ? String(s.via) : '—'));
    setText(c[3], fmtAgo(s.last_seen_ms, now));
    c[3].title = s.last_report_ms > 0 ? 'last report ' + fmtAgo(s.last_report_ms, now) : 'no status report';
    setText(c[4], fmtCount(s.backlog_up));
    setText(c[5], fmtCount(s.backlog_down));
    setText(c[6], fmtAge(s.oldest_unsent_ms, now));
    setSpark(c[7].firstChild, s.rate);
    setText(c[8], fmtRejected(s.rejected));
    c[8].classList.toggle('warn', rejectedTotal(s.rejected) > 0);
    setText(c[9], fmtCount(s.open_conflicts));
    c[9].classList.toggle('warn', s.open_conflicts > 0);
    setText(c[10], fmtBytes(s.disk_free_bytes));
  }

  // ---- peers ------------------------------------------------------------------------------------
  function buildPeer() {
    const tr = el('tr');
    const c = addCells(tr, 10, [4, 5]);
    c[2].appendChild(makeBadge());
    c[7].appendChild(makeSpark());
    c[8].classList.add('wrap');
    c[9].className = 'err';
    return tr;
  }
  function updatePeer(tr, p, now) {
    const c = tr.cells;
    const online = p.online === true;
    tr.dataset.online = String(online);
    tr.classList.toggle('offline', !online);
    setText(c[0], String(p.name ?? ''));
    c[0].title = [p.key ? 'key ' + p.key : '', p.endpoint ? 'endpoint ' + p.endpoint : ''].filter(Boolean).join('\n');
    setText(c[1], p.upstream ? 'upstream' : 'downstream');
    setBadge(c[2].firstChild, online);
    setText(c[3], fmtAgo(p.last_seen_ms, now));
    setText(c[4], fmtCount(p.backlog_out));
    setText(c[5], fmtCount(p.backlog_in));
    setText(c[6], fmtAge(p.oldest_unsent_ms, now));
    setSpark(c[7].firstChild, p.rate);
    setText(c[8], fmtRejected(p.rejected));
    c[8].classList.toggle('warn', rejectedTotal(p.rejected) > 0);
    setText(c[9], p.last_error ? String(p.last_error) : '—');
    c[9].classList.toggle('none', !p.last_error);
  }

  // ---- conflicts --------------------------------------------------------------------------------
  function renderConflicts(data) {
    const list = Array.isArray(data.conflicts) ? data.conflicts : [];
    const tbody = $('conflicts').tBodies[0];
    const rows = list.map((k) => {
      const tr = el('tr');
      tr.append(el('td', '', String(k.channel ?? '')), el('td', 'mono', String(k.key ?? '')),
        el('td', '', Array.isArray(k.fields) ? k.fields.map(String).join(', ') : ''));
      return tr;
    });
    tbody.replaceChildren(...rows);
    $('conflicts').hidden = list.length === 0;
    $('conflicts-empty').hidden = list.length !== 0;
    $('conflicts-truncated').hidden = data.truncated !== true;
    setText($('conflicts-count'), list.length ? '(' + list.length + (data.truncated ? '+' : '') + ')' : '');
  }

  // ---- header -----------------------------------------------------------------------------------
  function renderStatus(st) {
    const node = st.node || {};
    setText($('node-name'), String(node.name || '?'));
    setText($('node-role'), String(node.role || ''));
    setText($('node-version'), String(node.version || '?'));
    document.title = 'ferry monitor · ' + String(node.name || '?');
    setText($('sum-ops'), fmtCount(st.ops));
    setText($('sum-conflicts'), fmtCount(st.open_conflicts));
    $('sum-conflicts').classList.toggle('warn', st.open_conflicts > 0);
    const w = st.store_writable === true;
    setText($('sum-store'), w ? 'writable' : 'NOT writable');
    $('sum-store').classList.toggle('bad', !w);
    setText($('sum-disk'), fmtBytes(st.disk_free_bytes));
    setText($('sum-uptime'), isNum(st.uptime_ms) ? fmtDuration(st.uptime_ms) : '—');
  }

  // ---- fetching ---------------------------------------------------------------------------------
  async function getJSON(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const r = await fetch(path, { headers: HEADERS, cache: 'no-store', signal: ctl.signal });
      if (r.status === 401) {
        throw new Error(path + ': 401 unauthorized' + (TOKEN ? ' (wrong token?)' : ' (open the page with ?token=…)'));
      }
      if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
      return await r.json();
    } catch (e) {
      if (e.name === 'AbortError') throw new Error(path + ': no answer within ' + FETCH_TIMEOUT_MS / 1000 + ' s');
      if (e instanceof TypeError) throw new Error(path + ': daemon unreachable (' + e.message + ')');
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  const clock = (t) => new Date(t).toLocaleTimeString('en-GB', { hour12: false });

  async function refresh() {
    try {
      // Relative paths (no leading slash): also works behind a path prefix.
      const [st, peers, stations, conflicts] = await Promise.all(
        ['api/status', 'api/peers', 'api/stations', 'api/conflicts'].map(getJSON));
      renderStatus(st);
      const sNow = isNum(stations.now_ms) ? stations.now_ms : Date.now();
      const sList = Array.isArray(stations.stations) ? stations.stations : [];
      syncRows($('stations').tBodies[0], sList, 'data-station', buildStation, (tr, s) => updateStation(tr, s, sNow));
      $('stations-empty').hidden = sList.length !== 0;
      const on = sList.filter((s) => s.online === true).length;
      const quiet = sList.filter((s) => s.silent === true).length;
      setText($('stations-count'), sList.length ? `(${on}/${sList.length} online${quiet ? ', ' + quiet + ' silent' : ''})` : '');
      const pNow = isNum(peers.now_ms) ? peers.now_ms : Date.now();
      const pList = Array.isArray(peers.peers) ? peers.peers : [];
      syncRows($('peers').tBodies[0], pList, 'data-peer', buildPeer, (tr, p) => updatePeer(tr, p, pNow));
      $('peers-empty').hidden = pList.length !== 0;
      setText($('peers-count'), pList.length ? `(${pList.filter((p) => p.online === true).length}/${pList.length} online)` : '');
      renderConflicts(conflicts);

      lastOk = Date.now();
      setText($('sum-refresh'), clock(lastOk));
      $('error').hidden = true;
      document.body.classList.remove('stale');
      document.body.dataset.stale = 'false';
      document.body.dataset.loaded = 'true';
    } catch (e) {
      // Keep the last data on screen, marked stale.
      const b = $('error');
      setText(b, 'Refresh failed: ' + (e && e.message ? e.message : String(e)) +
        (lastOk ? ' — showing data from ' + clock(lastOk) + ' (stale)' : ' — no data yet'));
      b.hidden = false;
      if (lastOk) {
        document.body.classList.add('stale');
        document.body.dataset.stale = 'true';
      }
    } finally {
      // Chain timeouts rather than setInterval so a slow daemon never gets overlapping polls.
      setTimeout(refresh, REFRESH_MS);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', refresh);
  else refresh();
})();
