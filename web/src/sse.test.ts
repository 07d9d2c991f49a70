import { describe, expect, it } from 'vitest';
import { parseSseBlock, readSseEvents } from './sse.ts';

/** A body that delivers `chunks` as the network might: one read each. */
function bodyOf(chunks: string[]): ReadableStream<Uint8Array<ArrayBuffer>> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function eventsOf(chunks: string[]) {
  const events: Array<{ event: string; data: string }> = [];
  for await (const { event, data } of readSseEvents(bodyOf(chunks))) events.push({ event, data });
  return events;
}

describe('parseSseBlock', () => {
  it('reads the name and joins data lines; a comment block is no event', () => {
    expect(parseSseBlock('event: delta\ndata: {"text":"a"}')).toEqual({
      event: 'delta',
      data: '{"text":"a"}',
    });
    expect(parseSseBlock('data:one\ndata: two')).toEqual({ event: 'message', data: 'one\ntwo' });
    expect(parseSseBlock(': keep-alive')).toBeUndefined();
  });
});

describe('readSseEvents', () => {
  it('yields events split across chunks, and several from one chunk, in order', async () => {
    const events = await eventsOf([
      'event: start\ndata: {"id":1}\n\nevent: del',
      'ta\ndata: {"text":"he',
      'llo"}\n\n: keep-alive\n\nevent: end\ndata: {}\n\n',
    ]);
    expect(events).toEqual([
      { event: 'start', data: '{"id":1}' },
      { event: 'delta', data: '{"text":"hello"}' },
      { event: 'end', data: '{}' },
    ]);
  });

  it('accepts CRLF line ends, and drops an event the stream cut off before its blank line', async () => {
    const events = await eventsOf(['event: a\r\ndata: 1\r\n\r\n', 'event: b\r\ndata: 2']);
    expect(events).toEqual([{ event: 'a', data: '1' }]);
  });

  it('keeps a multi-byte character that arrives in two chunks whole', async () => {
    const bytes = new TextEncoder().encode('data: “quoted”\n\n');
    const body = new ReadableStream<Uint8Array<ArrayBuffer>>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 8)); // inside the first “
        controller.enqueue(bytes.slice(8));
        controller.close();
      },
    });
    const events = [];
    for await (const event of readSseEvents(body)) events.push(event.data);
    expect(events).toEqual(['“quoted”']);
  });
});
