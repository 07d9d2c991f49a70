/**
 * The signed-in screen: the session list beside the open conversation, the documents, the memories or the
 * agent conversations (the top bar's links switch). Owns the list of sessions, which screen and which chat
 * is open (kept in the address — `/c/<session id>`, `/documents`, `/memories`, `/agents/<id>` — so a reload
 * reopens it), the models and personas to pick from, the agent conversation this window runs, and the
 * connection state: when a request finds the server gone, a banner says so and the
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
  type SearchHit,
} from '../api.ts';
import { preloadHighlighter } from '../markdown.ts';
import { type Place, pathOf, placeOf, type Screen } from '../screen-location.ts';
import { useAgentRun } from '../use-agent-run.ts';
import { AgentsPanel } from './agents-panel.tsx';
import { ChatSearch } from './chat-search.tsx';
import { ConnectionBanner } from './connection-banner.tsx';
import { Conversation, type MessageToReveal } from './conversation.tsx';
import { DocumentsPanel } from './documents-panel.tsx';
import { MemoriesPanel } from './memories-panel.tsx';
import { ScreenNav } from './screen-nav.tsx';
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

function placeInAddress(): Place {
  return placeOf(window.location.pathname);
}

function showInAddress(place: Place, replace = false): void {
  const path = pathOf(place);
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
  const [screen, setScreen] = useState<Screen>(() => placeInAddress().screen);
  // The chat open (or last open, while another screen shows), and the agent conversation open.
  const [selectedId, setSelectedId] = useState<string | undefined>(() => {
    const place = placeInAddress();
    return place.screen === 'chat' ? place.sessionId : undefined;
  });
  const [agentConversationId, setAgentConversationId] = useState<string | undefined>(() => {
    const place = placeInAddress();
    return place.screen === 'agents' ? place.conversationId : undefined;
  });
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [personas, setPersonas] = useState<PersonaInfo[] | undefined>();
  const [online, setOnline] = useState(true);
  const [nextProbeAt, setNextProbeAt] = useState<number | undefined>();
  const [reloadToken, setReloadToken] = useState(0);
  const [drawerOpen, setDrawerOpen] = useState(false);
  // A search shows its hits in place of the chat list; the hit chosen is revealed in its chat.
  const [searching, setSearching] = useState(false);
  const [messageToReveal, setMessageToReveal] = useState<MessageToReveal | undefined>();
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

  // Back and forward buttons move between screens and conversations.
  useEffect(() => {
    const onPop = () => {
      const place = placeInAddress();
      setScreen(place.screen);
      if (place.screen === 'chat') setSelectedId(place.sessionId);
      if (place.screen === 'agents') setAgentConversationId(place.conversationId);
    };
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  // An address naming a session that is not (or no longer) in the list falls back to the list.
  useEffect(() => {
    if (sessions === undefined || selectedId === undefined) return;
    if (!sessions.some((session) => session.id === selectedId)) {
      setSelectedId(undefined);
      if (placeInAddress().screen === 'chat') showInAddress({ screen: 'chat' }, true);
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
    setScreen('chat');
    showInAddress(id === undefined ? { screen: 'chat' } : { screen: 'chat', sessionId: id });
    setDrawerOpen(false);
  }, []);

  const openHit = useCallback(
    (hit: SearchHit) => {
      // A new object each time: choosing the same hit again reveals it again.
      setMessageToReveal({ sessionId: hit.sessionId, messageId: hit.messageId });
      select(hit.sessionId);
    },
    [select],
  );

  const openAgentConversation = useCallback((id: string | undefined, replace = false) => {
    setAgentConversationId(id);
    setScreen('agents');
    showInAddress(
      id === undefined ? { screen: 'agents' } : { screen: 'agents', conversationId: id },
      replace,
    );
    setDrawerOpen(false);
  }, []);

  const go = useCallback(
    (next: Screen) => {
      if (next === 'chat') select(selectedId);
      else if (next === 'agents') openAgentConversation(agentConversationId);
      else {
        setScreen(next);
        showInAddress({ screen: next });
        setDrawerOpen(false);
      }
    },
    [select, selectedId, openAgentConversation, agentConversationId],
  );

  const screenRef = useRef(screen);
  screenRef.current = screen;
  const agentRun = useAgentRun({
    handled: (error) => failuresRef.current.handled(error),
    // The conversation just started gets its address, so a reload or a shared tab finds it.
    onStarted: (id) => {
      if (screenRef.current === 'agents') openAgentConversation(id);
    },
  });

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
        <ScreenNav
          current={screen}
          hrefs={{
            chat: pathOf({ screen: 'chat', ...(selectedId === undefined ? {} : { sessionId: selectedId }) }),
            documents: pathOf({ screen: 'documents' }),
            memories: pathOf({ screen: 'memories' }),
            agents: pathOf({
              screen: 'agents',
              ...(agentConversationId === undefined ? {} : { conversationId: agentConversationId }),
            }),
          }}
          onGo={go}
        />
        <span className="spacer" />
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
        <ChatSearch failures={failures} onOpen={openHit} onActiveChange={setSearching} />
        {searching ? null : (
          <SessionList
            sessions={sessions}
            selectedId={selectedId}
            onSelect={select}
            onRename={renameSession}
            onDelete={deleteSession}
          />
        )}
      </nav>
      <div
        className="drawer-scrim"
        hidden={!drawerOpen}
        onClick={() => setDrawerOpen(false)}
        aria-hidden="true"
      />
      <main className="conversation-pane" id="conversation" tabIndex={-1}>
        {screen === 'documents' ? (
          <DocumentsPanel failures={failures} reloadToken={reloadToken} />
        ) : screen === 'memories' ? (
          <MemoriesPanel
            failures={failures}
            reloadToken={reloadToken}
            sessions={sessions}
            onOpenChat={select}
          />
        ) : screen === 'agents' ? (
          <AgentsPanel
            failures={failures}
            reloadToken={reloadToken}
            conversationId={agentConversationId}
            onOpen={openAgentConversation}
            run={agentRun.run}
            onStart={(request) => void agentRun.start(request)}
            onStop={agentRun.stop}
          />
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
            {...(messageToReveal?.sessionId === selected.id ? { reveal: messageToReveal } : {})}
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
