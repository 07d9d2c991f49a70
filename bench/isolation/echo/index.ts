/** The module both sides of bench/isolation load: it answers `<name>.ping`, and `<name>.read` from storage. */
import { defineModule } from '../../../src/core/module.ts';

export default defineModule({
  info: { name: 'echo', version: '1.0.0', capabilities: [], dependencies: [] },
  configSchema: {},
  async setup(ctx) {
    await ctx.storage.write('note.txt', new TextEncoder().encode('a short note'));
    return {
      handlers: {
        [`${ctx.name}.ping`]: (event: { data: unknown }) => event.data,
        [`${ctx.name}.read`]: async () => new TextDecoder().decode(await ctx.storage.read('note.txt')),
      },
    };
  },
});
