/**
 * An in-memory BM25 index of chunks that needs no model. Each owner has a shard of its own — postings,
 * document lengths and document frequencies — so a query is scored only against the asking owner's chunks,
 * and one owner's documents do not even shift the IDF of another owner's terms.
 *
 * Scoring is BM25F (Robertson, Zaragoza & Taylor 2004) over two fields: the chunk's *title* (its document's
 * title and its heading path) and its *text*. Each field's term frequency is length-normalised on its own
 * and the title's is weighted (`titleWeight`); their sum tf̃ saturates once, as in BM25:
 * idf · tf̃·(k1 + 1) / (tf̃ + k1), with Lucene's idf = ln(1 + (N − df + 0.5) / (df + 0.5)) (always positive)
 * and tf̃ = w_title·tf_title / (1 − b + b·len_title/avg_title) + tf_text / (1 − b + b·len_text/avg_text).
 * Without a title this is plain BM25. Query terms are summed by weight (a repeated term counts once per
 * repetition; a conversation's earlier turns count less, see `Bm25SearchOptions.context`).
 */
import { ValidationError } from '../core/errors.ts';
import { createTokenizer, REQUEST_WORDS, type Tokenizer } from './tokenize.ts';

/** BM25 parameters and the analyser settings the index is built with. */
export interface Bm25Options {
  /** Term-frequency saturation. Default 1.6. */
  k1?: number;
  /** Length normalisation, 0 (none) to 1 (full), of each field. Default 0.5. */
  b?: number;
  /** Drop English stopwords. Default true. */
  stopwords?: boolean;
  /** Porter-stem English words. Default true. */
  stemming?: boolean;
  /** Weight of a term in the chunk's title (document title and heading path) against one in its text. Default 3. */
  titleWeight?: number;
}

/**
 * The defaults behind the `bm25.*` config keys. k1, b and the title weight (with the RM3 settings) are the
 * best of a grid on the odd-numbered Cranfield queries, checked on the even-numbered ones
 * (`npx node bench/rag-eval/index.ts --tune`; README, "Evaluation"). Lucene's k1 1.2 / b 0.75 are within
 * 0.01 nDCG@10 of them.
 */
export const DEFAULT_BM25: Readonly<Required<Bm25Options>> = Object.freeze({
  k1: 1.6,
  b: 0.5,
  stopwords: true,
  stemming: true,
  titleWeight: 3,
});

/** A value a metadata filter can compare with. */
export type MetadataValue = string | number | boolean | null;

/** Metadata stored with a chunk; it must survive JSON (it is persisted with the index). */
export type ChunkMetadata = Record<string, unknown>;

/**
 * Equality filter on metadata, all keys must match. A list means "any of these". A metadata value that is a
 * list (tags, say) matches when it contains the wanted value.
 */
export type MetadataFilter = Record<string, MetadataValue | readonly MetadataValue[]>;

/** What the index needs of a chunk (a `Chunk` from the chunker fits). */
export interface IndexableChunk {
  id: string;
  docId: string;
  text: string;
  /** The document's title: the chunk's title field, with the heading (every chunk of a document has it). */
  title?: string;
  /** The heading path: indexed in the title field, so a chunk is found by the section it sits in. */
  heading?: string;
}

/** An earlier turn of a conversation with its weight (the question itself weighs 1). */
export interface WeightedText {
  text: string;
  /** Greater than 0; a term's weight in the query is the sum over the question and the turns it is in. */
  weight: number;
}

/** Who owns the chunk, and what to filter it by. */
export interface Bm25AddOptions {
  ownerId: string;
  metadata?: ChunkMetadata;
}

/** A query's scope: always one owner. */
export interface Bm25SearchOptions {
  ownerId: string;
  /** How many hits at most. Default 10. */
  topK?: number;
  filter?: MetadataFilter;
  /** Pseudo-relevance feedback (RM3): `true` for the defaults, or the settings. Off unless asked (rag asks: `bm25.feedback`). */
  feedback?: boolean | Bm25Feedback;
  /**
   * Earlier turns of the conversation, each with its weight against the question's 1: their terms are added
   * to the query, but only chunks with a word of the question are returned (when it has one the index
   * knows), so "and its weight?" after "what is the range of the A380?" finds the A380's weight.
   */
  context?: readonly WeightedText[];
  /**
   * Leave out the words of a request that are not its subject (`anyone`, `papers`, `information` …:
   * `REQUEST_WORDS`) unless nothing else is left of a query part. Default true.
   */
  dropRequestWords?: boolean;
}

/**
 * RM3 pseudo-relevance feedback: the query is run, the terms that weigh most in its best chunks (each
 * chunk's term distribution weighted by its score) are added to it, and the expanded query is run again.
 * It finds relevant chunks that use other words than the query, at the cost of a second pass.
 */
export interface Bm25Feedback {
  /** First-pass chunks to learn from. Default 5. */
  documents?: number;
  /** Expansion terms kept. Default 20. */
  terms?: number;
  /** Share of the original query in the expanded one, 0 to 1. Default 0.5. */
  originalWeight?: number;
}

/**
 * RM3 settings chosen with the BM25 defaults on the odd-numbered Cranfield queries (Anserini's are
 * 10/10/0.5: 0.009 nDCG@10 lower on the held-out half).
 */
export const DEFAULT_FEEDBACK: Readonly<Required<Bm25Feedback>> = Object.freeze({
  documents: 5,
  terms: 20,
  originalWeight: 0.5,
});

/** One ranked chunk. */
export interface Bm25Hit {
  chunkId: string;
  docId: string;
  score: number;
}

/** The persisted form of an index (plain JSON). */
export interface Bm25IndexJSON {
  format: 'parley-bm25';
  /** 2: two fields (title, text). Version 1 (one field) is not read: its owners are rebuilt. */
  version: 2;
  options: Required<Bm25Options>;
  owners: Array<{
    ownerId: string;
    chunks: Array<{
      id: string;
      docId: string;
      /** Terms in the text field. */
      length: number;
      /** Terms in the title field. */
      titleLength: number;
      metadata?: ChunkMetadata;
    }>;
    /** Per term: chunk position, frequency in the text and frequency in the title, interleaved. */
    postings: Array<[term: string, entries: number[]]>;
  }>;
}

/** Whether a stored index can be read as is by an index built with `options` (else it is rebuilt). */
export function isCurrentBm25Snapshot(json: Bm25IndexJSON | undefined, options: Bm25Options): boolean {
  if (json?.format !== 'parley-bm25' || json.version !== 2 || typeof json.options !== 'object') return false;
  const wanted = resolveOptions(options);
  return (Object.keys(wanted) as Array<keyof Bm25Options>).every((key) => json.options[key] === wanted[key]);
}

/** A BM25 index partitioned by owner. */
export interface Bm25Index {
  /** Indexes a chunk for an owner; a chunk with an id already indexed replaces it. */
  add(chunk: IndexableChunk, options: Bm25AddOptions): void;
  /**
   * Removes every chunk of a document; returns how many were removed. With `ownerId`, a document of
   * another owner is left alone (0 is returned), so a caller can pass a user's request straight through.
   */
  remove(docId: string, options?: { ownerId?: string }): number;
  /** Removes one chunk of an owner's; returns whether it was indexed. */
  removeChunk(chunkId: string, options: { ownerId: string }): boolean;
  /** Removes everything an owner has; returns how many chunks were removed. */
  removeOwner(ownerId: string): number;
  /** The owner's best chunks for the query, best first. Another owner's chunks are never scored. */
  search(query: string, options: Bm25SearchOptions): Bm25Hit[];
  /** Number of chunks indexed, for one owner or for all. */
  size(ownerId?: string): number;
  /** The options the index was built with. */
  readonly options: Readonly<Required<Bm25Options>>;
  /** A JSON-ready snapshot; `bm25IndexFromJSON` turns it back into an index. */
  toJSON(): Bm25IndexJSON;
}

/** One owner's part of the index. Chunks live in slots; a removed chunk leaves a dead slot until compaction. */
interface Shard {
  termIds: Map<string, number>;
  terms: string[];
  /** Per term id: slot, text frequency and title frequency, interleaved. Dead slots stay until compaction. */
  postings: number[][];
  /** Per term id: how many live chunks contain it (in either field). */
  documentFrequency: number[];
  chunkIds: string[];
  docIds: string[];
  /** Per slot: terms in the text field. */
  lengths: number[];
  /** Per slot: terms in the title field. */
  titleLengths: number[];
  metadata: Array<ChunkMetadata | undefined>;
  alive: boolean[];
  /**
   * Per slot: term id and frequency (both fields together), interleaved (document frequencies on removal,
   * RM3 feedback).
   */
  slotTerms: Int32Array[];
  slotByChunkId: Map<string, number>;
  slotsByDocId: Map<string, Set<number>>;
  liveCount: number;
  deadCount: number;
  totalLength: number;
  totalTitleLength: number;
  /** Score accumulator reused across queries (search is synchronous, so one per shard is enough). */
  scores: Float64Array;
}

/** A chunk and its score during ranking. */
interface RankedSlot {
  slot: number;
  score: number;
}

const EMPTY_TERMS = new Int32Array(0);
/** Entries per posting: slot, text frequency, title frequency. */
const POSTING = 3;
/** Dead slots are reclaimed once they outnumber live ones (and are more than a handful). */
const COMPACT_MIN_DEAD = 256;

/** Creates an empty BM25 index. */
export function createBm25Index(options: Bm25Options = {}): Bm25Index {
  return buildIndex(options);
}

/** Rebuilds an index from `toJSON()` output (for example one read back from storage). */
export function bm25IndexFromJSON(json: Bm25IndexJSON): Bm25Index {
  if (json?.format !== 'parley-bm25' || json.version !== 2 || !Array.isArray(json.owners)) {
    throw new ValidationError('not a parley BM25 index (format parley-bm25, version 2)');
  }
  return buildIndex(json.options, json);
}

function buildIndex(options: Bm25Options, snapshot?: Bm25IndexJSON): Bm25Index {
  const settings = resolveOptions(options);
  const { k1, b, titleWeight } = settings;
  const tokenize: Tokenizer = createTokenizer(settings);
  // Queries only: the same analysis without the words that phrase a request rather than name its subject.
  const tokenizeSubject: Tokenizer = createTokenizer({ ...settings, extraStopwords: REQUEST_WORDS });
  const shards = new Map<string, Shard>();
  const docOwners = new Map<string, string>();

  const removeSlot = (shard: Shard, slot: number): void => {
    if (!shard.alive[slot]) return;
    shard.alive[slot] = false;
    shard.liveCount--;
    shard.deadCount++;
    shard.totalLength -= shard.lengths[slot]!;
    shard.totalTitleLength -= shard.titleLengths[slot]!;
    const slotTerms = shard.slotTerms[slot]!;
    for (let entry = 0; entry < slotTerms.length; entry += 2) shard.documentFrequency[slotTerms[entry]!]!--;
    shard.slotTerms[slot] = EMPTY_TERMS;
    shard.metadata[slot] = undefined;
    shard.slotByChunkId.delete(shard.chunkIds[slot]!);
    const docId = shard.docIds[slot]!;
    const slots = shard.slotsByDocId.get(docId);
    slots?.delete(slot);
    if (slots?.size === 0) {
      shard.slotsByDocId.delete(docId);
      docOwners.delete(docId);
    }
  };

  const tidy = (ownerId: string, shard: Shard): void => {
    if (shard.liveCount === 0) shards.delete(ownerId);
    else if (shard.deadCount >= COMPACT_MIN_DEAD && shard.deadCount > shard.liveCount) compact(shard);
  };

  /**
   * BM25 scores of the shard's live chunks for weighted query terms; the best `topK`, best first. Only
   * `among` slots are ranked when given.
   */
  const rank = (
    shard: Shard,
    weights: ReadonlyMap<number, number>,
    filter: MetadataFilter | undefined,
    topK: number,
    among?: ReadonlySet<number>,
  ): RankedSlot[] => {
    const chunkCount = shard.liveCount;
    // Per field: tf / (1 − b + b·len/avg) = tf / (free + scaled·len).
    const textScaled = b / (shard.totalLength / chunkCount || 1);
    const titleScaled = b / (shard.totalTitleLength / chunkCount || 1);
    const free = 1 - b;
    if (shard.scores.length < shard.chunkIds.length)
      shard.scores = new Float64Array(shard.chunkIds.length * 2);
    const { scores, alive, lengths, titleLengths } = shard;
    const touched: number[] = [];
    try {
      for (const [termId, queryWeight] of weights) {
        const frequency = shard.documentFrequency[termId]!;
        if (frequency === 0 || queryWeight <= 0) continue;
        const idf = Math.log(1 + (chunkCount - frequency + 0.5) / (frequency + 0.5));
        const weight = idf * queryWeight * (k1 + 1);
        const postings: number[] = shard.postings[termId]!;
        for (let entry = 0; entry < postings.length; entry += POSTING) {
          const slot = postings[entry]!;
          if (!alive[slot]) continue;
          const textFrequency = postings[entry + 1]!;
          const titleFrequency = postings[entry + 2]!;
          let pseudo = textFrequency === 0 ? 0 : textFrequency / (free + textScaled * lengths[slot]!);
          if (titleFrequency !== 0)
            pseudo += (titleWeight * titleFrequency) / (free + titleScaled * titleLengths[slot]!);
          // A title-only match under title weight 0 adds nothing (and must not be listed twice).
          if (pseudo === 0) continue;
          if (scores[slot] === 0) touched.push(slot);
          scores[slot]! += (weight * pseudo) / (pseudo + k1);
        }
      }
      let candidates =
        filter === undefined
          ? touched
          : touched.filter((slot) => matchesFilter(shard.metadata[slot], filter));
      if (among !== undefined) candidates = candidates.filter((slot) => among.has(slot));
      return selectTop(candidates, scores, topK).map((slot) => ({ slot, score: scores[slot]! }));
    } finally {
      for (const slot of touched) scores[slot] = 0;
    }
  };

  const index: Bm25Index = {
    options: settings,

    add(chunk, addOptions) {
      const ownerId = addOptions?.ownerId;
      requireString(ownerId, 'ownerId');
      requireString(chunk?.id, 'chunk.id');
      requireString(chunk.docId, 'chunk.docId');
      if (typeof chunk.text !== 'string') throw new ValidationError('chunk.text must be a string');
      const owner = docOwners.get(chunk.docId);
      if (owner !== undefined && owner !== ownerId) {
        // A document has one owner; letting two share it would let one remove the other's chunks.
        throw new ValidationError('the document belongs to another owner', {
          details: { docId: chunk.docId },
        });
      }
      let shard = shards.get(ownerId);
      if (shard === undefined) {
        shard = createShard();
        shards.set(ownerId, shard);
      }
      const existing = shard.slotByChunkId.get(chunk.id);
      if (existing !== undefined) removeSlot(shard, existing);

      if (chunk.title !== undefined && typeof chunk.title !== 'string')
        throw new ValidationError('chunk.title must be a string');
      const textTerms = tokenize(chunk.text);
      const titleTerms = tokenize([chunk.title, chunk.heading].filter(Boolean).join('\n'));
      // term → [text frequency, title frequency]
      const frequencies = new Map<string, [number, number]>();
      const count = (terms: string[], field: 0 | 1): void => {
        for (const term of terms) {
          let pair = frequencies.get(term);
          if (pair === undefined) {
            pair = [0, 0];
            frequencies.set(term, pair);
          }
          pair[field]++;
        }
      };
      count(textTerms, 0);
      count(titleTerms, 1);

      const slot = shard.chunkIds.length;
      const slotTerms = new Int32Array(frequencies.size * 2);
      let position = 0;
      for (const [term, [textFrequency, titleFrequency]] of frequencies) {
        const termId = internTerm(shard, term);
        shard.postings[termId]!.push(slot, textFrequency, titleFrequency);
        shard.documentFrequency[termId]!++;
        slotTerms[position++] = termId;
        slotTerms[position++] = textFrequency + titleFrequency;
      }
      pushSlot(
        shard,
        chunk.id,
        chunk.docId,
        textTerms.length,
        titleTerms.length,
        copyMetadata(addOptions.metadata),
        slotTerms,
      );
      docOwners.set(chunk.docId, ownerId);
    },

    remove(docId, removeOptions) {
      const ownerId = docOwners.get(docId);
      if (ownerId === undefined) return 0;
      if (removeOptions?.ownerId !== undefined && removeOptions.ownerId !== ownerId) return 0;
      const shard = shards.get(ownerId)!;
      const slots = [...(shard.slotsByDocId.get(docId) ?? [])];
      for (const slot of slots) removeSlot(shard, slot);
      tidy(ownerId, shard);
      return slots.length;
    },

    removeChunk(chunkId, removeOptions) {
      const shard = shards.get(removeOptions.ownerId);
      const slot = shard?.slotByChunkId.get(chunkId);
      if (shard === undefined || slot === undefined) return false;
      removeSlot(shard, slot);
      tidy(removeOptions.ownerId, shard);
      return true;
    },

    removeOwner(ownerId) {
      const shard = shards.get(ownerId);
      if (shard === undefined) return 0;
      for (const docId of shard.slotsByDocId.keys()) docOwners.delete(docId);
      shards.delete(ownerId);
      return shard.liveCount;
    },

    search(query, searchOptions) {
      const ownerId = searchOptions?.ownerId;
      requireString(ownerId, 'ownerId');
      if (typeof query !== 'string') throw new ValidationError('query must be a string');
      const context = checkContext(searchOptions.context);
      const topK = searchOptions.topK ?? 10;
      if (!Number.isInteger(topK) || topK < 1) throw new ValidationError('topK must be a positive integer');
      const filter = searchOptions.filter;
      if (filter !== undefined) validateFilter(filter);

      const feedback = resolveFeedback(searchOptions.feedback);

      const shard = shards.get(ownerId);
      if (shard === undefined || shard.liveCount === 0) return [];
      const dropRequestWords = searchOptions.dropRequestWords ?? true;
      const weights = new Map<number, number>();
      // The weight of every term, found in the shard or not: RM3 shares out the original query by it.
      let totalWeight = 0;
      const addTerms = (text: string, weight: number): number[] => {
        let terms = dropRequestWords ? tokenizeSubject(text) : tokenize(text);
        // "Any papers?" is all request: then its words are what it asks for.
        if (terms.length === 0 && dropRequestWords) terms = tokenize(text);
        const known: number[] = [];
        for (const term of terms) {
          totalWeight += weight;
          const termId = shard.termIds.get(term);
          if (termId === undefined) continue;
          weights.set(termId, (weights.get(termId) ?? 0) + weight);
          known.push(termId);
        }
        return known;
      };
      const questionTerms = addTerms(query, 1);
      for (const { text, weight } of context) addTerms(text, weight);
      if (weights.size === 0) return [];

      // What may be returned: the chunks with a word of the question. Earlier turns re-order those (they
      // say what the follow-up is about, not what it asks), and so does RM3 feedback (it does not bring in
      // chunks that share no word with the question: on Cranfield that costs nothing, MAP 0.3563 vs 0.3564,
      // and in a small library it keeps a question about ailerons from returning the note on rudders that
      // only shares its boilerplate). A question with no known word leaves it to the earlier turns.
      const among =
        questionTerms.length > 0 && (context.length > 0 || feedback !== undefined)
          ? slotsWith(shard, questionTerms)
          : undefined;
      let ranked = rank(
        shard,
        weights,
        filter,
        feedback === undefined ? topK : Math.max(topK, feedback.documents),
        among,
      );
      if (feedback !== undefined && ranked.length > 0) {
        const candidates = among ?? slotsWith(shard, [...weights.keys()]);
        // Feedback learns what the best few chunks share, to re-order the rest by it. When the best few are
        // all there is, it would only reward the candidates most like their own average: the first pass
        // stands.
        if (candidates.size > feedback.documents) {
          const expanded = expandQuery(shard, weights, totalWeight, ranked, feedback);
          ranked = rank(shard, expanded, filter, topK, candidates);
        }
      }
      return ranked.slice(0, topK).map(({ slot, score }) => ({
        chunkId: shard.chunkIds[slot]!,
        docId: shard.docIds[slot]!,
        score,
      }));
    },

    size(ownerId) {
      if (ownerId !== undefined) return shards.get(ownerId)?.liveCount ?? 0;
      let total = 0;
      for (const shard of shards.values()) total += shard.liveCount;
      return total;
    },

    toJSON() {
      const owners: Bm25IndexJSON['owners'] = [];
      for (const [ownerId, shard] of shards) {
        if (shard.deadCount > 0) compact(shard);
        owners.push({
          ownerId,
          chunks: shard.chunkIds.map((id, slot) => {
            const metadata = shard.metadata[slot];
            const entry: Bm25IndexJSON['owners'][number]['chunks'][number] = {
              id,
              docId: shard.docIds[slot]!,
              length: shard.lengths[slot]!,
              titleLength: shard.titleLengths[slot]!,
            };
            if (metadata !== undefined) entry.metadata = metadata;
            return entry;
          }),
          postings: shard.terms.map((term, termId) => [term, [...shard.postings[termId]!]]),
        });
      }
      return { format: 'parley-bm25', version: 2, options: { ...settings }, owners };
    },
  };

  if (snapshot !== undefined) {
    for (const owner of snapshot.owners) {
      requireString(owner.ownerId, 'ownerId');
      const shard = createShard();
      const slotTerms: number[][] = owner.chunks.map(() => []);
      for (const chunk of owner.chunks) {
        const holder = docOwners.get(chunk.docId);
        if (holder !== undefined && holder !== owner.ownerId) {
          throw new ValidationError('the index holds one document under two owners', {
            details: { docId: chunk.docId },
          });
        }
        docOwners.set(chunk.docId, owner.ownerId);
        pushSlot(shard, chunk.id, chunk.docId, chunk.length, chunk.titleLength, chunk.metadata, EMPTY_TERMS);
      }
      for (const [term, entries] of owner.postings) {
        const termId = internTerm(shard, term);
        if (entries.length % POSTING !== 0) throw new ValidationError('a posting list is cut short');
        for (let entry = 0; entry < entries.length; entry += POSTING) {
          const slot = entries[entry]!;
          const list = slotTerms[slot];
          if (list === undefined) {
            throw new ValidationError('a posting names a chunk the index does not hold');
          }
          list.push(termId, entries[entry + 1]! + entries[entry + 2]!);
        }
        shard.postings[termId] = [...entries];
        shard.documentFrequency[termId] = entries.length / POSTING;
      }
      slotTerms.forEach((list, slot) => {
        shard.slotTerms[slot] = Int32Array.from(list);
      });
      if (shard.liveCount > 0) shards.set(owner.ownerId, shard);
    }
  }
  return index;
}

function resolveOptions(options: Bm25Options): Required<Bm25Options> {
  const resolved = { ...DEFAULT_BM25, ...stripUndefined(options) };
  if (!Number.isFinite(resolved.k1) || resolved.k1 < 0) {
    throw new ValidationError('bm25.k1 must be a number ≥ 0', { details: { k1: resolved.k1 } });
  }
  if (!Number.isFinite(resolved.b) || resolved.b < 0 || resolved.b > 1) {
    throw new ValidationError('bm25.b must be a number from 0 to 1', { details: { b: resolved.b } });
  }
  if (!Number.isFinite(resolved.titleWeight) || resolved.titleWeight < 0) {
    throw new ValidationError('bm25.title_weight must be a number ≥ 0', {
      details: { titleWeight: resolved.titleWeight },
    });
  }
  return Object.freeze(resolved);
}

/** The earlier turns of a search, checked. */
function checkContext(context: readonly WeightedText[] | undefined): readonly WeightedText[] {
  if (context === undefined) return [];
  if (!Array.isArray(context)) throw new ValidationError('context must be a list of weighted texts');
  for (const part of context) {
    if (typeof part?.text !== 'string' || !(Number.isFinite(part.weight) && part.weight > 0)) {
      throw new ValidationError('each context entry must be { text: string, weight: number > 0 }');
    }
  }
  return context;
}

/** The live slots that hold any of the terms. */
function slotsWith(shard: Shard, termIds: readonly number[]): Set<number> {
  const slots = new Set<number>();
  for (const termId of termIds) {
    const postings = shard.postings[termId]!;
    for (let entry = 0; entry < postings.length; entry += POSTING) {
      if (shard.alive[postings[entry]!]) slots.add(postings[entry]!);
    }
  }
  return slots;
}

/** The options without keys set to `undefined`, so spreading them over defaults keeps the defaults. */
function stripUndefined<Value extends object>(options: Value): Partial<Value> {
  const entries = Object.entries(options ?? {}).filter(([, value]) => value !== undefined);
  return Object.fromEntries(entries) as Partial<Value>;
}

function createShard(): Shard {
  return {
    termIds: new Map(),
    terms: [],
    postings: [],
    documentFrequency: [],
    chunkIds: [],
    docIds: [],
    lengths: [],
    titleLengths: [],
    metadata: [],
    alive: [],
    slotTerms: [],
    slotByChunkId: new Map(),
    slotsByDocId: new Map(),
    liveCount: 0,
    deadCount: 0,
    totalLength: 0,
    totalTitleLength: 0,
    scores: new Float64Array(64),
  };
}

function internTerm(shard: Shard, term: string): number {
  let termId = shard.termIds.get(term);
  if (termId === undefined) {
    termId = shard.terms.length;
    shard.termIds.set(term, termId);
    shard.terms.push(term);
    shard.postings.push([]);
    shard.documentFrequency.push(0);
  }
  return termId;
}

function pushSlot(
  shard: Shard,
  chunkId: string,
  docId: string,
  length: number,
  titleLength: number,
  metadata: ChunkMetadata | undefined,
  slotTerms: Int32Array,
): void {
  const slot = shard.chunkIds.length;
  shard.chunkIds.push(chunkId);
  shard.docIds.push(docId);
  shard.lengths.push(length);
  shard.titleLengths.push(titleLength);
  shard.metadata.push(metadata);
  shard.alive.push(true);
  shard.slotTerms.push(slotTerms);
  shard.slotByChunkId.set(chunkId, slot);
  let slots = shard.slotsByDocId.get(docId);
  if (slots === undefined) {
    slots = new Set();
    shard.slotsByDocId.set(docId, slots);
  }
  slots.add(slot);
  shard.liveCount++;
  shard.totalLength += length;
  shard.totalTitleLength += titleLength;
}

/** Drops dead slots and terms no live chunk uses, renumbering both. */
function compact(shard: Shard): void {
  const slotMap = new Int32Array(shard.chunkIds.length).fill(-1);
  const live: number[] = [];
  shard.alive.forEach((isAlive, slot) => {
    if (isAlive) {
      slotMap[slot] = live.length;
      live.push(slot);
    }
  });
  const termMap = new Int32Array(shard.terms.length).fill(-1);
  const terms: string[] = [];
  const postings: number[][] = [];
  const documentFrequency: number[] = [];
  shard.terms.forEach((term, termId) => {
    if (shard.documentFrequency[termId] === 0) return;
    termMap[termId] = terms.length;
    terms.push(term);
    documentFrequency.push(shard.documentFrequency[termId]!);
    const old = shard.postings[termId]!;
    const kept: number[] = [];
    for (let entry = 0; entry < old.length; entry += POSTING) {
      const slot = slotMap[old[entry]!]!;
      if (slot !== -1) kept.push(slot, old[entry + 1]!, old[entry + 2]!);
    }
    postings.push(kept);
  });
  shard.terms = terms;
  shard.termIds = new Map(terms.map((term, termId) => [term, termId]));
  shard.postings = postings;
  shard.documentFrequency = documentFrequency;
  shard.chunkIds = live.map((slot) => shard.chunkIds[slot]!);
  shard.docIds = live.map((slot) => shard.docIds[slot]!);
  shard.lengths = live.map((slot) => shard.lengths[slot]!);
  shard.titleLengths = live.map((slot) => shard.titleLengths[slot]!);
  shard.metadata = live.map((slot) => shard.metadata[slot]);
  shard.alive = live.map(() => true);
  shard.slotTerms = live.map((slot) =>
    shard.slotTerms[slot]!.map((value, position) => (position % 2 === 0 ? termMap[value]! : value)),
  );
  shard.slotByChunkId = new Map(shard.chunkIds.map((chunkId, slot) => [chunkId, slot]));
  shard.slotsByDocId = new Map();
  shard.docIds.forEach((docId, slot) => {
    const slots = shard.slotsByDocId.get(docId) ?? new Set<number>();
    slots.add(slot);
    shard.slotsByDocId.set(docId, slots);
  });
  shard.deadCount = 0;
  shard.scores = new Float64Array(Math.max(64, live.length));
}

function resolveFeedback(feedback: boolean | Bm25Feedback | undefined): Required<Bm25Feedback> | undefined {
  if (feedback === undefined || feedback === false) return undefined;
  const resolved = { ...DEFAULT_FEEDBACK, ...(feedback === true ? {} : stripUndefined(feedback)) };
  if (!Number.isInteger(resolved.documents) || resolved.documents < 1) {
    throw new ValidationError('feedback.documents must be a positive integer');
  }
  if (!Number.isInteger(resolved.terms) || resolved.terms < 1) {
    throw new ValidationError('feedback.terms must be a positive integer');
  }
  if (!(resolved.originalWeight >= 0 && resolved.originalWeight <= 1)) {
    throw new ValidationError('feedback.originalWeight must be a number from 0 to 1');
  }
  return resolved;
}

/**
 * RM3: the relevance model P(w|R) = Σ P(w|chunk)·weight(chunk) over the first-pass chunks (weights are their
 * normalised scores), cut to its best terms and mixed with the original query's term distribution.
 */
function expandQuery(
  shard: Shard,
  queryWeights: ReadonlyMap<number, number>,
  /** The query's total term weight (its length, when every term weighs 1). */
  queryLength: number,
  ranked: readonly RankedSlot[],
  feedback: Required<Bm25Feedback>,
): Map<number, number> {
  const sources = ranked.slice(0, feedback.documents);
  const totalScore = sources.reduce((sum, { score }) => sum + score, 0);
  const relevance = new Map<number, number>();
  for (const { slot, score } of sources) {
    const length = shard.lengths[slot]! + shard.titleLengths[slot]!;
    if (length === 0) continue;
    const slotTerms = shard.slotTerms[slot]!;
    const share = score / totalScore / length;
    for (let entry = 0; entry < slotTerms.length; entry += 2) {
      const termId = slotTerms[entry]!;
      relevance.set(termId, (relevance.get(termId) ?? 0) + share * slotTerms[entry + 1]!);
    }
  }
  const best = [...relevance]
    .sort((left, right) => right[1] - left[1] || left[0] - right[0])
    .slice(0, feedback.terms);
  const bestTotal = best.reduce((sum, [, weight]) => sum + weight, 0);
  const expanded = new Map<number, number>();
  for (const [termId, count] of queryWeights) {
    expanded.set(termId, (feedback.originalWeight * count) / queryLength);
  }
  if (bestTotal > 0) {
    for (const [termId, weight] of best) {
      const added = ((1 - feedback.originalWeight) * weight) / bestTotal;
      expanded.set(termId, (expanded.get(termId) ?? 0) + added);
    }
  }
  return expanded;
}

/** The `topK` best slots by score (ties: the earlier-indexed chunk first), best first. */
function selectTop(slots: number[], scores: Float64Array, topK: number): number[] {
  const better = (left: number, right: number): boolean =>
    scores[left]! > scores[right]! || (scores[left] === scores[right] && left < right);
  if (slots.length <= topK * 4)
    return slots.sort((left, right) => (better(left, right) ? -1 : 1)).slice(0, topK);
  // A bounded heap whose root is the worst slot kept: O(n log k) instead of sorting every match.
  const heap: number[] = [];
  const siftDown = (from: number): void => {
    let parent = from;
    for (;;) {
      const left = parent * 2 + 1;
      const right = left + 1;
      let worst = parent;
      if (left < heap.length && better(heap[worst]!, heap[left]!)) worst = left;
      if (right < heap.length && better(heap[worst]!, heap[right]!)) worst = right;
      if (worst === parent) return;
      [heap[parent], heap[worst]] = [heap[worst]!, heap[parent]!];
      parent = worst;
    }
  };
  for (const slot of slots) {
    if (heap.length < topK) {
      heap.push(slot);
      let child = heap.length - 1;
      while (child > 0) {
        const parent = (child - 1) >> 1;
        if (!better(heap[parent]!, heap[child]!)) break;
        [heap[parent], heap[child]] = [heap[child]!, heap[parent]!];
        child = parent;
      }
    } else if (better(slot, heap[0]!)) {
      heap[0] = slot;
      siftDown(0);
    }
  }
  return heap.sort((left, right) => (better(left, right) ? -1 : 1));
}

/** Whether chunk metadata passes a filter (the semantics of `MetadataFilter`). */
export function matchesFilter(metadata: ChunkMetadata | undefined, filter: MetadataFilter): boolean {
  for (const key of Object.keys(filter)) {
    const wanted = filter[key]!;
    if (metadata === undefined || !Object.hasOwn(metadata, key)) return false;
    const actual = metadata[key];
    const accepted: readonly MetadataValue[] = Array.isArray(wanted) ? wanted : [wanted as MetadataValue];
    const found = Array.isArray(actual)
      ? accepted.some((value) => actual.includes(value))
      : accepted.includes(actual as MetadataValue);
    if (!found) return false;
  }
  return true;
}

/** Throws a ValidationError when a filter is not an object of scalars or lists of scalars. */
export function validateFilter(filter: MetadataFilter): void {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new ValidationError('filter must be an object of metadata keys and values');
  }
  const isScalar = (value: unknown): boolean =>
    value === null || ['string', 'number', 'boolean'].includes(typeof value);
  for (const [key, value] of Object.entries(filter)) {
    const ok = Array.isArray(value) ? value.every(isScalar) : isScalar(value);
    if (!ok) {
      throw new ValidationError('a filter value must be a string, number, boolean, null, or a list of them', {
        details: { key },
      });
    }
  }
}

function copyMetadata(metadata: ChunkMetadata | undefined): ChunkMetadata | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new ValidationError('metadata must be an object');
  }
  return { ...metadata };
}

function requireString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string' || value === '')
    throw new ValidationError(`${name} must be a non-empty string`);
}
