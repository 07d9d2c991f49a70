import { createHash } from 'node:crypto';
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsBusConfig, NatsStreamConfig } from '../core/config-types.ts';
import { PlatformError } from '../core/errors.ts';

/**
 * Names on the NATS side of the bus, and the JetStream resources behind it: one stream capturing every
 * event, and one durable consumer per work set. Both are created at startup (or on first use) and
 * brought in line with config when they already exist.
 */

/** Every subject and name the transport uses, derived from `bus.nats.stream_prefix`. */
export interface NatsNames {
  /** The stream that stores every event. */
  stream: string;
  /** What the stream captures. */
  streamSubjects: string;
  /** Where an event (or, for a subscription, a pattern) is published. */
  event(typeOrPattern: string): string;
  /** Requests answered by work subscriptions (one shared queue group). */
  requestWork(typeOrPattern: string): string;
  /** Requests answered by local listeners when no work subscription matches. */
  requestLocal(typeOrPattern: string): string;
  /** Gathers answered by one member of each work set. */
  gatherWork(typeOrPattern: string): string;
  /** Gathers answered by every local listener when no work set matches. */
  gatherLocal(typeOrPattern: string): string;
  /** The queue group of every work subscription's request subscription. */
  requestQueue: string;
  /** The queue group of every local listener's request subscription. */
  localRequestQueue: string;
  /** The durable consumer (and gather queue group) of the work set `(group, pattern)`. */
  workSet(group: string, pattern: string): string;
}

/** Derives the names of one deployment from its prefix. */
export function natsNames(prefix: string): NatsNames {
  return {
    stream: `${prefix}_EVENTS`,
    streamSubjects: `${prefix}.events.>`,
    event: (type) => `${prefix}.events.${type}`,
    requestWork: (type) => `${prefix}.request.work.${type}`,
    requestLocal: (type) => `${prefix}.request.local.${type}`,
    gatherWork: (type) => `${prefix}.gather.work.${type}`,
    gatherLocal: (type) => `${prefix}.gather.local.${type}`,
    requestQueue: `${prefix}_requests`,
    localRequestQueue: `${prefix}_local_requests`,
    workSet(group, pattern) {
      // Patterns hold `.`, `*` and `>`, none allowed in a consumer name: the readable part is the group,
      // the hash keeps `(group, pattern)` pairs apart.
      const readable = group.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32);
      const hash = createHash('sha256').update(`${group}\u0000${pattern}`).digest('hex').slice(0, 16);
      return `${readable}_${hash}`;
    },
  };
}

/**
 * Creates the stream, or updates the settings JetStream lets change. Retention and storage cannot change
 * on an existing stream: a mismatch stops startup with a message saying what to do.
 */
export async function ensureStream(manager: JetStreamManager, names: NatsNames, config: NatsStreamConfig) {
  if (config.max_age_ms > 0 && config.duplicate_window_ms > config.max_age_ms) {
    throw new PlatformError(
      'CHAT_ERR_CONFIG_INVALID',
      `bus.nats.stream.duplicate_window_ms (${config.duplicate_window_ms}) must not exceed max_age_ms (${config.max_age_ms})`,
      { details: { path: 'bus.nats.stream.duplicate_window_ms' } },
    );
  }
  const wanted: Partial<StreamConfig> & { name: string } = {
    name: names.stream,
    description: 'parley events',
    subjects: [names.streamSubjects],
    retention: config.retention === 'interest' ? RetentionPolicy.Interest : RetentionPolicy.Limits,
    storage: config.storage === 'file' ? StorageType.File : StorageType.Memory,
    num_replicas: config.replicas,
    max_age: nanos(config.max_age_ms),
    max_bytes: config.max_bytes,
    duplicate_window: nanos(config.duplicate_window_ms),
    // Full under interest retention means full of unhandled events: refuse new ones (emit rejects) rather
    // than drop those. Under limits retention the oldest events are mostly handled ones: they make room.
    discard: config.retention === 'interest' ? DiscardPolicy.New : DiscardPolicy.Old,
  };
  let existing: StreamConfig;
  try {
    existing = (await manager.streams.info(names.stream)).config;
  } catch (error) {
    if (!isApiError(error, 10059)) throw error;
    try {
      await manager.streams.add(wanted);
      return;
    } catch (addError) {
      // Another node created it first (same config: JetStream answers with the stream; otherwise update).
      if (!isApiError(addError, 10058)) throw addError;
      existing = (await manager.streams.info(names.stream)).config;
    }
  }
  for (const key of ['retention', 'storage'] as const) {
    if (existing[key] !== wanted[key]) {
      throw new PlatformError(
        'CHAT_ERR_CONFIG_INVALID',
        `the JetStream stream ${names.stream} exists with ${key} "${existing[key]}" but bus.nats.stream.${key} ` +
          `is "${config[key]}"; JetStream cannot change it: delete the stream (nats stream rm ${names.stream}) ` +
          `once it is drained, or set the config back`,
        { details: { path: `bus.nats.stream.${key}`, stream: names.stream } },
      );
    }
  }
  const changed =
    existing.num_replicas !== wanted.num_replicas ||
    existing.max_age !== wanted.max_age ||
    existing.max_bytes !== wanted.max_bytes ||
    existing.duplicate_window !== wanted.duplicate_window ||
    existing.discard !== wanted.discard ||
    existing.subjects?.join() !== wanted.subjects?.join();
  if (changed) await manager.streams.update(names.stream, { ...existing, ...wanted });
}

/** A work set's durable consumer: the fields ensureConsumer keeps in line are always set. */
export type WorkSetConsumerConfig = Partial<ConsumerConfig> & {
  durable_name: string;
  ack_wait: number;
  max_ack_pending: number;
};

/** What a work set's durable consumer looks like. */
export function workSetConsumer(
  names: NatsNames,
  config: NatsBusConfig,
  group: string,
  pattern: string,
): WorkSetConsumerConfig {
  return {
    durable_name: names.workSet(group, pattern),
    description: `parley work set: group ${group}, pattern ${pattern}`,
    filter_subject: names.event(pattern),
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(config.ack_wait_ms),
    max_ack_pending: config.max_ack_pending,
    // A new work set starts with the events published after it; older ones belonged to nobody.
    deliver_policy: DeliverPolicy.New,
    max_deliver: -1,
  };
}

/**
 * Creates a work set's durable consumer, or updates its acknowledgement settings. Returns true when it
 * had to be created (it was missing: first use, or a NATS restart that lost memory storage). A consumer
 * re-created after it vanished starts at `startTime` (when the connection was lost) instead of with the
 * next event, so the events stored while it was missing are not skipped.
 */
export async function ensureConsumer(
  manager: JetStreamManager,
  names: NatsNames,
  wanted: WorkSetConsumerConfig,
  startTime?: Date,
): Promise<boolean> {
  const name = wanted.durable_name;
  try {
    const { config } = await manager.consumers.info(names.stream, name);
    if (config.ack_wait !== wanted.ack_wait || config.max_ack_pending !== wanted.max_ack_pending) {
      await manager.consumers.update(names.stream, name, {
        ack_wait: wanted.ack_wait,
        max_ack_pending: wanted.max_ack_pending,
      });
    }
    return false;
  } catch (error) {
    if (!isApiError(error, 10014)) throw error;
  }
  try {
    await manager.consumers.add(
      names.stream,
      startTime === undefined
        ? wanted
        : { ...wanted, deliver_policy: DeliverPolicy.StartTime, opt_start_time: startTime.toISOString() },
    );
    return true;
  } catch (error) {
    // Created meanwhile by another node of the same work set with other settings: take it over.
    await manager.consumers.info(names.stream, name).catch(() => {
      throw error;
    });
    await manager.consumers.update(names.stream, name, {
      ack_wait: wanted.ack_wait,
      max_ack_pending: wanted.max_ack_pending,
    });
    return false;
  }
}

/** True when `error` is a JetStream API error with the given error code (10059: stream not found…). */
export function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}
