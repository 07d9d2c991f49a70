import { createPlatform } from '../platform/create-platform.ts';
import { bootstrapAdmin, createAuth } from '../security/auth.ts';
import { createServer } from '../server/create-server.ts';
import { formatBootstrapNotice } from './bootstrap-notice.ts';

export interface ServeOptions {
  configDir?: string;
}

/**
 * `parley serve`: loads config and modules, serves HTTP, and on SIGINT/SIGTERM stops taking requests,
 * lets in-flight work finish, flushes storage and exits 0. A second signal exits at once.
 */
export async function serve(options: ServeOptions = {}): Promise<void> {
  const platform = await createPlatform(
    options.configDir === undefined ? {} : { configDir: options.configDir },
  );
  const auth = createAuth(platform.storage);
  const app = await createServer(platform, { auth });
  const { host, port } = platform.config.server;
  const address = await app.listen({ host, port });
  // First start on an empty data folder: an admin and its key, printed once so the API is usable at once.
  if (platform.config.server.auth.bootstrap_admin) {
    const created = await bootstrapAdmin(auth, platform.audit);
    if (created !== undefined) {
      platform.log.info({ userId: created.user.id }, 'created the admin user (first start)');
      process.stdout.write(formatBootstrapNotice(created.user.name, created.apiKey.key, address));
    }
  }
  platform.log.info(
    { address, storage: platform.config.storage.backend },
    `parley is listening on ${address}`,
  );

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      platform.log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(130);
    }
    stopping = true;
    platform.log.info({ signal }, 'shutting down: finishing in-flight work');
    try {
      await app.close();
      await platform.close();
      platform.log.info('shut down cleanly');
      process.exitCode = 0;
    } catch (error) {
      platform.log.error({ err: error }, 'shutdown failed');
      process.exitCode = 1;
    }
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
