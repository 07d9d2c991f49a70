/**
 * How a request or gather finds its handlers over NATS: it is published to the work subject (one handler
 * per module answers); on a no-responders status, to the local listeners' subject; when neither has a
 * subscriber, the handler's subscription may still be on its way to the server from another node, so it
 * is published again with a growing pause (10, 20, 40 ms…) until `retryUntil`, then `onNobody` is called.
 */
export interface FallbackPublisher {
  /** Publishes (first to the work subject). */
  send(): void;
  /** The last publish came back with a no-responders status: try the next subject, or later. */
  noResponders(): void;
  /** Stops a pending retry (the call is settled). */
  cancel(): void;
}

export interface FallbackPublisherOptions {
  /** Publishes the call to the local listeners' subject when `local`, else to the work subject. */
  publish(local: boolean): void;
  /** Date.now() after which no retry is made. */
  retryUntil: number;
  /** Nobody answers on either subject. */
  onNobody(): void;
}

export function createFallbackPublisher(options: FallbackPublisherOptions): FallbackPublisher {
  let local = false;
  let attempt = 0;
  let retry: NodeJS.Timeout | undefined;

  function send(): void {
    retry = undefined;
    options.publish(local);
  }

  return {
    send,
    noResponders() {
      if (!local) {
        local = true;
        send();
        return;
      }
      const wait = Math.min(10 * 2 ** attempt++, options.retryUntil - Date.now());
      if (wait <= 0) {
        options.onNobody();
        return;
      }
      local = false;
      retry = setTimeout(send, wait);
    },
    cancel() {
      if (retry !== undefined) clearTimeout(retry);
      retry = undefined;
    },
  };
}
