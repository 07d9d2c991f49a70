/**
 * The signed-in screen: the session list beside the open conversation. Owns the list of sessions, which
 * one is open (kept in the address, `/c/<session id>`, so a reload reopens it), the models and personas
 * to pick from, and the connection state: when a request finds the server gone, a banner says so and the
 * client probes /healthz with growing pauses until it answers, then reloads what it shows.
 */

import { useCallback, useEffect, useRef, useState } from 'react';
import {
  ApiError,
  api,
  type ChatSession,
  type CurrentUser,
  isNetworkError,
  type ModelInfo,
  type PersonaInfo,
} from '../api.ts';
import { preloadHighlighter } from '../markdown.ts';
import { ConnectionBanner } from './connection-banner.tsx';
import { Conversation } from './conversation.tsx';
import { DocumentsPanel } from './documents-panel.tsx';
import { SessionList } from './session-list.tsx';

export interface ChatScreenProps {
  user: CurrentUser;
  onSignOut(): void;
  onSessionEnded(): void;
}

/** What the rest of the screen reports a failure to. */
export interface FailureHandlers {
  /** Deals with 401 (signed out) and network failures (reconnect); returns true when it did. */
  handled(error: unknown): boolean;
}

const SESSION_PATH = /^\/c\/([A-Za-z0-9_-]{1,128})\/?$/;
const DOCUMENTS_PATH = '/documents';

function sessionIdFromLocation(): string | undefined {
  return SESSION_PATH.exec(window.location.pathname)?.[1];
}

function documentsInLocation(): boolean {
  return window.location.pathname === DOCUMENTS_PATH;
}

function showInAddress(path: string, replace = false): void {
  if (window.location.pathname === path) return;
  if (replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
}

function showSessionInAddress(id: string | undefined, replace = false): void {
  const path = id === undefined ? '/' : `/c/${id}`;
  if (window.location.pathname === path) return;
  if (replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
}

/** Pauses between probes of a lost server: 1 s, 2 s, 4 s … at most 15 s. */
function probeDelay(attempt: number): number {
  return Math.min(15_000, 1000 * 2 ** attempt);
}

/** The chat screen. */
export function ChatScreen({ user, onSignOut, onSessionEnded }: ChatScreenProps) {
  const [sessions, setSessions] = useState<ChatSession[] | undefined>();
  const [listError, setListError] = useState<string | undefined>();
  const [selectedId, setSelectedId] = useState<string | undefined>(sessionIdFromLocation);
  const [showDocuments, setShowDocuments] = useState(documentsInLocation);
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [personas, setPersonas] = useState<PersonaInfo[] | undefined>();
  const [online, setOnline] = useState(true);
  const [nextProbeAt, setNextProbeAt] = useState<number | undefined>();
  const [reloadToken, setReloadToken] = useState(0);
  const [drawerOpen, setDrawerOpen] = useState(false);
  const [probeRound, setProbeRound] = useState(0);
  const probeAttempt = useRef(0);
  const probeTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const failures: FailureHandlers = {
    handled(error) {
      if (error instanceof ApiError && error.status === 401) {
        onSessionEnded();
        return true;
      }
      if (isNetworkError(error)) {
        setOnline(false);
        return true;
      }
      return false;
    },
  };
  const failuresRef = useRef(failures);
  failuresRef.current = failures;

  const loadSessions = useCallback(async () => {
    try {
      const list = await api.listSessions();
      setSessions(list);
      setListError(undefined);
      return list;
    } catch (error) {
      if (!failuresRef.current.handled(error)) {
        setListError(error instanceof Error ? error.message : String(error));
      }
      return undefined;
    }
  }, []);

  useEffect(preloadHighlighter, []);

  // First load, and again after every reconnection.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reloadToken is the trigger
  useEffect(() => {
    void loadSessions();
    api.listModels().then(setModels, () => {});
    api.listPersonas().then(setPersonas, () => {});
  }, [loadSessions, reloadToken]);

  // Back and forward buttons move between conversations.
  useEffect(() => {
    const onPop = () => {
      setSelectedId(sessionIdFromLocation());
      setShowDocuments(documentsInLocation());
    };
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  // An address naming a session that is not (or no longer) in the list falls back to the list.
  useEffect(() => {
    if (sessions === undefined || selectedId === undefined) return;
    if (!sessions.some((session) => session.id === selectedId)) {
      setSelectedId(undefined);
      if (!documentsInLocation()) showSessionInAddress(undefined, true);
    }
  }, [sessions, selectedId]);

  // Lost connection: probe until the server answers, then reload everything shown.
  // biome-ignore lint/correctness/useExhaustiveDependencies: probeRound restarts the probing
  useEffect(() => {
    if (online) return;
    let cancelled = false;
    const probe = async () => {
      if (cancelled) return;
      if (await api.alive()) {
        if (cancelled) return;
        probeAttempt.current = 0;
        setNextProbeAt(undefined);
        setOnline(true);
        setReloadToken((token) => token + 1);
        return;
      }
      const delay = probeDelay(probeAttempt.current++);
      setNextProbeAt(Date.now() + delay);
      probeTimer.current = setTimeout(probe, delay);
    };
    const delay = probeDelay(probeAttempt.current++);
    setNextProbeAt(Date.now() + delay);
    probeTimer.current = setTimeout(probe, delay);
    const onBrowserOnline = () => {
      clearTimeout(probeTimer.current);
      void probe();
    };
    window.addEventListener('online', onBrowserOnline);
    return () => {
      cancelled = true;
      clearTimeout(probeTimer.current);
      window.removeEventListener('online', onBrowserOnline);
    };
  }, [online, probeRound]);

  useEffect(() => {
    const onBrowserOffline = () => setOnline(false);
    window.addEventListener('offline', onBrowserOffline);
    return () => window.removeEventListener('offline', onBrowserOffline);
  }, []);

  const retryNow = useCallback(() => {
    clearTimeout(probeTimer.current);
    probeAttempt.current = 0;
    void api.alive().then((alive) => {
      if (alive) {
        setNextProbeAt(undefined);
        setOnline(true);
        setReloadToken((token) => token + 1);
      } else {
        setProbeRound((round) => round + 1);
      }
    });
  }, []);

  // The drawer (phone width): focus moves into it when it opens; Escape closes it and returns focus.
  const drawerToggle = useRef<HTMLButtonElement>(null);
  const drawer = useRef<HTMLElement>(null);
  useEffect(() => {
    if (!drawerOpen) return;
    drawer.current?.querySelector<HTMLButtonElement>('button')?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== 'Escape') return;
      setDrawerOpen(false);
      drawerToggle.current?.focus();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [drawerOpen]);

  const select = useCallback((id: string | undefined) => {
    setSelectedId(id);
    setShowDocuments(false);
    showSessionInAddress(id);
    setDrawerOpen(false);
  }, []);

  const openDocuments = useCallback(() => {
    setShowDocuments(true);
    showInAddress(DOCUMENTS_PATH);
    setDrawerOpen(false);
  }, []);

  const createSession = useCallback(async () => {
    try {
      const session = await api.createSession();
      setSessions((list) => [session, ...(list ?? []).filter((item) => item.id !== session.id)]);
      select(session.id);
    } catch (error) {
      if (!failuresRef.current.handled(error)) {
        setListError(`The chat could not be created: ${error instanceof Error ? error.message : error}`);
      }
    }
  }, [select]);

  const sessionChanged = useCallback((session: ChatSession) => {
    setSessions((list) => list?.map((item) => (item.id === session.id ? session : item)));
  }, []);

  const renameSession = useCallback(
    async (id: string, title: string) => {
      try {
        sessionChanged(await api.updateSession(id, { title }));
      } catch (error) {
        if (!failuresRef.current.handled(error)) {
          setListError(`The chat could not be renamed: ${error instanceof Error ? error.message : error}`);
        }
      }
    },
    [sessionChanged],
  );

  const deleteSession = useCallback(
    async (id: string) => {
      try {
        await api.deleteSession(id);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404) && !failuresRef.current.handled(error)) {
          setListError(`The chat could not be deleted: ${error instanceof Error ? error.message : error}`);
          return;
        }
      }
      setSessions((list) => list?.filter((item) => item.id !== id));
      if (selectedId === id) select(undefined);
    },
    [select, selectedId],
  );

  const selected = sessions?.find((session) => session.id === selectedId);

  return (
    <div className={`chat-layout${drawerOpen ? ' drawer-open' : ''}`}>
      <a className="skip-link" href="#conversation">
        Skip to conversation
      </a>
      <header className="top-bar">
        <button
          ref={drawerToggle}
          type="button"
          className="icon-button drawer-toggle"
          aria-expanded={drawerOpen}
          aria-controls="session-drawer"
          onClick={() => setDrawerOpen((open) => !open)}
        >
          <span aria-hidden="true">☰</span>
          <span className="visually-hidden">Chats</span>
        </button>
        <span className="brand">parley</span>
        <span className="spacer" />
        <button
          type="button"
          className="ghost"
          aria-current={showDocuments ? 'page' : undefined}
          onClick={showDocuments ? () => select(selectedId) : openDocuments}
        >
          {showDocuments ? 'Back to chat' : 'Documents'}
        </button>
        <span className="user-name" title={`Signed in as ${user.name}`}>
          {user.name}
        </span>
        <button type="button" className="ghost" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {online ? null : <ConnectionBanner nextProbeAt={nextProbeAt} onRetry={retryNow} />}
      <nav ref={drawer} id="session-drawer" className="sidebar" aria-label="Chats">
        <button type="button" className="primary new-chat" onClick={createSession}>
          <span aria-hidden="true">+ </span>New chat
        </button>
        {listError ? (
          <p className="form-error" role="alert">
            {listError}
          </p>
        ) : null}
        <SessionList
          sessions={sessions}
          selectedId={selectedId}
          onSelect={select}
          onRename={renameSession}
          onDelete={deleteSession}
        />
      </nav>
      <div
        className="drawer-scrim"
        hidden={!drawerOpen}
        onClick={() => setDrawerOpen(false)}
        aria-hidden="true"
      />
      <main className="conversation-pane" id="conversation" tabIndex={-1}>
        {showDocuments ? (
          <DocumentsPanel failures={failures} reloadToken={reloadToken} />
        ) : selected ? (
          <Conversation
            key={selected.id}
            session={selected}
            models={models}
            personas={personas}
            online={online}
            reloadToken={reloadToken}
            failures={failures}
            onSessionChanged={sessionChanged}
          />
        ) : (
          <div className="empty-state">
            <h1>Start a conversation</h1>
            <p className="muted">
              {sessions === undefined
                ? 'Loading your chats…'
                : sessions.length === 0
                  ? 'You have no chats yet.'
                  : 'Pick a chat from the list, or start a new one.'}
            </p>
            <button type="button" className="primary" onClick={createSession}>
              Start a new chat
            </button>
          </div>
        )}
      </main>
    </div>
  );
}
