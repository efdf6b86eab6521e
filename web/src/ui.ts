// A few DOM helpers: the app is small enough not to need a framework.

import { type Hex, formatEther, parseEther } from 'viem';

import { explain } from './errors';

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

/**
 * A button's action: the button is disabled while it runs, and `out` says what it is doing, then the
 * outcome (the action's own sentence, or the error explained).
 */
export function action(out: HTMLElement, f: () => Promise<string>, after?: () => Promise<void>): (e: Event) => Promise<void> {
  return async (e: Event) => {
    const button = e.currentTarget as HTMLButtonElement;
    button.disabled = true;
    try {
      notice(out, 'info', 'Working…');
      notice(out, 'ok', await f());
      await after?.();
    } catch (err) {
      notice(out, 'error', explain(err));
    } finally {
      button.disabled = false;
    }
  };
}

/** Runs `f` when the form is submitted, with its submit button disabled and errors shown in `out`. */
export function onSubmit(form: HTMLFormElement, out: HTMLElement, f: () => Promise<void>): void {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type="submit"]') as HTMLButtonElement;
    button.disabled = true;
    try {
      await f();
    } catch (err) {
      notice(out, 'error', explain(err));
    } finally {
      button.disabled = false;
    }
  });
}

/** An amount of ETH typed by a person, in wei; the error names the field and shows an example. */
export function parseEthField(text: string, what: string, example: string): bigint {
  try {
    return parseEther(text.trim());
  } catch {
    throw new Error(`The ${what} "${text}" is not an amount of ETH (e.g. ${example}).`);
  }
}

/** The id in a page's URL, or a "no such" page when it is not one. */
export function pageId(main: HTMLElement, text: string, what: string): bigint | undefined {
  try {
    return BigInt(text);
  } catch {
    main.append(h('h1', {}, `No such ${what}`), h('p', { role: 'alert' }, `"${text}" is not a ${what} id.`));
    return undefined;
  }
}
