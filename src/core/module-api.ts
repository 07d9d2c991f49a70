/**
 * What a module author imports: `import { defineModule } from 'parley/module'` (package.json "exports").
 * The same API the built-in modules use; nothing here reaches past the module context.
 */

export type { EventHandler, SubscribeOptions } from './bus-types.ts';
export {
  AccessDeniedError,
  isAccessDenied,
  isPlatformError,
  PlatformError,
  type PlatformErrorJSON,
} from './errors.ts';
export type { EventEnvelope, EventMap } from './events.ts';
export {
  defineModule,
  type HealthStatus,
  type JsonSchema,
  type ModuleContext,
  type ModuleDefinition,
  type ModuleHandler,
  type ModuleHandlers,
  type ModuleInstance,
  type ModuleLogger,
  type ModuleStorage,
} from './module.ts';
export type { Capability, ModuleInfo } from './types.ts';
