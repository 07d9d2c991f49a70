import type { GatherReply, GatherResult } from '../core/bus-types.ts';
import { createDeadlines } from '../core/deadlines.ts';
import {
  errorFromJSON,
  NoHandlerError,
  PlatformError,
  TimeoutError,
  toPlatformError,
} from '../core/errors.ts';
import type { EventEnvelope } from '../core/events.ts';
import { isWildcardPattern, matchesPattern } from '../core/pattern.ts';
import type {
  BusTransport,
  TransportDeliver,
  TransportGatherOptions,
  TransportRequestOptions,
  TransportSubscribeOptions,
} from '../core/transport.ts';

/**
 * The in-process transport: the default on one node, and — several transports on one `LocalNetwork` —
 * a stand-in for several nodes in tests. Semantics are those documented in `core/transport.ts`; on top
 * of them, `publish` resolves only after every handler it called has settled, so `await bus.emit()`
 * means the handlers ran.
 */

/** Options of the in-process network. */
export interface LocalNetworkOptions {
  /** How many recent event ids each work set remembers to drop duplicates. Default 4096. */
  dedupWindow?: number;
}

/** Several in-process nodes sharing subscriptions, as NATS would connect several processes. */
export interface LocalNetwork {
  /** Connects one more node: a transport that sees the subscriptions of every other node. */
  createTransport(): BusTransport;
}

/** Options of one in-process transport. */
export interface LocalTransportOptions extends LocalNetworkOptions {
  /** Join this network (to simulate several nodes); default a network of its own. */
  network?: LocalNetwork;
}

/** One handler registration on one node. */
interface Subscriber {
  deliver: TransportDeliver;
  group: string;
  pattern: string;
  /** The work set it belongs to; undefined for a local listener. */
  set: WorkSet | undefined;
  active: boolean;
}

/** Work subscriptions sharing `(group, pattern)` across nodes: each event goes to one of them, once. */
interface WorkSet {
  key: string;
  group: string;
  pattern: string;
  members: Subscriber[];
  next: number;
  /** Ids this set handled, in order; ids from `newId` grow, so a new one is usually just the largest. */
  recent: string[];
  latest: string;
  /** Handled ids that arrived out of order (an envelope given an older id), oldest first. */
  older: Set<string>;
}

/** What matches one event type, computed once per type and kept until the subscriptions change. */
interface Route {
  work: WorkSet[];
  local: Subscriber[];
}

interface Responder {
  name: string;
  deliver: TransportDeliver;
}

const EMPTY_ROUTE: Route = { work: [], local: [] };
const settledVoid = Promise.resolve();
const ignore = () => {};
/** Routes cached per event type; bounded so a stream of distinct types cannot grow it forever. */
const MAX_ROUTES = 10_000;

/** Creates an in-process network that several transports (nodes) can join. */
export function createLocalNetwork(options: LocalNetworkOptions = {}): LocalNetwork {
  const dedupWindow = Math.max(1, options.dedupWindow ?? 4096);
  const workSets = new Map<string, WorkSet>();
  // Exact patterns are found by one Map lookup; only wildcard patterns are matched segment by segment.
  const exactWork = new Map<string, WorkSet[]>();
  const exactListeners = new Map<string, Subscriber[]>();
  const wildcardWork: WorkSet[] = [];
  const wildcardListeners: Subscriber[] = [];
  const routes = new Map<string, Route>();
  const deadlines = createDeadlines();

  function routeFor(type: string): Route {
    const cached = routes.get(type);
    if (cached !== undefined) return cached;
    const work = [...(exactWork.get(type) ?? [])];
    for (const set of wildcardWork) if (matchesPattern(set.pattern, type)) work.push(set);
    const local = [...(exactListeners.get(type) ?? [])];
    for (const listener of wildcardListeners) {
      if (matchesPattern(listener.pattern, type)) local.push(listener);
    }
    const route = work.length === 0 && local.length === 0 ? EMPTY_ROUTE : { work, local };
    if (routes.size >= MAX_ROUTES) routes.clear();
    routes.set(type, route);
    return route;
  }

  function addTo<T>(index: Map<string, T[]>, wildcards: T[], pattern: string, item: T): void {
    if (isWildcardPattern(pattern)) {
      wildcards.push(item);
      return;
    }
    const list = index.get(pattern);
    if (list === undefined) index.set(pattern, [item]);
    else list.push(item);
  }

  function removeFrom<T>(index: Map<string, T[]>, wildcards: T[], pattern: string, item: T): void {
    const list = isWildcardPattern(pattern) ? wildcards : index.get(pattern);
    if (list === undefined) return;
    const position = list.indexOf(item);
    if (position >= 0) list.splice(position, 1);
    if (list.length === 0 && list !== wildcards) index.delete(pattern);
  }

  function subscribe(
    pattern: string,
    deliver: TransportDeliver,
    options: TransportSubscribeOptions,
  ): Subscriber {
    const subscriber: Subscriber = { deliver, group: options.group, pattern, set: undefined, active: true };
    if (options.mode === 'work') {
      const key = `${options.group}\u0000${pattern}`;
      let set = workSets.get(key);
      if (set === undefined) {
        set = {
          key,
          group: options.group,
          pattern,
          members: [],
          next: 0,
          recent: [],
          latest: '',
          older: new Set(),
        };
        workSets.set(key, set);
        addTo(exactWork, wildcardWork, pattern, set);
      }
      set.members.push(subscriber);
      subscriber.set = set;
    } else {
      addTo(exactListeners, wildcardListeners, pattern, subscriber);
    }
    routes.clear();
    return subscriber;
  }

  function unsubscribe(subscriber: Subscriber): void {
    if (!subscriber.active) return;
    subscriber.active = false;
    const { set } = subscriber;
    if (set !== undefined) {
      set.members.splice(set.members.indexOf(subscriber), 1);
      // An in-process work set keeps nothing once its last member left: there is no durable queue here.
      if (set.members.length === 0) {
        workSets.delete(set.key);
        removeFrom(exactWork, wildcardWork, set.pattern, set);
      }
    } else {
      removeFrom(exactListeners, wildcardListeners, subscriber.pattern, subscriber);
    }
    routes.clear();
  }

  /**
   * Records `id` as handled by `set`; false when it already was (a duplicate to drop). Ids made by
   * `newId` grow, so the usual case is one string comparison, not a hash set that churns on every event
   * (that cost more than the rest of the delivery); `recent` stays sorted and is binary-searched only
   * for an id that is not the newest.
   */
  function firstDelivery(set: WorkSet, id: string): boolean {
    if (id > set.latest) {
      set.latest = id;
      set.recent.push(id);
      if (set.recent.length >= 2 * dedupWindow) set.recent.splice(0, set.recent.length - dedupWindow);
      return true;
    }
    if (set.older.has(id) || sortedIncludes(set.recent, id)) return false;
    set.older.add(id);
    if (set.older.size > dedupWindow) set.older.delete(set.older.values().next().value!);
    return true;
  }

  /** The next member of a work set, round robin (across nodes). */
  function pick(set: WorkSet): Subscriber | undefined {
    const { members } = set;
    if (members.length <= 1) return members[0];
    set.next = (set.next + 1) % members.length;
    return members[set.next];
  }

  /** The one handler a request goes to: a member of the first matching work set, else a local listener. */
  function firstResponder(type: string): Subscriber | undefined {
    const route = routeFor(type);
    for (const set of route.work) {
      const member = pick(set);
      if (member !== undefined) return member;
    }
    for (const listener of route.local) if (listener.active) return listener;
    return undefined;
  }

  /** Who answers a gather: one member per work set, or the local listeners when no work set matches. */
  function respondersFor(type: string): Responder[] {
    const route = routeFor(type);
    const responders: Responder[] = [];
    for (const set of route.work) {
      const member = pick(set);
      if (member !== undefined) responders.push({ name: set.group, deliver: member.deliver });
    }
    if (responders.length > 0) return responders;
    for (const listener of route.local) {
      if (listener.active) responders.push({ name: listener.group, deliver: listener.deliver });
    }
    return responders;
  }

  function publish(envelope: EventEnvelope): Promise<void> {
    const route = routeFor(envelope.type);
    let first: Promise<unknown> | undefined;
    let more: Promise<unknown>[] | undefined;
    for (const set of route.work) {
      if (set.members.length === 0 || !firstDelivery(set, envelope.id)) continue;
      const result = pick(set)!.deliver(envelope);
      if (!(result instanceof Promise)) continue;
      if (first === undefined) first = result;
      else if (more === undefined) more = [result];
      else more.push(result);
    }
    for (const listener of route.local) {
      // A listener unsubscribed by an earlier handler of this same event must not be called.
      if (!listener.active) continue;
      const result = listener.deliver(envelope);
      if (!(result instanceof Promise)) continue;
      if (first === undefined) first = result;
      else if (more === undefined) more = [result];
      else more.push(result);
    }
    if (first === undefined) return settledVoid;
    if (more === undefined) return first.then(ignore, ignore);
    more.push(first);
    return Promise.allSettled(more).then(ignore);
  }

  return {
    createTransport() {
      const own = new Set<Subscriber>();
      let closed = false;

      function closedError(): PlatformError {
        return new PlatformError('CHAT_ERR_BUS_CLOSED', 'the bus transport is closed');
      }

      return {
        name: 'local',

        publish(envelope) {
          if (closed) return Promise.reject(closedError());
          return publish(envelope);
        },

        hasListeners(type) {
          return closed || routeFor(type) !== EMPTY_ROUTE;
        },

        subscribe(pattern, deliver, options) {
          if (closed) throw closedError();
          const subscriber = subscribe(pattern, deliver, options);
          own.add(subscriber);
          return () => {
            own.delete(subscriber);
            unsubscribe(subscriber);
          };
        },

        request(envelope, options) {
          if (closed) return Promise.reject(closedError());
          return request(envelope, options);
        },

        gather(envelope, options) {
          if (closed) return Promise.reject(closedError());
          return gather(envelope, options);
        },

        async close() {
          closed = true;
          for (const subscriber of own) unsubscribe(subscriber);
          own.clear();
        },
      };
    },
  };

  function request(envelope: EventEnvelope, options: TransportRequestOptions): Promise<unknown> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const responder = firstResponder(envelope.type);
    if (responder === undefined) {
      return Promise.reject(
        new NoHandlerError(`no handler for "${envelope.type}"`, { details: { type: envelope.type } }),
      );
    }
    const result = responder.deliver(envelope);
    if (!(result instanceof Promise)) return Promise.resolve(result);
    return new Promise((resolve, reject) => {
      const deadline = deadlines.add(options.timeout, () => {
        signal?.removeEventListener('abort', onAbort);
        reject(
          new TimeoutError(`no reply to "${envelope.type}" within ${options.timeout} ms`, {
            details: { type: envelope.type, timeoutMs: options.timeout },
          }),
        );
      });
      function onAbort() {
        deadlines.cancel(deadline);
        reject(signal?.reason);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      result.then(
        (value) => {
          deadlines.cancel(deadline);
          signal?.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          deadlines.cancel(deadline);
          signal?.removeEventListener('abort', onAbort);
          reject(overTheWire(error));
        },
      );
    });
  }

  function gather(envelope: EventEnvelope, options: TransportGatherOptions): Promise<GatherResult> {
    const { signal, expected } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const responders = respondersFor(envelope.type);
    const replies: GatherReply[] = [];
    const failed: GatherResult['failed'] = [];
    const answered = new Array<boolean>(responders.length).fill(false);
    let outstanding = responders.length;
    return new Promise((resolve, reject) => {
      let done = false;
      const stop = () => {
        done = true;
        deadlines.cancel(deadline);
        signal?.removeEventListener('abort', onAbort);
      };
      const finish = (timedOut: boolean) => {
        if (done) return;
        stop();
        const missing = responders.filter((_, index) => !answered[index]).map((responder) => responder.name);
        resolve({ replies: [...replies], failed: [...failed], timedOut, missing });
      };
      const onAbort = () => {
        if (done) return;
        stop();
        reject(signal?.reason);
      };
      const enough = () => expected !== undefined && replies.length >= expected;
      const settle = (index: number) => {
        answered[index] = true;
        outstanding--;
        if (enough() || outstanding === 0) finish(false);
      };
      const deadline = deadlines.add(options.timeout, () => finish(true));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (outstanding === 0 || enough()) finish(false);
      responders.forEach((responder, index) => {
        const result = responder.deliver(envelope);
        const onReply = (data: unknown) => {
          if (done) return;
          replies.push({ responder: responder.name, data });
          settle(index);
        };
        const onFailure = (error: unknown) => {
          if (done) return;
          const failure = overTheWire(error);
          failed.push({ responder: responder.name, error: failure.message, code: failure.code });
          settle(index);
        };
        if (result instanceof Promise) result.then(onReply, onFailure);
        else onReply(result);
      });
    });
  }
}

/** Creates an in-process transport (a node of its own network, or of `options.network`). */
export function createLocalTransport(options: LocalTransportOptions = {}): BusTransport {
  return (options.network ?? createLocalNetwork(options)).createTransport();
}

/** Binary search in an ascending array. */
function sortedIncludes(sorted: string[], value: string): boolean {
  let low = 0;
  let high = sorted.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const candidate = sorted[middle]!;
    if (candidate === value) return true;
    if (candidate < value) low = middle + 1;
    else high = middle - 1;
  }
  return false;
}

/** The error a requester on another node would see: rebuilt from its JSON form. */
function overTheWire(error: unknown): PlatformError {
  return errorFromJSON(toPlatformError(error).toJSON());
}
