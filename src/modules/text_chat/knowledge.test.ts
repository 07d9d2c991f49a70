import { afterEach, describe, expect, it } from 'vitest';
import type { EventEnvelope } from '../../core/events.ts';
import { newId } from '../../core/ids.ts';
import { defineModule, type ModuleDefinition } from '../../core/module.ts';
import type { Message, Session } from '../../core/types.ts';
import memory from '../memory/index.ts';
import rag from '../rag/index.ts';
import textChat from './index.ts';
import { buildKnowledge, type Citation, conversationContext, type KnowledgePassage } from './knowledge.ts';
import { type Harness, type HarnessOptions, startHarness } from './test-harness.ts';
import type { ChatResponseEnd } from './types.ts';

const withRag = new Map<string, ModuleDefinition<never, unknown>>([
  ['text_chat', textChat as never],
  ['rag', rag as never],
]);
const withoutRag = new Map<string, ModuleDefinition<never, unknown>>([['text_chat', textChat as never]]);

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const harness of harnesses.splice(0)) await harness.close();
});

async function start(
  modules: HarnessOptions['modules'] = {},
  definitions: HarnessOptions['definitions'] = withRag,
): Promise<Harness> {
  const harness = await startHarness({ modules, definitions });
  harnesses.push(harness);
  return harness;
}

function send(harness: Harness, userId: string, sessionId: string, content: string): Promise<Message> {
  return harness.bus.request<Message>(
    'message.send',
    { userId, sessionId, content },
    { correlationId: newId(), timeout: 10_000 },
  );
}

async function newSession(harness: Harness, userId: string): Promise<Session> {
  return harness.bus.request<Session>('session.start', { userId });
}

async function addDocument(
  harness: Harness,
  ownerId: string,
  filename: string,
  content: string,
  sessionId?: string,
): Promise<string> {
  const result = await harness.bus.request<{ docId: string }>('rag.document.add', {
    ownerId,
    filename,
    content,
    ...(sessionId === undefined ? {} : { sessionId }),
  });
  return result.docId;
}

/** The system prompt of the model's last call. */
function systemOf(harness: Harness): string {
  const system = harness.calls.at(-1)!.prompt.find((message) => message.role === 'system');
  return system === undefined ? '' : (system.content as string);
}

function citationsOf(message: Message): Citation[] | undefined {
  return message.metadata.citations as Citation[] | undefined;
}

const manual = [
  '# Albatross flight manual',
  '',
  '## Fuel',
  '',
  'The Albatross carries 212 litres of fuel in two wing tanks; switch tanks every thirty minutes.',
  '',
  '## Landing',
  '',
  'Approach at 65 knots with full flaps; the stall speed is 48 knots.',
].join('\n');

/** A knowledge source that finds nothing and notes whose knowledge it was asked for. */
function countingSource(options: { empty: boolean }) {
  const asked: string[] = [];
  const definition = defineModule({
    info: { name: 'counting_source', version: '1.0.0', capabilities: [], dependencies: [] },
    configSchema: { type: 'object' },
    setup: () => ({
      handlers: {
        'knowledge.query': (event: EventEnvelope<{ userId?: string }>) => {
          asked.push(event.data.userId ?? '');
          return options.empty ? { results: [], empty: true } : { results: [] };
        },
      },
    }),
  });
  return { asked, entry: ['counting_source', definition as ModuleDefinition<never, unknown>] as const };
}

describe('knowledge in chat turns', () => {
  it('gives the model the passage that answers, and the reply cites it with exact offsets', async () => {
    const harness = await start();
    const docId = await addDocument(harness, 'u1', 'albatross.md', manual);
    const session = await newSession(harness, 'u1');
    harness.script({ kind: 'reply', chunks: ['212 litres [1].'] });

    const reply = await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    const system = systemOf(harness);
    expect(system).toContain('Context from your documents');
    expect(system).toContain('[1] Albatross flight manual — Albatross flight manual > Fuel');
    expect(system).toContain('The Albatross carries 212 litres of fuel');

    const citations = citationsOf(reply)!;
    expect(citations.length).toBeGreaterThan(0);
    expect(citations[0]).toMatchObject({ docId, title: 'Albatross flight manual' });
    const stored = await harness.bus.request<{ content: string }>('rag.document.get', {
      ownerId: 'u1',
      docId,
      includeContent: true,
    });
    for (const citation of citations) {
      expect(system).toContain(stored.content.slice(citation.start, citation.end));
    }
    // The best source is the Fuel section (the title heading with nothing under it joins it).
    expect(stored.content.slice(citations[0]!.start, citations[0]!.end)).toBe(
      manual.slice(0, manual.indexOf('\n\n## Landing')),
    );
    expect(citations[0]!.heading).toBe('Albatross flight manual > Fuel');

    // The stored message and the end event carry the same citations.
    const end = harness.events('chat.response.end').at(-1)!.data as ChatResponseEnd;
    expect(end.message).toEqual(reply);
    const page = await harness.bus.request<{ messages: Message[] }>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(citationsOf(page.messages.at(-1)!)).toEqual(citations);
    // The user's own message is what the model sees as the user turn (the passages are not folded into it).
    expect(harness.calls.at(-1)!.prompt.at(-1)).toMatchObject({ role: 'user' });
  });

  it('answers a follow-up from the document the conversation is about', async () => {
    const harness = await start();
    const albatross = await addDocument(
      harness,
      'u1',
      'albatross.md',
      `${manual}\n\n## Weight\n\nEmpty weight 320 kg.`,
    );
    const pelican = await addDocument(
      harness,
      'u1',
      'pelican.md',
      '# Pelican notes\n\n## Weight\n\nEmpty weight: 410 kg. Weigh the Pelican empty before each season.',
    );
    // The rest of the library: the Albatross is one aircraft among several.
    for (const name of ['Kestrel', 'Heron', 'Swift']) {
      await addDocument(
        harness,
        'u1',
        `${name.toLowerCase()}.md`,
        `# ${name} handbook\n\n## Fuel\n\nThe ${name} carries fuel in one fuselage tank.\n\n## Engine\n\nStart with the mixture rich.`,
      );
    }
    const followUp = 'And what about its empty weight?';
    // Asked alone, the question fits the Pelican's notes best.
    const alone = await send(harness, 'u1', (await newSession(harness, 'u1')).id, followUp);
    expect(citationsOf(alone)?.[0]?.docId).toBe(pelican);

    const session = await newSession(harness, 'u1');
    const first = await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    expect(citationsOf(first)?.[0]?.docId).toBe(albatross);
    const reply = await send(harness, 'u1', session.id, followUp);
    const [best] = citationsOf(reply)!;
    expect(best).toMatchObject({ docId: albatross, heading: 'Albatross flight manual > Weight' });
    expect(systemOf(harness)).toContain('Empty weight 320 kg.');
  });

  it('adds nothing for a user without documents, and never shows another user’s documents', async () => {
    const harness = await start();
    await addDocument(harness, 'u2', 'albatross.md', manual);
    const session = await newSession(harness, 'u1');

    const reply = await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    expect(systemOf(harness)).not.toContain('Context from your documents');
    expect(systemOf(harness)).not.toContain('212 litres');
    expect(citationsOf(reply)).toBeUndefined();

    // u1 has a document now, on another subject: still nothing of u2's.
    await addDocument(
      harness,
      'u1',
      'garden.md',
      '# Garden\n\nWater the Albatross roses and fuel the mower.',
    );
    const second = await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    expect(systemOf(harness)).not.toContain('212 litres');
    expect(citationsOf(second)?.every((citation) => citation.title === 'Garden')).toBe(true);
  });

  it('uses the library and this session’s documents, not another session’s', async () => {
    const harness = await start();
    const first = await newSession(harness, 'u1');
    const second = await newSession(harness, 'u1');
    await addDocument(harness, 'u1', 'albatross.md', manual, first.id);

    const elsewhere = await send(harness, 'u1', second.id, 'How much fuel does the Albatross carry?');
    expect(citationsOf(elsewhere)).toBeUndefined();
    const here = await send(harness, 'u1', first.id, 'How much fuel does the Albatross carry?');
    expect(citationsOf(here)?.[0]?.title).toBe('Albatross flight manual');
  });

  it('keeps the section within knowledge.max_context_tokens, and asks nothing when disabled', async () => {
    const sections = Array.from(
      { length: 6 },
      (_, index) =>
        `## Tank ${index}\n\nTank ${index} of the Albatross holds fuel: ${'forty litres of fuel. '.repeat(30)}`,
    ).join('\n\n');
    const small = await start({ text_chat: { knowledge: { max_context_tokens: 400, top_k: 6 } } });
    await addDocument(small, 'u1', 'tanks.md', `# Tanks\n\n${sections}`);
    const session = await newSession(small, 'u1');
    const reply = await send(small, 'u1', session.id, 'Which tank holds fuel?');
    const citations = citationsOf(reply)!;
    expect(citations.length).toBeGreaterThan(0);
    expect(citations.length).toBeLessThan(6);
    const { countTokens } = await import('gpt-tokenizer');
    const section = systemOf(small).slice(systemOf(small).indexOf('Context from your documents'));
    expect(countTokens(section)).toBeLessThanOrEqual(400);
    // Sources are numbered in citation order, one per citation.
    const numbers = [...section.matchAll(/^\[(\d+)\] /gm)].map((match) => Number(match[1]));
    expect(numbers).toEqual(citations.map((_, index) => index + 1));

    const counter = countingSource({ empty: false });
    const off = await start(
      { text_chat: { knowledge: { enabled: false } } },
      new Map([...withRag, counter.entry]),
    );
    await addDocument(off, 'u1', 'albatross.md', manual);
    const offSession = await newSession(off, 'u1');
    const plain = await send(off, 'u1', offSession.id, 'How much fuel does the Albatross carry?');
    expect(citationsOf(plain)).toBeUndefined();
    expect(counter.asked).toEqual([]);
  });

  it('stops asking for the knowledge of a user who has none, until a document comes', async () => {
    const counter = countingSource({ empty: true });
    const harness = await start({}, new Map([...withRag, counter.entry]));
    const session = await newSession(harness, 'u1');
    await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    await send(harness, 'u1', session.id, 'And the stall speed?');
    // rag (and the counting source) said u1 has nothing at all: the second turn did not gather again.
    expect(counter.asked).toEqual(['u1']);

    await addDocument(harness, 'u1', 'albatross.md', manual);
    const reply = await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    expect(counter.asked).toEqual(['u1', 'u1']);
    expect(citationsOf(reply)?.[0]?.title).toBe('Albatross flight manual');
    // A note is per user: u2 is asked for on their first turn.
    await send(harness, 'u2', (await newSession(harness, 'u2')).id, 'How much fuel?');
    expect(counter.asked).toEqual(['u1', 'u1', 'u2']);
  });

  it('counts memory with recall off as a source with nothing, for anyone', async () => {
    const counter = countingSource({ empty: true });
    const harness = await start(
      { memory: { enabled: true, recall: { enabled: false } } },
      new Map([...withRag, ['memory', memory as ModuleDefinition<never, unknown>], counter.entry]),
    );
    const session = await newSession(harness, 'u1');
    await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    await send(harness, 'u1', session.id, 'And the stall speed?');
    expect(counter.asked).toEqual(['u1']);
  });

  it('keeps asking when a source does not say the user has nothing at all', async () => {
    // A source that finds nothing, but makes no promise to tell when that changes.
    const counter = countingSource({ empty: false });
    const harness = await start({}, new Map([...withRag, counter.entry]));
    const session = await newSession(harness, 'u1');
    await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    await send(harness, 'u1', session.id, 'And the stall speed?');
    expect(counter.asked).toEqual(['u1', 'u1']);
  });

  it('answers without knowledge when no module provides it', async () => {
    const harness = await start({}, withoutRag);
    const session = await newSession(harness, 'u1');
    const reply = await send(harness, 'u1', session.id, 'How much fuel does the Albatross carry?');
    expect(reply.content).toBe('Hello there');
    expect(citationsOf(reply)).toBeUndefined();
    expect(systemOf(harness)).not.toContain('Context from your documents');
  });
});

describe('buildKnowledge', () => {
  const passage = (chunkId: string, text: string): KnowledgePassage => ({
    docId: 'doc_1',
    title: 'Manual',
    start: 0,
    end: text.length,
    chunkId,
    text,
  });
  // Words as tokens, and the fixed header free, so the budget is all for the sources.
  const words = (text: string) =>
    text.startsWith('Context from your documents') ? 0 : text.split(/\s+/).filter(Boolean).length;

  it('skips a passage too large for what is left, takes a later one that fits, and drops repeats', () => {
    const knowledge = buildKnowledge(
      [
        passage('a', 'one two three'),
        passage('a', 'one two three'),
        passage('b', 'x '.repeat(200)),
        passage('c', 'four five'),
      ],
      12,
      words,
    );
    expect(knowledge.citations.map((citation) => citation.chunkId)).toEqual(['a', 'c']);
    expect(knowledge.section).toContain('[1] Manual\none two three');
    expect(knowledge.section).toContain('[2] Manual\nfour five');
    expect(knowledge.citations[0]).not.toHaveProperty('text');
  });

  it('gives no section when nothing fits', () => {
    expect(buildKnowledge([passage('a', 'x '.repeat(500))], 50, words)).toEqual({
      section: undefined,
      citations: [],
    });
  });

  it('puts remembered messages in a section of their own, dated, within the same budget, never cited', () => {
    const memory = (chunkId: string, text: string): KnowledgePassage => ({
      ...passage(chunkId, text),
      source: 'memory',
      time: '2026-11-20T09:30:00.000Z',
    });
    const headersFree = (text: string) => (text.startsWith('From your earlier') ? 0 : words(text));
    const knowledge = buildKnowledge(
      [memory('m1', 'my dog is called Max'), passage('a', 'one two three'), memory('m2', 'x '.repeat(50))],
      16,
      headersFree,
    );
    expect(knowledge.citations.map((citation) => citation.chunkId)).toEqual(['a']);
    const section = knowledge.section as string;
    expect(section.indexOf('[1] Manual\none two three')).toBeLessThan(section.indexOf('From your earlier'));
    expect(section).toContain('- (2026-11-20) my dog is called Max');
    expect(section).not.toContain('x x x');
    // Memories alone still make a section, with no citations.
    expect(buildKnowledge([memory('m1', 'my dog is called Max')], 12, headersFree)).toEqual({
      section: expect.stringContaining('my dog is called Max'),
      citations: [],
    });
  });
});

describe('conversationContext', () => {
  const message = (role: Message['role'], content: string, turnId = newId()): Message => ({
    id: newId(),
    role,
    content,
    timestamp: new Date().toISOString(),
    metadata: { turnId },
  });
  const sequence = (messages: Message[]) => ({
    count: messages.length,
    at: (index: number) => messages[index]!,
  });

  it("gives the user's messages before this turn's, newest first, without the replies", () => {
    const history = sequence([
      message('user', 'Tell me about the Albatross.'),
      message('assistant', 'The Albatross is a light aircraft with a long wing.'),
      message('user', 'How much fuel does it carry?'),
      message('assistant', '212 litres.'),
      message('user', 'And its range?'),
    ]);
    expect(conversationContext(history)).toEqual(['And its range?', 'How much fuel does it carry?']);
    // A redelivered turn's history already holds its own message: that one is the question, not context.
    const own = message('user', 'And its weight?', 'turn-9');
    expect(
      conversationContext(sequence([...Array.from({ length: 5 }, (_, i) => history.at(i)), own]), 'turn-9'),
    ).toEqual(['And its range?', 'How much fuel does it carry?']);
    expect(conversationContext(undefined)).toEqual([]);
    expect(conversationContext(sequence([]))).toEqual([]);
  });

  it('keeps within the character budget, cutting the oldest message kept to its end at a word', () => {
    const long = `${'Some background on our fleet and its history. '.repeat(30)}Which one has the longest range?`;
    const history = sequence([message('user', long), message('user', 'And the Albatross?')]);
    const context = conversationContext(history, undefined, { messages: 2, characters: 60 });
    expect(context[0]).toBe('And the Albatross?');
    expect(context[1]!.endsWith('Which one has the longest range?')).toBe(true);
    expect(context.join('').length).toBeLessThanOrEqual(60);
    expect(long).toContain(context[1]!);
    expect(context[1]!.startsWith(' ')).toBe(false);
  });
});
