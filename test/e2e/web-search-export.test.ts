/**
 * Search across the chats and the export of a chat, in Chromium against a real parley: words typed in the
 * chat list's search box find the user's messages in several chats (stemmed, the words marked), from the
 * keyboard a hit opens its chat scrolled to that message, highlighted for a moment and focused; Escape
 * brings the chat list back; another user's words are never found. A conversation downloads as Markdown
 * and as JSON. axe-core finds nothing to fix with the hits shown. Screenshots go to test-artifacts/web/.
 */

import { readFile } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chromiumAvailable,
  ensureWebBuilt,
  launchChromium,
  startWebHarness,
  type WebHarness,
} from './web-harness.ts';
import { audit, newChat, pageOpener, screenshot, sendAndWait, signIn } from './web-page.ts';

const FILLER = 'Notes on the weather, the tides and the ferry timetable for the week ahead. '.repeat(5);

describe.skipIf(!chromiumAvailable())('search and export in Chromium', { timeout: 90_000 }, () => {
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

  const searchBox = (page: Page) => page.getByRole('searchbox', { name: 'Search your chats' });
  const hits = (page: Page) => page.getByRole('list', { name: 'Search results' }).getByRole('button');

  it('finds words in several chats and opens a hit at its message, from the keyboard', async () => {
    const user = await harness.createUser('searcher');
    const other = await harness.createUser('stranger');
    // Another user's chat with the same word: never a hit of this user's.
    {
      const { page } = await pages.open();
      await signIn(page, harness.baseUrl, other);
      await newChat(page);
      await sendAndWait(page, 'My own lighthouse story');
    }

    const { page, watch } = await pages.open();
    await signIn(page, harness.baseUrl, user);
    const keeperChat = await newChat(page);
    await sendAndWait(page, 'The lighthouse keeper painted the tower red');
    // Enough after it that the message is scrolled out of sight at the bottom of the chat.
    for (let turn = 0; turn < 4; turn++) await sendAndWait(page, `${FILLER} (${turn})`);
    const portoChat = await newChat(page);
    await sendAndWait(page, 'Is there a lighthouse in Porto?');

    await searchBox(page).fill('lighthouses');
    // Both chats' messages and the (echoing) replies: four hits, none of the other user's.
    await expect.poll(() => hits(page).count()).toBe(4);
    const texts = await hits(page).allTextContents();
    expect(texts.some((text) => text.includes('My own lighthouse story'))).toBe(false);
    // The stem matched: "lighthouse" is marked in every snippet.
    const marks = await page.getByRole('list', { name: 'Search results' }).locator('mark').allTextContents();
    expect(marks.length).toBeGreaterThanOrEqual(4);
    expect(new Set(marks.map((mark) => mark.toLowerCase()))).toEqual(new Set(['lighthouse']));
    // The hits replace the chat list meanwhile.
    expect(await page.getByRole('button', { name: /^Rename/ }).count()).toBe(0);
    expect(
      await page.getByRole('status').filter({ hasText: '4 messages match “lighthouses”.' }).count(),
    ).toBe(1);
    await screenshot(page, '20-search-hits');
    expect(await audit(page)).toEqual([]);

    // Arrow Down goes from the box to the first hit, and on to the next.
    await searchBox(page).focus();
    await page.keyboard.press('ArrowDown');
    expect(await page.evaluate('document.activeElement.className')).toBe('search-hit');
    await page.keyboard.press('ArrowDown');
    expect(await page.evaluate('document.activeElement.textContent')).toBe(texts[1]);

    // Enter on the keeper's own message opens its chat there.
    const keeperHit = hits(page).filter({ hasText: 'You ·' }).filter({ hasText: 'keeper painted' });
    await keeperHit.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`${harness.baseUrl}/c/${keeperChat}`);
    const target = page.locator('article.message-revealed');
    await target.waitFor();
    expect(await target.textContent()).toContain('The lighthouse keeper painted the tower red');
    // Focused, in view, and the log is no longer at its bottom (where a chat opens).
    expect(await page.evaluate('document.activeElement.classList.contains("message-revealed")')).toBe(true);
    const placement = (await page.evaluate(`(() => {
      const log = document.querySelector('.message-log');
      const box = document.querySelector('article.message-revealed').getBoundingClientRect();
      const view = log.getBoundingClientRect();
      return { inView: box.top >= view.top && box.bottom <= view.bottom,
        atBottom: log.scrollHeight - log.scrollTop - log.clientHeight < 4 };
    })()`)) as { inView: boolean; atBottom: boolean };
    expect(placement).toEqual({ inView: true, atBottom: false });
    await screenshot(page, '21-search-revealed');
    // The highlight is brief.
    await expect.poll(() => page.locator('article.message-revealed').count(), { timeout: 5000 }).toBe(0);

    // Escape in the box empties it and brings the chat list back.
    await searchBox(page).focus();
    await page.keyboard.press('Escape');
    expect(await searchBox(page).inputValue()).toBe('');
    await page.getByRole('button', { name: /^Rename “Is there a lighthouse in Porto/ }).waitFor();
    expect(portoChat).not.toBe(keeperChat);

    // A word in no message: said plainly.
    await searchBox(page).fill('zeppelin');
    await page.getByRole('status').filter({ hasText: 'No messages match “zeppelin”.' }).waitFor();
    expect(watch.errors).toEqual([]);
  });

  it('downloads a conversation as Markdown and as JSON', async () => {
    const user = await harness.createUser('exporter');
    const { page, watch } = await pages.open();
    await signIn(page, harness.baseUrl, user);
    const sessionId = await newChat(page);
    await sendAndWait(page, 'Plan a picnic by the river');
    await sendAndWait(page, 'Add lemonade');

    // From the keyboard: the link focused, Enter.
    const markdownLink = page.getByRole('link', { name: 'Export as Markdown' });
    await markdownLink.focus();
    const [markdown] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
    expect(markdown.suggestedFilename()).toMatch(/^parley-plan-a-picnic-by-the-river-\d{4}-\d\d-\d\d\.md$/);
    const text = await readFile(await markdown.path(), 'utf8');
    expect(text.startsWith('# Plan a picnic by the river\n')).toBe(true);
    expect([...text.matchAll(/^## (You|Assistant) · /gm)].map((match) => match[1])).toEqual([
      'You',
      'Assistant',
      'You',
      'Assistant',
    ]);
    expect(text).toContain('Add lemonade');

    const [json] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export as JSON' }).click(),
    ]);
    expect(json.suggestedFilename()).toMatch(/\.json$/);
    const exported = JSON.parse(await readFile(await json.path(), 'utf8'));
    expect(exported.session.id).toBe(sessionId);
    expect(exported.messages.map((message: { role: string }) => message.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
    ]);
    expect(exported.messages[0].content).toBe('Plan a picnic by the river');
    expect(watch.errors).toEqual([]);
  });
});
