/** The persona and model of a session, changed with two labelled selects (saved at once). */

import { useId, useState } from 'react';
import { api, type ChatSession, type ModelInfo, type PersonaInfo } from '../api.ts';
import type { FailureHandlers } from './chat-screen.tsx';

export interface SessionSettingsProps {
  session: ChatSession;
  models: ModelInfo[];
  /** `undefined` when the server offers no persona list. */
  personas: PersonaInfo[] | undefined;
  disabled: boolean;
  failures: FailureHandlers;
  onSessionChanged(session: ChatSession): void;
}

/** Persona and model pickers. */
export function SessionSettings({
  session,
  models,
  personas,
  disabled,
  failures,
  onSessionChanged,
}: SessionSettingsProps) {
  const personaId = useId();
  const modelId = useId();
  const [error, setError] = useState<string | undefined>();
  const [saving, setSaving] = useState(false);
  const defaultModel = models.find((model) => model.isDefault)?.id;

  async function change(input: { personaId?: string | null; model?: string | null }) {
    setSaving(true);
    setError(undefined);
    try {
      onSessionChanged(await api.updateSession(session.id, input));
    } catch (failure) {
      if (!failures.handled(failure)) setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setSaving(false);
    }
  }

  return (
    <div className="session-settings">
      {personas !== undefined && personas.length > 0 ? (
        <span className="picker">
          <label htmlFor={personaId}>Persona</label>
          <select
            id={personaId}
            value={session.metadata.personaId ?? ''}
            disabled={disabled || saving}
            onChange={(event) => void change({ personaId: event.target.value || null })}
          >
            <option value="">Default</option>
            {personas.map((persona) => (
              <option key={persona.id} value={persona.id}>
                {persona.name}
              </option>
            ))}
          </select>
        </span>
      ) : null}
      {models.length > 0 ? (
        <span className="picker">
          <label htmlFor={modelId}>Model</label>
          <select
            id={modelId}
            value={session.metadata.model ?? ''}
            disabled={disabled || saving}
            onChange={(event) => void change({ model: event.target.value || null })}
          >
            <option value="">{defaultModel ? `Default (${defaultModel})` : 'Default'}</option>
            {models.map((model) => (
              <option key={model.id} value={model.id}>
                {model.id}
              </option>
            ))}
          </select>
        </span>
      ) : null}
      {error ? (
        <span className="form-error" role="alert">
          {error}
        </span>
      ) : null}
    </div>
  );
}
