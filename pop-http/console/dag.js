// The agenda DAG as inline SVG: the layers come from the API's graph route (pop_core::dag's
// topological layers), one band per layer, wrapped into rows when a layer is wide.

const SVG = 'http://www.w3.org/2000/svg';
const W = 200, H = 46, GX = 22, GY = 54, PAD = 16;
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

/** Positions of the graph's nodes: layer by layer, ordered by their parents' mean position. */
export function layout(graph, perRow) {
  const layers = new Map();
  const maxLayer = Math.max(-1, ...graph.nodes.map((n) => (n.layer ?? -1)));
  for (const n of graph.nodes) {
    const l = n.layer ?? maxLayer + 1;
    if (!layers.has(l)) layers.set(l, []);
    layers.get(l).push(n);
  }
  const parents = new Map();
  for (const e of graph.edges) {
    if (!parents.has(e.to)) parents.set(e.to, []);
    parents.get(e.to).push(e.from);
  }
  const pos = new Map();
  let y = PAD, width = 0;
  for (const l of [...layers.keys()].sort((a, b) => a - b)) {
    const nodes = layers.get(l);
    const rank = (n) => {
      const ps = (parents.get(n.name) || []).map((p) => pos.get(p)).filter(Boolean);
      return ps.length ? ps.reduce((s, p) => s + p.x, 0) / ps.length : Infinity;
    };
    const ranked = nodes.map((n, i) => ({ n, r: rank(n), i }));
    ranked.sort((a, b) => (a.r === b.r ? a.i - b.i : a.r - b.r));
    ranked.forEach(({ n }, i) => {
      const row = Math.floor(i / perRow), col = i % perRow;
      const p = { x: PAD + col * (W + GX), y: y + row * (H + GY / 2), layer: l, node: n };
      pos.set(n.name, p);
      width = Math.max(width, p.x + W + PAD);
    });
    y += Math.ceil(nodes.length / perRow) * (H + GY / 2) + GY / 2;
  }
  return { pos, width: Math.max(width, 300), height: y + PAD };
}

function cut(text, n) { return text.length > n ? `${text.slice(0, n - 1)}…` : text; }

/**
 * Draws `graph` into `container` (replacing what was there); `onSelect(name)` on a node click.
 * Returns an object whose update(progressByName, selected) recolours the nodes in place.
 */
export function draw(container, graph, onSelect) {
  const perRow = Math.max(3, Math.floor(((container.clientWidth || 1000) - 2 * PAD) / (W + GX)));
  const { pos, width, height } = layout(graph, perRow);
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'agenda graph' });
  const defs = el('defs', {}, svg);
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, defs);
  el('path', { d: 'M0 0 L10 5 L0 10 z', fill: '#8a96a3' }, marker);
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
    t1.textContent = cut(name, 30);
    const t2 = el('text', { x: 8, y: 35, class: 'sub' }, n);
    t2.textContent = p.node.type;
    n.addEventListener('click', () => onSelect(name));
    n.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') onSelect(name); });
    nodes.set(name, { g: n, rect, t2, type: p.node.type });
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
        v.t2.textContent = `${s} ${pct}${att}${d ? ` · ${d}` : ''}`;
      }
    },
  };
}
