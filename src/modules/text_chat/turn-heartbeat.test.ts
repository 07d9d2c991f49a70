import { afterEach, describe, expect, it } from 'vitest';
import { newId } from '../../core/ids.ts';
import type { Session } from '../../core/types.ts';
import textChat from './index.ts';
import { type Harness, startHarness } from './test-harness.ts';
import type { ChatResponseAlive } from './types.ts';

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

describe('turn heartbeat (text_chat.turn_recovery.heartbeat_ms)', () => {
  it('names every turn the node is generating, while it generates, and stops after', async () => {
    harness = await startHarness({
      modules: { text_chat: { turn_recovery: { heartbeat_ms: 100 } } },
      definitions: new Map([['text_chat', textChat as never]]),
    });
    const { bus } = harness;
    const session = await bus.request<Session>('session.start', { userId: 'u1' });
    harness.script({ kind: 'hang', chunks: ['thinking'] });
    const turnId = newId();
    const turn = bus.request(
      'message.send',
      { userId: 'u1', sessionId: session.id, content: 'hi' },
      {
        correlationId: turnId,
        timeout: 10_000,
      },
    );
    await expect
      .poll(() => harness?.events('chat.response.alive').length, { timeout: 5000 })
      .toBeGreaterThan(2);
    for (const event of harness.events('chat.response.alive')) {
      expect((event.data as ChatResponseAlive).turnIds).toEqual([turnId]);
    }
    await bus.emit('chat.cancel', { turnId }, { userId: 'u1' });
    await turn;
    const afterTurn = harness.events('chat.response.alive').length;
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(harness.events('chat.response.alive')).toHaveLength(afterTurn);
  });
});
