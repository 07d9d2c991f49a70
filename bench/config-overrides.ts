/**
 * The `CHAT_*` variables of the shell a benchmark runs in, so a parley subject can be measured with other
 * settings than its defaults without editing it: `CHAT_TEXT_CHAT__SESSION_TOUCH_DELAY_MS=60000 npm run bench
 * -- chat`. They go over the subject's own settings (those are the benchmark's defaults, not its rules).
 */
export function shellConfigOverrides(): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('CHAT_') && value !== undefined) overrides[name] = value;
  }
  return overrides;
}
