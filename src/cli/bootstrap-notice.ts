/**
 * The box `parley serve` prints once, on the first start, with the admin's API key — the way Jupyter
 * prints its token — so a newcomer can call the API at once. The key is never shown again.
 */

/** The notice for a freshly created admin key, for a server listening on `url`. */
export function formatBootstrapNotice(userName: string, key: string, url: string): string {
  const lines = [
    `parley created the user "${userName}" (admin). Its API key, shown this once:`,
    '',
    `    ${key}`,
    '',
    'Keep it somewhere safe: only its hash is stored. Try it:',
    '',
    `    open ${url} in a browser and sign in with it`,
    `    curl -H "Authorization: Bearer ${key}" ${url}/v1/models`,
    `    parley chat --url ${url} --key ${key}`,
    '',
    'More keys and users: parley keys create --user <name>, parley users create <name>.',
  ];
  const width = Math.max(...lines.map((line) => line.length));
  const border = '─'.repeat(width + 2);
  return [`┌${border}┐`, ...lines.map((line) => `│ ${line.padEnd(width)} │`), `└${border}┘`, ''].join('\n');
}
