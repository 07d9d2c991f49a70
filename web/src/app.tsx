/**
 * The top of the client: find out whether the browser has a session (GET /v1/me with the cookie), then
 * show the login screen or the chat. Any 401 later (session expired, key revoked) comes back here.
 */

import { useCallback, useEffect, useState } from 'react';
import { ApiError, api, type CurrentUser, isNetworkError } from './api.ts';
import { ChatScreen } from './components/chat-screen.tsx';
import { LoginScreen } from './components/login-screen.tsx';

type AuthState =
  | { status: 'checking' }
  | { status: 'signed-out'; notice?: string }
  | { status: 'signed-in'; user: CurrentUser };

/** The web client. */
export function App() {
  const [auth, setAuth] = useState<AuthState>({ status: 'checking' });

  const check = useCallback(() => {
    setAuth({ status: 'checking' });
    api.me().then(
      (user) => setAuth({ status: 'signed-in', user }),
      (error: unknown) => {
        if (error instanceof ApiError && error.status === 401) setAuth({ status: 'signed-out' });
        else {
          setAuth({
            status: 'signed-out',
            notice: isNetworkError(error)
              ? 'The parley server cannot be reached. Is it running?'
              : `The server failed: ${error instanceof Error ? error.message : String(error)}`,
          });
        }
      },
    );
  }, []);

  useEffect(check, [check]);

  const signOut = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      setAuth({ status: 'signed-out', notice: 'You are signed out.' });
    }
  }, []);

  const sessionEnded = useCallback(() => {
    setAuth({ status: 'signed-out', notice: 'Your session has ended. Sign in again to continue.' });
  }, []);

  if (auth.status === 'checking') {
    return (
      <main className="center-screen" aria-busy="true">
        <p className="muted">Loading parley…</p>
      </main>
    );
  }
  if (auth.status === 'signed-out') {
    return (
      <LoginScreen
        {...(auth.notice === undefined ? {} : { notice: auth.notice })}
        onSignedIn={(user) => setAuth({ status: 'signed-in', user })}
      />
    );
  }
  return <ChatScreen user={auth.user} onSignOut={signOut} onSessionEnded={sessionEnded} />;
}
