/** The banner shown while the server cannot be reached, with a countdown to the next try. */

import { useEffect, useState } from 'react';

export interface ConnectionBannerProps {
  /** When the next automatic try happens (ms since epoch). */
  nextProbeAt: number | undefined;
  onRetry(): void;
}

/** "Connection lost — reconnecting in N s [Retry now]". */
export function ConnectionBanner({ nextProbeAt, onRetry }: ConnectionBannerProps) {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, []);
  const seconds = nextProbeAt === undefined ? 0 : Math.max(0, Math.ceil((nextProbeAt - now) / 1000));
  return (
    <div className="banner banner-warning connection-banner" role="alert">
      <span>
        <strong>Connection lost.</strong> {seconds > 0 ? `Reconnecting in ${seconds} s…` : 'Reconnecting…'}
      </span>
      <button type="button" className="ghost" onClick={onRetry}>
        Retry now
      </button>
    </div>
  );
}
