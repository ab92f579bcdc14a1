// DOM helpers. Every element is made with createElement and every string
// goes in as textContent or an attribute value, never as markup: a stored
// description such as `<img src=x onerror=alert(1)>` shows as those
// characters. (No string is ever parsed as HTML in the console; a test
// greps these files for the APIs that would.)

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, props, children) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') {
      el.textContent = String(v);
    } else if (k.startsWith('on')) {
      if (typeof v !== 'function') throw new TypeError(`${k} must be a function`);
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'style') {
      throw new TypeError('no inline style (CSP)');
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: nodes, strings (as text), arrays of them; skips null. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h('button', {type: 'button', onclick: f, text: 'Go'}). */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element. */
export function svg(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Shows or hides an element, keeping its space (no layout jump). */
export function veil(el, hidden) {
  el.classList.toggle('veiled', hidden);
  if (hidden) el.setAttribute('aria-hidden', 'true');
  else el.removeAttribute('aria-hidden');
}

let uid = 0;
/** A fresh id for label/for pairs. */
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled control: returns [label, control]. */
export function labelled(text, control) {
  if (!control.id) control.id = nextId('f');
  return [h('label', { for: control.id, text }), control];
}

/** A <select> of [value, text] pairs with `value` selected. */
export function select(options, value, props) {
  const s = h('select', props);
  for (const [v, t] of options) {
    const o = h('option', { value: v, text: t });
    if (v === value) o.selected = true;
    s.append(o);
  }
  return s;
}

/** Milliseconds to the next frame after the DOM changes are painted. */
export function afterPaint() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}
