// QOR web app: the header (wallets, chain, Sign-In with Ethereum) and the pages, routed by the URL's
// fragment so the coordinator serves one index.html.

import './style.css';

import { getAccount } from '@wagmi/core';

import { type ChainInfo, api } from './api';
import { type App, createApp } from './app';
import { explain } from './errors';
import { code, h, notice } from './ui';
import { buyerPage } from './views/buyer';
import { dealPage } from './views/deal';
import { jobPage } from './views/job';
import { networkPage, txPage } from './views/network';
import { providerPage } from './views/provider';
import { WALLETCONNECT_MISSING, connectWallet, createWallet, onAccountChange, onWalletsChange, resumeSession, signIn, signOut, wallets } from './wallet';

const header = document.getElementById('wallet') as HTMLElement;
const main = document.getElementById('main') as HTMLElement;
const status = document.getElementById('wallet-status') as HTMLElement;
let leave: (() => void) | undefined;

async function boot(): Promise<void> {
  let info: ChainInfo;
  try {
    info = await api<ChainInfo>('/v1/chain');
  } catch (e) {
    main.replaceChildren(h('p', { role: 'alert', class: 'notice error' }, explain(e)));
    return;
  }
  const wallet = createWallet(info);
  const app: App = createApp(info, wallet, () => renderHeader(app));
  onWalletsChange(wallet, () => renderHeader(app));
  let seen = getAccount(wallet.config).address;
  onAccountChange(wallet, async () => {
    const now = getAccount(wallet.config).address;
    if (now === seen) return renderHeader(app);
    seen = now;
    app.session = await resumeSession(now);
    renderHeader(app);
    void route(app);
  });
  renderHeader(app);
  window.addEventListener('hashchange', () => void route(app).then(() => main.focus()));
  // The skip link moves focus; following its `#main` would be a route.
  document.querySelector('.skip')?.addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  await route(app);
}

function renderHeader(app: App): void {
  const acct = getAccount(app.wallet.config);
  const items: (Node | string)[] = [];
  if (acct.status === 'connected' && acct.address) {
    const wrong = acct.chainId !== app.wallet.chain.id;
    items.push(
      h('span', { 'data-testid': 'account' }, 'Connected: ', code(acct.address), ` via ${acct.connector?.name ?? 'wallet'}`),
      wrong ? h('span', { class: 'notice error', role: 'alert' }, ` Wrong network (chain ${acct.chainId}); this market is on chain ${app.wallet.chain.id}.`) : '',
    );
    if (app.session) {
      items.push(h('span', { 'data-testid': 'session' }, ` · signed in as ${app.session.roles.join(', ')}`), h('button', { onclick: () => void act(app, async () => { await signOut(); app.session = undefined; return 'Signed out.'; }) }, 'Sign out'));
    } else {
      items.push(h('button', { class: 'primary', onclick: () => void act(app, async () => { app.session = await signIn(app.wallet); void route(app); return `Signed in as ${app.session.roles.join(', ')}.`; }) }, 'Sign in with Ethereum'));
    }
  } else {
    const list = wallets(app.wallet).filter((c) => c.type !== 'walletConnect');
    items.push(h('span', {}, list.length ? 'Connect: ' : 'No browser wallet found (install MetaMask or another EIP-6963 wallet). '));
    for (const c of list) {
      items.push(h('button', { 'data-connector': c.id, onclick: () => void act(app, async () => `Connected ${await connectWallet(app.wallet, c)}.`) }, c.name));
    }
    const wc = wallets(app.wallet).find((c) => c.type === 'walletConnect');
    items.push(
      h(
        'button',
        {
          'data-connector': 'walletConnect',
          onclick: () => void act(app, async () => {
            if (!wc) throw new Error(WALLETCONNECT_MISSING);
            return `Connected ${await connectWallet(app.wallet, wc)}.`;
          }),
        },
        'WalletConnect',
      ),
    );
  }
  header.replaceChildren(...items);
}

async function act(app: App, f: () => Promise<string>): Promise<void> {
  try {
    notice(status, 'info', 'Check your wallet…');
    notice(status, 'ok', await f());
  } catch (e) {
    notice(status, 'error', explain(e));
  }
  renderHeader(app);
}

async function route(app: App): Promise<void> {
  leave?.();
  leave = undefined;
  main.replaceChildren();
  const [, page = '', arg = ''] = location.hash.split('/');
  for (const a of document.querySelectorAll('nav a')) a.removeAttribute('aria-current');
  document.querySelector(`nav a[href="#/${page}"]`)?.setAttribute('aria-current', 'page');
  try {
    if (page === 'buyer' || page === '') await buyerPage(app, main);
    else if (page === 'job') leave = await jobPage(app, main, arg);
    else if (page === 'deal') leave = await dealPage(app, main, arg);
    else if (page === 'provider') await providerPage(app, main);
    else if (page === 'network') leave = await networkPage(app, main);
    else if (page === 'tx') await txPage(app, main, arg);
    else main.append(h('h1', {}, 'Not found'), h('p', {}, `There is no page "${location.hash}".`));
  } catch (e) {
    main.append(h('p', { role: 'alert', class: 'notice error' }, explain(e)));
  }
}

void boot();
