/**
 * The audit log: who did what that matters for security — users and keys created, keys revoked, web
 * sign-ins, a module refused a capability — append-only and hash-chained, so any edit, deletion or
 * reordering of its entries is found by `verify` (`parley audit verify`).
 *
 * Each process writes a chain of its own (`audit/chains/<chain id>.jsonl`, one JSON line an entry): one
 * chain for all nodes would need every append to know the newest entry of every other node first. Every
 * entry carries the SHA-256 of the entry before it in its chain (`prev`) and its own (`hash`, over the
 * entry's other fields). A chain starts with an `audit.chain_started` entry that records the newest hash of
 * every chain already there (`heads`), so the chains vouch for each other: deleting an older chain whole,
 * or cutting entries off its end, breaks a reference a later chain holds. What no hash chain can show is
 * the newest entries of the newest chain cut off (nothing refers to them yet); copy the log elsewhere (a
 * SIEM, `GET /v1/audit`) if that matters.
 */

import { createHash } from 'node:crypto';
import { currentTime } from '../core/events.ts';
import { newId } from '../core/ids.ts';
import { appendJsonLine } from '../storage/json-lines.ts';
import type { Storage } from '../storage/types.ts';

/** Who did it. */
export interface AuditActor {
  /** `user` (through the API), `cli` (a `parley` command on the server's machine), `module`, `system`. */
  type: 'user' | 'cli' | 'module' | 'system';
  /** The user id, module name or OS user. */
  id?: string;
  name?: string;
}

/** What a caller records. */
export interface AuditRecord {
  actor: AuditActor;
  /** Dotted, past tense: `user.created`, `key.revoked`, `access.denied`. */
  action: string;
  /** What it was done to: ids and names, never secrets. */
  target?: Record<string, string>;
  details?: Record<string, unknown>;
}

/** An entry as stored. */
export interface AuditEntry extends AuditRecord {
  chain: string;
  /** Position in its chain, from 0. */
  seq: number;
  time: string;
  /** The previous entry's hash in this chain (64 zeros for the first). */
  prev: string;
  /** SHA-256 (hex) of the entry's other fields. */
  hash: string;
}

/** What `verify` found wrong, entry by entry. */
export interface AuditProblem {
  chain: string;
  /** The line (1-based) of the chain file, when the problem is at one. */
  line?: number;
  problem: string;
}

export interface AuditVerification {
  chains: number;
  entries: number;
  problems: AuditProblem[];
}

export interface AuditListOptions {
  /** At most this many, newest first. Default 100. */
  limit?: number;
  /** Only entries older than this ISO time. */
  before?: string;
}

export interface AuditLog {
  /** Appends an entry to this process's chain; durable when it resolves. */
  record(record: AuditRecord): Promise<AuditEntry>;
  /** Entries of every chain, newest first. */
  list(options?: AuditListOptions): Promise<AuditEntry[]>;
  /** Checks every chain and the references between them. */
  verify(): Promise<AuditVerification>;
}

/** The root of the audit log in the platform storage. */
export const AUDIT_STORAGE_ROOT = 'audit';

/** The storage folder of the chains, under AUDIT_STORAGE_ROOT. */
const CHAINS = 'chains/';
const GENESIS_PREV = '0'.repeat(64);
const CHAIN_STARTED = 'audit.chain_started';

/** The hash of an entry: over its fields in a fixed order, so the same entry always hashes the same. */
function hashOf(entry: Omit<AuditEntry, 'hash'>): string {
  const fields = [
    entry.chain,
    entry.seq,
    entry.time,
    entry.actor,
    entry.action,
    entry.target ?? null,
    entry.details ?? null,
    entry.prev,
  ];
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

function chainIdOf(key: string): string {
  return key.slice(CHAINS.length, -'.jsonl'.length);
}

/** A chain file's entries, or the line that is not an entry. */
function parseChain(text: string): { entries: AuditEntry[]; badLine?: number } {
  const entries: AuditEntry[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index] as string;
    if (line === '') continue;
    try {
      entries.push(JSON.parse(line) as AuditEntry);
    } catch {
      return { entries, badLine: index + 1 };
    }
  }
  return { entries };
}

/** The audit log kept in `storage` (the platform storage scoped to `audit/`). */
export function createAuditLog(storage: Storage): AuditLog {
  const decoder = new TextDecoder();
  const chain = newId();
  const key = `${CHAINS}${chain}.jsonl`;
  let last: { seq: number; hash: string } | undefined;
  // Appends one after another: each needs the hash of the one before it.
  let tail: Promise<unknown> = Promise.resolve();

  async function readChains(): Promise<Map<string, AuditEntry[]>> {
    const chains = new Map<string, AuditEntry[]>();
    for (const chainKey of await storage.list(CHAINS)) {
      if (!chainKey.endsWith('.jsonl')) continue;
      const bytes = await storage.read(chainKey);
      if (bytes === undefined) continue;
      chains.set(chainIdOf(chainKey), parseChain(decoder.decode(bytes)).entries);
    }
    return chains;
  }

  async function append(fields: Omit<AuditEntry, 'chain' | 'seq' | 'time' | 'prev' | 'hash'>) {
    const unhashed: Omit<AuditEntry, 'hash'> = {
      chain,
      seq: last === undefined ? 0 : last.seq + 1,
      time: currentTime(),
      ...fields,
      prev: last?.hash ?? GENESIS_PREV,
    };
    const entry: AuditEntry = { ...unhashed, hash: hashOf(unhashed) };
    await appendJsonLine(storage, key, entry);
    last = { seq: entry.seq, hash: entry.hash };
    return entry;
  }

  /** This chain's first entry: the newest hash of every chain already there. */
  async function startChain(): Promise<void> {
    const heads: Record<string, string> = {};
    for (const [id, entries] of await readChains()) {
      const newest = entries.at(-1);
      if (newest !== undefined && id !== chain) heads[id] = newest.hash;
    }
    await append({ actor: { type: 'system' }, action: CHAIN_STARTED, details: { heads } });
  }

  return {
    record(record) {
      const recorded = tail.then(async () => {
        if (last === undefined) await startChain();
        return append({
          actor: record.actor,
          action: record.action,
          ...(record.target === undefined ? {} : { target: record.target }),
          ...(record.details === undefined ? {} : { details: record.details }),
        });
      });
      // A failed append leaves `last` as it was: the next one chains to the last entry really stored.
      tail = recorded.catch(() => {});
      return recorded;
    },

    async list(options = {}) {
      const limit = options.limit ?? 100;
      const entries = [...(await readChains()).values()]
        .flat()
        .filter((entry) => entry.action !== CHAIN_STARTED)
        .filter((entry) => options.before === undefined || entry.time < options.before);
      entries.sort((a, b) => (a.time === b.time ? b.seq - a.seq : a.time < b.time ? 1 : -1));
      return entries.slice(0, limit);
    },

    async verify() {
      const problems: AuditProblem[] = [];
      const hashesByChain = new Map<string, Set<string>>();
      const references: { from: string; chain: string; hash: string }[] = [];
      let entryCount = 0;
      const chainKeys = (await storage.list(CHAINS)).filter((chainKey) => chainKey.endsWith('.jsonl'));
      for (const chainKey of chainKeys) {
        const id = chainIdOf(chainKey);
        const bytes = await storage.read(chainKey);
        const { entries, badLine } = parseChain(decoder.decode(bytes ?? new Uint8Array()));
        if (badLine !== undefined) problems.push({ chain: id, line: badLine, problem: 'not a JSON entry' });
        const hashes = new Set<string>();
        let prev = GENESIS_PREV;
        entries.forEach((entry, index) => {
          entryCount++;
          const line = index + 1;
          const { hash, ...unhashed } = entry;
          if (entry.chain !== id) problems.push({ chain: id, line, problem: `names chain "${entry.chain}"` });
          if (entry.seq !== index)
            problems.push({
              chain: id,
              line,
              problem: `seq ${entry.seq}, expected ${index}: an entry was removed or moved`,
            });
          if (entry.prev !== prev)
            problems.push({ chain: id, line, problem: 'prev is not the hash of the entry before it' });
          if (hashOf(unhashed) !== hash)
            problems.push({ chain: id, line, problem: 'the entry was changed (its hash does not match)' });
          if (index === 0 && entry.action !== CHAIN_STARTED)
            problems.push({
              chain: id,
              line,
              problem: `starts with "${entry.action}", not ${CHAIN_STARTED}`,
            });
          if (entry.action === CHAIN_STARTED) {
            const heads = (entry.details?.heads ?? {}) as Record<string, string>;
            for (const [other, head] of Object.entries(heads))
              references.push({ from: id, chain: other, hash: head });
          }
          hashes.add(hash);
          prev = hash;
        });
        hashesByChain.set(id, hashes);
      }
      for (const reference of references) {
        const hashes = hashesByChain.get(reference.chain);
        if (hashes === undefined) {
          problems.push({
            chain: reference.chain,
            problem: `is missing: chain ${reference.from} recorded it`,
          });
        } else if (!hashes.has(reference.hash)) {
          problems.push({
            chain: reference.chain,
            problem: `lacks the entry chain ${reference.from} recorded as its newest: entries were removed`,
          });
        }
      }
      return { chains: chainKeys.length, entries: entryCount, problems };
    },
  };
}
