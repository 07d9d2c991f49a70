import type { BusConfig } from '../core/config-types.ts';
import type { BusTransport } from '../core/transport.ts';
import { createLocalTransport } from './local.ts';
import type { NatsTransportLogger } from './nats.ts';

/**
 * The bus transports: `local` (in-process, the default) and `nats` (NATS JetStream, several processes).
 * The NATS client is loaded only when config asks for it, so a one-node deployment never pays for it.
 */

export {
  createLocalNetwork,
  createLocalTransport,
  type LocalNetwork,
  type LocalNetworkOptions,
  type LocalTransportOptions,
} from './local.ts';
export type { NatsTransportLogger, NatsTransportOptions } from './nats.ts';

/** Options of `createTransport` besides the `bus` config. */
export interface CreateTransportOptions {
  /** Where the NATS transport reports connection changes; a pino logger fits. */
  log?: NatsTransportLogger;
  /** The NATS connection name (shown by NATS monitoring). */
  name?: string;
}

/**
 * Creates the transport `bus.transport` names. For `nats` it connects, creates or updates the stream, and
 * rejects with CHAT_ERR_BUS_UNAVAILABLE when NATS cannot be reached within `bus.nats.connect_timeout_ms`,
 * or CHAT_ERR_CONFIG_INVALID when the existing stream cannot take the configured settings.
 */
export async function createTransport(
  config: BusConfig,
  options: CreateTransportOptions = {},
): Promise<BusTransport> {
  if (config.transport === 'nats') {
    const { createNatsTransport } = await import('./nats.ts');
    return createNatsTransport(config.nats, options);
  }
  return createLocalTransport();
}
