import { randomUUID } from 'node:crypto';
import {
  type ConsumerMessages,
  type JetStreamPublishOptions,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import {
  connect,
  type Msg,
  type NatsConnection,
  errors as natsErrors,
  headers as natsHeaders,
  type Subscription,
} from '@nats-io/transport-node';
import type { GatherReply, GatherResult } from '../core/bus-types.ts';
import type { NatsBusConfig } from '../core/config-types.ts';
import { createDeadlines, type Deadline } from '../core/deadlines.ts';
import {
  errorFromJSON,
  isPlatformError,
  NoHandlerError,
  PlatformError,
  type PlatformErrorJSON,
  TimeoutError,
  toPlatformError,
  ValidationError,
} from '../core/errors.ts';
import type { EventEnvelope } from '../core/events.ts';
import { matchesPattern } from '../core/pattern.ts';
import type { BusTransport, TransportDeliver } from '../core/transport.ts';
import { createFallbackPublisher } from './nats-fallback.ts';
import { createReplyInbox, isNoResponders } from './nats-replies.ts';
import { ensureConsumer, ensureStream, natsNames, workSetConsumer } from './nats-stream.ts';

/**
 * The NATS JetStream transport: the bus across processes. The mapping follows the notes in
 * `core/transport.ts`:
 *
 * - events are published to JetStream (`<prefix>.events.<type>`, `msgID` = envelope id, so the server
 *   drops a re-published envelope within its duplicate window); `publish` resolves on the stream's ack;
 * - a work set `(group, pattern)` is a durable pull consumer shared by every node; each node runs at most
 *   `concurrency` of its handlers at once, reports progress while they run (so a slow handler is not
 *   redelivered elsewhere), acknowledges after the handler settled, and drops ids it already handled;
 * - local listeners are core subscriptions (JetStream-published messages reach them too);
 * - requests and gathers are core NATS request-reply on their own subjects, falling back to local
 *   listeners on a no-responders status.
 *
 * While the connection is down `publish`, `request` and `gather` reject at once with
 * CHAT_ERR_BUS_UNAVAILABLE (503); the client reconnects by itself, and the stream and consumers are
 * re-created if the server lost them (memory storage).
 */

/** Where the transport reports connection changes and delivery problems; a pino logger fits. */
export interface NatsTransportLogger {
  error(object: Record<string, unknown>, message: string): void;
  warn?(object: Record<string, unknown>, message: string): void;
  info?(object: Record<string, unknown>, message: string): void;
}

/** Options besides the `bus.nats` config. */
export interface NatsTransportOptions {
  log?: NatsTransportLogger;
  /** The connection name NATS monitoring shows. Default `parley`. */
  name?: string;
}

/** One subscription of this node. */
interface Member {
  deliver: TransportDeliver;
  active: boolean;
  group: string;
  /** Names this responder in a gather (unique across nodes). */
  key: string;
}

/** The local listeners of one pattern on this node, behind one set of core subscriptions. */
interface LocalRoute {
  members: Member[];
  next: number;
  subscriptions: Subscription[];
}

/** This node's work subscriptions of one pattern (any group): who answers a request on it. */
interface RequestRoute {
  members: Member[];
  next: number;
  subscription: Subscription;
}

/** This node's members of one work set, and the consumption of its durable consumer. */
interface WorkSet {
  key: string;
  group: string;
  pattern: string;
  members: Member[];
  next: number;
  gatherSubscription: Subscription;
  messages: ConsumerMessages | undefined;
  /** Unsubscribed (its last member left this node) or the transport closed. */
  stopped: boolean;
  /** Ids handled here, oldest first, at most `dedup_window`. */
  handled: Set<string>;
  inProgress: Set<string>;
  running: number;
  /** Wakes the consumption loop once a handler slot is free. */
  wake: (() => void) | undefined;
}

/** A call waiting on the network, to fail when the connection drops or the transport closes. */
interface PendingCall {
  /** Requests and publishes fail when the connection drops; gathers run to their timeout. */
  failsOnDisconnect: boolean;
  fail(error: PlatformError): void;
}

/** A reply as it crosses the wire. */
interface WireReply {
  key?: string;
  responder?: string;
  accepted?: boolean;
  ok?: boolean;
  data?: unknown;
  error?: PlatformErrorJSON;
}

const ignore = () => {};
/** Event types whose listeners are cached; bounded so a stream of distinct types cannot grow it forever. */
const MAX_CACHED_TYPES = 10_000;

/** Connects to NATS, creates or updates the stream, and returns the transport. */
export async function createNatsTransport(
  config: NatsBusConfig,
  options: NatsTransportOptions = {},
): Promise<BusTransport> {
  const log = options.log;
  const names = natsNames(config.stream_prefix);
  const servers = Array.isArray(config.servers) ? config.servers : [config.servers];
  let connection: NatsConnection;
  try {
    connection = await connect({
      servers,
      name: options.name ?? 'parley',
      timeout: config.connect_timeout_ms,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: config.reconnect_wait_ms,
      pingInterval: config.ping_interval_ms,
      maxPingOut: 2,
    });
  } catch (error) {
    throw unavailable(`cannot connect to NATS at ${servers.join(', ')}: ${messageOf(error)}`, error);
  }
  let manager: Awaited<ReturnType<typeof jetstreamManager>>;
  try {
    manager = await jetstreamManager(connection, { timeout: config.publish_timeout_ms });
    await ensureStream(manager, names, config.stream);
  } catch (error) {
    await connection.close().catch(ignore);
    if (error instanceof PlatformError) throw error;
    throw unavailable(`NATS at ${servers.join(', ')} has no usable JetStream: ${messageOf(error)}`, error);
  }
  const js = jetstream(connection, { timeout: config.publish_timeout_ms });
  const replies = createReplyInbox(connection);
  const deadlines = createDeadlines();
  const nodeId = randomUUID().slice(0, 8);
  let serial = 0;

  const localRoutes = new Map<string, LocalRoute>();
  /** The local listeners of each event type seen, until the listeners change. */
  const listenersByType = new Map<string, Member[]>();
  const eventSubjectPrefix = names.event('');
  const requestRoutes = new Map<string, RequestRoute>();
  const workSets = new Map<string, WorkSet>();
  /** Work sets whose consumer is being created: a publish waits for them, or its event would find none. */
  const setups = new Set<Promise<void>>();
  const pendingCalls = new Set<PendingCall>();
  /** Work deliveries not yet acknowledged, reported as in progress while their handler runs. */
  const working = new Set<JsMsg>();
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  let connected = true;
  let restoring = false;
  /** When the connection was last lost (a re-created consumer starts there). */
  let disconnectedAt = Date.now();
  let closed = false;
  let closing: Promise<void> | undefined;

  // A running handler keeps its event: without progress reports JetStream would hand it to another node
  // after ack_wait. A node that dies stops reporting, and its events go elsewhere after ack_wait.
  const heartbeat = setInterval(
    () => {
      for (const message of working) safely(() => message.working());
    },
    Math.max(50, Math.floor(config.ack_wait_ms / 3)),
  );
  heartbeat.unref();

  const eventSubscription = connection.subscribe(names.event('>'), {
    callback: (error, message) => {
      if (error === null) onEvent(message);
    },
  });
  try {
    await connection.flush();
  } catch (error) {
    await connection.close().catch(ignore);
    throw unavailable(`NATS at ${servers.join(', ')} stopped answering: ${messageOf(error)}`, error);
  }

  void watchConnection();

  async function watchConnection(): Promise<void> {
    for await (const status of connection.status()) {
      if (status.type === 'disconnect' && connected && !closed) {
        connected = false;
        disconnectedAt = Date.now();
        log?.warn?.({ servers }, 'NATS connection lost; the bus answers 503 until it is back');
        const error = unavailable('the NATS connection is down');
        for (const call of pendingCalls) if (call.failsOnDisconnect) call.fail(error);
      } else if (status.type === 'reconnect' && !closed) {
        connected = true;
        log?.info?.({ servers }, 'NATS connection restored');
        void restore();
      }
    }
  }

  /** After a reconnect: re-create the stream and consumers if the server lost them (memory storage). */
  async function restore(): Promise<void> {
    if (restoring) return;
    restoring = true;
    // A server that just restarted may answer JetStream requests only after a moment: keep trying while
    // connected (a later reconnect starts its own attempt).
    for (let attempt = 0; connected && !closed; attempt++) {
      try {
        await ensureStream(manager, names, config.stream);
        for (const set of [...workSets.values()]) {
          // Started a little before the connection dropped: clocks of node and server may differ; an
          // event delivered twice this way is dropped by the handled-id memory.
          const startTime = new Date(disconnectedAt - 5000);
          const created = await ensureConsumer(manager, names, consumerOf(set), startTime);
          // A consumption of a consumer that vanished only retries slowly: start over on the new one.
          if (created) set.messages?.stop();
        }
        break;
      } catch (error) {
        if (attempt === 3) {
          log?.error(
            { err: error },
            'could not restore the JetStream stream and consumers after a reconnect',
          );
        }
        await sleep(Math.min(100 * 2 ** attempt, 5000));
      }
    }
    restoring = false;
  }

  function consumerOf(set: WorkSet) {
    return workSetConsumer(names, config, set.group, set.pattern);
  }

  function closedError(): PlatformError {
    return new PlatformError('CHAT_ERR_BUS_CLOSED', 'the bus transport is closed');
  }

  /** A NATS client error as the PlatformError a caller sees. */
  function busError(error: unknown): PlatformError {
    if (error instanceof PlatformError) return error;
    if (closed) return closedError();
    if (error instanceof natsErrors.InvalidArgumentError && /max_payload/.test(error.message)) {
      return new ValidationError(
        `the event is larger than the NATS max_payload (${connection.info?.max_payload} bytes)`,
        { cause: error },
      );
    }
    return unavailable(`NATS did not confirm: ${messageOf(error)}`, error);
  }

  /** Rejects when the transport cannot send right now; undefined when it can. */
  function cannotSend(): PlatformError | undefined {
    if (closed) return closedError();
    if (!connected) return unavailable('the NATS connection is down');
    return undefined;
  }

  // ---- publishing -------------------------------------------------------------------------------

  function publish(envelope: EventEnvelope): Promise<void> {
    if (closed) return Promise.reject(closedError());
    if (setups.size > 0) return Promise.all([...setups]).then(() => publishNow(envelope));
    return publishNow(envelope);
  }

  function publishNow(envelope: EventEnvelope): Promise<void> {
    const refusal = cannotSend();
    if (refusal !== undefined) return Promise.reject(refusal);
    let payload: string;
    try {
      payload = JSON.stringify(envelope);
    } catch (error) {
      return Promise.reject(new ValidationError(`the event is not JSON-serialisable: ${messageOf(error)}`));
    }
    const publishOptions: Partial<JetStreamPublishOptions> = {
      msgID: envelope.id,
      timeout: config.publish_timeout_ms,
    };
    if (envelope.traceparent !== undefined) {
      // Also as a header, so NATS tooling and tracing middleware see the trace without parsing the body.
      const headers = natsHeaders();
      headers.set('traceparent', envelope.traceparent);
      publishOptions.headers = headers;
    }
    return new Promise((resolve, reject) => {
      const call: PendingCall = { failsOnDisconnect: true, fail: reject };
      pendingCalls.add(call);
      js.publish(names.event(envelope.type), payload, publishOptions).then(
        () => {
          pendingCalls.delete(call);
          resolve();
        },
        (error: unknown) => {
          pendingCalls.delete(call);
          reject(busError(error));
        },
      );
    });
  }

  // ---- answering requests and gathers -----------------------------------------------------------

  /** Sends one reply; a reply that cannot be sent becomes an error reply the caller can read. */
  function sendReply(subject: string, reply: WireReply): void {
    let payload: string;
    try {
      payload = JSON.stringify(reply);
    } catch (error) {
      payload = JSON.stringify(
        failureReply(reply, `the reply is not JSON-serialisable: ${messageOf(error)}`),
      );
    }
    try {
      connection.publish(subject, payload);
    } catch (error) {
      try {
        connection.publish(
          subject,
          JSON.stringify(failureReply(reply, `the reply could not be sent: ${messageOf(error)}`)),
        );
      } catch (secondError) {
        log?.error({ err: secondError, subject }, 'could not send a bus reply');
      }
    }
  }

  /** Calls `deliver` and sends its outcome to `subject`; `defer` sends a synchronous result later. */
  function answer(
    subject: string,
    deliver: TransportDeliver,
    envelope: EventEnvelope,
    identity: WireReply,
    defer: boolean,
  ): void {
    const result = deliver(envelope);
    if (result instanceof Promise) {
      result.then(
        (data: unknown) => sendReply(subject, { ...identity, ok: true, data }),
        (error: unknown) =>
          sendReply(subject, { ...identity, ok: false, error: toPlatformError(error).toJSON() }),
      );
    } else if (defer) {
      // A gather's replies go after every local responder's acceptance, so `missing` sees them all.
      setImmediate(() => sendReply(subject, { ...identity, ok: true, data: result }));
    } else {
      sendReply(subject, { ...identity, ok: true, data: result });
    }
  }

  function readEnvelope(message: Msg): EventEnvelope | undefined {
    try {
      return message.json<EventEnvelope>();
    } catch (error) {
      log?.error({ err: error, subject: message.subject }, 'dropped a bus message that is not an envelope');
      return undefined;
    }
  }

  function onRequest(members: { members: Member[]; next: number }, message: Msg): void {
    if (message.reply === undefined || message.reply === '') return;
    const envelope = readEnvelope(message);
    if (envelope === undefined) return;
    const member = pick(members);
    if (member === undefined) {
      const error = new NoHandlerError(`no handler for "${envelope.type}"`, {
        details: { type: envelope.type },
      });
      sendReply(message.reply, { ok: false, error: error.toJSON() });
      return;
    }
    answer(message.reply, member.deliver, envelope, {}, false);
  }

  function onGather(responders: Member[], message: Msg): void {
    const reply = message.reply;
    if (reply === undefined || reply === '' || responders.length === 0) return;
    const envelope = readEnvelope(message);
    if (envelope === undefined) return;
    for (const responder of responders) {
      const identity = { key: responder.key, responder: responder.group };
      sendReply(reply, { ...identity, accepted: true });
    }
    for (const responder of responders) {
      answer(reply, responder.deliver, envelope, { key: responder.key, responder: responder.group }, true);
    }
  }

  // ---- work sets ----------------------------------------------------------------------------------

  function startWorkSet(group: string, pattern: string): WorkSet {
    const key = `${group}\u0000${pattern}`;
    const consumerName = names.workSet(group, pattern);
    const set: WorkSet = {
      key,
      group,
      pattern,
      members: [],
      next: 0,
      // One member of each work set answers a gather: a queue group per set.
      gatherSubscription: connection.subscribe(names.gatherWork(pattern), {
        queue: consumerName,
        callback: (error, message) => {
          if (error !== null) return;
          const member = pick(set);
          if (member !== undefined) onGather([member], message);
        },
      }),
      messages: undefined,
      stopped: false,
      handled: new Set(),
      inProgress: new Set(),
      running: 0,
      wake: undefined,
    };
    let markReady!: () => void;
    const ready = new Promise<void>((resolve) => {
      markReady = resolve;
    });
    setups.add(ready);
    void ready.then(() => setups.delete(ready));
    void consume(set, markReady);
    return set;
  }

  /** Keeps consuming the set's durable consumer until the set stops; resumes after failures. */
  async function consume(set: WorkSet, markReady: () => void): Promise<void> {
    let attempt = 0;
    while (!set.stopped) {
      try {
        await ensureConsumer(manager, names, consumerOf(set));
        markReady();
        const consumer = await js.consumers.get(names.stream, names.workSet(set.group, set.pattern));
        const messages = await consumer.consume({ max_messages: Math.min(config.concurrency, 256) });
        set.messages = messages;
        if (set.stopped) messages.stop();
        attempt = 0;
        for await (const message of messages) await take(set, message);
      } catch (error) {
        // Publishing waits for this set only until its first attempt: it then fails or succeeds on its own.
        markReady();
        if (set.stopped) return;
        if (connected)
          log?.error({ err: error, group: set.group, pattern: set.pattern }, 'work set consumer failed');
      }
      if (!set.stopped) await sleep(Math.min(100 * 2 ** attempt++, 5000));
    }
  }

  /** Takes one delivery of a work set: drops a duplicate, waits for a handler slot, starts the handler. */
  async function take(set: WorkSet, message: JsMsg): Promise<void> {
    // Messages fetched before the set stopped go back at once rather than after ack_wait.
    if (set.stopped) return void safely(() => message.nak());
    let envelope: EventEnvelope;
    try {
      envelope = message.json<EventEnvelope>();
    } catch (error) {
      log?.error({ err: error, subject: message.subject }, 'dropped a stored event that is not an envelope');
      return void safely(() => message.term());
    }
    if (set.handled.has(envelope.id)) return void safely(() => message.ack());
    // Redelivered while its first delivery still runs here: that one's ack covers this stream sequence.
    if (set.inProgress.has(envelope.id)) return;
    while (set.running >= config.concurrency && !set.stopped) {
      await new Promise<void>((resolve) => {
        set.wake = resolve;
      });
    }
    if (set.stopped) return void safely(() => message.nak());
    handle(set, message, envelope);
  }

  function handle(set: WorkSet, message: JsMsg, envelope: EventEnvelope): void {
    const member = pick(set);
    if (member === undefined) return void safely(() => message.nak());
    const id = envelope.id;
    set.running++;
    set.inProgress.add(id);
    working.add(message);
    inFlight++;
    const settle = (handled: boolean) => {
      set.running--;
      set.inProgress.delete(id);
      working.delete(message);
      if (handled) {
        set.handled.add(id);
        if (set.handled.size > config.dedup_window) set.handled.delete(set.handled.values().next().value!);
        safely(() => message.ack());
      } else {
        safely(() => message.nak());
      }
      const wake = set.wake;
      set.wake = undefined;
      wake?.();
      inFlight--;
      if (inFlight === 0) onIdle?.();
    };
    const result = member.deliver(envelope);
    // A failed handler counts as handled (the bus reported it; it is not retried). A handler the bus
    // refused because it is closing did not run: the event goes back for another node.
    if (result instanceof Promise) {
      result.then(
        () => settle(true),
        (error: unknown) => settle(!isPlatformError(error, 'CHAT_ERR_BUS_CLOSED')),
      );
    } else {
      settle(true);
    }
  }

  function stopWorkSet(set: WorkSet): void {
    set.stopped = true;
    set.messages?.stop();
    set.gatherSubscription.unsubscribe();
    const wake = set.wake;
    set.wake = undefined;
    wake?.();
    if (workSets.get(set.key) === set) workSets.delete(set.key);
  }

  // ---- subscribing --------------------------------------------------------------------------------

  /**
   * Local listeners get events from ONE subscription to every event of the deployment, made (and
   * confirmed by the server) before the transport is returned. A subscription per pattern would reach the
   * server asynchronously, after events other nodes publish right after `on()` returned; this way a
   * listener sees every event that reaches its node after it subscribed. Events nobody on the node
   * listens to are dropped by subject, before parsing.
   */
  function onEvent(message: Msg): void {
    const type = message.subject.slice(eventSubjectPrefix.length);
    let listeners = listenersByType.get(type);
    if (listeners === undefined) {
      listeners = [];
      for (const [pattern, route] of localRoutes) {
        if (matchesPattern(pattern, type)) listeners.push(...route.members);
      }
      if (listenersByType.size >= MAX_CACHED_TYPES) listenersByType.clear();
      listenersByType.set(type, listeners);
    }
    if (listeners.length === 0) return;
    const envelope = readEnvelope(message);
    if (envelope === undefined) return;
    for (const listener of listeners) {
      // A listener removed by an earlier listener of this same event must not be called.
      if (!listener.active) continue;
      const result = listener.deliver(envelope);
      if (result instanceof Promise) result.then(ignore, ignore);
    }
  }

  function subscribeLocal(pattern: string, member: Member): () => void {
    let route = localRoutes.get(pattern);
    if (route === undefined) {
      const created: LocalRoute = { members: [], next: 0, subscriptions: [] };
      created.subscriptions.push(
        connection.subscribe(names.requestLocal(pattern), {
          queue: names.localRequestQueue,
          callback: (error, message) => {
            if (error === null) onRequest(created, message);
          },
        }),
        connection.subscribe(names.gatherLocal(pattern), {
          callback: (error, message) => {
            if (error === null) onGather([...created.members], message);
          },
        }),
      );
      localRoutes.set(pattern, created);
      route = created;
    }
    const owner = route;
    owner.members.push(member);
    listenersByType.clear();
    return () => {
      remove(owner.members, member);
      listenersByType.clear();
      if (owner.members.length === 0 && localRoutes.get(pattern) === owner) {
        localRoutes.delete(pattern);
        for (const subscription of owner.subscriptions) subscription.unsubscribe();
      }
    };
  }

  function subscribeWork(pattern: string, member: Member): () => void {
    const key = `${member.group}\u0000${pattern}`;
    let set = workSets.get(key);
    if (set === undefined) {
      set = startWorkSet(member.group, pattern);
      workSets.set(key, set);
    }
    const owner = set;
    owner.members.push(member);
    let route = requestRoutes.get(pattern);
    if (route === undefined) {
      const created: RequestRoute = {
        members: [],
        next: 0,
        // Every work subscription shares one queue group: NATS merges queue members of the same name
        // across subjects, so exactly one handler answers a request, whichever patterns match it.
        subscription: connection.subscribe(names.requestWork(pattern), {
          queue: names.requestQueue,
          callback: (error, message) => {
            if (error === null) onRequest(created, message);
          },
        }),
      };
      requestRoutes.set(pattern, created);
      route = created;
    }
    const requests = route;
    requests.members.push(member);
    return () => {
      remove(owner.members, member);
      if (owner.members.length === 0) stopWorkSet(owner);
      remove(requests.members, member);
      if (requests.members.length === 0 && requestRoutes.get(pattern) === requests) {
        requestRoutes.delete(pattern);
        requests.subscription.unsubscribe();
      }
    };
  }

  // ---- requesting and gathering -------------------------------------------------------------------

  function request(
    envelope: EventEnvelope,
    { timeout, signal }: { timeout: number; signal?: AbortSignal | undefined },
  ): Promise<unknown> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const refusal = cannotSend();
    if (refusal !== undefined) return Promise.reject(refusal);
    const { type } = envelope;
    return new Promise((resolve, reject) => {
      let done = false;
      const slot = replies.open(onMessage);
      const wire = wirePayload(envelope, slot.subject);
      if (wire instanceof PlatformError) {
        slot.close();
        reject(wire);
        return;
      }
      const payload: string = wire;
      const call: PendingCall = { failsOnDisconnect: true, fail: (error) => finish(error, undefined) };
      pendingCalls.add(call);
      const deadline = deadlines.add(timeout, () =>
        finish(
          new TimeoutError(`no reply to "${type}" within ${timeout} ms`, {
            details: { type, timeoutMs: timeout },
          }),
          undefined,
        ),
      );
      const onAbort = () => finish(signal?.reason ?? new Error('aborted'), undefined);
      signal?.addEventListener('abort', onAbort, { once: true });
      const publisher = createFallbackPublisher({
        publish(local) {
          try {
            connection.publish(local ? names.requestLocal(type) : names.requestWork(type), payload, {
              reply: slot.subject,
            });
          } catch (error) {
            finish(busError(error), undefined);
          }
        },
        retryUntil: Date.now() + Math.min(config.no_responders_retry_ms, timeout),
        onNobody: () =>
          finish(new NoHandlerError(`no handler for "${type}"`, { details: { type } }), undefined),
      });
      publisher.send();

      function onMessage(message: Msg): void {
        if (done) return;
        if (isNoResponders(message)) {
          publisher.noResponders();
          return;
        }
        const reply = readReply(message);
        if (reply.ok === true) finish(undefined, reply.data);
        else finish(replyError(reply), undefined);
      }

      function finish(error: unknown, value: unknown): void {
        if (done) return;
        done = true;
        slot.close();
        deadlines.cancel(deadline);
        publisher.cancel();
        pendingCalls.delete(call);
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve(value);
        else reject(error);
      }
    });
  }

  function gather(
    envelope: EventEnvelope,
    {
      timeout,
      expected,
      signal,
    }: { timeout: number; expected?: number | undefined; signal?: AbortSignal | undefined },
  ): Promise<GatherResult> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const refusal = cannotSend();
    if (refusal !== undefined) return Promise.reject(refusal);
    const { type } = envelope;
    return new Promise((resolve, reject) => {
      let done = false;
      let settleCheck: Deadline | undefined;
      const started = Date.now();
      const settleAt = started + config.gather_settle_ms;
      /** Responders that announced themselves, by key; true once they answered. */
      const responders = new Map<string, { name: string; answered: boolean }>();
      let answered = 0;
      const gathered: GatherReply[] = [];
      const failed: GatherResult['failed'] = [];
      const slot = replies.open(onMessage);
      const wire = wirePayload(envelope, slot.subject);
      if (wire instanceof PlatformError) {
        slot.close();
        reject(wire);
        return;
      }
      const payload: string = wire;
      const call: PendingCall = { failsOnDisconnect: false, fail: (error) => stop(error) };
      pendingCalls.add(call);
      const deadline = deadlines.add(timeout, () => finish(true));
      const onAbort = () => stop(signal?.reason ?? new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const publisher = createFallbackPublisher({
        publish(local) {
          try {
            connection.publish(local ? names.gatherLocal(type) : names.gatherWork(type), payload, {
              reply: slot.subject,
            });
          } catch (error) {
            stop(busError(error));
          }
        },
        retryUntil: started + Math.min(config.no_responders_retry_ms, timeout),
        onNobody: () => finish(false),
      });
      if (expected !== undefined && expected <= 0) {
        finish(false);
        return;
      }
      publisher.send();

      function onMessage(message: Msg): void {
        if (done) return;
        if (isNoResponders(message)) {
          publisher.noResponders();
          return;
        }
        const reply = readReply(message);
        const key = reply.key ?? '';
        const name = reply.responder ?? 'unknown';
        let responder = responders.get(key);
        if (responder === undefined) {
          responder = { name, answered: false };
          responders.set(key, responder);
        }
        if (reply.accepted === true || responder.answered) return;
        responder.answered = true;
        answered++;
        if (reply.ok === true) {
          gathered.push({ responder: name, data: reply.data });
        } else {
          const error = replyError(reply);
          failed.push({ responder: name, error: error.message, code: error.code });
        }
        check();
      }

      /** Done once `expected` replies came, or every announced responder answered and the settle time passed. */
      function check(): void {
        settleCheck = undefined;
        if (done) return;
        if (expected !== undefined && gathered.length >= expected) {
          finish(false);
          return;
        }
        if (answered < responders.size || responders.size === 0) return;
        const wait = settleAt - Date.now();
        if (wait <= 0) finish(false);
        else settleCheck ??= deadlines.add(wait, check);
      }

      function cleanUp(): void {
        done = true;
        slot.close();
        deadlines.cancel(deadline);
        if (settleCheck !== undefined) deadlines.cancel(settleCheck);
        publisher.cancel();
        pendingCalls.delete(call);
        signal?.removeEventListener('abort', onAbort);
      }

      function finish(timedOut: boolean): void {
        if (done) return;
        cleanUp();
        const missing = [...responders.values()]
          .filter((entry) => !entry.answered)
          .map((entry) => entry.name);
        resolve({ replies: gathered, failed, timedOut, missing });
      }

      function stop(error: unknown): void {
        if (done) return;
        cleanUp();
        reject(error);
      }
    });
  }

  /** What a responder receives: the envelope, with where to reply and what the reply belongs to. */
  function wirePayload(envelope: EventEnvelope, replyTo: string): string | PlatformError {
    try {
      return JSON.stringify({ ...envelope, replyTo, correlationId: envelope.correlationId ?? envelope.id });
    } catch (error) {
      return new ValidationError(`the event is not JSON-serialisable: ${messageOf(error)}`);
    }
  }

  function readReply(message: Msg): WireReply {
    try {
      return message.json<WireReply>();
    } catch {
      return {
        ok: false,
        error: { code: 'CHAT_ERR_BUS_HANDLER_FAILED', message: 'unreadable reply', status: 500 },
      };
    }
  }

  function nextKey(): string {
    return `${nodeId}.${(serial++).toString(36)}`;
  }

  return {
    name: 'nats',

    publish,

    subscribe(pattern, deliver, subscribeOptions) {
      if (closed) throw closedError();
      const member: Member = { deliver, group: subscribeOptions.group, key: nextKey(), active: true };
      const unsubscribe =
        subscribeOptions.mode === 'work' ? subscribeWork(pattern, member) : subscribeLocal(pattern, member);
      return () => {
        if (!member.active) return;
        member.active = false;
        unsubscribe();
      };
    },

    request,

    gather,

    health() {
      if (closed) return { healthy: false, message: 'the transport is closed' };
      return connected ? { healthy: true } : { healthy: false, message: 'the NATS connection is down' };
    },

    close() {
      closing ??= (async () => {
        closed = true;
        for (const set of [...workSets.values()]) stopWorkSet(set);
        eventSubscription.unsubscribe();
        for (const route of localRoutes.values()) {
          for (const subscription of route.subscriptions) subscription.unsubscribe();
        }
        for (const route of requestRoutes.values()) route.subscription.unsubscribe();
        localRoutes.clear();
        listenersByType.clear();
        requestRoutes.clear();
        for (const call of [...pendingCalls]) call.fail(closedError());
        // Handlers still running get to finish and be acknowledged (the bus has normally waited for them
        // already); past ack_wait JetStream redelivers them anyway, so waiting longer is pointless.
        if (inFlight > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, config.ack_wait_ms);
            onIdle = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        clearInterval(heartbeat);
        replies.close();
        if (connected) await connection.drain().catch(() => connection.close());
        else await connection.close().catch(ignore);
      })();
      return closing;
    },
  };
}

/** The next member of a set, round robin. */
function pick(set: { members: Member[]; next: number }): Member | undefined {
  const { members } = set;
  if (members.length <= 1) return members[0];
  set.next = (set.next + 1) % members.length;
  return members[set.next];
}

function remove<T>(list: T[], item: T): void {
  const position = list.indexOf(item);
  if (position >= 0) list.splice(position, 1);
}

function replyError(reply: WireReply): PlatformError {
  return errorFromJSON(
    reply.error ?? { code: 'CHAT_ERR_BUS_HANDLER_FAILED', message: 'the handler failed', status: 500 },
  );
}

function failureReply(reply: WireReply, message: string): WireReply {
  const error = new PlatformError('CHAT_ERR_BUS_HANDLER_FAILED', message);
  const failure: WireReply = { ok: false, error: error.toJSON() };
  if (reply.key !== undefined) failure.key = reply.key;
  if (reply.responder !== undefined) failure.responder = reply.responder;
  return failure;
}

function unavailable(message: string, cause?: unknown): PlatformError {
  return new PlatformError('CHAT_ERR_BUS_UNAVAILABLE', message, cause === undefined ? {} : { cause });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Acks and naks on a closed connection throw; the server redelivers what was not acknowledged. */
function safely(action: () => void): void {
  try {
    action();
  } catch {
    // nothing to do: redelivery after ack_wait covers it
  }
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
