/**
 * Driving the web client in Chromium for a browser test: a fresh context per scenario (errors and dialogs
 * of the page recorded), signing in, starting a chat, sending, axe-core's audit, screenshots. Used by the
 * tests of the memories and agents screens.
 */

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ARTIFACTS_DIR, type WebTestUser } from './web-harness.ts';

/** What a page did that it should not have. */
export interface PageWatch {
  /** Uncaught errors in the page. */
  errors: string[];
  /** alert/confirm/prompt dialogs it opened. */
  dialogs: string[];
}

/** A new context (its own cookies) and page; `close` ends every context opened. */
export function pageOpener(browser: () => Browser) {
  const contexts: BrowserContext[] = [];
  return {
    async open(options: { viewport?: { width: number; height: number } } = {}) {
      const context = await browser().newContext({
        viewport: options.viewport ?? { width: 1280, height: 800 },
        colorScheme: 'light',
        ...(options.viewport && options.viewport.width < 500 ? { isMobile: true, hasTouch: true } : {}),
      });
      contexts.push(context);
      // A step that cannot happen fails in seconds, naming the locator, before the test's own timeout.
      context.setDefaultTimeout(10_000);
      const page = await context.newPage();
      const watch: PageWatch = { errors: [], dialogs: [] };
      page.on('pageerror', (error) => watch.errors.push(error.message));
      page.on('dialog', (dialog) => {
        watch.dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      return { context, page, watch };
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => {});
    },
  };
}

export async function signIn(page: Page, baseUrl: string, user: WebTestUser): Promise<void> {
  await page.goto(baseUrl);
  await page.getByLabel('API key').fill(user.key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** Starts a chat from the list; its id. */
export async function newChat(page: Page): Promise<string> {
  const before = page.url();
  await page.getByRole('button', { name: 'New chat', exact: true }).click();
  await page.waitForURL((url) => /^\/c\/[A-Za-z0-9_-]+$/.test(url.pathname) && url.href !== before);
  await page.getByLabel('Message', { exact: true }).waitFor();
  return new URL(page.url()).pathname.slice(3);
}

/** Sends a message and waits until its reply is complete. */
export async function sendAndWait(page: Page, text: string): Promise<void> {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  await page.getByRole('button', { name: 'Stop' }).waitFor({ state: 'detached', timeout: 15_000 });
  await page.getByRole('button', { name: 'Send' }).waitFor();
}

/** axe-core's WCAG 2.1 A/AA and best-practice rules on the page as it is: the violations found. */
export async function audit(page: Page): Promise<Array<{ id: string; impact: string; targets: string[] }>> {
  const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
  // Evaluated through the DevTools protocol, which the page's CSP does not apply to.
  await page.evaluate(await readFile(axePath, 'utf8'));
  return page.evaluate(`axe
    .run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] })
    .then((result) => result.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      targets: violation.nodes.map((node) => node.target.join(' ')),
    })))`);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS_DIR, `${name}.png`), fullPage: false });
}

/** A GET of the API with the user's key, as another client of the same server would do it. */
export async function apiGet<T>(
  baseUrl: string,
  user: WebTestUser,
  path: string,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${user.key}` } });
  return { status: response.status, body: (await response.json()) as T };
}
