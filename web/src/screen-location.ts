/**
 * Which screen the address shows, so a reload, a bookmark and back/forward reopen it: `/` and `/c/<id>`
 * (chats), `/documents`, `/memories`, `/agents` and `/agents/<id>` (one agent conversation). The server
 * answers every such browser navigation with the client (src/server/web-client.ts).
 */

export type Screen = 'chat' | 'documents' | 'memories' | 'agents';

/** A place in the client. */
export type Place =
  | { screen: 'chat'; sessionId?: string }
  | { screen: 'documents' }
  | { screen: 'memories' }
  | { screen: 'agents'; conversationId?: string };

// The ids the server makes (core/ids): letters, digits, `-` and `_`.
const ID = '([A-Za-z0-9_-]{1,128})';
const SESSION_PATH = new RegExp(`^/c/${ID}/?$`);
const AGENT_CONVERSATION_PATH = new RegExp(`^/agents/${ID}/?$`);

/** The place a path names; an unknown path is the chat screen with no chat open. */
export function placeOf(pathname: string): Place {
  const session = SESSION_PATH.exec(pathname)?.[1];
  if (session !== undefined) return { screen: 'chat', sessionId: session };
  if (/^\/documents\/?$/.test(pathname)) return { screen: 'documents' };
  if (/^\/memories\/?$/.test(pathname)) return { screen: 'memories' };
  if (/^\/agents\/?$/.test(pathname)) return { screen: 'agents' };
  const conversation = AGENT_CONVERSATION_PATH.exec(pathname)?.[1];
  if (conversation !== undefined) return { screen: 'agents', conversationId: conversation };
  return { screen: 'chat' };
}

/** The path of a place (the inverse of placeOf). */
export function pathOf(place: Place): string {
  switch (place.screen) {
    case 'chat':
      return place.sessionId === undefined ? '/' : `/c/${place.sessionId}`;
    case 'documents':
      return '/documents';
    case 'memories':
      return '/memories';
    case 'agents':
      return place.conversationId === undefined ? '/agents' : `/agents/${place.conversationId}`;
  }
}
