import type { AccessPolicy } from '../core/context.ts';
import type { Capability } from '../core/types.ts';

export interface AccessPolicyOptions {
  /** The seed's grant table from config (`security.capabilities`): capability → modules granted it. */
  grants: Readonly<Record<string, readonly string[]>>;
  /** Event type or pattern → the capability needed to emit, request or handle it (`security.event_capabilities`). */
  eventCapabilities: Readonly<Record<string, string>>;
  /** What each module declared in its `ModuleInfo.capabilities`. */
  declared: ReadonlyMap<string, readonly string[]>;
  /** Capabilities granted in a module's own config slice (`<module>.capabilities`), besides the table. */
  moduleGrants?: (moduleName: string) => readonly string[];
  /** Whether an event type matches a subscription pattern (the bus's own wildcard rules). */
  matches: (pattern: string, eventType: string) => boolean;
  /** Told of every denial (the audit log). */
  onDenied?: (moduleName: string, capability: Capability, action: string) => void;
}

/**
 * The access policy of DESIGN.md §6: a module may use a capability only when it both declared it in its
 * ModuleInfo and was granted it in config (the grant table, or the module's own `capabilities` list). Which event types need which capability is config too.
 */
export function createAccessPolicy(options: AccessPolicyOptions): AccessPolicy {
  const capabilityCache = new Map<string, Capability | undefined>();
  const eventRules = Object.entries(options.eventCapabilities);

  const policy: AccessPolicy = {
    capabilityFor(eventType) {
      if (capabilityCache.has(eventType)) return capabilityCache.get(eventType);
      // A subscription pattern (`user.>`) needs a capability when it could receive a protected event type,
      // so a rule is checked both ways.
      const rule = eventRules.find(
        ([pattern]) => options.matches(pattern, eventType) || options.matches(eventType, pattern),
      );
      capabilityCache.set(eventType, rule?.[1]);
      return rule?.[1];
    },
    isGranted(moduleName, capability) {
      const declared = options.declared.get(moduleName) ?? [];
      const granted =
        (options.grants[capability] ?? []).includes(moduleName) ||
        (options.moduleGrants?.(moduleName) ?? []).includes(capability);
      return declared.includes(capability) && granted;
    },
  };
  if (options.onDenied !== undefined) policy.onDenied = options.onDenied;
  return policy;
}
