/**
 * Rating replies in Chromium against a real parley: 👍 under a reply is pressed at once and saved (another
 * client of the API sees it, and a reload shows it again); 👎 replaces it and offers a box to say what was
 * wrong, sent as the rating's comment; pressing the pressed one again withdraws the rating. axe-core finds nothing to fix with the buttons shown.
 */

import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chromiumAvailable,
  ensureWebBuilt,
  launchChromium,
  startWebHarness,
  type WebHarness,
} from './web-harness.ts';
import { apiGet, audit, newChat, pageOpener, screenshot, sendAndWait, signIn } from './web-page.ts';

describe.skipIf(!chromiumAvailable())('rating replies in Chromium', { timeout: 90_000 }, () => {
  let harness: WebHarness;
  let browser: Browser;
  const pages = pageOpener(() => browser);

  beforeAll(async () => {
    await ensureWebBuilt();
    harness = await startWebHarness();
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await pages.close();
    await browser?.close();
    await harness?.close();
  });

  const reply = (page: Page) => page.getByRole('article', { name: 'Reply' }).last();
  const thumb = (page: Page, name: 'Good reply' | 'Bad reply') => reply(page).getByRole('button', { name });

  it('rates a reply, changes the rating and withdraws it; the server keeps what is shown', async () => {
    const user = await harness.createUser('rater');
    const { page } = await pages.open();
    await signIn(page, harness.baseUrl, user);
    const sessionId = await newChat(page);
    await sendAndWait(page, 'Rate this answer, please');
    const ratings = async () =>
      (
        await apiGet<{ feedback: Array<{ rating: string }> }>(
          harness.baseUrl,
          user,
          `/v1/sessions/${sessionId}/feedback`,
        )
      ).body.feedback.map((entry) => entry.rating);

    expect(await thumb(page, 'Good reply').getAttribute('aria-pressed')).toBe('false');
    await thumb(page, 'Good reply').click();
    expect(await thumb(page, 'Good reply').getAttribute('aria-pressed')).toBe('true');
    await expect.poll(ratings).toEqual(['up']);
    await screenshot(page, '40-reply-rated');
    expect(await audit(page)).toEqual([]);

    // Shown again after a reload: it was saved, not only drawn.
    await page.reload();
    await thumb(page, 'Good reply').waitFor();
    await expect.poll(() => thumb(page, 'Good reply').getAttribute('aria-pressed')).toBe('true');

    await thumb(page, 'Bad reply').click();
    expect(await thumb(page, 'Good reply').getAttribute('aria-pressed')).toBe('false');
    await expect.poll(ratings).toEqual(['down']);
    // Rated down: saved at once, and a box asks what was wrong (focused, optional).
    const box = page.getByRole('textbox', { name: /What was wrong with this reply/ });
    await box.waitFor();
    expect(await page.evaluate('document.activeElement.closest("form")?.getAttribute("aria-label")')).toBe(
      'What was wrong with this reply',
    );
    await screenshot(page, '41-reply-rated-down');
    expect(await audit(page)).toEqual([]);
    await box.fill('It made up the year');
    await page
      .getByRole('form', { name: 'What was wrong with this reply' })
      .getByRole('button', { name: 'Send feedback' })
      .click();
    await box.waitFor({ state: 'detached' });
    const comments = async () =>
      (
        await apiGet<{ feedback: Array<{ rating: string; comment?: string }> }>(
          harness.baseUrl,
          user,
          `/v1/sessions/${sessionId}/feedback`,
        )
      ).body.feedback;
    await expect
      .poll(comments)
      .toEqual([expect.objectContaining({ rating: 'down', comment: 'It made up the year' })]);

    await thumb(page, 'Bad reply').click();
    expect(await thumb(page, 'Bad reply').getAttribute('aria-pressed')).toBe('false');
    await expect.poll(ratings).toEqual([]);
  });
});
