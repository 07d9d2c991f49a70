import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes } from '../helpers/cluster.ts';
import {
  type Cluster,
  sessionAcrossNodes,
  startCluster,
  streamAcrossNodes,
} from '../helpers/cluster-scenario.ts';
import { requireNats } from '../helpers/nats.ts';
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from '../helpers/s3rver.ts';

// The multi-node scenario of multi-node.test.ts on S3 storage (s3rver, started here on a free port) and
// the shared NATS: the same code, only the storage config differs.
const available = await requireNats('multi-node on S3');

describe.skipIf(!available)('three parley nodes on S3 and NATS', () => {
  let s3: RunningS3rver;
  let cluster: Cluster;

  beforeAll(async () => {
    s3 = await startS3rver('parley-cluster');
    cluster = await startCluster({
      storageEnv: {
        CHAT_STORAGE__BACKEND: 's3',
        CHAT_STORAGE__S3__ENDPOINT: s3.endpoint,
        CHAT_STORAGE__S3__BUCKET: s3.bucket,
        CHAT_STORAGE__S3__REGION: 'us-east-1',
        CHAT_STORAGE__S3__FORCE_PATH_STYLE: 'true',
        CHAT_STORAGE__S3__ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        CHAT_STORAGE__S3__SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      },
    });
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
    await killAllNodes();
    await s3?.close();
  });

  it('every node reports S3 healthy', async () => {
    for (const node of Object.values(cluster.nodes)) {
      const ready = await node.call('GET', '/readyz');
      expect(ready.status, node.name).toBe(200);
      expect(ready.body.storage).toEqual({ healthy: true, backend: 's3' });
    }
  });

  it('a session created on node 1 is continued on node 2 and read on node 3', async () => {
    await sessionAcrossNodes(cluster);
  });

  it('a reply generated on one node streams to an SSE client connected to another', async () => {
    await streamAcrossNodes(cluster);
  });
});
