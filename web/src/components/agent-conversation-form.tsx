/**
 * Starting an agent conversation: a topic, the agents who take part — the server's configured ones, ticked,
 * and any the user describes (a name and instructions) — and how many rounds. They speak in the order shown.
 * The server checks again (its limits on rounds and participants are its config's); what it refuses is said
 * above the form, which keeps what was typed.
 */

import { type FormEvent, useId, useState } from 'react';
import type { AgentInfo, GuestAgent, StartAgentConversation } from '../api.ts';

export interface AgentConversationFormProps {
  agents: AgentInfo[];
  /** A conversation of this window is running: one at a time. */
  busy: boolean;
  onStart(request: StartAgentConversation): void;
}

/** The API's bounds (src/server/routes/agents.ts); the server's config may allow fewer rounds. */
const MAX_ROUNDS = 50;
const MAX_PARTICIPANTS = 20;

interface GuestDraft extends GuestAgent {
  key: number;
}

/** The form. */
export function AgentConversationForm({ agents, busy, onStart }: AgentConversationFormProps) {
  const [topic, setTopic] = useState('');
  const [chosen, setChosen] = useState<Set<string>>(() => new Set(agents.map((agent) => agent.id)));
  const [guests, setGuests] = useState<GuestDraft[]>([]);
  const [nextKey, setNextKey] = useState(1);
  const [rounds, setRounds] = useState(2);
  const [problem, setProblem] = useState<string | undefined>();
  const ids = { topic: useId(), rounds: useId(), problem: useId() };

  function submit(event: FormEvent) {
    event.preventDefault();
    const participants: StartAgentConversation['participants'] = [
      ...agents.filter((agent) => chosen.has(agent.id)).map((agent) => agent.id),
      ...guests.map(({ name, systemPrompt }) => ({ name: name.trim(), systemPrompt: systemPrompt.trim() })),
    ];
    if (participants.length < 2) {
      setProblem('Choose at least two agents: a conversation needs someone to answer.');
      return;
    }
    if (participants.length > MAX_PARTICIPANTS) {
      setProblem(`At most ${MAX_PARTICIPANTS} agents can take part.`);
      return;
    }
    setProblem(undefined);
    onStart({ topic: topic.trim(), participants, rounds });
  }

  const changeGuest = (key: number, change: Partial<GuestAgent>) =>
    setGuests((list) => list.map((guest) => (guest.key === key ? { ...guest, ...change } : guest)));

  return (
    <form className="agent-form" aria-label="New agent conversation" onSubmit={submit}>
      <label htmlFor={ids.topic}>Topic</label>
      <textarea
        id={ids.topic}
        required
        rows={2}
        maxLength={2000}
        value={topic}
        placeholder="Should we open the shop on Sundays?"
        onChange={(event) => setTopic(event.target.value)}
      />
      <fieldset className="agent-choices">
        <legend>Agents, in speaking order</legend>
        {agents.map((agent) => (
          <label key={agent.id} className="agent-choice" title={agent.systemPrompt}>
            <input
              type="checkbox"
              checked={chosen.has(agent.id)}
              onChange={(event) =>
                setChosen((current) => {
                  const next = new Set(current);
                  if (event.target.checked) next.add(agent.id);
                  else next.delete(agent.id);
                  return next;
                })
              }
            />
            <span>
              <strong>{agent.name}</strong> <span className="muted">— {agent.systemPrompt}</span>
            </span>
          </label>
        ))}
        {guests.map((guest, index) => (
          <fieldset key={guest.key} className="guest-agent">
            <legend>Your agent {index + 1}</legend>
            <label>
              Name
              <input
                required
                maxLength={100}
                value={guest.name}
                onChange={(event) => changeGuest(guest.key, { name: event.target.value })}
              />
            </label>
            <label>
              Instructions
              <textarea
                required
                rows={2}
                maxLength={20000}
                value={guest.systemPrompt}
                placeholder="You run a small bakery and watch every cost."
                onChange={(event) => changeGuest(guest.key, { systemPrompt: event.target.value })}
              />
            </label>
            <button
              type="button"
              className="ghost"
              aria-label={`Remove your agent ${index + 1}`}
              onClick={() => setGuests((list) => list.filter((item) => item.key !== guest.key))}
            >
              Remove
            </button>
          </fieldset>
        ))}
        <button
          type="button"
          className="ghost add-agent"
          onClick={() => {
            setGuests((list) => [...list, { key: nextKey, name: '', systemPrompt: '' }]);
            setNextKey((key) => key + 1);
          }}
        >
          <span aria-hidden="true">+ </span>Add an agent of your own
        </button>
      </fieldset>
      <div className="agent-form-actions">
        <label htmlFor={ids.rounds} className="picker">
          Rounds
        </label>
        <input
          id={ids.rounds}
          className="rounds-input"
          type="number"
          required
          min={1}
          max={MAX_ROUNDS}
          value={rounds}
          aria-describedby={`${ids.rounds}-hint`}
          onChange={(event) => setRounds(Number(event.target.value))}
        />
        <span id={`${ids.rounds}-hint`} className="hint">
          Each agent speaks once a round.
        </span>
        <span className="spacer" />
        <button type="submit" className="primary" disabled={busy}>
          Start conversation
        </button>
      </div>
      {busy ? <p className="hint">A conversation is running: wait for it to end, or stop it.</p> : null}
      {problem ? (
        <p id={ids.problem} className="form-error" role="alert">
          {problem}
        </p>
      ) : null}
    </form>
  );
}
