/** Writes docs/errors.md from ERROR_CODES: `npm run docs:errors` after adding a code. */
import { ERROR_CODES } from '../src/core/errors.ts';

const rows = Object.entries(ERROR_CODES).map(
  ([code, { status, meaning }]) => `| \`${code}\` | ${status} | ${meaning} |`,
);
console.log(`# Error codes

Every error parley returns — over HTTP as \`{ "error": { "code", "message" } }\`, over the bus as a
rejected request, in logs — carries one of these stable codes. Codes never change meaning; new ones are
added. The source of truth is \`ERROR_CODES\` in \`src/core/errors.ts\`; a test checks that every code there
is listed here with its HTTP status.

| code | HTTP status | meaning |
| --- | --- | --- |
${rows.join('\n')}
`);
