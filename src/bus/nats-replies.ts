import { createInbox, type Msg, type NatsConnection } from '@nats-io/transport-node';

/**
 * One inbox subscription per node for every reply it waits for (requests and gathers): each waiting call
 * gets a token, and its replies arrive on `<inbox>.<token>`. One wildcard subscription instead of one per
 * call keeps a request to a single publish; the client resubscribes it after a reconnect.
 */

/** A reply subject and the way to stop listening on it. */
export interface ReplySlot {
  subject: string;
  close(): void;
}

/** The node's reply inbox. */
export interface ReplyInbox {
  /** A fresh reply subject; its messages go to `onMessage` until the slot is closed. */
  open(onMessage: (message: Msg) => void): ReplySlot;
  /** Stops listening (pending slots get nothing more). */
  close(): void;
}

/** Subscribes the node's reply inbox. */
export function createReplyInbox(connection: NatsConnection): ReplyInbox {
  const prefix = createInbox();
  const waiting = new Map<string, (message: Msg) => void>();
  let counter = 0;
  const subscription = connection.subscribe(`${prefix}.*`, {
    callback(error, message) {
      if (error !== null) return;
      waiting.get(message.subject.slice(prefix.length + 1))?.(message);
    },
  });
  return {
    open(onMessage) {
      const token = (counter++).toString(36);
      waiting.set(token, onMessage);
      return { subject: `${prefix}.${token}`, close: () => waiting.delete(token) };
    },
    close() {
      waiting.clear();
      subscription.unsubscribe();
    },
  };
}

/** True for the status message the server sends to a reply subject when nobody subscribes to the subject. */
export function isNoResponders(message: Msg): boolean {
  return message.data.length === 0 && message.headers?.code === 503;
}
