/**
 * The screens of the client, in the top bar: chats, documents, memories, agent conversations. Real links
 * (each screen has its address, so a link opens in a new tab too); a plain click moves within the page.
 */

import type { MouseEvent } from 'react';
import type { Screen } from '../screen-location.ts';

export interface ScreenNavProps {
  current: Screen;
  /** The address of each screen (the chat screen's is the open chat's). */
  hrefs: Record<Screen, string>;
  onGo(screen: Screen): void;
}

const SCREENS: Array<{ screen: Screen; label: string }> = [
  { screen: 'chat', label: 'Chats' },
  { screen: 'documents', label: 'Documents' },
  { screen: 'memories', label: 'Memories' },
  { screen: 'agents', label: 'Agents' },
];

/** The navigation. */
export function ScreenNav({ current, hrefs, onGo }: ScreenNavProps) {
  const follow = (screen: Screen) => (event: MouseEvent<HTMLAnchorElement>) => {
    // A click meant for a new tab or window is the browser's.
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    onGo(screen);
  };
  return (
    <nav className="screen-nav" aria-label="Screens">
      <ul>
        {SCREENS.map(({ screen, label }) => (
          <li key={screen}>
            <a
              href={hrefs[screen]}
              aria-current={current === screen ? 'page' : undefined}
              onClick={follow(screen)}
            >
              {label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}
