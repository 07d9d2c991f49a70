import { describe, expect, it } from 'vitest';
import { type LiveUtterance, progressOf, withDelta, withUtterance } from './agent-transcript.ts';
import type { Utterance } from './api.ts';

const optimist = { id: 'u1', agentId: 'optimist', name: 'Optimist', round: 1 };
const skeptic = { id: 'u2', agentId: 'skeptic', name: 'Skeptic', round: 1 };

function stored(heading: typeof optimist, content: string): Utterance {
  return { ...heading, content, time: '2030-01-01T00:00:00.000Z' };
}

describe('the live transcript of an agent conversation', () => {
  it('grows an utterance delta by delta, and starts the next speaker’s on its first delta', () => {
    let transcript: LiveUtterance[] = [];
    transcript = withDelta(transcript, { ...optimist, text: 'Yes, ' });
    transcript = withDelta(transcript, { ...optimist, text: 'we should.' });
    transcript = withDelta(transcript, { ...skeptic, text: 'But' });
    expect(transcript.map((u) => [u.name, u.content, u.done])).toEqual([
      ['Optimist', 'Yes, we should.', false],
      ['Skeptic', 'But', false],
    ]);
  });

  it('replaces the written text with the stored utterance, in place', () => {
    let transcript: LiveUtterance[] = [];
    transcript = withDelta(transcript, { ...optimist, text: ' Yes. ' });
    transcript = withDelta(transcript, { ...skeptic, text: 'No' });
    transcript = withUtterance(transcript, stored(optimist, 'Yes.'));
    expect(transcript.map((u) => [u.id, u.content, u.done, u.time])).toEqual([
      ['u1', 'Yes.', true, '2030-01-01T00:00:00.000Z'],
      ['u2', 'No', false, ''],
    ]);
    // A late delta of a stored utterance does not add to it.
    expect(withDelta(transcript, { ...optimist, text: 'again' })[0]?.content).toBe('Yes.');
  });

  it('adds a stored utterance that came without deltas (an empty answer) at the end', () => {
    const transcript = withUtterance([], stored(optimist, ''));
    expect(transcript).toEqual([{ ...stored(optimist, ''), done: true }]);
  });

  it('counts progress in finished utterances of rounds × participants, with the round under way', () => {
    let transcript: LiveUtterance[] = [];
    expect(progressOf(transcript, 2, 3)).toEqual({ done: 0, total: 6, round: 1 });
    transcript = withUtterance(transcript, stored(optimist, 'a'));
    transcript = withUtterance(transcript, stored(skeptic, 'b'));
    transcript = withDelta(transcript, { id: 'u3', agentId: 'guest-3', name: 'Guest', round: 1, text: 'c' });
    transcript = withUtterance(transcript, stored({ ...optimist, id: 'u3' }, 'c'));
    transcript = withDelta(transcript, { ...optimist, id: 'u4', round: 2, text: 'd' });
    expect(progressOf(transcript, 2, 3)).toEqual({ done: 3, total: 6, round: 2 });
  });
});
