import { afterEach, describe, expect, it } from 'vitest';
import { createLocalTransport } from '../bus/local.ts';
import { createBus } from '../core/bus.ts';
import type { Bus } from '../core/bus-types.ts';
import type { EventEnvelope } from '../core/events.ts';
import type { Message } from '../core/types.ts';
import { createChatGateway } from './chat-gateway.ts';

// The recovery of a turn whose node died, on the in-process bus: a `message.send` handler that goes
// silent plays the dead node (over NATS the request would wait for a reply that never comes), a second
// attempt is answered by the "other node". test/integration/multi-node.test.ts does it with SIGKILL.

const RECOVERY = { lostAfterMs: 200, maxAttempts: 3 };
const input = { userId: 'u1', sessionId: 's1', content: 'hello' };

function reply(turnId: string, content: string): Message {
  return { id: `m-${turnId}`, role: 'assistant', content, timestamp: new Date().toISOString(), metadata: {} };
}

let bus: Bus;
/** Handlers that play a dead node never settle; they are let go before the bus closes (it waits for them). */
const hung: Array<() => void> = [];
afterEach(async () => {
  for (const release of hung.splice(0)) release();
  await bus.close();
});

/** text_chat stand-in: `behaviour(attempt, event)` answers each `message.send` in turn. */
function serveTurns(behaviour: (attempt: number, event: EventEnvelope<unknown>) => Promise<Message>) {
  let attempt = 0;
  bus.on('message.send', (event) => behaviour(++attempt, event), { mode: 'work', group: 'text_chat' });
  return { attempts: () => attempt };
}

const never = () =>
  new Promise<Message>((_resolve, reject) => {
    hung.push(() => reject(new Error('the dead node is gone')));
  });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('chat gateway turn recovery', () => {
  it('asks again when the node answering went silent, under the same turn id, and the caller starts over', async () => {
    bus = createBus({ transport: createLocalTransport() });
    const turnIds: string[] = [];
    const served = serveTurns(async (attempt, event) => {
      const turnId = event.correlationId as string;
      turnIds.push(turnId);
      if (attempt === 1) {
        await bus.emit(
          'chat.response.delta',
          { turnId, sessionId: 's1', text: 'half a rep' },
          { correlationId: turnId },
        );
        return never(); // the node died mid-reply
      }
      await bus.emit(
        'chat.response.delta',
        { turnId, sessionId: 's1', text: 'whole reply' },
        { correlationId: turnId },
      );
      const message = reply(turnId, 'whole reply');
      await bus.emit('chat.response.end', { turnId, sessionId: 's1', message }, { correlationId: turnId });
      return message;
    });
    const gateway = createChatGateway(bus, { turnTimeoutMs: 10_000, recovery: RECOVERY });
    const seen: string[] = [];
    const turn = gateway.stream(input, {
      onDelta: (text) => seen.push(text),
      onRestart: () => seen.push('<restart>'),
    });
    const message = await turn.done;
    expect(message.content).toBe('whole reply');
    expect(seen).toEqual(['half a rep', '<restart>', 'whole reply']);
    expect(served.attempts()).toBe(2);
    expect(turnIds).toEqual([turn.turnId, turn.turnId]);
    gateway.close();
  });

  it('keeps waiting for a slow turn while its node sends heartbeats', async () => {
    bus = createBus({ transport: createLocalTransport() });
    const served = serveTurns(async (_attempt, event) => {
      const turnId = event.correlationId as string;
      // Three times lost_after_ms without a delta, but alive.
      for (let beat = 0; beat < 6; beat++) {
        await sleep(100);
        await bus.emit('chat.response.alive', { turnIds: ['other', turnId] });
      }
      return reply(turnId, 'slow but sure');
    });
    const gateway = createChatGateway(bus, { turnTimeoutMs: 10_000, recovery: RECOVERY });
    expect((await gateway.send(input)).content).toBe('slow but sure');
    expect(served.attempts()).toBe(1);
    gateway.close();
  });

  it('fails with CHAT_ERR_TURN_LOST when text was shown and the caller cannot start over', async () => {
    bus = createBus({ transport: createLocalTransport() });
    serveTurns(async (_attempt, event) => {
      const turnId = event.correlationId as string;
      await bus.emit(
        'chat.response.delta',
        { turnId, sessionId: 's1', text: 'shown' },
        { correlationId: turnId },
      );
      return never();
    });
    const gateway = createChatGateway(bus, { turnTimeoutMs: 10_000, recovery: RECOVERY });
    const turn = gateway.stream(input, { onDelta: () => {} });
    await expect(turn.done).rejects.toMatchObject({ code: 'CHAT_ERR_TURN_LOST', status: 503 });
    gateway.close();
  });

  it('gives up after max_attempts silent nodes, with a message that says the user message is kept', async () => {
    bus = createBus({ transport: createLocalTransport() });
    const served = serveTurns(never);
    const gateway = createChatGateway(bus, { turnTimeoutMs: 10_000, recovery: RECOVERY });
    const failure = gateway.send(input);
    await expect(failure).rejects.toMatchObject({ code: 'CHAT_ERR_TURN_LOST' });
    await expect(failure).rejects.toThrow(/your message is stored/);
    expect(served.attempts()).toBe(RECOVERY.maxAttempts);
    gateway.close();
  });

  it('watches nothing on the in-process bus (no recovery options): a slow silent turn is simply awaited', async () => {
    bus = createBus({ transport: createLocalTransport() });
    const served = serveTurns(async (_attempt, event) => {
      await sleep(500);
      return reply(event.correlationId as string, 'late');
    });
    const gateway = createChatGateway(bus, { turnTimeoutMs: 10_000 });
    expect((await gateway.send(input)).content).toBe('late');
    expect(served.attempts()).toBe(1);
    gateway.close();
  });
});
