// The console's pages. Every page reads and writes through api.js (the HTTP API with the caller's
// token); nothing here decides what a caller may see.

import { api, get, post, qs, config, session, streamEvents, ApiError } from './api.js';
import { draw, stateOf, duration, COLOURS } from './dag.js';

/** Creates an element: h('div', {class: 'x', onclick: f}, child, 'text', ...). Text is never HTML. */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '');
const json = (v) => JSON.stringify(v, null, 2);

export function stateBadge(p) {
  const s = stateOf(p);
  return h('span', { class: `badge ${s}`, 'data-state': s }, s);
}

/** The problems of an ApiError (or its message) as a list. */
function problemList(err) {
  if (!(err instanceof ApiError)) return h('ul', { class: 'errors' }, h('li', {}, String(err.message || err)));
  const items = err.problems.length ? err.problems.map((p) => h('li', {}, [p.operation ? `operation ${p.operation}: ` : '', p.field ? `${p.field}: ` : '', p.message])) : [h('li', {}, `${err.title}: ${err.message}`)];
  return h('ul', { class: 'errors', role: 'alert' }, items);
}

function failure(main, err) {
  main.append(h('div', { class: 'card' }, h('h2', {}, 'The API answered with an error'), problemList(err)));
}

// ---------------------------------------------------------------- sign-in

export function signIn(main, go) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', size: 48, autocomplete: 'off', placeholder: 'API token', required: true });
  const msg = h('div', { id: 'signin-error' });
  const form = h('form', { class: 'card', id: 'signin' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste an API token. It stays in this tab (session storage) and goes with every API call; you see exactly what the API shows that token.'),
    h('label', {}, 'Token', input), msg, h('p', {}, h('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    session.signIn(input.value.trim());
    try {
      await api('GET', '/pop/insight?bylimit=1', undefined, { signingIn: true });
      go('#/agendas');
    } catch (err) {
      session.signOut();
      msg.replaceChildren(problemList(err));
    }
  });
  main.replaceChildren(form);
  input.focus();
}

// ---------------------------------------------------------------- agendas (progress) list

const PAGE = 20;

export async function agendas(main, params, go) {
  const f = { customerId: params.get('customerId') || '', insightId: params.get('insightId') || '', linkId: params.get('linkId') || '', state: params.get('state') || '', cursor: params.get('cursor') || '' };
  const input = (name, label) => h('label', {}, label, h('input', { name, value: f[name], size: 16 }));
  const state = h('select', { name: 'state' }, ['', 'WAITING', 'EXECUTING', 'COMPLETE'].map((s) => h('option', { value: s, selected: s === f.state }, s || 'any')));
  const form = h('form', { class: 'filters', id: 'agenda-filters' }, input('customerId', 'Customer'), input('insightId', 'Insight'), input('linkId', 'Link id'), h('label', {}, 'State', state), h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const d = Object.fromEntries(new FormData(form));
    go(`#/agendas${qs(d)}`);
  });
  main.replaceChildren(h('h1', {}, 'Agendas'), form);
  const q = { bylimit: PAGE, bycursor: f.cursor, byfields: 'id,agendaId,title,customerId,linkId,processingState,processingStateMessage,percentComplete,attemptsCompleted,updatedTime,startedTime,completedTime,agendaInsight' };
  if (f.customerId) q.bycustomerId = f.customerId;
  else if (f.linkId) q.bylinkId = f.linkId;
  if (f.customerId && f.linkId) q.bylinkId = f.linkId; // an extra filter beside the index
  if ((f.customerId || f.linkId) && f.state) q.byprocessingState = f.state;
  let page;
  try { page = await get(`/pop/progress/agenda${qs(q)}`); } catch (err) { return failure(main, err); }
  let rows = page.all;
  // what the API cannot filter without an index, filtered on this page
  if (f.state && !q.byprocessingState) rows = rows.filter((p) => p.processingState === f.state);
  if (f.insightId) rows = rows.filter((p) => p.agendaInsight && p.agendaInsight.insightId === f.insightId);
  const table = h('table', { id: 'agenda-table' },
    h('thead', {}, h('tr', {}, ['Agenda', 'Title', 'Customer', 'Insight', 'Link id', 'State', '%', 'Attempts', 'Duration', 'Updated'].map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((p) => h('tr', { 'data-agenda': p.agendaId },
      h('td', {}, h('a', { href: `#/agenda/${encodeURIComponent(p.agendaId)}` }, p.agendaId)),
      h('td', {}, p.title || ''), h('td', {}, p.customerId || ''), h('td', {}, (p.agendaInsight && p.agendaInsight.insightId) || ''),
      h('td', {}, p.linkId || ''), h('td', {}, stateBadge(p)), h('td', {}, Math.round(p.percentComplete || 0)),
      h('td', {}, p.attemptsCompleted || 0), h('td', {}, duration(p)), h('td', {}, fmtTime(p.updatedTime))))));
  const pager = h('div', { class: 'pager' },
    f.cursor ? h('a', { href: `#/agendas${qs({ ...f, cursor: '' })}` }, '⟵ first page') : null,
    page.next ? h('a', { id: 'next-page', href: `#/agendas${qs({ ...f, cursor: page.next })}` }, 'next page ⟶') : null,
    h('span', { class: 'muted' }, `${rows.length} shown${(f.insightId || (f.state && !q.byprocessingState)) ? ' (insight/state filtered on this page)' : ''}`));
  main.append(rows.length ? table : h('p', { class: 'muted', id: 'no-agendas' }, 'No agendas.'), pager);
}

// ---------------------------------------------------------------- data objects

const KINDS = {
  customers: { path: 'customer', title: 'Customers', fields: ['id', 'title', 'customerId'], extra: { weight: 1 } },
  pools: { path: 'resourcepool', title: 'Resource pools', fields: ['id', 'title', 'customerId'], extra: {} },
  insights: { path: 'insight', title: 'Insights', fields: ['id', 'title', 'customerId', 'resourcePoolId'], extra: { schedulingAlgorithm: 'FirstInFirstOut', queueSize: 100, isGlobal: false, allowedCustomerIds: [], mappers: [] } },
  templates: { path: 'agendatemplate', title: 'Agenda templates', fields: ['id', 'title', 'customerId'], extra: { isGlobal: false, agenda: { operations: [] } } },
};

export async function objects(main, kindName, params, go) {
  const kind = KINDS[kindName];
  const cursor = params.get('cursor') || '';
  const customerId = params.get('customerId') || '';
  const filter = h('form', { class: 'filters' }, h('label', {}, 'Customer', h('input', { name: 'customerId', value: customerId })), h('button', { type: 'submit' }, 'Filter'),
    h('button', { type: 'button', class: 'mutating', id: 'new-object', onclick: () => go(`#/${kindName}/new`) }, `New`));
  filter.addEventListener('submit', (ev) => { ev.preventDefault(); go(`#/${kindName}${qs(Object.fromEntries(new FormData(filter)))}`); });
  main.replaceChildren(h('h1', {}, kind.title), filter);
  let page;
  try { page = await get(`/pop/${kind.path}${qs({ bylimit: PAGE, bycursor: cursor, bycustomerId: customerId })}`); } catch (err) { return failure(main, err); }
  const cols = kind.fields;
  const table = h('table', { id: `${kindName}-table` },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)), h('th', {}, ''))),
    h('tbody', {}, page.all.map((o) => h('tr', { 'data-id': o.id },
      cols.map((c) => h('td', {}, o[c] === undefined || o[c] === null ? '' : String(o[c]))),
      h('td', {},
        h('a', { href: `#/${kindName}/edit/${encodeURIComponent(o.id)}` }, config.readOnly ? 'view' : 'edit'), ' ',
        h('button', { type: 'button', class: 'danger mutating', 'data-delete': o.id, onclick: async (ev) => {
          if (!confirm(`Delete ${kind.path} ${o.id}?`)) return;
          try { await api('DELETE', `/pop/${kind.path}/${encodeURIComponent(o.id)}`); ev.target.closest('tr').remove(); } catch (err) { ev.target.after(problemList(err)); }
        } }, 'delete'))))));
  main.append(page.all.length ? table : h('p', { class: 'muted' }, 'None.'),
    h('div', { class: 'pager' }, cursor ? h('a', { href: `#/${kindName}` }, '⟵ first page') : null, page.next ? h('a', { href: `#/${kindName}${qs({ customerId, cursor: page.next })}` }, 'next page ⟶') : null));
}

/** Create or edit form: key fields as inputs, the rest as JSON; the API's problems shown beside the field they name. */
export async function objectForm(main, kindName, id, go) {
  const kind = KINDS[kindName];
  let obj = { ...Object.fromEntries(kind.fields.map((f) => [f, ''])), ...kind.extra };
  if (id) {
    try { obj = (await get(`/pop/${kind.path}/${encodeURIComponent(id)}`)).all[0]; } catch (err) { return failure(main, err); }
  }
  const inputs = {}, errs = {};
  const fieldRows = kind.fields.map((f) => {
    inputs[f] = h('input', { name: f, value: obj[f] ?? '', size: 40, readonly: (f === 'id' && id) || config.readOnly });
    errs[f] = h('div', { class: 'error', 'data-error-for': f });
    return h('div', { class: 'form-field' }, h('label', {}, f, inputs[f]), errs[f]);
  });
  const rest = Object.fromEntries(Object.entries(obj).filter(([k]) => !kind.fields.includes(k)));
  const text = h('textarea', { name: 'json', spellcheck: 'false', readonly: config.readOnly });
  text.value = json(rest);
  errs._other = h('div', { class: 'error', 'data-error-for': '_other', id: 'form-errors' });
  const save = h('button', { type: 'submit', class: 'mutating', id: 'save' }, id ? 'Save' : 'Create');
  const form = h('form', { class: 'card', id: 'object-form' }, h('h1', {}, `${id ? (config.readOnly ? 'View' : 'Edit') : 'New'} ${kind.path}`), fieldRows,
    h('div', { class: 'form-field' }, h('label', {}, 'Other fields (JSON)', text)), errs._other, h('p', {}, save, ' ', h('a', { href: `#/${kindName}` }, 'back')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const e of Object.values(errs)) e.replaceChildren();
    let body;
    try { body = JSON.parse(text.value || '{}'); } catch (e) { errs._other.append(`Other fields: not JSON: ${e.message}`); return; }
    for (const f of kind.fields) if (inputs[f].value !== '') body[f] = inputs[f].value;
    try {
      if (id) await api('PUT', `/pop/${kind.path}/${encodeURIComponent(id)}`, body);
      else await post(`/pop/${kind.path}`, body);
      go(`#/${kindName}`);
    } catch (err) {
      if (!(err instanceof ApiError) || !err.problems.length) { errs._other.append(err instanceof ApiError ? `${err.title}: ${err.message}` : String(err)); return; }
      for (const p of err.problems) {
        const key = p.field && Object.keys(inputs).find((k) => k.toLowerCase() === p.field.split(/[./[]/)[0].toLowerCase());
        (key ? errs[key] : errs._other).append(h('div', {}, p.field && !key ? `${p.field}: ` : '', p.message));
      }
    }
  });
  main.replaceChildren(form);
}

// ---------------------------------------------------------------- submit / run a template

export async function submit(main, go) {
  const text = h('textarea', { id: 'agenda-json', spellcheck: 'false' });
  text.value = json({ customerId: '', title: 'my agenda', operations: [{ name: 'first', type: 'sample', payload: {} }, { name: 'second', type: 'sample', payload: { in: '@<first.out>' } }] });
  const problems = h('div', { id: 'validation' });
  const submitErr = h('div', { id: 'submit-errors' });
  const validate = async () => {
    let agenda;
    try { agenda = JSON.parse(text.value); } catch (e) { problems.replaceChildren(h('p', { class: 'error' }, `Not JSON: ${e.message}`)); return null; }
    try {
      const r = await post('/pop/agenda/service/validate', agenda);
      if (r.valid) { problems.replaceChildren(h('p', { class: 'ok', id: 'valid' }, `Valid: ${agenda.operations ? agenda.operations.length : 0} operations.`)); return agenda; }
      const byOp = new Map();
      for (const p of r.problems) { const k = p.operation || '(the agenda)'; if (!byOp.has(k)) byOp.set(k, []); byOp.get(k).push(p); }
      problems.replaceChildren(h('p', { class: 'error' }, `${r.problems.length} problem(s):`),
        ...[...byOp].map(([op, ps]) => h('div', { 'data-operation': op }, h('div', { class: 'problem-op' }, op), h('ul', { class: 'errors' }, ps.map((p) => h('li', {}, p.field ? `${p.field}: ` : '', p.message))))));
      return null;
    } catch (err) { problems.replaceChildren(problemList(err)); return null; }
  };
  let timer;
  text.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(validate, 400); });
  const submitBtn = h('button', { type: 'button', id: 'submit-agenda', onclick: async () => {
    submitErr.replaceChildren();
    const agenda = await validate();
    if (!agenda) return;
    try { const r = await post('/pop/agenda', agenda); go(`#/agenda/${encodeURIComponent(r.all[0].id)}`); } catch (err) { submitErr.replaceChildren(problemList(err)); }
  } }, 'Submit');
  // run a template
  const tpl = h('select', { id: 'template' });
  const payload = h('textarea', { id: 'template-payload', spellcheck: 'false' });
  payload.value = '{}';
  const runErr = h('div', { id: 'run-errors' });
  get('/pop/agendatemplate?bylimit=1000&byfields=id,title').then((r) => tpl.replaceChildren(...r.all.map((t) => h('option', { value: t.id }, `${t.title || ''} (${t.id})`)))).catch((err) => runErr.replaceChildren(problemList(err)));
  const run = h('button', { type: 'button', id: 'run-template', onclick: async () => {
    runErr.replaceChildren();
    let p;
    try { p = JSON.parse(payload.value); } catch (e) { runErr.append(h('p', { class: 'error' }, `Payload is not JSON: ${e.message}`)); return; }
    try { const r = await post('/pop/agenda/service/run', { agendaTemplateId: tpl.value, payload: p }); go(`#/agenda/${encodeURIComponent(r.all[0].id)}`); } catch (err) { runErr.replaceChildren(problemList(err)); }
  } }, 'Run template');
  main.replaceChildren(h('h1', {}, 'Submit'), h('div', { class: 'grid2' },
    h('div', { class: 'card' }, h('h2', {}, 'An agenda (JSON)'), text, h('p', {}, h('button', { type: 'button', class: 'secondary', id: 'validate', onclick: validate }, 'Validate'), ' ', submitBtn), problems, submitErr),
    h('div', { class: 'card' }, h('h2', {}, 'Run a template'), h('label', {}, 'Template', tpl), h('label', {}, 'Payload (JSON)', payload), h('p', {}, run), runErr)));
  validate();
}

// ---------------------------------------------------------------- one agenda: the DAG, live

export async function agendaPage(main, id, go, onLeave) {
  let agenda, graph;
  try {
    agenda = (await get(`/pop/agenda/${encodeURIComponent(id)}`)).all[0];
    graph = await post('/pop/agenda/service/graph', { agendaId: id });
  } catch (err) { return failure(main, err); }
  const head = h('div', { class: 'card', id: 'agenda-head' });
  const explain = h('p', { class: 'muted', id: 'explain' });
  const dagBox = h('div', { class: 'dag', id: 'dag' });
  const panel = h('div', { class: 'card panel', id: 'panel' }, h('p', { class: 'muted' }, 'Click an operation for its payload, result, diagnostics and last progress.'));
  const actionsErr = h('div', { id: 'action-errors' });
  const legend = h('div', { class: 'legend' }, Object.entries(COLOURS).map(([s, c]) => { const i = h('i'); i.style.background = c; return h('span', {}, i, s); }), h('span', { class: 'muted' }, 'edges: solid = reference, dashed = dependsOn, dotted = generated'));
  const act = (label, cls, idAttr, fn) => h('button', { type: 'button', class: `${cls} mutating`, id: idAttr, onclick: async () => { actionsErr.replaceChildren(); try { await fn(); } catch (err) { actionsErr.replaceChildren(problemList(err)); } } }, label);
  let selected = null;
  const actions = h('div', { class: 'toolbar' },
    act('Cancel', 'danger', 'cancel', () => post('/pop/agenda/service/cancel', { agendaId: id }).then(restart)),
    act('Rerun (continue)', 'secondary', 'rerun-continue', () => post('/pop/agenda/service/rerun', { agendaId: id, params: ['continue'] }).then(restart)),
    act('Rerun (reset all)', 'secondary', 'rerun-all', () => post('/pop/agenda/service/rerun', { agendaId: id, params: ['resetAll'] }).then(restart)),
    act('Rerun selected operation', 'secondary', 'rerun-selected', () => {
      if (!selected) throw new Error('select an operation first');
      return post('/pop/agenda/service/rerun', { agendaId: id, params: [`operationsToReset=${selected}`] }).then(restart);
    }));
  main.replaceChildren(h('h1', {}, `Agenda ${id}`), head, actions, actionsErr, legend, h('div', { class: 'agenda-layout' }, dagBox, panel));
  let byName = new Map();
  let dag;
  const select = async (name) => {
    selected = name;
    dag.update(byName, selected);
    try {
      const d = await post('/pop/agenda/service/operation', { agendaId: id, operation: name });
      const p = d.progress || {};
      const diag = [...(p.diagnosticEvents || [])];
      panel.replaceChildren(h('div', {}, h('h3', {}, name),
        h('dl', { class: 'kv' }, h('dt', {}, 'type'), h('dd', {}, d.operation.type), h('dt', {}, 'state'), h('dd', {}, stateBadge(d.progress)),
          h('dt', {}, 'percent'), h('dd', {}, Math.round(p.percentComplete || 0)), h('dt', {}, 'attempts'), h('dd', {}, p.attemptCount || 0),
          h('dt', {}, 'duration'), h('dd', {}, duration(d.progress)), h('dt', {}, 'message'), h('dd', {}, p.processingStateMessage || '')),
        h('h4', {}, 'Payload (resolved)'), h('pre', { id: 'resolved-payload' }, json(d.resolvedPayload)),
        d.missing.length ? h('p', { class: 'muted' }, `not resolvable yet: ${d.missing.join(', ')}`) : null,
        h('h4', {}, 'Result'), h('pre', { id: 'result' }, p.resultPayload ? json(tryParse(p.resultPayload)) : '—'),
        h('h4', {}, 'Diagnostics'), h('pre', {}, diag.length ? json(diag) : '—'),
        h('h4', {}, 'Last progress'), h('pre', {}, json({ processingState: p.processingState, processingStateMessage: p.processingStateMessage, percentComplete: p.percentComplete, params: p.params, updatedTime: p.updatedTime }))));
    } catch (err) { panel.replaceChildren(problemList(err)); }
  };
  dag = draw(dagBox, graph, select);
  const renderHead = (progress) => {
    head.replaceChildren(h('dl', { class: 'kv' },
      h('dt', {}, 'state'), h('dd', { id: 'agenda-state' }, stateBadge(progress), ' ', progress.processingStateMessage || ''),
      h('dt', {}, 'percent'), h('dd', { id: 'agenda-percent' }, `${Math.round(progress.percentComplete || 0)}%`),
      h('dt', {}, 'customer'), h('dd', {}, agenda.customerId || ''), h('dt', {}, 'title'), h('dd', {}, agenda.title || ''),
      h('dt', {}, 'operations'), h('dd', { id: 'op-count' }, String(graph.nodes.length)),
      h('dt', {}, 'attempts'), h('dd', {}, `${progress.attemptsCompleted || 0} of ${progress.maximumAttempts || '?'}`),
      h('dt', {}, 'duration'), h('dd', {}, duration(progress)), h('dt', {}, 'progress id'), h('dd', {}, agenda.progressId || '')), explain);
    head.dataset.state = stateOf(progress);
  };
  let abort = new AbortController();
  onLeave(() => abort.abort());
  let lastKey = null;
  let panelOf = null;
  async function onProgress(progress) {
    byName = new Map((progress.operationProgress || []).map((p) => [p.operation, p]));
    if ([...byName.keys()].some((n) => !dag.names.has(n))) {
      try { graph = await post('/pop/agenda/service/graph', { agendaId: id }); dag = draw(dagBox, graph, select); } catch { /* keep the old drawing */ }
    }
    renderHead(progress);
    dag.update(byName, selected);
    // the open panel follows its operation
    const shown = selected && JSON.stringify(byName.get(selected) || null);
    if (selected && shown !== panelOf) { panelOf = shown; select(selected); }
    const key = `${progress.processingState}/${progress.processingStateMessage}/${progress.attemptsCompleted}`;
    if (key !== lastKey || progress.processingState !== 'COMPLETE') {
      lastKey = key;
      post('/pop/agenda/service/explain', { agendaId: id }).then((e) => { explain.textContent = `${e.stage}: ${e.reason}`; }).catch(() => {});
    }
  }
  // follows the stream until the agenda is complete (`end`); reconnects after a dropped stream; a
  // rerun or cancel starts it again
  async function watch(signal) {
    let ended = false;
    for (let tries = 0; !signal.aborted && !ended && tries < 100; tries++) {
      try {
        await streamEvents(`/pop/progress/agenda/${encodeURIComponent(agenda.progressId)}/events`, (name, data) => {
          if (name === 'progress') onProgress(JSON.parse(data));
          else if (name === 'end') ended = true;
          else if (name === 'error') { ended = true; actionsErr.replaceChildren(problemList(new ApiError(500, JSON.parse(data)))); }
        }, signal);
      } catch (err) {
        if (signal.aborted) return;
        actionsErr.replaceChildren(problemList(err));
      }
      if (signal.aborted || ended) return;
      await new Promise((r) => setTimeout(r, 1500));
    }
  }
  function restart() { abort.abort(); abort = new AbortController(); onLeave(() => abort.abort()); watch(abort.signal); }
  watch(abort.signal);
}

function tryParse(t) { try { return JSON.parse(t); } catch { return t; } }

// ---------------------------------------------------------------- queues and throughput

export async function queues(main, onLeave) {
  const chart = h('div', { class: 'chart', id: 'throughput' });
  const list = h('div', { id: 'queues' });
  main.replaceChildren(h('h1', {}, 'Queues'), h('h2', {}, 'Throughput and agenda duration (from /metrics, sampled every 2 s)'), chart, list);
  // the cards are rebuilt on every refresh: what the person opened and asked stays
  const opened = new Set();
  const answers = new Map();
  const details = (key, summary, ...body) => {
    const d = h('details', { 'data-key': key, open: opened.has(key) }, h('summary', {}, summary), ...body);
    d.addEventListener('toggle', () => { if (d.open) opened.add(key); else opened.delete(key); });
    return d;
  };
  const render = async () => {
    let stats;
    try { stats = await get('/pop/queue/stats'); } catch (err) { list.replaceChildren(problemList(err)); return; }
    list.replaceChildren(...stats.map((s) => {
      const why = h('div', { class: 'muted explain' }, answers.get(s.insightId) || '');
      const explainOne = async (w) => {
        try {
          const e = await post('/pop/agenda/service/explain', { agendaId: w.agendaId });
          answers.set(s.insightId, `${w.agendaId}: ${e.stage}${e.position !== undefined ? ` (position ${e.position})` : ''}: ${e.reason}`);
          why.textContent = answers.get(s.insightId);
        } catch (err) { why.replaceChildren(problemList(err)); }
      };
      return h('div', { class: 'card', 'data-insight': s.insightId },
        h('h2', {}, `${s.title || s.insightId} `, h('span', { class: 'muted' }, s.insightId)),
        h('dl', { class: 'kv' }, h('dt', {}, 'algorithm'), h('dd', {}, s.algorithm), h('dt', {}, 'queue'), h('dd', { class: 'queue-depth' }, `${s.queued} waiting of ${s.queueSize}, ${s.leased} leased by pools`),
          h('dt', {}, 'ready'), h('dd', { class: 'ready-count' }, `${s.ready}${s.truncated ? '+' : ''}`)),
        s.readyByCustomer.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'customer'), h('th', {}, 'ready'))), h('tbody', {}, s.readyByCustomer.map((c) => h('tr', {}, h('td', {}, c.customerId), h('td', {}, c.ready))))) : h('p', { class: 'muted' }, 'No ready agendas.'),
        s.waiting.length ? details(`${s.insightId}/waiting`, `waiting agendas (${s.waiting.length})`, h('ul', {}, s.waiting.map((w) => h('li', {}, h('a', { href: `#/agenda/${encodeURIComponent(w.agendaId)}` }, w.agendaId), ` ${w.customerId} `,
          h('button', { type: 'button', class: 'secondary', 'data-explain': w.agendaId, onclick: () => explainOne(w) }, 'explain'))))) : null,
        why,
        s.state !== undefined ? details(`${s.insightId}/state`, 'algorithm state', h('pre', {}, json(s.state))) : null);
    }));
    if (!stats.length) list.replaceChildren(h('p', { class: 'muted' }, 'No insights visible to you.'));
  };
  const samples = [];
  const sample = async () => {
    try {
      const res = await fetch(`${config.apiBase}/metrics`);
      if (!res.ok) { chart.replaceChildren(h('p', { class: 'muted' }, 'No metrics on this server.')); return; }
      const m = parseMetrics(await res.text());
      samples.push({ t: Date.now(), ...m });
      if (samples.length > 60) samples.shift();
      drawChart(chart, samples);
    } catch { /* next time */ }
  };
  await render();
  await sample();
  const timers = [setInterval(render, 3000), setInterval(sample, 2000)];
  onLeave(() => timers.forEach(clearInterval));
}

/** Completed agendas (counter) and agenda duration (sum, count) from Prometheus text. */
export function parseMetrics(text) {
  let completed = 0, durSum = 0, durCount = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = line.match(/^([a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+)/);
    if (!m) continue;
    const v = Number(m[3]);
    if (m[1] === 'pop_agendas_completed_total') completed += v;
    else if (m[1] === 'pop_agenda_duration_seconds_sum') durSum += v;
    else if (m[1] === 'pop_agenda_duration_seconds_count') durCount += v;
  }
  return { completed, durSum, durCount };
}

function drawChart(box, samples) {
  const W = 900, H = 150, P = 30;
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = (b.t - a.t) / 1000;
    const n = b.completed - a.completed;
    const lat = b.durCount > a.durCount ? (b.durSum - a.durSum) / (b.durCount - a.durCount) : null;
    points.push({ rate: dt > 0 ? Math.max(0, n / dt) : 0, lat: lat ?? (points.length ? points[points.length - 1].lat : null) });
  }
  const maxRate = Math.max(1, ...points.map((p) => p.rate));
  const maxLat = Math.max(0.001, ...points.map((p) => p.lat || 0));
  const slots = Math.max(10, points.length - 1);
  const x = (i) => P + (i * (W - 2 * P)) / slots;
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`); svg.setAttribute('width', W); svg.setAttribute('height', H);
  const line = (vals, max, colour) => {
    const pl = document.createElementNS(NS, 'polyline');
    pl.setAttribute('points', vals.map((v, i) => (v === null ? null : `${x(i)},${H - P - (v / max) * (H - 2 * P)}`)).filter(Boolean).join(' '));
    pl.setAttribute('stroke', colour);
    svg.appendChild(pl);
  };
  const text = (s, tx, ty, colour) => { const t = document.createElementNS(NS, 'text'); t.setAttribute('x', tx); t.setAttribute('y', ty); t.setAttribute('font-size', 11); t.setAttribute('fill', colour); t.textContent = s; svg.appendChild(t); };
  const axis = document.createElementNS(NS, 'path');
  axis.setAttribute('d', `M${P} ${P / 2} V${H - P} H${W - P}`); axis.setAttribute('stroke', '#999'); axis.setAttribute('fill', 'none');
  svg.appendChild(axis);
  line(points.map((p) => p.rate), maxRate, COLOURS.executing);
  line(points.map((p) => p.lat), maxLat, COLOURS.cancelled);
  const last = points[points.length - 1] || { rate: 0, lat: null };
  text(`completed/s: ${last.rate.toFixed(2)} (max ${maxRate.toFixed(2)})`, P + 4, 14, COLOURS.executing);
  text(`mean agenda duration: ${last.lat === null ? '—' : `${last.lat.toFixed(2)} s`} (max ${maxLat.toFixed(2)} s)`, P + 260, 14, COLOURS.cancelled);
  text(`last ${Math.round((samples[samples.length - 1].t - samples[0].t) / 1000)} s`, W - P - 60, H - 8, '#666');
  box.replaceChildren(svg);
}
