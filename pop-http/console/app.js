// The console's entry: session, navigation (hash routes), and the page of each route.

import { config, session } from './api.js';
import * as views from './views.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const signout = document.getElementById('signout');
if (config.readOnly) {
  document.body.classList.add('read-only');
  const banner = document.getElementById('banner');
  banner.textContent = 'Read-only console: nothing can be changed from here.';
  banner.hidden = false;
}

let leaving = [];
const onLeave = (fn) => leaving.push(fn);
const go = (hash) => { if (location.hash === hash) route(); else location.hash = hash; };

signout.addEventListener('click', () => { session.signOut(); go('#/signin'); });
window.addEventListener('pop:unauthorized', () => { session.signOut(); go('#/signin'); });

async function route() {
  for (const fn of leaving) { try { fn(); } catch { /* ignore */ } }
  leaving = [];
  const hash = location.hash || '#/agendas';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', hash.startsWith(a.getAttribute('href')));
  const signedIn = !!session.token();
  signout.hidden = !signedIn;
  document.getElementById('nav').hidden = !signedIn;
  if (!signedIn || parts[0] === 'signin') { who.textContent = ''; return views.signIn(main, go); }
  who.textContent = config.readOnly ? 'signed in (read-only)' : 'signed in';
  main.replaceChildren(views.h('p', { class: 'muted' }, 'Loading…'));
  const mutating = ['submit', 'new'];
  if (config.readOnly && (mutating.includes(parts[0]) || parts[1] === 'new')) {
    main.replaceChildren(views.h('p', { class: 'error', id: 'read-only-refusal' }, 'This console is read-only.'));
    return;
  }
  switch (parts[0]) {
    case 'agendas': return views.agendas(main, params, go);
    case 'agenda': return views.agendaPage(main, parts[1], go, onLeave);
    case 'customers': case 'pools': case 'insights': case 'templates':
      if (parts[1] === 'new') return views.objectForm(main, parts[0], null, go);
      if (parts[1] === 'edit') return views.objectForm(main, parts[0], parts[2], go);
      return views.objects(main, parts[0], params, go);
    case 'submit': return views.submit(main, go);
    case 'queues': return views.queues(main, onLeave);
    default: return go('#/agendas');
  }
}

window.addEventListener('hashchange', route);
route();
