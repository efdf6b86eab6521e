// End to end in headless Chromium against a real devnet (anvil, contracts, coordinator serving
// web/dist, a verifier, three workers): a buyer with an injected EIP-6963 wallet funds a compute job
// and a storage deal and sees both released; a provider sees its earnings and withdraws them; the
// network view is live. Screenshots of each workspace go to web/test-results/.
//
//   node e2e/run.mjs --qor <path to the qor binary>   (npm run e2e -- --qor …)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { installWallet } from './wallet.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const results = join(here, '..', 'test-results');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const qor = arg('--qor', join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'release', 'qor'));
/** A port nothing listens on now (the OS picks it), so a busy machine does not fail the test. */
const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
const chainPort = Number(arg('--chain-port', String(await freePort())));
const coordinatorPort = Number(arg('--coordinator-port', String(await freePort())));
// anvil's well-known keys: the devnet's buyer (account 3) and first provider (account 2).
const BUYER_KEY = '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6';
const PROVIDER_KEY = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a';
const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${what}`);

async function startDevnet() {
  const dataDir = mkdtempSync(join(tmpdir(), 'qor-web-e2e-'));
  const child = spawn(
    qor,
    ['devnet', '--data-dir', dataDir, '--chain-port', String(chainPort), '--coordinator-port', String(coordinatorPort), '--challenge-window', '15', '--web-dir', join(root, 'web', 'dist')],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const deadline = Date.now() + 180_000;
  while (!out.includes('QOR devnet is up')) {
    if (child.exitCode !== null) throw new Error(`qor devnet exited (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) throw new Error(`qor devnet did not come up in 180 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.match(out, /web app +http:\/\/127\.0\.0\.1:\d+\/ /, 'the devnet says where the web app is');
  const stop = async (keepLogs = false) => {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    }
    if (!keepLogs) rmSync(dataDir, { recursive: true, force: true });
  };
  return { base: `http://127.0.0.1:${coordinatorPort}`, rpcUrl: `http://127.0.0.1:${chainPort}`, stop, log: () => out, dataDir };
}

async function newPage(browser, net, key, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const wallet = await installWallet(context, { key, rpcUrl: net.rpcUrl, chainId: 31337 });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  return { page, wallet, context };
}

async function rpc(url, method, params) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  const body = await r.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

const statusText = (page) => page.locator('#wallet-status').innerText();

async function connectAndSignIn(page, wallet, base, route) {
  await page.goto(`${base}/#/${route}`);
  await page.getByRole('button', { name: 'QOR Test Wallet' }).click();
  await page.getByTestId('account').waitFor();
  assert.ok(wallet.requests.includes('wallet_addEthereumChain'), `the app added the devnet chain to the wallet: ${wallet.requests}`);
  assert.ok(wallet.requests.includes('wallet_switchEthereumChain'), 'and switched to it');
  // A refused signature gets its own message, and nothing is signed in.
  wallet.reject();
  await page.getByRole('button', { name: 'Sign in with Ethereum' }).click();
  await page.waitForFunction(() => document.querySelector('#wallet-status')?.textContent?.includes('You rejected the request'));
  assert.equal(await page.getByTestId('session').count(), 0);
  await page.getByRole('button', { name: 'Sign in with Ethereum' }).click();
  await page.getByTestId('session').waitFor();
  assert.match(await statusText(page), /Signed in as/);
}

async function waitText(locator, re, timeout) {
  await locator.page().waitForFunction(
    ([sel, source]) => new RegExp(source).test(document.querySelector(sel)?.textContent ?? ''),
    [await locator.evaluate((el) => `[data-testid="${el.dataset.testid}"]`), re.source],
    { timeout },
  );
}

async function buyer(browser, net) {
  const { page, wallet } = await newPage(browser, net, BUYER_KEY);
  await connectAndSignIn(page, wallet, net.base, 'buyer');
  step('buyer connected (chain added and switched) and signed in; a rejected signature was reported');
  await page.screenshot({ path: join(results, 'buyer-workspace.png'), fullPage: true });

  // Compute: wordcount over an input file, three replicas.
  const job = page.locator('form', { has: page.getByRole('heading', { name: 'Fund a compute job' }) });
  await job.getByLabel('WebAssembly module').setInputFiles(join(root, 'examples/jobs/target/wasm32-wasip1/release/wordcount.wasm'));
  await job.getByLabel('Input files').setInputFiles({ name: 'words.txt', mimeType: 'text/plain', buffer: Buffer.from('the quick brown fox jumps over the lazy dog\nthe end\n') });
  await job.getByLabel('Arguments').fill('/in/words.txt');
  await job.getByLabel('Budget (ETH)').fill('100000');
  await waitText(page.getByTestId('quote'), /Quote: at most/, 5000);
  // More than the account holds: refused before the wallet is asked.
  await job.getByRole('button', { name: 'Review and fund' }).click();
  await waitText(page.getByTestId('job-status'), /Your balance is .* this needs 100000 ETH/, 20_000);
  await job.getByLabel('Budget (ETH)').fill('0.01');
  await job.getByRole('button', { name: 'Review and fund' }).click();
  await page.waitForURL(/#\/job\/\d+$/, { timeout: 60_000 });
  const jobUrl = page.url();
  step(`compute job funded: ${jobUrl}`);
  // Anyone may dispute a settlement in its window: the buyer does, with the bond; the committee re-runs
  // the job, finds the same digest and rejects the challenge, and the batch is released after all.
  await waitText(page.getByTestId('chain-status'), /^settled$/, 120_000);
  await page.getByRole('button', { name: 'Challenge the settlement (bond)' }).click();
  await waitText(page.getByTestId('action-status'), /Challenged with a bond of/, 30_000);
  step('the buyer challenged the settlement in its window');
  await waitText(page.getByTestId('challenge-status'), /^rejected$/, 120_000);
  await waitText(page.getByTestId('chain-status'), /^finalized$/, 120_000);
  step('the challenge was rejected by the committee; the job was released on chain (finalized)');
  await page.getByRole('button', { name: 'Verify in browser' }).click();
  await waitText(page.getByTestId('action-status'), /Verified in this browser: stdout and 1 file\(s\) hash to 0x[0-9a-f]{64}, the digest settled on chain/, 30_000);
  const steps = await page.locator('ol.timeline li').evaluateAll((els) => els.map((e) => `${e.dataset.step}:${e.className}`));
  assert.deepEqual(steps, ['Escrow locked:done', 'Assigned:done', 'Executing:done', 'Receipts:done', 'Verified:done', 'Challenge window:done', 'Released:done']);
  assert.equal(await page.locator('table caption', { hasText: 'Receipts per replica' }).count(), 1);
  await page.screenshot({ path: join(results, 'buyer-job.png'), fullPage: true });

  // Python: a script and its CSV, on the pinned CPython the page fetched from its own origin and
  // hashed before uploading; three workers run it to a settled digest.
  await page.goto(`${net.base}/#/buyer`);
  const py = page.locator('form', { has: page.getByRole('heading', { name: 'Fund a compute job' }) });
  await py.getByLabel('WebAssembly module').setInputFiles(join(root, 'examples/python/analysis.py'));
  await waitText(page.getByTestId('runtime'), /Runs on python 3\.12\.0/, 5000);
  await py.getByLabel('Input files').setInputFiles(join(root, 'examples/python/data.csv'));
  await py.getByLabel('Budget (ETH)').fill('0.1');
  await waitText(page.getByTestId('quote'), /Quote: at most/, 5000);
  await py.getByRole('button', { name: 'Review and fund' }).click();
  await page.waitForURL(/#\/job\/\d+$/, { timeout: 120_000 });
  await waitText(page.getByTestId('chain-status'), /^(settled|finalized)$/, 300_000);
  step(`python job settled: ${page.url()}`);

  // Storage: pasted text; the root is computed in the page before funding.
  await page.goto(`${net.base}/#/buyer`);
  const deal = page.locator('form', { has: page.getByRole('heading', { name: 'Fund a storage deal' }) });
  const text = 'QOR stores this line, and proves it every period.\n'.repeat(60);
  await deal.getByLabel('Text').fill(text);
  await waitText(page.getByTestId('root'), /Merkle root \(computed in this browser\): 0x[0-9a-f]{64} · 3000 bytes in 3 chunk\(s\)/, 5000);
  await deal.getByLabel('Periods').fill('3');
  await deal.getByLabel('Blocks per period').fill('6');
  await deal.getByRole('button', { name: 'Compute the root and fund' }).click();
  await page.waitForURL(/#\/deal\/\d+$/, { timeout: 60_000 });
  step(`storage deal funded: ${page.url()}`);
  await waitText(page.getByTestId('deal-chain-status'), /^active$/, 60_000);
  await page.getByRole('button', { name: 'Ask for a proof now' }).click();
  await waitText(page.getByTestId('deal-action-status'), /proof checks against the root on chain/, 60_000);
  step('a chunk proof asked from the page checked against the root');
  await waitText(page.getByTestId('deal-chain-status'), /^completed$/, 120_000);
  await page.getByRole('button', { name: 'Download and recompute the root' }).click();
  await waitText(page.getByTestId('deal-action-status'), /Downloaded 3000 bytes; every chunk hashes to the root on chain/, 30_000);
  await page.waitForFunction(() => document.body.textContent?.includes('Challenge history'));
  step('storage deal completed (every period settled)');
  await page.screenshot({ path: join(results, 'buyer-deal.png'), fullPage: true });

  // A job no provider's price fits stays open; reclaiming it early is refused by the escrow, by name.
  await page.goto(`${net.base}/#/buyer`);
  await job.getByLabel('WebAssembly module').setInputFiles(join(root, 'examples/jobs/target/wasm32-wasip1/release/hello.wasm'));
  await job.getByLabel('Replicas').fill('1');
  await job.getByLabel('Budget (ETH)').fill('0.000000001');
  await job.getByRole('button', { name: 'Review and fund' }).click();
  await page.waitForURL(/#\/job\/\d+$/, { timeout: 60_000 });
  await page.getByRole('button', { name: 'Reclaim the budget' }).click();
  await waitText(page.getByTestId('action-status'), /JobEscrow_DeadlineNotReached\(.*\)\. You can reclaim only after the deadline/, 30_000);
  step('an early reclaim was refused with the contract error by name');
  // The person switches the wallet to another network: the page says so; the next transaction asks
  // the wallet to switch back before anything is sent.
  await wallet.switchTo(page, 1);
  await page.getByText('Wrong network (chain 1); this market is on chain 31337.').waitFor();
  // Past the deadline (anvil moves its clock), the same button gives the budget back.
  await rpc(net.rpcUrl, 'evm_increaseTime', [3700]);
  await rpc(net.rpcUrl, 'evm_mine', []);
  await page.getByRole('button', { name: 'Reclaim the budget' }).click();
  await waitText(page.getByTestId('action-status'), /Reclaimed 0\.000000001 ETH/, 30_000);
  await waitText(page.getByTestId('chain-status'), /^reclaimed$/, 10_000);
  assert.equal(await page.getByText('Wrong network').count(), 0, 'the app switched the wallet back to the market chain');
  step('after the deadline the budget was reclaimed (the wallet switched back from chain 1 first)');

  // The unspent budget and refunds are the buyer's to withdraw; the buyer's jobs and deals are listed.
  await page.goto(`${net.base}/#/buyer`);
  await page.getByRole('link', { name: 'Job 1' }).waitFor();
  await page.getByRole('link', { name: 'Deal 1' }).waitFor();
  const withdraw = page.getByRole('button', { name: 'Withdraw ETH' });
  await withdraw.waitFor();
  assert.equal(await withdraw.isDisabled(), false, 'the buyer has an unspent budget to withdraw');
  await withdraw.click();
  await waitText(page.getByTestId('withdraw-status'), /Withdrew .* ETH to your account/, 30_000);

  // Phone-sized: nothing wider than the screen, every control labelled.
  const phone = await newPage(browser, net, BUYER_KEY, { width: 390, height: 844 });
  await phone.page.goto(`${net.base}/#/buyer`);
  await phone.page.getByRole('heading', { name: 'Fund a compute job' }).waitFor();
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the buyer page is ${overflow} px wider than a phone`);
  const unlabelled = await phone.page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')].filter((el) => !document.querySelector(`label[for="${el.id}"]`)).map((el) => el.outerHTML),
  );
  assert.deepEqual(unlabelled, []);
  // Keyboard: the first Tab reaches the skip link, Enter moves to the page, the next Tab to its first control.
  await phone.page.keyboard.press('Tab');
  assert.equal(await phone.page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  await phone.page.keyboard.press('Enter');
  assert.equal(await phone.page.evaluate(() => document.activeElement?.id), 'main');
  await phone.page.keyboard.press('Tab');
  assert.equal(await phone.page.evaluate(() => document.activeElement?.getAttribute('name')), 'module');
  await phone.page.screenshot({ path: join(results, 'buyer-phone.png'), fullPage: true });
  return jobUrl;
}

async function provider(browser, net) {
  const { page, wallet } = await newPage(browser, net, PROVIDER_KEY);
  await connectAndSignIn(page, wallet, net.base, 'provider');
  assert.match(await page.getByTestId('session').innerText(), /provider/);
  await page.getByRole('heading', { name: 'Earnings' }).waitFor();
  const earned = await page.getByTestId('earned').innerText();
  assert.notEqual(earned, '0 ETH', 'the provider was paid for the job');
  assert.ok(Number(await page.getByTestId('completed').innerText()) >= 1, 'and its record counts the job');
  assert.equal(await page.locator('table caption', { hasText: 'Earnings feed' }).count(), 1);
  step(`provider workspace: earned ${earned}`);
  await page.screenshot({ path: join(results, 'provider-workspace.png'), fullPage: true });
  await page.getByRole('button', { name: 'Withdraw ETH' }).click();
  await waitText(page.getByTestId('withdraw-status'), /Withdrew .* ETH to your account/, 30_000);
}

async function network(browser, net) {
  const { page } = await newPage(browser, net, BUYER_KEY);
  await page.goto(`${net.base}/#/network`);
  // WalletConnect is offered even with no project id configured, and then says what is missing.
  await page.getByRole('button', { name: 'WalletConnect' }).click();
  await page.waitForFunction(() => document.querySelector('#wallet-status')?.textContent?.includes('WalletConnect needs a project id'));
  await waitText(page.getByTestId('chain-id'), /^31337$/, 10_000);
  const first = Number(await page.getByTestId('block-number').innerText());
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid="block-number"]')?.textContent) > n, first, { timeout: 10_000 });
  const events = await page.getByTestId('event-name').allInnerTexts();
  assert.ok(events.includes('Withdrawn'), `the latest events include the withdrawals: ${events}`);
  step('network view follows new blocks and shows contract events');
  await page.screenshot({ path: join(results, 'network.png'), fullPage: true });
  await page.locator('a[href^="#/tx/"]').first().click();
  await page.getByRole('heading', { name: 'Transaction' }).waitFor();
  await page.waitForFunction(() => document.body.textContent?.includes('success'));
}

mkdirSync(results, { recursive: true });
const net = await startDevnet();
step(`devnet up: ${net.base}`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  await buyer(browser, net);
  await provider(browser, net);
  await network(browser, net);
  step('web e2e passed');
} catch (e) {
  failed = true;
  console.error(`web e2e FAILED: ${e.stack ?? e}`);
  for (const [i, ctx] of browser.contexts().entries()) {
    for (const [j, p] of ctx.pages().entries()) await p.screenshot({ path: join(results, `failure-${i}-${j}.png`), fullPage: true }).catch(() => {});
  }
  console.error(`devnet output:\n${net.log()}\n(logs kept in ${net.dataDir})`);
} finally {
  await browser.close();
  await net.stop(failed);
}
process.exit(failed ? 1 : 0);
