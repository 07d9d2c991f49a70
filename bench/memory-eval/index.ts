/**
 * Recall of the memory module on LoCoMo (../shared/data/locomo, see its SOURCE.md): each conversation's
 * dialog turns are remembered as one user's memory bank (the memory module's own code: createMemoryBanks,
 * the BM25 index of src/retrieval), then each question recalls its top k turns. A question counts as
 * recalled at k when every annotated evidence turn is among them — the paper's "recall accuracy" with
 * dialog turns as the retrieval unit, which its Table 3 gives for DRAGON (a dense retriever) as R@5 56.7,
 * R@10 66.2, R@25 76.7 (published, not run here).
 *
 * Beside it, in the same run, the baseline a chat has without a memory search: its most recent k turns
 * (what a history window would still hold). Also: recall time per question and the banks' build time.
 *
 * `npm run bench -- memory-eval`; `PARLEY_LOCOMO_FILE` names another copy of locomo-dev.json.
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createMemoryBanks, type Memory } from '../../src/modules/memory/memory-bank.ts';
import { createMemoryStorage } from '../../src/storage/drivers/memory.ts';

interface DialogTurn {
  speaker: string;
  dia_id: string;
  text: string;
}
interface QaItem {
  question: string;
  evidence?: string[];
  category: number;
}
interface Sample {
  sample_id: string;
  conversation: Record<string, unknown>;
  qa: QaItem[];
}

const CATEGORIES: Record<number, string> = {
  1: 'multi-hop',
  2: 'temporal',
  3: 'open-domain',
  4: 'single-hop',
  5: 'adversarial',
};
const KS = [5, 10, 25] as const;
const PUBLISHED_DRAGON: Record<number, number> = { 5: 56.7, 10: 66.2, 25: 76.7 };

const file =
  process.env.PARLEY_LOCOMO_FILE ??
  path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'locomo', 'locomo-dev.json');
const samples = JSON.parse(readFileSync(file, 'utf8')) as Sample[];

/** The conversation's sessions in order: their turns and the date each session happened. */
function sessionsOf(sample: Sample): { name: string; time: string; turns: DialogTurn[] }[] {
  const sessions = [];
  for (let number = 1; Array.isArray(sample.conversation[`session_${number}`]); number++) {
    const when = String(sample.conversation[`session_${number}_date_time`] ?? '');
    // "1:56 pm on 8 May, 2023" → a sortable ISO time (the bank orders and lists by it).
    const parsed = Date.parse(when.replace(/^.* on /, ''));
    const time = Number.isNaN(parsed) ? new Date(0).toISOString() : new Date(parsed).toISOString();
    sessions.push({
      name: `session_${number}`,
      time,
      turns: sample.conversation[`session_${number}`] as DialogTurn[],
    });
  }
  return sessions;
}

/** The evidence ids of a question that name a turn (SOURCE.md: split on `;` and spaces, skip the rest). */
function evidenceOf(item: QaItem, known: Set<string>): string[] {
  return (item.evidence ?? [])
    .flatMap((entry) => entry.split(/[;\s]+/))
    .map((id) => id.trim())
    .filter((id) => known.has(id));
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

const hits = { memory: new Map<number, number>(), recent: new Map<number, number>() };
// The share of a question's evidence turns in the top k, summed over questions (the lenient reading).
const found = new Map<number, number>();
const byCategory = new Map<number, { total: number; recalledAt10: number }>();
const recallMs: number[] = [];
let questions = 0;
let turns = 0;
let buildMs = 0;

for (const sample of samples) {
  const storage = createMemoryStorage();
  const banks = createMemoryBanks(storage, { maxUsers: 10 });
  const userId = sample.sample_id.replace(/[^A-Za-z0-9_-]/g, '_');
  const ordered: string[] = [];
  const started = performance.now();
  for (const session of sessionsOf(sample)) {
    for (const turn of session.turns) {
      // The speaker's name is part of what was said: "Caroline: I went to the support group".
      const memory: Memory = {
        id: turn.dia_id,
        sessionId: session.name,
        time: session.time,
        text: `${turn.speaker}: ${turn.text}`,
      };
      await banks.remember(userId, memory);
      ordered.push(turn.dia_id);
    }
  }
  // The first recall parses and indexes the bank: part of building it.
  await banks.recall(userId, 'warm up', { limit: 1 });
  buildMs += performance.now() - started;
  turns += ordered.length;
  const known = new Set(ordered);
  const recent = ordered.slice(-Math.max(...KS));

  for (const item of sample.qa) {
    const evidence = evidenceOf(item, known);
    if (evidence.length === 0) continue;
    questions++;
    const asked = performance.now();
    const recalled = await banks.recall(userId, item.question, { limit: Math.max(...KS) });
    recallMs.push(performance.now() - asked);
    const ids = recalled.map((memory) => memory.id);
    for (const k of KS) {
      const top = new Set(ids.slice(0, k));
      if (evidence.every((id) => top.has(id))) hits.memory.set(k, (hits.memory.get(k) ?? 0) + 1);
      const share = evidence.filter((id) => top.has(id)).length / evidence.length;
      found.set(k, (found.get(k) ?? 0) + share);
      const last = new Set(recent.slice(-k));
      if (evidence.every((id) => last.has(id))) hits.recent.set(k, (hits.recent.get(k) ?? 0) + 1);
    }
    const category = byCategory.get(item.category) ?? { total: 0, recalledAt10: 0 };
    category.total++;
    const top10 = new Set(ids.slice(0, 10));
    if (evidence.every((id) => top10.has(id))) category.recalledAt10++;
    byCategory.set(item.category, category);
  }
}

const percent = (count: number | undefined) => (((count ?? 0) / questions) * 100).toFixed(1);
console.log(
  `LoCoMo dev (${samples.length} conversations, ${turns} dialog turns, ${questions} questions with evidence): ` +
    'a question is recalled at k when all its evidence turns are in the top k',
);
console.log('| retriever | R@5 | R@10 | R@25 |');
console.log('| --- | --- | --- | --- |');
console.log(
  `| parley memory (BM25 over the user's bank) | ${KS.map((k) => percent(hits.memory.get(k))).join(' | ')} |`,
);
console.log(
  `| parley memory, share of evidence turns found (lenient) | ${KS.map((k) => percent(found.get(k))).join(' | ')} |`,
);
console.log(
  `| baseline, same run: the most recent k turns | ${KS.map((k) => percent(hits.recent.get(k))).join(' | ')} |`,
);
console.log(
  `| DRAGON, published (paper Table 3, all 10 conversations) | ${KS.map((k) => PUBLISHED_DRAGON[k]).join(' | ')} |`,
);
console.log(
  '\nR@10 by question category (paper: single-hop 68.0, multi-hop 35.4, temporal 70.4, open-domain 33.1, adversarial 43.9 at R@5)',
);
for (const [category, { total, recalledAt10 }] of [...byCategory].sort((a, b) => a[0] - b[0])) {
  console.log(
    `  ${CATEGORIES[category] ?? category}: ${((recalledAt10 / total) * 100).toFixed(1)} (${total} questions)`,
  );
}
const sorted = [...recallMs].sort((a, b) => a - b);
console.log(
  `\nrecall time per question: p50 ${quantile(sorted, 0.5).toFixed(3)} ms, p99 ${quantile(sorted, 0.99).toFixed(3)} ms; ` +
    `building the ${samples.length} banks (append, parse, index): ${buildMs.toFixed(0)} ms`,
);
