// weft console: one page, routed on the URL (history.pushState), fed by /api/events.
// Plain DOM and SVG, no framework; every element the tests read carries data-* attributes
// (README "Web console" and agent/console/doc.go list them).

const SVG = 'http://www.w3.org/2000/svg';
const HISTORY = 300; // samples kept per peer, as the server's ring

const state = { cluster: null, services: null, policy: null, history: new Map(), view: null };
const main = document.getElementById('main');

// h builds an element: h('td', {class: 'num'}, 'text', child…); SVG tags in the SVG namespace.
function h(tag, attrs, ...kids) {
  const svg = ['svg', 'g', 'circle', 'line', 'text', 'title', 'polyline', 'a'].includes(tag) && (attrs?.svg ?? tag !== 'a');
  const el = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'svg' || v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k instanceof Node ? k : String(k));
  return el;
}
const clear = (el) => { while (el.firstChild) el.firstChild.remove(); return el; };
const setAttrs = (el, attrs) => { for (const [k, v] of Object.entries(attrs)) if (el.getAttribute(k) !== String(v)) el.setAttribute(k, String(v)); };

// ---- formatting
function bps(n) {
  const u = ['b/s', 'kb/s', 'Mb/s', 'Gb/s', 'Tb/s']; let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : Math.round(n)) + ' ' + u[i];
}
function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
function age(t) {
  const ms = Date.parse(t);
  if (!ms || ms < 0 || t.startsWith('0001')) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 90 ? s + ' s ago' : s < 5400 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
}
const badge = (v, text) => h('span', { class: 'badge', 'data-v': v }, text ?? v);

// ---- the cluster's vocabulary
const LINK = { 'up': 'up', 'handshaking': 'handshaking', 'handshake failing': 'failing', 'no endpoint': 'no-endpoint', 'idle': 'idle' };
const linkState = (p) => LINK[p.state] || 'idle';
const peerName = (p) => p.name || p.public_key;
function memberStatus(m) {
  if (m.refused) return 'refused';
  if (m.status === 'leaving') return 'left';
  return m.status || 'unknown';
}
function linkAttrs(p) {
  return { 'data-link': peerName(p), 'data-state': linkState(p), 'data-rx-bps': Math.round(p.rx_bps || 0), 'data-tx-bps': Math.round(p.tx_bps || 0) };
}
function nodeAttrs(m) {
  const a = { 'data-node': m.name, 'data-status': memberStatus(m) };
  if (m.refused) a['data-refused'] = m.refused;
  return a;
}
const peersByName = () => new Map((state.cluster?.peers || []).map((p) => [peerName(p), p]));

// ---- routing
function route() {
  const p = location.pathname;
  if (p.startsWith('/host/')) return { name: 'host', host: decodeURIComponent(p.slice(6)) };
  if (p === '/services') return { name: 'services' };
  if (p === '/policy') return { name: 'policy' };
  return { name: 'map', table: new URLSearchParams(location.search).get('view') === 'table' };
}
function navigate(url) { history.pushState(null, '', url); mount(); }
document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const href = a.getAttribute('href');
  if (!href || !href.startsWith('/') || href.startsWith('//') || href.startsWith('/api/')) return;
  e.preventDefault();
  navigate(href);
});
window.addEventListener('popstate', mount);

const views = { map: mapView(), host: hostView(), services: servicesView(), policy: policyView() };

function mount() {
  const r = route();
  delete document.body.dataset.ready;
  for (const a of document.querySelectorAll('nav a')) {
    const cur = a.dataset.nav === r.name && (r.name !== 'host' || r.host === state.cluster?.self);
    if (cur) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  state.view = views[r.name];
  clear(main);
  state.view.mount(r);
  refresh();
}
// refresh redraws the current view from state; data-ready once it had its data.
function refresh() {
  if (state.cluster) {
    const self = document.getElementById('nav-self');
    self.setAttribute('href', '/host/' + encodeURIComponent(state.cluster.self));
    self.textContent = state.cluster.self;
  }
  if (state.view.update()) document.body.dataset.ready = '1';
}

// ---- map
function mapView() {
  let r, svg, gLinks, gNodes, tbody, layoutKey = '', nodes = new Map(), links = new Map();
  function mount(rt) {
    r = rt;
    document.title = 'weft · map';
    svg = h('svg', { id: 'map-svg', role: 'img', 'aria-label': 'cluster map' });
    gLinks = h('g', { class: 'links' }); gNodes = h('g', { class: 'nodes' });
    svg.append(gLinks, gNodes);
    tbody = h('tbody');
    layoutKey = ''; nodes = new Map(); links = new Map();
    main.append(
      h('h1', {}, 'Cluster'),
      h('p', { class: 'toggle' }, h('a', { href: '/map' }, 'Map first'), h('a', { href: '/map?view=table' }, 'Table first'),
        h('span', { id: 'map-summary', class: 'muted' })),
      h('div', { class: 'wrap' },
        h('section', { class: 'panel map-panel', id: 'map' }, svg),
        h('section', { class: 'panel table-panel' + (r.table ? ' order-first' : ''), id: 'table' },
          h('table', { id: 'map-table' },
            h('thead', {}, h('tr', {}, ['Host', 'Status', 'Address', 'Subnet', 'Groups', 'Link', 'In', 'Out'].map((t, i) => h('th', { class: i > 5 ? 'num' : null }, t)))),
            tbody))));
  }
  function layout(members, self) {
    const n = members.length, R = Math.max(130, (n * 22) / (2 * Math.PI)), big = n > 40;
    const rad = n <= 20 ? 16 : Math.max(5, 16 * Math.sqrt(20 / n)), m = big ? 30 : 95;
    svg.setAttribute('viewBox', `${-R - m} ${-R - m / 1.5} ${2 * (R + m)} ${2 * R + m * 1.4}`);
    clear(gNodes); clear(gLinks); nodes = new Map(); links = new Map();
    // this host at the top, the others clockwise by name
    const order = [...members].sort((a, b) => (a.name === self ? -1 : b.name === self ? 1 : a.name.localeCompare(b.name)));
    order.forEach((mb, i) => {
      const ang = -Math.PI / 2 + (2 * Math.PI * i) / n, x = n === 1 ? 0 : R * Math.cos(ang), y = n === 1 ? 0 : R * Math.sin(ang);
      const title = h('title', {}), label = big ? null : h('text', { x, y: y + rad + 14, 'text-anchor': 'middle' }, mb.name);
      const sub = big ? null : h('text', { class: 'sub', x, y: y + rad + 26, 'text-anchor': 'middle' });
      const g = h('g', { class: 'node' }, h('circle', { cx: x, cy: y, r: mb.name === self ? rad * 1.25 : rad }), label, sub, title);
      gNodes.append(h('a', { href: '/host/' + encodeURIComponent(mb.name), svg: true }, g));
      nodes.set(mb.name, { g, sub, title, x, y });
    });
  }
  function update() {
    const c = state.cluster;
    if (!c) return false;
    const members = c.members.length ? c.members : [{ name: c.self, status: 'alive' }];
    const key = members.map((m) => m.name).sort().join('\n');
    if (key !== layoutKey) {
      layoutKey = key; layout(members, c.self);
      main.querySelector('.wrap').classList.toggle('big-cluster', members.length > 40); // map and table each full width
    }
    const peers = peersByName();
    for (const m of members) {
      const n = nodes.get(m.name);
      if (!n) continue;
      setAttrs(n.g, nodeAttrs(m));
      if (n.sub) n.sub.textContent = m.subnet || '';
      n.title.textContent = `${m.name} ${memberStatus(m)}${m.refused ? ' (' + m.refused + ')' : ''}${m.subnet ? ' ' + m.subnet : ''}`;
    }
    const me = nodes.get(c.self), seen = new Set(), small = members.length <= 20;
    for (const p of c.peers) {
      const to = nodes.get(peerName(p));
      if (!me || !to || to === me) continue;
      const name = peerName(p); seen.add(name);
      let l = links.get(name);
      if (!l) {
        // the label beside the middle of the line, on its outer side
        const dx = to.x - me.x, dy = to.y - me.y, len = Math.hypot(dx, dy) || 1;
        let nx = -dy / len, ny = dx / len;
        if (nx * (me.x + to.x) + ny * (me.y + to.y) < 0) { nx = -nx; ny = -ny; }
        const mx = (me.x + to.x) / 2 + nx * 12, my = (me.y + to.y) / 2 + ny * 12 + 4;
        l = { line: h('line', { class: 'link', x1: me.x, y1: me.y, x2: to.x, y2: to.y }, h('title', {})),
          label: small ? h('text', { class: 'link-label', x: mx, y: my, 'text-anchor': 'middle' }) : null };
        gLinks.append(l.line); if (l.label) gLinks.append(l.label);
        links.set(name, l);
      }
      setAttrs(l.line, linkAttrs(p));
      // wider with traffic: 2 when quiet, about 8 at 10 Gb/s
      l.line.setAttribute('stroke-width', ((2 + Math.log10(1 + (p.rx_bps || 0) + (p.tx_bps || 0)) * 0.6) * (small ? 1 : 0.4)).toFixed(1));
      l.line.firstChild.textContent = `${c.self} → ${name}: ${p.state}${p.state_reason ? ' (' + p.state_reason + ')' : ''}, in ${bps(p.rx_bps)}, out ${bps(p.tx_bps)}`;
      if (l.label) l.label.textContent = `↓${bps(p.rx_bps)} ↑${bps(p.tx_bps)}`;
    }
    for (const [name, l] of links) if (!seen.has(name)) { l.line.remove(); l.label?.remove(); links.delete(name); }
    // the table: every member, with this host's link to it
    clear(tbody);
    const rows = [...members].sort((a, b) => a.name.localeCompare(b.name));
    for (const m of rows) {
      const p = peers.get(m.name), st = memberStatus(m);
      tbody.append(h('tr', nodeAttrs(m),
        h('td', {}, h('a', { href: '/host/' + encodeURIComponent(m.name) }, m.name), m.name === c.self ? ' (this host)' : ''),
        h('td', {}, badge(st), m.refused ? h('div', { class: 'muted' }, m.refused_detail || m.refused) : null),
        h('td', {}, m.addr || ''), h('td', {}, m.subnet || ''), h('td', {}, (m.groups || []).join(', ')),
        h('td', {}, p ? h('span', linkAttrs(p), badge(linkState(p))) : m.name === c.self ? '' : '—'),
        h('td', { class: 'num' }, p ? bps(p.rx_bps) : ''), h('td', { class: 'num' }, p ? bps(p.tx_bps) : '')));
    }
    const alive = members.filter((m) => memberStatus(m) === 'alive').length;
    document.getElementById('map-summary').textContent = ` ${members.length} members, ${alive} alive; ${c.peers.length} peers of ${c.self}`;
    return true;
  }
  return { mount, update };
}

// ---- one host
function spark(name) {
  const hs = state.history.get(name);
  const svg = h('svg', { class: 'spark', viewBox: '0 0 100 20', preserveAspectRatio: 'none', 'aria-label': 'throughput, last minutes' });
  if (!hs || hs.t.length < 2) return svg;
  const max = Math.max(1, ...hs.rx, ...hs.tx), n = hs.t.length;
  // the samples there are across the width (a freshly started agent has fewer than HISTORY)
  const pts = (a) => a.map((v, i) => `${((i / (n - 1)) * 100).toFixed(1)},${(19 - (v / max) * 18).toFixed(1)}`).join(' ');
  svg.append(h('polyline', { class: 'rx', points: pts(hs.rx) }), h('polyline', { class: 'tx', points: pts(hs.tx) }),
    h('title', {}, `last ${Math.round(n * (state.intervalMS || 1000) / 60000)} min, peak ${bps(max)}`));
  return svg;
}
function hostView() {
  let r, body;
  function mount(rt) {
    r = rt; document.title = 'weft · ' + r.host;
    body = h('div');
    main.append(h('h1', {}, r.host), body);
    loadHistory();
  }
  function peerRow(p) {
    const drops = Object.entries(p.drops || {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
    return h('tr', linkAttrs(p),
      h('td', {}, h('a', { href: '/host/' + encodeURIComponent(peerName(p)) }, peerName(p))),
      h('td', {}, badge(linkState(p), p.state), p.state_reason ? h('div', { class: 'muted' }, p.state_reason) : null),
      h('td', {}, p.endpoint || '—'), h('td', { class: 'num' }, p.path_mtu || '—'), h('td', {}, age(p.last_handshake)),
      h('td', { class: 'num' }, bytes(p.rx_bytes)), h('td', { class: 'num' }, bytes(p.tx_bytes)),
      h('td', {}, drops || '0'), h('td', { class: 'num' }, `↓${bps(p.rx_bps)} ↑${bps(p.tx_bps)}`), h('td', {}, spark(peerName(p))));
  }
  function peerTable(peers) {
    return h('table', { id: 'peers' },
      h('thead', {}, h('tr', {}, ['Peer', 'State', 'Endpoint', 'Path MTU', 'Handshake', 'Received', 'Sent', 'Drops', 'Now', 'Last minutes'].map((t) => h('th', {}, t)))),
      h('tbody', {}, peers.map(peerRow)));
  }
  function update() {
    const c = state.cluster;
    if (!c) return false;
    const m = c.members.find((x) => x.name === r.host) || (r.host === c.self ? { name: c.self, status: 'alive' } : null);
    clear(body);
    if (!m) { body.append(h('p', { class: 'muted' }, `No member named ${r.host}. `, h('a', { href: '/map' }, 'Back to the map'))); return true; }
    const st = memberStatus(m);
    body.append(h('section', { class: 'panel' }, h('dl', {},
      h('span', nodeAttrs(m), badge(st)), ' ', m.addr || '', m.subnet ? ' · subnet ' + m.subnet : '',
      m.groups?.length ? ' · groups ' + m.groups.join(', ') : '', m.protocol ? ' · protocol ' + m.protocol : '',
      m.refused ? h('p', {}, 'Refused: ', h('strong', {}, m.refused), ' ', m.refused_detail || '') : null,
      m.error ? h('p', { class: 'muted' }, m.error) : null)));
    const legend = h('p', { class: 'legend' }, 'Sparklines: ', h('span', { class: 'rx' }, 'received'), ' and ', h('span', { class: 'tx' }, 'sent'), ', bits per second, last minutes.');
    if (r.host === c.self) {
      body.append(h('h2', {}, `Peers of ${c.self} (${c.peers.length})`), legend, h('div', { class: 'panel table-panel' }, peerTable(c.peers)));
    } else {
      const p = c.peers.find((x) => peerName(x) === r.host);
      body.append(h('h2', {}, `The link from ${c.self}`), legend,
        h('div', { class: 'panel table-panel' }, p ? peerTable([p]) : h('p', { class: 'muted' }, `${c.self} has no session with ${r.host}.`)),
        h('p', { class: 'muted' }, `${r.host}'s own peers are shown by its own console.`));
    }
    return true;
  }
  return { mount, update };
}
async function loadHistory() {
  try {
    const res = await fetch('/api/history');
    if (!res.ok) return;
    const hs = await res.json();
    state.intervalMS = hs.interval_ms;
    for (const [name, s] of Object.entries(hs.peers || {})) {
      const cur = state.history.get(name);
      // samples received by events meanwhile are newer than the server's ring
      if (!cur || cur.t.length < s.t.length) state.history.set(name, s);
    }
    refresh();
  } catch { /* the events will fill it */ }
}
function addSamples(c) {
  const t = Date.parse(c.time), seen = new Set();
  for (const p of c.peers) {
    const name = peerName(p); seen.add(name);
    let s = state.history.get(name);
    if (!s) state.history.set(name, (s = { t: [], rx: [], tx: [] }));
    if (s.t.length && s.t[s.t.length - 1] >= t) continue;
    s.t.push(t); s.rx.push(p.rx_bps || 0); s.tx.push(p.tx_bps || 0);
    if (s.t.length > HISTORY) { s.t.shift(); s.rx.shift(); s.tx.shift(); }
  }
  for (const k of state.history.keys()) if (!seen.has(k)) state.history.delete(k);
}

// ---- services
function servicesView() {
  let body;
  function mount() {
    document.title = 'weft · services';
    body = h('div');
    main.append(h('h1', {}, 'Services'), body);
  }
  function update() {
    const s = state.services;
    if (!s) return false;
    clear(body);
    if (!s.running) { body.append(h('p', { class: 'muted' }, 'The service catalog is not running.')); return true; }
    if (!s.services.length) body.append(h('p', { class: 'muted' }, 'No services registered (weft register NAME --port P).'));
    const tb = h('tbody');
    for (const sv of s.services) {
      tb.append(h('tr', { 'data-service': sv.name, 'data-health': sv.health, 'data-instances': sv.instances.length, class: 'svc' },
        h('th', {}, sv.name), h('td', {}, badge(sv.health)),
        h('td', { colspan: 4 }, `${sv.instances.length} instance${sv.instances.length === 1 ? '' : 's'}, ${sv.passing} passing`)));
      for (const i of sv.instances) {
        tb.append(h('tr', { 'data-instance': sv.name + '@' + i.node, 'data-health': i.health },
          h('td', {}, h('a', { href: '/host/' + encodeURIComponent(i.node) }, i.node)), h('td', {}, badge(i.health)),
          h('td', {}, `${i.addr}:${i.port}`), h('td', {}, (i.tags || []).join(', ')), h('td', {}, i.check || '—'),
          h('td', {}, i.output ? h('pre', {}, i.output) : '')));
      }
    }
    body.append(h('div', { class: 'panel table-panel' }, h('table', { id: 'services' },
      h('thead', {}, h('tr', {}, ['Service / node', 'Health', 'Address', 'Tags', 'Check', 'Last output'].map((t) => h('th', {}, t)))), tb)));
    return true;
  }
  return { mount, update };
}

// ---- policy
function policyView() {
  let body, from, to, port, proto, verdict;
  function mount() {
    document.title = 'weft · policy';
    body = h('div');
    const list = h('datalist', { id: 'members-list' });
    from = h('input', { id: 'flow-from', name: 'from', list: 'members-list', required: true, placeholder: 'member or address' });
    to = h('input', { id: 'flow-to', name: 'to', list: 'members-list', required: true, placeholder: 'member or address' });
    port = h('input', { id: 'flow-port', name: 'port', inputmode: 'numeric', placeholder: '5432', size: 6 });
    proto = h('select', { id: 'flow-proto', name: 'proto' }, ['tcp', 'udp', 'icmp'].map((p) => h('option', { value: p }, p)));
    verdict = h('div', { id: 'flow-verdict', 'aria-live': 'polite' });
    const form = h('form', { class: 'flow', onsubmit: test },
      h('label', {}, 'From', from), h('label', {}, 'To', to), h('label', {}, 'Port', port), h('label', {}, 'Protocol', proto),
      h('button', { id: 'flow-submit', type: 'submit' }, 'Would it pass?'), list);
    main.append(h('h1', {}, 'Policy'), body,
      h('h2', {}, 'Would this flow pass?'), h('section', { class: 'panel' }, form, verdict));
  }
  async function test(e) {
    e.preventDefault();
    const q = new URLSearchParams({ from: from.value.trim(), to: to.value.trim(), port: port.value.trim(), proto: proto.value });
    verdict.removeAttribute('data-verdict');
    clear(verdict).append('…');
    try {
      const res = await fetch('/api/policy/test?' + q);
      const j = await res.json();
      clear(verdict);
      if (!res.ok) { verdict.setAttribute('data-verdict', 'error'); verdict.append(j.error || res.statusText); return; }
      verdict.setAttribute('data-verdict', j.verdict);
      verdict.append(badge(j.verdict), ' ', `${j.from} → ${j.to} ${j.port}: ${j.explain}`);
    } catch (err) {
      clear(verdict); verdict.setAttribute('data-verdict', 'error'); verdict.append(String(err));
    }
  }
  function update() {
    const dl = document.getElementById('members-list');
    if (dl && state.cluster && dl.childElementCount !== state.cluster.members.length) {
      clear(dl).append(...state.cluster.members.map((m) => h('option', { value: m.name })));
    }
    const p = state.policy;
    if (!p) return false;
    clear(body);
    const drops = Object.entries(p.drops || {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
    body.append(h('section', { class: 'panel' },
      h('p', {}, 'Dropped by policy: ', h('span', { id: 'policy-drops', class: 'big', 'data-policy-drops': p.total_drops }, p.total_drops),
        drops ? h('span', { class: 'muted' }, ` (${drops})`) : null),
      h('p', { class: 'muted' }, `source ${p.source}${p.version ? ', version ' + p.version : ''}, ${p.flows} flows open`,
        p.enforced ? '' : ' — not enforced in plain L2')));
    const tb = h('tbody', {}, p.rules.map((r) => h('tr', { 'data-rule': r.index, 'data-hits': r.hits, 'data-drops': r.drops },
      h('td', { class: 'num' }, r.index < 0 ? 'default' : r.index), h('td', {}, r.name || ''), h('td', {}, badge(r.action === 'allow' ? 'allow' : 'deny', r.action)),
      h('td', {}, r.rule), h('td', { class: 'num' }, r.hits), h('td', { class: 'num' }, r.drops))));
    body.append(h('h2', {}, 'Rules'), p.rules.length
      ? h('div', { class: 'panel table-panel' }, h('table', { id: 'rules' },
        h('thead', {}, h('tr', {}, ['#', 'Name', 'Action', 'Rule', 'Flows admitted', 'Packets dropped'].map((t) => h('th', {}, t)))), tb))
      : h('p', { class: 'muted' }, 'No policy: everything passes.'));
    if (p.document) body.append(h('details', {}, h('summary', {}, 'Document'), h('pre', {}, p.document)));
    return true;
  }
  return { mount, update };
}

// ---- data
async function load(url, key) {
  try {
    const res = await fetch(url);
    const j = res.ok ? await res.json() : null;
    if (j && !state[key]) { state[key] = j; refresh(); }
  } catch { /* the event stream brings it */ }
}
function connect() {
  const live = document.getElementById('live');
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => { live.dataset.live = 'open'; live.textContent = 'live'; });
  es.addEventListener('error', () => { live.dataset.live = 'error'; live.textContent = 'reconnecting…'; });
  es.addEventListener('cluster', (e) => { state.cluster = JSON.parse(e.data); addSamples(state.cluster); refresh(); });
  es.addEventListener('services', (e) => { state.services = JSON.parse(e.data); refresh(); });
  es.addEventListener('policy', (e) => { state.policy = JSON.parse(e.data); refresh(); });
}

mount();
load('/api/cluster', 'cluster');
const r0 = route().name;
if (r0 === 'services') load('/api/services', 'services');
if (r0 === 'policy') load('/api/policy', 'policy');
connect();
