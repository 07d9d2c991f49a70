/**
 * JSON Schema validation of the merged configuration (ajv). Platform sections are checked against
 * config/schemas/platform.schema.json, each module slice against config/schemas/module.schema.json and
 * the module's own schema. Schema defaults are filled in (`useDefaults`), and every ajv error becomes a
 * problem naming the layer the value came from.
 */

import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import draft7MetaSchema from 'ajv/dist/refs/json-schema-draft-07.json' with { type: 'json' };
import ajvFormats from 'ajv-formats';
import moduleSchema from '../../config/schemas/module.schema.json' with { type: 'json' };
import platformSchema from '../../config/schemas/platform.schema.json' with { type: 'json' };
import { type ConfigProblem, configProblem } from './config-error.ts';
import { type ConfigSources, isPlainObject, pointerSegment, sourceOf } from './config-merge.ts';
import { PLATFORM_SECTIONS } from './config-types.ts';
import type { JsonSchema } from './module.ts';

/** The shipped schema of the platform sections. */
export const PLATFORM_SCHEMA = platformSchema as JsonSchema;
/** The shipped schema of the keys every module slice has. */
export const MODULE_SCHEMA = moduleSchema as JsonSchema;

/** The keys module.schema.json defines for every module; a module's own schema never sees them. */
export const COMMON_MODULE_KEYS: ReadonlySet<string> = new Set(
  Object.keys((moduleSchema as { properties: object }).properties),
);

/** What the validator needs to know about each module. */
export interface ModuleSchemaEntry {
  name: string;
  schema?: JsonSchema;
}

/**
 * Validates `merged` in place (schema defaults are written into it) and returns every problem. Module
 * slices that are absent are created empty first, so their defaults fill in too.
 */
export function validateConfig(
  merged: Record<string, unknown>,
  modules: readonly ModuleSchemaEntry[],
  sources: ConfigSources,
): ConfigProblem[] {
  const { ajv, validatePlatform, validateCommon } = validators();
  const problems: ConfigProblem[] = [];

  const platformPart: Record<string, unknown> = {};
  for (const section of PLATFORM_SECTIONS) if (section in merged) platformPart[section] = merged[section];
  validatePlatform(platformPart);
  problems.push(...toProblems(validatePlatform.errors, '', sources));
  Object.assign(merged, platformPart);

  for (const module of modules) {
    const prefix = `/${pointerSegment(module.name)}`;
    merged[module.name] ??= {};
    const slice = merged[module.name];
    validateCommon(slice);
    problems.push(...toProblems(validateCommon.errors, prefix, sources));
    if (module.schema === undefined || !isPlainObject(slice)) continue;
    let validateModule: ValidateFunction;
    try {
      validateModule = compileModuleSchema(ajv, module.schema);
    } catch (error) {
      problems.push(
        configProblem({
          source: `schema of module ${module.name}`,
          path: prefix,
          rule: 'valid JSON Schema',
          message: `the module's config schema does not compile: ${(error as Error).message}`,
        }),
      );
      continue;
    }
    // The module's schema sees only its own keys, so it may say `additionalProperties: false` (catching
    // typos in its keys) without repeating the common ones; its defaults are copied back.
    const ownKeys: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(slice)) if (!COMMON_MODULE_KEYS.has(key)) ownKeys[key] = value;
    validateModule(ownKeys);
    Object.assign(slice, ownKeys);
    const known = new Set(problems.map((problem) => `${problem.path} ${problem.rule}`));
    for (const problem of toProblems(validateModule.errors, prefix, sources)) {
      if (!known.has(`${problem.path} ${problem.rule}`)) problems.push(problem);
    }
  }
  return problems;
}

interface Validators {
  ajv: Ajv2020;
  validatePlatform: ValidateFunction;
  validateCommon: ValidateFunction;
}

// Building ajv and compiling the platform schema costs tens of milliseconds: done once per process.
let cached: Validators | undefined;

function validators(): Validators {
  if (cached === undefined) {
    const ajv = createAjv();
    cached = {
      ajv,
      validatePlatform: ajv.compile(PLATFORM_SCHEMA),
      validateCommon: ajv.compile(MODULE_SCHEMA),
    };
  }
  return cached;
}

// ajv caches compiled schemas by object, so a module's schema compiles once. A different schema object
// reusing an `$id` (a test, a reloaded module) replaces the old one instead of failing as a duplicate.
function compileModuleSchema(ajv: Ajv2020, schema: JsonSchema): ValidateFunction {
  const id = typeof schema.$id === 'string' ? schema.$id : undefined;
  if (id !== undefined) {
    const existing = ajv.getSchema(id);
    if (existing !== undefined && existing.schema !== schema) ajv.removeSchema(id);
  }
  return ajv.compile(schema);
}

function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: true, // every problem at once
    useDefaults: true, // schema defaults fill the effective config
    verbose: true, // errors carry the offending value
    strict: true,
    strictTypes: false, // module schemas often leave `type` implied; not worth a warning per start
    strictTuples: false,
    allowUnionTypes: true,
  });
  // Module schemas may be written in draft-07 (the common dialect) or 2020-12.
  ajv.addMetaSchema(draft7MetaSchema);
  addFormats(ajv);
  return ajv;
}

/** Teaches `ajv` the JSON Schema formats (`date-time`, `uri`, `email`…), so they are checked, not ignored. */
export function addFormats(ajv: Parameters<typeof ajvFormats.default>[0]): void {
  // ajv-formats is CommonJS: under nodenext its default import is `module.exports`, whose `.default`
  // is the plugin itself.
  ajvFormats.default(ajv);
}

/** Turns ajv errors into problems: one per value, with source, path, rule and value. */
function toProblems(
  errors: ErrorObject[] | null | undefined,
  prefix: string,
  sources: ConfigSources,
): ConfigProblem[] {
  if (!errors) return [];
  // An anyOf/oneOf failure is reported once, saying what each branch wanted, instead of once per branch.
  const unions = errors.filter((error) => error.keyword === 'anyOf' || error.keyword === 'oneOf');
  const isBranchError = (error: ErrorObject): boolean =>
    unions.some((union) => union !== error && error.schemaPath.startsWith(`${union.schemaPath}/`));

  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (isBranchError(error)) continue;
    let path = prefix + error.instancePath;
    let rule = describeRule(error);
    let message = error.message ?? 'is invalid';
    let value: unknown = error.data;
    let hasValue = true;
    if (error.keyword === 'additionalProperties') {
      const key = String(error.params.additionalProperty);
      path += `/${pointerSegment(key)}`;
      value = isPlainObject(error.data) ? error.data[key] : undefined;
      const allowed = Object.keys((error.parentSchema?.properties as object | undefined) ?? {});
      message = `unknown key "${key}"${allowed.length > 0 ? ` (known keys: ${allowed.join(', ')})` : ''}`;
    } else if (error.keyword === 'required') {
      path += `/${pointerSegment(String(error.params.missingProperty))}`;
      message = 'is required but not set';
      hasValue = false;
    } else if (error.keyword === 'anyOf' || error.keyword === 'oneOf') {
      const branches = errors.filter(
        (branch) => branch !== error && branch.schemaPath.startsWith(`${error.schemaPath}/`),
      );
      const wanted = [...new Set(branches.map((branch) => branch.message ?? describeRule(branch)))];
      if (wanted.length > 0) message = wanted.join(', or ');
      rule = `${error.keyword} (${[...new Set(branches.map(describeRule))].join(' | ')})`;
    }
    const key = `${path} ${rule}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const fields = { source: sourceOf(sources, path) ?? 'schema default', path, rule, message };
    problems.push(configProblem(hasValue ? { ...fields, value } : fields));
  }
  return problems;
}

/** `maximum 65536`, `type integer`, `enum ["local","nats"]`: the keyword and what it demands. */
function describeRule(error: ErrorObject): string {
  const { keyword, params } = error;
  switch (keyword) {
    case 'additionalProperties':
      return 'additionalProperties false';
    case 'required':
      return 'required';
    case 'uniqueItems':
      return 'uniqueItems';
    default: {
      // maximum/minLength/...: ajv also passes the comparison ("<="), which the keyword already says.
      if ('limit' in params) return `${keyword} ${String(params.limit)}`;
      const demands = Object.values(params as Record<string, unknown>).map((param) =>
        typeof param === 'string' ? param : JSON.stringify(param),
      );
      return [keyword, ...demands].join(' ');
    }
  }
}
