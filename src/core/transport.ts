import type { GatherResult, SubscriptionMode } from './bus-types.ts';
import type { EventEnvelope } from './events.ts';

/**
 * What carries envelopes between publishers and handlers: the in-process transport (`src/bus/local.ts`) on
 * one node, a NATS JetStream transport across nodes. The bus (`core/bus.ts`) owns everything that is the
 * same for every transport — envelopes, validation, handler error reporting, pipelines, closing — and a
 * transport owns routing and delivery. Every transport must pass `test/contracts/bus-contract.ts`.
 *
 * ## Terms
 *
 * - **Node**: one transport instance (one parley process). Several nodes share one network (one NATS
 *   cluster, or one in-process `LocalNetwork` in tests).
 * - **Pattern**: an event type or a NATS-style wildcard (`chat.*` one segment, `chat.>` one or more;
 *   see `core/pattern.ts`). Patterns and types reach the transport already validated.
 * - **Work set**: all work subscriptions with the same `(group, pattern)`, on every node. It behaves like
 *   one durable NATS consumer: each event goes to exactly one member. Two subscriptions of one group with
 *   different patterns are two work sets, and both get an event that matches them both.
 * - **Local listener**: a `mode: 'local'` subscription; each one, on each node, sees every matching event
 *   (a plain NATS subscription).
 *
 * ## Delivery semantics
 *
 * 1. `publish`: every work set whose pattern matches the type gets the event once (one member; across
 *    nodes at least once, acknowledged only after `deliver` settled), and every matching local listener
 *    on every node gets it (at most once; listeners that were not subscribed when it arrived miss it).
 * 2. Deduplication: a work set handles an event id once. A transport remembers the ids a work set
 *    handled (at least the last `dedupWindow` of them, or the last few minutes); an envelope whose id
 *    it has seen — a redelivery after a crash before the ack, or the same envelope published twice — is
 *    acknowledged without calling `deliver`. Local listeners are not deduplicated.
 * 3. A handler that fails is not retried: the bus has already logged, counted and reported the error, and
 *    the transport acknowledges the event as handled. Redelivery is only for events whose handler never
 *    finished (the node died, the ack timed out).
 * 4. Responders: `request` and `gather` go to work sets; only when no work set matches the type do local
 *    listeners answer instead (so `bus.on('x', handler)` answers requests in a test or a tool, while in a
 *    running platform an SSE stream listening to `chat.>` never steals a module's request).
 * 5. Replies cross the wire as JSON: `{ ok: true, data }` or `{ ok: false, error: PlatformErrorJSON }`.
 *    A `deliver` that rejects always rejects with a PlatformError (the bus converts anything else);
 *    the requester's transport rebuilds it with `errorFromJSON(error.toJSON())`, so a ValidationError
 *    thrown by a handler on node B reaches the caller on node A as a ValidationError with the same
 *    code, status, message and details. The in-process transport does the same round trip, so nobody
 *    comes to rely on getting the very error object. Payloads and replies must be JSON-serialisable;
 *    the in-process transport passes them by reference, so handlers must not mutate them.
 *
 * ## A NATS JetStream transport (notes for its author)
 *
 * - Subjects: `<prefix>.events.<type>`; one stream captures `<prefix>.events.>`. Publish with the
 *   JetStream `msgID` header set to the envelope id (server-side dedup within its duplicate window) and
 *   resolve `publish` on the JetStream ack: on NATS, `emit` resolves when the event is stored, not when
 *   handlers ran.
 * - Work set: a durable pull consumer named from `(group, pattern)` (hash it: patterns contain `*`, `>`
 *   and dots), filter subject `<prefix>.events.<pattern>`, explicit ack after `deliver` settles; every
 *   node's member of the set pulls from the same consumer, so one of them gets each event. Unsubscribing
 *   stops pulling but keeps the durable consumer, so events published while every node restarts wait.
 *   Consumer-side dedup: a per-set LRU of handled ids (or a KV bucket with a TTL, shared by the nodes).
 * - Local listener: each node holds ONE core NATS subscription on `<prefix>.events.>` from startup and
 *   routes events to its listeners itself (JetStream-published messages reach core subscribers too). A
 *   subscription per pattern would miss events emitted right after `on()` on another node, because the
 *   server registers subscriptions asynchronously; the cost is that every node receives every event.
 * - Request: a core NATS request to `<prefix>.request.work.<type>`; each work subscription also
 *   subscribes to `<prefix>.request.work.<pattern>` in ONE shared queue group (NATS puts queue members of
 *   the same queue name into one group even across different subjects, so exactly one handler answers).
 *   On a no-responders status (503), repeat on `<prefix>.request.local.<type>` where local listeners
 *   subscribe the same way; a second no-responders is a NoHandlerError. No reply within `timeout` is a
 *   TimeoutError. The envelope carries `replyTo` (the inbox) and `correlationId` (the request's id).
 * - Gather: publish to `<prefix>.gather.work.<type>` with a reply inbox; each work set subscribes in a
 *   queue group named from its `(group, pattern)`, so one member per set answers. A responder first sends
 *   `{ accepted: group }`, then its reply; `missing` lists the responders that accepted but had not
 *   replied when gathering stopped. A no-responders status falls back to the local subject as in request.
 * - close(): drain subscriptions (in-flight deliveries finish and are acked), then close the connection.
 */
export interface BusTransport {
  /** A short name for logs and metrics (`local`, `nats`). */
  readonly name: string;

  /**
   * Delivers `envelope` to every matching work set (one member each, deduplicated by id) and every matching
   * local listener. Resolves when the event is safely on its way; the in-process transport resolves only
   * after every `deliver` it called has settled. Never rejects because a handler failed; rejects with
   * CHAT_ERR_BUS_CLOSED after `close()`.
   */
  publish(envelope: EventEnvelope): Promise<void>;

  /**
   * Optional: false when no handler on any node would get an event of `type` now, so the bus publishes
   * nothing and builds no envelope for it (an id, a timestamp, an object). Only a transport that sees every
   * subscription (the in-process one) can tell; one across a network leaves it out.
   */
  hasListeners?(type: string): boolean;

  /**
   * Registers `deliver` for events matching `pattern` on this node. Returns a function that unsubscribes:
   * once it returned, `deliver` is not called again by this subscription (for a work set, other members
   * keep receiving; the durable position of the set is kept).
   */
  subscribe(pattern: string, deliver: TransportDeliver, options: TransportSubscribeOptions): () => void;

  /**
   * Sends `envelope` to one responder (rule 4 above) and resolves with what its `deliver` returned. Rejects
   * with NoHandlerError when no handler matches, TimeoutError when no reply came within `timeout`, the
   * responder's PlatformError (rebuilt from JSON) when it failed, and `signal.reason` when aborted.
   */
  request(envelope: EventEnvelope, options: TransportRequestOptions): Promise<unknown>;

  /**
   * Sends `envelope` to every responder (one member per work set, rule 4 above) and collects replies
   * until `expected` replies came, every responder answered or failed, or `timeout` passed — whichever is
   * first. Resolves with no replies when nobody responds; rejects only with `signal.reason`,
   * CHAT_ERR_BUS_CLOSED, or (a networked transport) CHAT_ERR_BUS_UNAVAILABLE while disconnected.
   */
  gather(envelope: EventEnvelope, options: TransportGatherOptions): Promise<GatherResult>;

  /** Removes this node's subscriptions and releases connections; later calls reject with CHAT_ERR_BUS_CLOSED. */
  close(): Promise<void>;

  /**
   * Whether the transport can carry events right now (for `/readyz`): a networked transport reports its
   * connection. Optional: a transport without it counts as healthy while open.
   */
  health?(): TransportHealth;
}

/** What a transport says about its connection. */
export interface TransportHealth {
  healthy: boolean;
  /** Why it is unhealthy, in a few words. */
  message?: string;
}

/**
 * Calls the handler with one envelope; returns its result (a value or a promise). Provided by the bus: it
 * never throws synchronously, and a rejection is always a PlatformError that has already been logged,
 * counted and reported — the transport only forwards it to a requester or ignores it.
 */
export type TransportDeliver = (envelope: EventEnvelope) => unknown;

/** How a subscription receives events. */
export interface TransportSubscribeOptions {
  mode: SubscriptionMode;
  /** The work group (for local listeners, only the name used as `responder` in a gather). */
  group: string;
}

/** Limits of one request. */
export interface TransportRequestOptions {
  /** Milliseconds to wait for the reply. */
  timeout: number;
  signal?: AbortSignal | undefined;
}

/** Limits of one gather. */
export interface TransportGatherOptions {
  /** Milliseconds to wait for replies. */
  timeout: number;
  /** Stop once this many replies came. */
  expected?: number | undefined;
  signal?: AbortSignal | undefined;
}
