// Renders /api/v1/openapi.json for people: operations grouped by tag, each expandable to its
// parameters, request body and responses. No framework and nothing from a CDN: the server's
// Content-Security-Policy allows only this origin's script and style.
'use strict';

const METHODS = ['get', 'put', 'post', 'patch', 'delete'];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'class') node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Follows local `#/components/...` references, at most `depth` levels, so cyclic schemas end.
function resolve(doc, value, depth = 8) {
  if (depth <= 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => resolve(doc, v, depth - 1));
  if (typeof value.$ref === 'string' && value.$ref.startsWith('#/')) {
    const target = value.$ref.slice(2).split('/').reduce((node, key) => (node ? node[key] : undefined), doc);
    return target === undefined ? value : resolve(doc, target, depth - 1);
  }
  const out = {};
  for (const [key, v] of Object.entries(value)) out[key] = resolve(doc, v, depth - 1);
  return out;
}

function schemaBlock(doc, schema) {
  return el('pre', {}, JSON.stringify(resolve(doc, schema), null, 2));
}

function parametersTable(doc, parameters) {
  if (!parameters || parameters.length === 0) return null;
  const rows = parameters.map((p) => {
    const param = resolve(doc, p);
    const type = param.schema ? (param.schema.type || '') : '';
    return el('tr', {}, el('td', {}, el('code', {}, param.name)), el('td', {}, param.in),
      el('td', {}, Array.isArray(type) ? type.join(' | ') : type),
      el('td', {}, param.required ? 'required' : ''), el('td', {}, param.description || ''));
  });
  return el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'in'),
    el('th', {}, 'type'), el('th', {}, ''), el('th', {}, 'description'))), el('tbody', {}, ...rows));
}

function requestBody(doc, body) {
  if (!body) return null;
  const resolved = resolve(doc, body, 1);
  const parts = [el('h4', {}, 'Request body')];
  if (resolved.description) parts.push(el('p', {}, resolved.description));
  for (const [type, content] of Object.entries(resolved.content || {})) {
    parts.push(el('p', {}, el('code', {}, type)));
    if (content.schema) parts.push(schemaBlock(doc, content.schema));
  }
  return el('div', {}, ...parts);
}

function responsesTable(doc, responses) {
  const rows = Object.entries(responses || {}).map(([status, response]) => {
    const r = resolve(doc, response, 1);
    const types = Object.keys(r.content || {}).join(', ');
    return el('tr', {}, el('td', {}, el('code', {}, status)), el('td', {}, r.description || ''),
      el('td', {}, types));
  });
  return el('div', {}, el('h4', {}, 'Responses'), el('table', {}, el('tbody', {}, ...rows)));
}

function operationView(doc, method, path, op) {
  const isPublic = Array.isArray(op.security) && op.security.some((s) => Object.keys(s).length === 0);
  const summary = el('summary', {}, el('span', { class: `method ${method}` }, method),
    el('span', { class: 'path' }, path), el('span', { class: 'summary' }, op.summary || ''),
    isPublic ? el('span', { class: 'public' }, 'no credential') : null);
  const body = el('div', { class: 'op-body' },
    op.description ? el('p', {}, op.description) : null,
    parametersTable(doc, op.parameters), requestBody(doc, op.requestBody),
    responsesTable(doc, op.responses));
  const details = el('details', { class: 'op', id: op.operationId || `${method}-${path}` }, summary, body);
  details.dataset.search = `${method} ${path} ${op.summary || ''} ${(op.tags || []).join(' ')}`.toLowerCase();
  return details;
}

function render(doc) {
  document.getElementById('version').textContent = doc.info && doc.info.version ? `v${doc.info.version}` : '';
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(doc, method, path, op));
    }
  }
  const main = document.getElementById('operations');
  const nav = document.getElementById('tags');
  main.replaceChildren();
  for (const tag of [...byTag.keys()].sort()) {
    const id = `tag-${tag.replace(/[^a-z0-9]+/gi, '-')}`;
    nav.append(el('a', { href: `#${id}` }, tag));
    main.append(el('section', { class: 'tag', id }, el('h2', {}, tag), ...byTag.get(tag)));
  }
}

function applyFilter(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  for (const op of document.querySelectorAll('details.op')) {
    const shown = words.every((w) => op.dataset.search.includes(w));
    op.classList.toggle('hidden', !shown);
  }
  for (const section of document.querySelectorAll('section.tag')) {
    const any = section.querySelector('details.op:not(.hidden)');
    section.classList.toggle('hidden', !any);
  }
}

async function main() {
  const status = document.getElementById('status');
  try {
    const response = await fetch('/api/v1/openapi.json', { credentials: 'same-origin' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (err) {
    status.textContent = `The document could not be loaded: ${err.message}`;
    return;
  }
  document.getElementById('filter').addEventListener('input', (e) => applyFilter(e.target.value));
}

main();
