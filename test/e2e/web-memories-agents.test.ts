/**
 * The screens of the optional modules in Chromium against a real parley: Memories (memory.enabled) — what
 * a user wrote is listed with when and in which chat, forgetting one or all takes it off the server too —
 * and Agent conversations (multi_agent) — one started from the page streams turn by turn, then is listed
 * and opens from the list; a refused one says why. A second server with both modules off shows that each
 * screen says so plainly. Screenshots go to test-artifacts/web/.
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

interface Memory {
  id: string;
  sessionId: string;
  text: string;
}

interface StoredConversation {
  conversation: { id: string; status: string; topic: string };
  transcript: Array<{ name: string; round: number; content: string }>;
}

// The length of the utterance being written, at every change of the page.
const RECORD_UTTERANCE_LENGTHS = `
  window.__utteranceLengths = [];
  new MutationObserver(() => {
    const streaming = document.querySelector('.utterance.streaming');
    if (streaming) window.__utteranceLengths.push(streaming.textContent.length);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });`;

describe.skipIf(!chromiumAvailable())(
  'the memories and agents screens in Chromium',
  { timeout: 60_000 },
  () => {
    /** Memory on; multi_agent is on by default. */
    let on: WebHarness;
    /** Both modules off. */
    let off: WebHarness;
    let browser: Browser;
    const pages = pageOpener(() => browser);

    beforeAll(async () => {
      await ensureWebBuilt();
      [on, off] = await Promise.all([
        startWebHarness({ CHAT_MEMORY__ENABLED: 'true' }),
        startWebHarness({ CHAT_MULTI_AGENT__ENABLED: 'false' }),
      ]);
      browser = await launchChromium();
    }, 120_000);

    afterAll(async () => {
      await pages.close();
      await browser?.close();
      await Promise.all([on?.close(), off?.close()]);
    });

    const memoryList = (page: Page) => page.getByRole('list', { name: 'What parley remembers' });

    it('lists what was said with when and in which chat; forgetting one or all forgets it on the server too', async () => {
      const user = await on.createUser('mnemosyne');
      const { page, watch } = await pages.open();
      await signIn(page, on.baseUrl, user);
      const sessionId = await newChat(page);
      await sendAndWait(page, 'My dog Biscuit is afraid of thunderstorms');
      await sendAndWait(page, 'I live in Lisbon, near the river');
      // The module remembers after the turn (it never holds up a reply): wait for the server to have both.
      await expect
        .poll(
          async () =>
            (await apiGet<{ memories: Memory[] }>(on.baseUrl, user, '/v1/memories')).body.memories.length,
        )
        .toBe(2);

      // To the screen from the keyboard: the top bar's link.
      await page.getByRole('link', { name: 'Memories' }).focus();
      await page.keyboard.press('Enter');
      await page.waitForURL(`${on.baseUrl}/memories`);
      const items = memoryList(page).getByRole('listitem');
      await expect.poll(() => items.count()).toBe(2);
      // Newest first, each with its time and the chat it came from (named by the chat's title).
      expect(await items.first().textContent()).toContain('I live in Lisbon, near the river');
      expect(await items.nth(1).textContent()).toContain('My dog Biscuit is afraid of thunderstorms');
      expect(await items.first().locator('time').getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);
      await expect
        .poll(() =>
          items.first().getByRole('button', { name: 'My dog Biscuit is afraid of thunderstorms' }).count(),
        )
        .toBe(1);
      await screenshot(page, '15-memories');
      expect(await audit(page)).toEqual([]);

      // Forget one: it leaves the list, and the server no longer has it.
      await page.getByRole('button', { name: 'Forget “My dog Biscuit is afraid of thunderstorms”' }).click();
      await expect.poll(() => items.count()).toBe(1);
      const left = (await apiGet<{ memories: Memory[] }>(on.baseUrl, user, '/v1/memories')).body.memories;
      expect(left.map((memory) => memory.text)).toEqual(['I live in Lisbon, near the river']);
      await page.reload();
      await expect.poll(() => items.count()).toBe(1);

      // The chat a memory came from opens from it.
      await items
        .first()
        .getByRole('button', { name: /^My dog Biscuit/ })
        .click();
      await page.waitForURL(`${on.baseUrl}/c/${sessionId}`);
      await page.getByRole('article', { name: 'You said' }).first().waitFor();

      // Forget all asks first: Cancel keeps everything, confirming forgets everything.
      await page.getByRole('link', { name: 'Memories' }).click();
      await page.getByRole('button', { name: 'Forget all' }).click();
      const question = page.getByRole('group', { name: 'Forget everything parley remembers about you?' });
      await question.getByRole('button', { name: 'Cancel' }).click();
      await question.waitFor({ state: 'detached' });
      expect(await items.count()).toBe(1);
      expect(
        (await apiGet<{ memories: Memory[] }>(on.baseUrl, user, '/v1/memories')).body.memories,
      ).toHaveLength(1);
      await page.getByRole('button', { name: 'Forget all' }).click();
      await question.getByRole('button', { name: 'Forget all memories' }).click();
      await page.getByRole('heading', { name: 'Nothing remembered yet' }).waitFor();
      expect(await page.getByRole('status').textContent()).toBe('Forgot 1 memory.');
      expect((await apiGet<{ memories: Memory[] }>(on.baseUrl, user, '/v1/memories')).body.memories).toEqual(
        [],
      );
      // The chats themselves stay.
      expect(
        (await apiGet<{ sessions: unknown[] }>(on.baseUrl, user, '/v1/sessions')).body.sessions,
      ).toHaveLength(1);
      expect(watch.errors).toEqual([]);
    });

    it('starts an agent conversation that streams turn by turn with its progress, then lists and reopens it', async () => {
      const user = await on.createUser('socrates');
      const { page, watch } = await pages.open();
      await signIn(page, on.baseUrl, user);
      await page.getByRole('link', { name: 'Agents' }).click();
      await page.waitForURL(`${on.baseUrl}/agents`);
      const form = page.getByRole('form', { name: 'New agent conversation' });
      // The topic's tag makes the scripted model answer the first speaker slowly, in Markdown.
      await form.getByLabel('Topic').fill('Should the shop open on Sundays? [markdown]');
      // The Optimist and an agent of the user's own; rounds as the API takes them.
      await form.getByLabel(/^Skeptic/).uncheck();
      await form.getByRole('button', { name: 'Add an agent of your own' }).click();
      await form.getByLabel('Name').fill('Baker');
      await form.getByLabel('Instructions').fill('You run the bakery next door and count every cost.');
      await form.getByLabel('Rounds').fill('2');
      await screenshot(page, '16-agents-form');
      expect(await audit(page)).toEqual([]);

      await page.evaluate(RECORD_UTTERANCE_LENGTHS);
      await form.getByRole('button', { name: 'Start conversation' }).click();
      // The conversation gets its address as soon as the server names it.
      await page.waitForURL((url) => /^\/agents\/[A-Za-z0-9_-]+$/.test(url.pathname));
      const conversationId = new URL(page.url()).pathname.split('/')[2] ?? '';
      await expect.poll(() => page.getByText(/Round 1 of 2 · \d of 4 turns done/).count()).toBe(1);
      await page.getByRole('button', { name: 'Stop' }).waitFor();
      await screenshot(page, '17-agents-streaming');
      expect(await audit(page)).toEqual([]);

      const transcript = page.getByRole('log', { name: 'Transcript' });
      await page.getByText('Finished').waitFor({ timeout: 20_000 });
      expect(await page.getByRole('progressbar').count()).toBe(0);
      const turns = transcript.getByRole('article');
      expect(
        await turns.evaluateAll((nodes) => nodes.map((node) => node.getAttribute('aria-label'))),
      ).toEqual(['Optimist, round 1', 'Baker, round 1', 'Optimist, round 2', 'Baker, round 2']);
      // The first turn came in many steps, and is shown as Markdown.
      const lengths = await page.evaluate<number[]>('window.__utteranceLengths');
      expect(new Set(lengths.filter((length) => length > 0)).size).toBeGreaterThan(5);
      expect(await turns.first().getByRole('heading', { name: 'Streaming works' }).count()).toBe(1);
      await screenshot(page, '18-agents-finished');

      // The server stored the same, as this user's.
      const stored = await apiGet<StoredConversation>(
        on.baseUrl,
        user,
        `/v1/agent-conversations/${conversationId}`,
      );
      expect(stored.body.conversation.status).toBe('done');
      expect(stored.body.transcript.map((turn) => `${turn.name} ${turn.round}`)).toEqual([
        'Optimist 1',
        'Baker 1',
        'Optimist 2',
        'Baker 2',
      ]);

      // The list has it; it opens from there, read back from the server, and after a reload too.
      await page.getByRole('button', { name: 'All agent conversations' }).click();
      const list = page.getByRole('list', { name: 'Your agent conversations' });
      await expect.poll(() => list.getByRole('listitem').count()).toBe(1);
      expect(await list.textContent()).toMatch(/Optimist, Baker · 2 rounds · finished/);
      await list.getByRole('button', { name: 'Should the shop open on Sundays? [markdown]' }).click();
      await page.waitForURL(`${on.baseUrl}/agents/${conversationId}`);
      await expect.poll(() => transcript.getByRole('article').count()).toBe(4);
      await page.reload();
      await expect.poll(() => transcript.getByRole('article').count()).toBe(4);
      expect(await page.getByRole('heading', { level: 2 }).first().textContent()).toBe(
        'Should the shop open on Sundays? [markdown]',
      );
      expect(watch.errors).toEqual([]);
    });

    it('stops an agent conversation, and says plainly why the server refuses one', async () => {
      const user = await on.createUser('xanthippe');
      const { page } = await pages.open();
      await signIn(page, on.baseUrl, user);
      await page.getByRole('link', { name: 'Agents' }).click();
      const form = page.getByRole('form', { name: 'New agent conversation' });

      // Fewer than two agents: said before anything is sent.
      await form.getByLabel('Topic').fill('Is a hot dog a sandwich?');
      await form.getByLabel(/^Skeptic/).uncheck();
      await form.getByRole('button', { name: 'Start conversation' }).click();
      await expect.poll(() => page.getByRole('alert').textContent()).toContain('Choose at least two agents');
      // More rounds than this server allows (multi_agent.max_rounds, 10): the server's reason, and the form
      // keeps what was typed.
      await form.getByLabel(/^Skeptic/).check();
      await form.getByLabel('Rounds').fill('12');
      await form.getByRole('button', { name: 'Start conversation' }).click();
      await expect
        .poll(() => page.getByRole('alert').textContent())
        .toBe('Not started: rounds: from 1 to 10 (multi_agent.max_rounds)');
      expect(await form.getByLabel('Topic').inputValue()).toBe('Is a hot dog a sandwich?');
      await screenshot(page, '19-agents-refused');

      // A speaker that never finishes: Stop ends the conversation; the server keeps it as stopped.
      await form.getByLabel('Topic').fill('Take your time [stall]');
      await form.getByLabel('Rounds').fill('1');
      await form.getByRole('button', { name: 'Start conversation' }).click();
      await page.waitForURL((url) => /^\/agents\/[A-Za-z0-9_-]+$/.test(url.pathname));
      const conversationId = new URL(page.url()).pathname.split('/')[2] ?? '';
      await expect
        .poll(() => page.getByRole('log', { name: 'Transcript' }).textContent())
        .toContain('long time');
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.getByText('Stopped before the end').waitFor();
      await expect
        .poll(
          async () =>
            (await apiGet<StoredConversation>(on.baseUrl, user, `/v1/agent-conversations/${conversationId}`))
              .body.conversation.status,
        )
        .toBe('cancelled');
    });

    it('says plainly that memory and agent conversations are off when the server has them off', async () => {
      const user = await off.createUser('lethe');
      const { page, watch } = await pages.open();
      await signIn(page, off.baseUrl, user);
      expect((await apiGet(off.baseUrl, user, '/v1/memories')).status).toBe(404);

      await page.getByRole('link', { name: 'Memories' }).click();
      await page.getByRole('heading', { name: 'Memory is off on this server' }).waitFor();
      expect(await page.getByRole('main').textContent()).toContain('memory.enabled');
      expect(await page.getByRole('alert').count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Forget all' }).count()).toBe(0);
      await screenshot(page, '20-memories-off');
      expect(await audit(page)).toEqual([]);

      await page.getByRole('link', { name: 'Agents' }).click();
      await page.getByRole('heading', { name: 'Agent conversations are off on this server' }).waitFor();
      expect(await page.getByRole('alert').count()).toBe(0);
      expect(await page.getByRole('form', { name: 'New agent conversation' }).count()).toBe(0);
      expect(await audit(page)).toEqual([]);
      expect(watch.errors).toEqual([]);
    });

    it('fits the screens’ links on a phone, with nothing scrolling sideways', async () => {
      const user = await on.createUser('phone');
      const { page } = await pages.open({ viewport: { width: 390, height: 844 } });
      await signIn(page, on.baseUrl, user);
      for (const name of ['Chats', 'Documents', 'Memories', 'Agents']) {
        const link = page.getByRole('link', { name, exact: true });
        expect(await link.isVisible()).toBe(true);
        await link.click();
        await expect.poll(() => link.getAttribute('aria-current')).toBe('page');
        const overflow = await page.evaluate<number>(
          'document.documentElement.scrollWidth - window.innerWidth',
        );
        expect(overflow).toBeLessThanOrEqual(0);
      }
      await screenshot(page, '21-phone-agents');
      expect(await audit(page)).toEqual([]);
    });
  },
);
