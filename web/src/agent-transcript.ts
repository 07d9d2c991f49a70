/**
 * The transcript of an agent conversation as it streams: utterances grow delta by delta, and each is
 * replaced by the stored one once its agent is done (trimmed, timed). Pure functions of the list, so a
 * React state update is one call, and the rules are tested without a browser (agent-transcript.test.ts).
 */

import type { UtteranceDelta } from './agent-stream.ts';
import type { Utterance } from './api.ts';

/** An utterance shown while a conversation runs: `done` once the server stored it. */
export interface LiveUtterance extends Utterance {
  done: boolean;
}

/** Adds a delta's text to its utterance, which starts when its first delta comes. */
export function withDelta(transcript: readonly LiveUtterance[], delta: UtteranceDelta): LiveUtterance[] {
  const index = transcript.findIndex((utterance) => utterance.id === delta.id);
  if (index === -1) {
    const { text, ...heading } = delta;
    return [...transcript, { ...heading, content: text, time: '', done: false }];
  }
  const current = transcript[index] as LiveUtterance;
  // A delta after the stored utterance (events of one stream are ordered, so only a replay) changes nothing.
  if (current.done) return [...transcript];
  const next = [...transcript];
  next[index] = { ...current, content: current.content + delta.text };
  return next;
}

/** Puts the stored utterance in place of the one being written (or at the end, if no delta came). */
export function withUtterance(transcript: readonly LiveUtterance[], utterance: Utterance): LiveUtterance[] {
  const stored = { ...utterance, done: true };
  const index = transcript.findIndex((item) => item.id === utterance.id);
  if (index === -1) return [...transcript, stored];
  const next = [...transcript];
  next[index] = stored;
  return next;
}

/** How far a conversation is: utterances finished of those it will have, and the round under way. */
export interface Progress {
  done: number;
  total: number;
  round: number;
}

export function progressOf(
  transcript: readonly LiveUtterance[],
  rounds: number,
  participants: number,
): Progress {
  const done = transcript.filter((utterance) => utterance.done).length;
  const last = transcript.at(-1);
  return { done, total: rounds * participants, round: Math.max(1, Math.min(rounds, last?.round ?? 1)) };
}
