/**
 * The error that stops startup on bad configuration. It lists every problem at once (fixing one file
 * and restarting to discover the next is the experience we avoid), each with where the value came from,
 * its JSON path, the rule it broke and the value itself.
 */

import { maskSecretsAt } from './config-mask.ts';
import { PlatformError } from './errors.ts';

export type ConfigProblemCode =
  | 'CHAT_ERR_CONFIG_INVALID'
  | 'CHAT_ERR_CONFIG_UNREADABLE'
  | 'CHAT_ERR_CONFIG_MISSING_ENV';

/** One thing wrong with the configuration. */
export interface ConfigProblem {
  code: ConfigProblemCode;
  /** Where the value came from: a file path, `env CHAT_X__Y`, `defaults of module <name>`, `schema default`. */
  source: string;
  /** JSON pointer of the value in the merged config (`/text_chat/max_message_length`); '' for a whole file. */
  path: string;
  /** The rule broken: a JSON Schema keyword with its parameters (`maximum 65536`, `type integer`) or ours. */
  rule: string;
  /** What is wrong, in words. */
  message: string;
  /** The offending value, secrets masked; absent when there is no value (a missing key, an unreadable file). */
  value?: unknown;
}

/** Startup-stopping configuration error; `problems` (also in `details`) lists every problem found. */
export class ConfigError extends PlatformError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    super(pickCode(problems), formatConfigProblems(problems), { details: { problems } });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Builds a problem, masking the value when its path names a secret. */
export function configProblem(
  fields: Omit<ConfigProblem, 'code' | 'value'> & { code?: ConfigProblemCode; value?: unknown },
): ConfigProblem {
  const problem: ConfigProblem = {
    code: fields.code ?? 'CHAT_ERR_CONFIG_INVALID',
    source: fields.source,
    path: fields.path,
    rule: fields.rule,
    message: fields.message,
  };
  if ('value' in fields) problem.value = maskSecretsAt(fields.path, fields.value);
  return problem;
}

/** One line per problem: `<source> at <path>: <message> (rule: <rule>; value: <value>)`. */
export function formatConfigProblem(problem: ConfigProblem): string {
  const where = problem.path === '' ? problem.source : `${problem.source} at ${problem.path}`;
  const facts = [`rule: ${problem.rule}`];
  if ('value' in problem) facts.push(`value: ${formatValue(problem.value)}`);
  return `${where}: ${problem.message} (${facts.join('; ')})`;
}

/** The full message: a headline and every problem, numbered. */
export function formatConfigProblems(problems: readonly ConfigProblem[]): string {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  const lines = problems.map((problem, index) => `  ${index + 1}. ${formatConfigProblem(problem)}`);
  return [`Invalid configuration (${count}):`, ...lines].join('\n');
}

// The most fundamental problem names the error: an unreadable file explains the rest.
function pickCode(problems: readonly ConfigProblem[]): ConfigProblemCode {
  for (const code of ['CHAT_ERR_CONFIG_UNREADABLE', 'CHAT_ERR_CONFIG_MISSING_ENV'] as const) {
    if (problems.some((problem) => problem.code === code)) return code;
  }
  return 'CHAT_ERR_CONFIG_INVALID';
}

const MAX_VALUE_LENGTH = 120;

function formatValue(value: unknown): string {
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > MAX_VALUE_LENGTH ? `${text.slice(0, MAX_VALUE_LENGTH - 1)}…` : text;
}
