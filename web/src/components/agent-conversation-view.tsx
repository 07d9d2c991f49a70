/**
 * One agent conversation: its topic and agents, how far it is (a progress bar while it runs), and the
 * transcript, each utterance under its agent's name and round, written out as it streams. The transcript is
 * an ARIA log, busy while it grows, so a screen reader reads each utterance once it is done.
 */

import { type LiveUtterance, progressOf } from '../agent-transcript.ts';
import type { AgentConversation } from '../api.ts';
import { Reply } from './message-view.tsx';

export interface AgentConversationViewProps {
  topic: string;
  /** The agents' names, in speaking order. */
  names: string[];
  rounds: number;
  status: AgentConversation['status'] | 'starting' | 'stopping';
  /** Why it failed, when it did. */
  error?: string | undefined;
  transcript: LiveUtterance[];
  /** Offered while this window streams it. */
  onStop?: (() => void) | undefined;
}

const STATUS_WORDS: Record<AgentConversationViewProps['status'], string> = {
  starting: 'Starting…',
  running: 'Running',
  stopping: 'Stopping…',
  done: 'Finished',
  failed: 'Failed',
  cancelled: 'Stopped',
};

/** The conversation. */
export function AgentConversationView({
  topic,
  names,
  rounds,
  status,
  error,
  transcript,
  onStop,
}: AgentConversationViewProps) {
  const underway = status === 'starting' || status === 'running' || status === 'stopping';
  const progress = progressOf(transcript, rounds, names.length);
  return (
    <article className="agent-conversation" aria-labelledby="agent-topic">
      <header className="agent-conversation-header">
        <h2 id="agent-topic">{topic}</h2>
        <p className="muted item-meta">
          {names.join(', ')} · {rounds} {rounds === 1 ? 'round' : 'rounds'} ·{' '}
          <span className={`status-badge status-${status}`}>{STATUS_WORDS[status]}</span>
        </p>
      </header>
      {underway ? (
        <div className="agent-progress">
          <label htmlFor="agent-progress-bar">
            {status === 'starting'
              ? 'Starting the conversation…'
              : `Round ${progress.round} of ${rounds} · ${progress.done} of ${progress.total} turns done`}
          </label>
          <progress
            id="agent-progress-bar"
            max={progress.total}
            {...(status === 'starting' ? {} : { value: progress.done })}
          />
          {onStop ? (
            <button type="button" className="stop-button" disabled={status === 'stopping'} onClick={onStop}>
              Stop
            </button>
          ) : null}
        </div>
      ) : null}
      {status === 'failed' ? (
        <p className="form-error" role="alert">
          The conversation failed{error ? `: ${error}` : ''}. What was said before is kept.
        </p>
      ) : null}
      {status === 'cancelled' ? (
        <p className="notice">Stopped before the end. What was said before is kept.</p>
      ) : null}
      <div className="agent-transcript" role="log" aria-label="Transcript" aria-busy={underway}>
        {transcript.length === 0 && !underway ? <p className="muted">Nobody spoke.</p> : null}
        {transcript.map((utterance) => (
          <article
            key={utterance.id}
            className={`utterance${utterance.done ? '' : ' streaming'}`}
            aria-label={`${utterance.name}, round ${utterance.round}`}
          >
            <h3 className="utterance-speaker">
              {utterance.name} <span className="muted">· round {utterance.round}</span>
            </h3>
            {utterance.content === '' && !utterance.done ? (
              <p className="muted">Writing…</p>
            ) : (
              <Reply content={utterance.content} streaming={!utterance.done} />
            )}
          </article>
        ))}
      </div>
    </article>
  );
}
