import { afterAll, describe } from 'vitest';
import { createNatsTransport } from '../../src/bus/nats.ts';
import type { BusTransport } from '../../src/core/transport.ts';
import { deleteStreams, natsTestConfig, requireNats, uniquePrefix } from '../helpers/nats.ts';
import { describeBusContract } from './bus-contract.ts';

// Every test gets nodes on a stream of its own (a fresh prefix), so no test sees another's events.
const available = await requireNats('bus contract (nats)');
const runPrefix = uniquePrefix();
const prefixes: string[] = [];

describe.skipIf(!available)('nats transport', () => {
  describeBusContract(
    'nats transport (each node its own NATS connection)',
    async (count) => {
      const prefix = `${runPrefix}_${prefixes.length}`;
      prefixes.push(prefix);
      const transports: BusTransport[] = [];
      for (let index = 0; index < count; index++) {
        transports.push(
          await createNatsTransport(natsTestConfig(prefix), { name: `contract-node-${index + 1}` }),
        );
      }
      return transports;
    },
    { deliveryTimeoutMs: 5000, quietMs: 150 },
  );

  afterAll(() => deleteStreams(prefixes));
});
