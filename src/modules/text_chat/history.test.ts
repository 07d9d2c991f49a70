import fc from 'fast-check';
import { countTokens } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import type { Message, Role } from '../../core/types.ts';
import {
  loadTokenCounter,
  type SelectedHistory,
  selectHistory,
  selectWithoutCounting,
  TOKENS_PER_MESSAGE,
  TOKENS_PER_REPLY,
} from './history.ts';

function message(role: Role, content: string, metadata: Record<string, unknown> = {}): Message {
  return {
    id: content,
    role,
    content,
    timestamp: '2025-01-01T00:00:00.000Z',
    metadata: { sessionId: 's', ...metadata },
  };
}

const conversation = [
  message('user', 'first question about the weather in Paris'),
  message('assistant', 'It is sunny in Paris today.'),
  message('user', 'and tomorrow?'),
  message('assistant', 'Rain is expected tomorrow.'),
  message('user', 'should I take an umbrella?'),
];

const cost = (text: string) => countTokens(text) + TOKENS_PER_MESSAGE;

/** The prompt form the window keeps says what its messages say, message for message. */
function expectPromptOfMessages(selected: SelectedHistory): void {
  expect(selected.prompt).toEqual(
    selected.messages.map((m) => ({ role: m.role, content: [{ type: 'text', text: m.content }] })),
  );
}

describe('selectHistory', () => {
  it('counts with a real BPE tokenizer', async () => {
    const count = await loadTokenCounter();
    expect(count('Hello world')).toBe(2);
    expect(count('internationalisation')).toBeGreaterThan(1);
  });

  it('sends everything when it fits, with the token count', () => {
    const selected = selectHistory({
      messages: conversation,
      system: 'Be brief.',
      budget: 1000,
      countTokens,
    });
    expect(selected.messages.map((m) => m.content)).toEqual(conversation.map((m) => m.content));
    const expected =
      TOKENS_PER_REPLY + cost('Be brief.') + conversation.reduce((sum, m) => sum + cost(m.content), 0);
    expect(selected.tokens).toBe(expected);
    expect(selected.omitted).toBe(0);
  });

  it('keeps the newest messages that fit, counting the system prompt, and starts with a user message', () => {
    const system = 'You are a weather assistant.';
    // Room for the system prompt and the last three messages, not the fourth from the end.
    const budget =
      TOKENS_PER_REPLY +
      cost(system) +
      cost(conversation[4]!.content) +
      cost(conversation[3]!.content) +
      cost(conversation[2]!.content) +
      1;
    const selected = selectHistory({ messages: conversation, system, budget, countTokens });
    expect(selected.messages.map((m) => m.content)).toEqual(conversation.slice(2).map((m) => m.content));
    expect(selected.tokens).toBeLessThanOrEqual(budget);

    // One token less and the window would start with the assistant's reply: that is dropped too.
    const tighter = selectHistory({
      messages: conversation,
      system,
      budget: budget - cost(conversation[2]!.content),
      countTokens,
    });
    expect(tighter.messages.map((m) => m.content)).toEqual([conversation[4]!.content]);
    expect(tighter.omitted).toBe(4);
  });

  it("always sends the turn's own message, even over budget", () => {
    const selected = selectHistory({ messages: conversation, system: undefined, budget: 1, countTokens });
    expect(selected.messages).toEqual([{ role: 'user', content: 'should I take an umbrella?' }]);
  });

  it('leaves out failed replies and non-chat roles', () => {
    const messages = [
      message('user', 'hi'),
      message('assistant', 'partial answ', { error: { code: 'CHAT_ERR_LLM_TIMEOUT' } }),
      message('system', 'internal note'),
      message('user', 'hello?'),
    ];
    const selected = selectHistory({ messages, system: undefined, budget: 1000, countTokens });
    expect(selected.messages.map((m) => m.content)).toEqual(['hi', 'hello?']);
  });

  it('sends a conversation whose UTF-8 size fits the budget whole, without a tokenizer', () => {
    const system = 'Be brief.';
    const exact = selectHistory({ messages: conversation, system, budget: 1000, countTokens });
    const bound = selectWithoutCounting({ messages: conversation, system, budget: 1000 });
    expect(bound?.messages).toEqual(exact.messages);
    expect(bound?.omitted).toBe(exact.omitted);
    expect(bound!.tokens).toBeGreaterThanOrEqual(exact.tokens);
  });

  it('leaves the choice to real counting when the size bound does not fit', () => {
    const bytes = (text: string) => Buffer.byteLength(text, 'utf8') + TOKENS_PER_MESSAGE;
    const all = TOKENS_PER_REPLY + conversation.reduce((sum, m) => sum + bytes(m.content), 0);
    expect(selectWithoutCounting({ messages: conversation, system: undefined, budget: all })).toBeDefined();
    expect(selectWithoutCounting({ messages: conversation, system: undefined, budget: all - 1 })).toBe(
      undefined,
    );
    // Non-Latin text: bytes, not characters, bound the tokens.
    const greek = [message('user', 'καλημέρα κόσμε')];
    const greekBound = TOKENS_PER_REPLY + bytes('καλημέρα κόσμε');
    expect(selectWithoutCounting({ messages: greek, system: undefined, budget: greekBound - 1 })).toBe(
      undefined,
    );
    // Even the turn's own message alone: only counting can tell whether older ones would fit beside it.
    expect(selectWithoutCounting({ messages: greek, system: undefined, budget: 5 })).toBe(undefined);
  });

  it('chooses from the messages a sequence holds what it would from the whole log, or says it needs more', () => {
    const log = Array.from({ length: 40 }, (_, index) =>
      message(index % 2 === 0 ? 'user' : 'assistant', `message ${index} ${'word '.repeat(index % 5)}`),
    );
    const whole = selectHistory({ messages: log, system: undefined, budget: 80, countTokens });
    expect(whole.truncated).toBe(false);
    const held = (first: number) => ({ count: log.length, first, at: (index: number) => log[index]! });
    // Held from the message before the window (the one the budget stopped at): the same choice.
    const same = selectHistory({
      messages: held(whole.start - 1),
      system: undefined,
      budget: 80,
      countTokens,
    });
    expect(same).toEqual(whole);
    // Held from later: the budget has room for messages it does not hold.
    const short = selectHistory({
      messages: held(whole.start + 4),
      system: undefined,
      budget: 80,
      countTokens,
    });
    expect(short.truncated).toBe(true);
    expect(selectWithoutCounting({ messages: held(30), system: undefined, budget: 10_000 })).toBe(undefined);
  });

  it('keeps choosing right over hundreds of turns of one chat, as its window moves on and is compacted', () => {
    const log: Message[] = [];
    for (let turn = 0; turn < 400; turn++) {
      log.push(message('user', `question ${turn} ${'word '.repeat(turn % 9)}`.trim()));
      log.push(message('assistant', `answer ${turn}`));
      const shape = (selected: ReturnType<typeof selectHistory>) => {
        expectPromptOfMessages(selected);
        return { ...selected, messages: selected.messages.map((m) => [m.role, m.content]) };
      };
      const kept = selectHistory({ messages: log, system: 'Be brief.', budget: 120, countTokens });
      const fresh = selectHistory({
        messages: log.map((m) => ({ ...m })),
        system: 'Be brief.',
        budget: 120,
        countTokens,
      });
      expect(shape(kept)).toEqual(shape(fresh));
    }
  });

  it('chooses turn after turn, from the window it kept, what a fresh look at the whole conversation chooses', () => {
    const entry = fc.record({
      role: fc.constantFrom<Role>('user', 'assistant', 'assistant', 'system'),
      words: fc.nat(40),
      failed: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(entry, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 10, max: 400 }),
        fc.constantFrom(undefined, 'Be brief.'),
        (turns, budget, system) => {
          const log: Message[] = [];
          let serial = 0;
          for (const turn of turns) {
            for (const { role, words, failed } of turn) {
              serial += 1;
              log.push(
                message(
                  role,
                  `m${serial} ${'word '.repeat(words)}`.trim(),
                  failed ? { error: { code: 'X' } } : {},
                ),
              );
            }
            // The same objects turn after turn (as the history cache gives them) against copies of them.
            const kept = { messages: log, system, budget };
            const fresh = { messages: log.map((m) => ({ ...m })), system, budget };
            const shape = (selected: ReturnType<typeof selectWithoutCounting>) => {
              if (selected !== undefined) expectPromptOfMessages(selected);
              return selected && { ...selected, messages: selected.messages.map((m) => [m.role, m.content]) };
            };
            expect(shape(selectHistory({ ...kept, countTokens }))).toEqual(
              shape(selectHistory({ ...fresh, countTokens })),
            );
            expect(shape(selectWithoutCounting(kept))).toEqual(shape(selectWithoutCounting(fresh)));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
