// The agenda DAG as inline SVG: the layers come from the API's graph route (pop_core::dag's
// topological layers), one band per layer, wrapped into rows when a layer is wide.

const SVG = 'http://www.w3.org/2000/svg';
const W = 160, H = 42, GX = 12, GY = 54, PAD = 12, LABEL = 16;
export const COLOURS = {
  waiting: '#9aa5b1', executing: '#2f7fd8', succeeded: '#2e9d4f', failed: '#d0453b', cancelled: '#d99a1c',
};

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

/** The console's state of a progress: waiting, executing, succeeded, failed or cancelled. */
export function stateOf(p) {
  if (!p) return 'waiting';
  if (p.processingState === 'EXECUTING') return 'executing';
  if (p.processingState !== 'COMPLETE') return 'waiting';
  const m = (p.processingStateMessage || '').toLowerCase();
  if (m.startsWith('fail')) return 'failed';
  if (m.startsWith('cancel')) return 'cancelled';
  return 'succeeded';
}

export function duration(p) {
  if (!p || !p.startedTime) return '';
  const end = p.completedTime || (p.processingState === 'EXECUTING' ? Date.now() : p.startedTime);
  const ms = Math.max(0, end - p.startedTime);
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} m ${Math.round((ms % 60000) / 1000)} s`;
}

/**
 * Positions of the graph's nodes: one band per topological layer (wrapped into rows of `perRow`),
 * ordered within a band by the mean position of their parents, then of their children (a few
 * barycenter sweeps, so that edges cross less).
 */
export function layout(graph, perRow) {
  const maxLayer = Math.max(-1, ...graph.nodes.map((n) => (n.layer ?? -1)));
  const layerOf = new Map(graph.nodes.map((n) => [n.name, n.layer ?? maxLayer + 1]));
  const ids = [...new Set(layerOf.values())].sort((a, b) => a - b);
  const order = new Map(ids.map((l) => [l, graph.nodes.filter((n) => layerOf.get(n.name) === l)]));
  const parents = new Map(), children = new Map();
  for (const e of graph.edges) {
    if (!parents.has(e.to)) parents.set(e.to, []);
    parents.get(e.to).push(e.from);
    if (!children.has(e.from)) children.set(e.from, []);
    children.get(e.from).push(e.to);
  }
  const col = new Map();
  const place = (l) => order.get(l).forEach((n, i) => col.set(n.name, i % perRow + Math.floor(i / perRow) * 0.01));
  ids.forEach(place);
  // going down, nodes without parents go last; going up, nodes without children go first, so that
  // the rows of a wrapped band nearest the next band hold the nodes with edges to it
  const sweep = (l, by, none) => {
    const mean = (n) => {
      const xs = (by.get(n.name) || []).map((m) => col.get(m)).filter((x) => x !== undefined);
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : none;
    };
    const ranked = order.get(l).map((n, i) => ({ n, r: mean(n), i }));
    ranked.sort((a, b) => (a.r === b.r ? a.i - b.i : a.r - b.r));
    order.set(l, ranked.map((x) => x.n));
    place(l);
  };
  for (let pass = 0; pass < 2; pass++) {
    for (const l of ids.slice(1)) sweep(l, parents, Infinity);
    for (const l of ids.slice(0, -1).reverse()) sweep(l, children, -Infinity);
  }
  for (const l of ids.slice(1)) sweep(l, parents, Infinity);
  const pos = new Map();
  const bands = [];
  let y = PAD, width = 0;
  for (const l of ids) {
    const nodes = order.get(l);
    const top = y;
    y += LABEL;
    nodes.forEach((n, i) => {
      const p = { x: PAD + (i % perRow) * (W + GX), y: y + Math.floor(i / perRow) * (H + GY / 3), layer: l, node: n };
      pos.set(n.name, p);
      width = Math.max(width, p.x + W + PAD);
    });
    y += Math.ceil(nodes.length / perRow) * (H + GY / 3) - GY / 3 + GY / 2;
    bands.push({ layer: l, count: nodes.length, top, bottom: y - GY / 4 });
  }
  return { pos, bands, width: Math.max(width, 300), height: y + PAD };
}

function cut(text, n) { return text.length > n ? `${text.slice(0, n - 1)}…` : text; }

/**
 * Draws `graph` into `container` (replacing what was there); `onSelect(name)` on a node click.
 * Returns an object whose update(progressByName, selected) recolours the nodes in place.
 */
export function draw(container, graph, onSelect) {
  const perRow = Math.max(3, Math.floor(((container.clientWidth || 1000) - 2 * PAD - 16) / (W + GX)));
  const { pos, bands, width, height } = layout(graph, perRow);
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'agenda graph' });
  const defs = el('defs', {}, svg);
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, defs);
  el('path', { d: 'M0 0 L10 5 L0 10 z', fill: '#8a96a3' }, marker);
  for (const b of bands) {
    el('rect', { class: 'band', x: 4, y: b.top, width: width - 8, height: b.bottom - b.top, rx: 6 }, svg);
    const label = el('text', { class: 'band-label', x: PAD, y: b.top + 12 }, svg);
    label.textContent = `layer ${b.layer} · ${b.count} operation${b.count === 1 ? '' : 's'}`;
  }
  const edges = el('g', { class: 'edges' }, svg);
  for (const e of graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    const dy = Math.max(20, (y2 - y1) / 2);
    el('path', { class: `edge ${e.kind}`, d: `M${x1} ${y1} C${x1} ${y1 + dy} ${x2} ${y2 - dy} ${x2} ${y2}`, 'marker-end': 'url(#arrow)', 'data-kind': e.kind }, edges);
  }
  const nodes = new Map();
  const g = el('g', { class: 'nodes' }, svg);
  for (const [name, p] of pos) {
    const n = el('g', { class: 'node', 'data-name': name, transform: `translate(${p.x} ${p.y})`, tabindex: 0 }, g);
    const rect = el('rect', { width: W, height: H, rx: 6, fill: COLOURS.waiting }, n);
    const title = el('title', {}, n);
    title.textContent = `${name} (${p.node.type})`;
    const t1 = el('text', { x: 8, y: 17 }, n);
    t1.textContent = cut(name, 24);
    const t2 = el('text', { x: 8, y: 35, class: 'sub' }, n);
    t2.textContent = p.node.type;
    n.addEventListener('click', () => onSelect(name));
    n.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') onSelect(name); });
    nodes.set(name, { g: n, rect, t2, title, type: p.node.type });
  }
  container.replaceChildren(svg);
  return {
    names: new Set(pos.keys()),
    update(progressByName, selected) {
      for (const [name, v] of nodes) {
        const p = progressByName.get(name);
        const s = stateOf(p);
        v.rect.setAttribute('fill', COLOURS[s]);
        v.g.setAttribute('data-state', s);
        v.g.classList.toggle('selected', name === selected);
        const pct = p ? `${Math.round(p.percentComplete || 0)}%` : '0%';
        const att = p ? ` · try ${p.attemptCount || 0}` : '';
        const d = duration(p);
        v.t2.textContent = `${pct}${att}${d ? ` · ${d}` : ''}`;
        v.title.textContent = `${name} (${v.type}): ${s}`;
      }
    },
  };
}
