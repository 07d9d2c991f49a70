/**
 * Loader for the Cranfield 1400 collection (../shared/data/cranfield, see its SOURCE.md). The traps it
 * handles: CRLF line endings and trailing spaces; query ids in cran.qry (001, 002, 004 … 365) are not the
 * ids the qrels use — the qrels number queries 1..225 by position in the file; relevance codes run
 * backwards (1 = complete answer … 4 = minimum interest, −1 = no interest); docs 471 and 995 are empty.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** One Cranfield abstract. */
export interface CranfieldDocument {
  /** "1" … "1400", as the qrels name it. */
  id: string;
  title: string;
  authors: string;
  bibliography: string;
  body: string;
}

/** One query, numbered as the qrels number it. */
export interface CranfieldQuery {
  /** 1 … 225: the query's position in cran.qry, which is what the qrels use. */
  id: number;
  /** The `.I` label in cran.qry (001, 002, 004 …), kept only for reference. */
  label: string;
  text: string;
}

/** The whole collection. */
export interface CranfieldCollection {
  documents: CranfieldDocument[];
  queries: CranfieldQuery[];
  /** Query id → document id → the raw Cleverdon code (1 best … 4 least, −1 no interest). */
  qrels: Map<number, Map<string, number>>;
}

/** Where the collection sits: `$PARLEY_CRANFIELD_DIR`, else ../shared/data/cranfield beside the repository. */
export function defaultCranfieldDir(): string {
  const repositoryRoot = path.resolve(import.meta.dirname, '..', '..');
  return (
    process.env.PARLEY_CRANFIELD_DIR ?? path.resolve(repositoryRoot, '..', 'shared', 'data', 'cranfield')
  );
}

/** Reads and parses the three files; throws if the counts differ from the collection's (1400/225/1837). */
export async function loadCranfield(directory: string = defaultCranfieldDir()): Promise<CranfieldCollection> {
  const read = (name: string): Promise<string> => readFile(path.join(directory, name), 'utf8');
  const [documentsText, queriesText, qrelsText] = await Promise.all([
    read('cran.all.1400'),
    read('cran.qry'),
    read('cranqrel'),
  ]);
  const documents = parseRecords(documentsText).map((record) => ({
    id: record.label,
    title: record.fields.T ?? '',
    authors: record.fields.A ?? '',
    bibliography: record.fields.B ?? '',
    body: record.fields.W ?? '',
  }));
  const queries = parseRecords(queriesText).map((record, position) => ({
    id: position + 1,
    label: record.label,
    text: record.fields.W ?? '',
  }));
  const qrels = parseQrels(qrelsText);
  const judgements = [...qrels.values()].reduce((sum, judged) => sum + judged.size, 0);
  if (documents.length !== 1400 || queries.length !== 225 || judgements !== 1837) {
    throw new Error(
      `Cranfield at ${directory} has ${documents.length} documents, ${queries.length} queries and ` +
        `${judgements} judgements; expected 1400, 225 and 1837`,
    );
  }
  return { documents, queries, qrels };
}

/** The text to index for a document: title and abstract (the abstract often repeats the title). */
export function documentText(document: CranfieldDocument): string {
  return document.title === '' ? document.body : `${document.title}\n${document.body}`;
}

/**
 * Graded relevance, higher is better: gain = 5 − code (1 → 4, 2 → 3, 3 → 2, 4 → 1), and 0 for −1. This is
 * the mapping of ir_datasets and of the narsil library whose floors we compare with.
 */
export function relevanceGrade(code: number): number {
  return code >= 1 && code <= 4 ? 5 - code : 0;
}

/** The qrels of one query as graded relevance (higher is better, 0 = not relevant). */
export function gradesFor(collection: CranfieldCollection, queryId: number): Map<string, number> {
  const grades = new Map<string, number>();
  for (const [documentId, code] of collection.qrels.get(queryId) ?? []) {
    grades.set(documentId, relevanceGrade(code));
  }
  return grades;
}

interface SmartRecord {
  label: string;
  fields: Partial<Record<string, string>>;
}

/** Parses the SMART format: `.I <id>` starts a record, `.X` lines start fields. */
function parseRecords(text: string): SmartRecord[] {
  const records: SmartRecord[] = [];
  let current: SmartRecord | undefined;
  let field: string | undefined;
  let lines: string[] = [];
  const closeField = (): void => {
    if (current !== undefined && field !== undefined) current.fields[field] = lines.join('\n').trim();
    lines = [];
  };
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/\r$/, '');
    const recordMatch = /^\.I\s+(\S+)\s*$/.exec(line);
    if (recordMatch !== null) {
      closeField();
      field = undefined;
      current = { label: recordMatch[1] ?? '', fields: {} };
      records.push(current);
      continue;
    }
    const fieldMatch = /^\.([TABW])\s*$/.exec(line);
    if (fieldMatch !== null) {
      closeField();
      field = fieldMatch[1];
      continue;
    }
    lines.push(line);
  }
  closeField();
  return records;
}

function parseQrels(text: string): Map<number, Map<string, number>> {
  const qrels = new Map<number, Map<string, number>>();
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 3) continue;
    const queryId = Number(parts[0]);
    const code = Number(parts[2]);
    let judged = qrels.get(queryId);
    if (judged === undefined) {
      judged = new Map();
      qrels.set(queryId, judged);
    }
    judged.set(String(Number(parts[1])), code);
  }
  return qrels;
}
