/** Sign in with an API key: it is sent once to /v1/auth/login, which answers with the session cookie. */

import { type FormEvent, useId, useRef, useState } from 'react';
import { ApiError, api, type CurrentUser, isNetworkError } from '../api.ts';

export interface LoginScreenProps {
  notice?: string;
  onSignedIn(user: CurrentUser): void;
}

function explain(error: unknown): string {
  if (error instanceof ApiError && error.status === 401) {
    return 'That API key is not valid: it is unknown or has been revoked. Check it and try again.';
  }
  if (isNetworkError(error)) return 'The parley server cannot be reached. Is it running?';
  if (error instanceof ApiError && error.status === 400) return 'Enter an API key.';
  return `Signing in failed: ${error instanceof Error ? error.message : String(error)}`;
}

/** The login form. */
export function LoginScreen({ notice, onSignedIn }: LoginScreenProps) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const hintId = useId();
  const errorId = useId();

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (key.trim() === '') {
      setError('Enter an API key.');
      input.current?.focus();
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const { user } = await api.login(key.trim());
      // The key is not needed any more: the cookie stands for it.
      setKey('');
      onSignedIn(user);
    } catch (failure) {
      setError(explain(failure));
      setBusy(false);
      input.current?.select();
    }
  }

  return (
    <main className="center-screen">
      <form className="login-card" onSubmit={submit} noValidate aria-labelledby="login-title">
        <h1 id="login-title" className="brand">
          parley
        </h1>
        {notice && !error ? (
          <p className="notice" role="status">
            {notice}
          </p>
        ) : null}
        <label htmlFor="api-key">API key</label>
        <input
          ref={input}
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="pk_…"
          value={key}
          onChange={(event) => setKey(event.target.value)}
          aria-describedby={error ? `${errorId} ${hintId}` : hintId}
          aria-invalid={error ? true : undefined}
          // biome-ignore lint/a11y/noAutofocus: the only field of the screen
          autoFocus
        />
        {error ? (
          <p id={errorId} className="form-error" role="alert">
            {error}
          </p>
        ) : null}
        <p id={hintId} className="hint">
          Use the key that <code>npm start</code> printed on its first run, or one an admin gave you. The
          browser trades it for a session cookie and does not keep the key.
        </p>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
