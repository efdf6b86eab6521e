// A few DOM helpers: the app is small enough not to need a framework.

import { type Hex, formatEther } from 'viem';

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | ((e: Event) => void) | undefined | null>;

/** `h('button', { class: 'primary', onclick }, 'Fund')`. Attributes starting with `on` are listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = String(v);
    else if (k === 'value' && 'value' in el) (el as HTMLInputElement).value = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

/** A labelled form field: the label names the control for screen readers and clicks. */
export function field(label: string, control: HTMLElement, help?: string): HTMLElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const helpEl = help ? h('small', { id: `${id}-help` }, help) : null;
  if (helpEl) control.setAttribute('aria-describedby', helpEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, helpEl);
}

/** A live region for what an action is doing, and its outcome (errors are alerts). */
export function notice(el: HTMLElement, kind: 'info' | 'ok' | 'error', text: string): void {
  el.className = `notice ${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = text;
}

export function eth(wei: bigint | string | number): string {
  const v = typeof wei === 'bigint' ? wei : BigInt(wei);
  return `${formatEther(v)} ETH`;
}

export function short(x: string | null | undefined): string {
  if (!x) return '—';
  return x.length > 14 ? `${x.slice(0, 8)}…${x.slice(-4)}` : x;
}

/** An address or hash shown short, with the whole value in its title and for copying. */
export function code(x: string | null | undefined, whole = false): HTMLElement {
  return h('code', { title: x ?? '' }, whole ? (x ?? '—') : short(x));
}

export function when(ms: number | null | undefined): string {
  return ms ? new Date(ms).toLocaleTimeString() : '—';
}

export function table(headers: string[], rows: Child[][], caption?: string): HTMLTableElement {
  return h(
    'table',
    {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, ...headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))),
  );
}

export function hex(x: string): Hex {
  return x as Hex;
}

/** Reads a file input's files as bytes. */
export async function readFiles(input: HTMLInputElement): Promise<{ name: string; bytes: Uint8Array }[]> {
  return Promise.all([...(input.files ?? [])].map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
}
