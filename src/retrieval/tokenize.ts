/**
 * The analyser shared by indexing and querying: lowercase, Unicode word split, English stopwords, Porter
 * stemming. The same options must be used for a document and for the queries that should find it, which
 * is why the BM25 index stores them with its data.
 */
import { stemmer } from 'stemmer';

/** What the tokenizer does besides splitting words. */
export interface TokenizerOptions {
  /** Drop common English words (`the`, `of`, `what` …). Default true. */
  stopwords?: boolean;
  /** Reduce English words to their Porter stem (`flows`, `flowing` → `flow`). Default true. */
  stemming?: boolean;
  /** More words to drop (lowercase, before stemming), such as `REQUEST_WORDS` for queries. */
  extraStopwords?: ReadonlySet<string>;
}

/** Turns text into the terms an index stores. */
export type Tokenizer = (text: string) => string[];

/**
 * English stopwords: the Snowball list (NLTK's is the same),
 * without its negations (`no`, `not`, `nor`), which change what a query asks for. Contractions need no
 * entries: the word split leaves their parts (`don`, `t`), which are listed.
 */
export const ENGLISH_STOPWORDS: ReadonlySet<string> = new Set(
  `i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
  herself it its itself they them their theirs themselves what which who whom this that these those am is
  are was were be been being have has had having do does did doing would should could ought cannot
  a an the and but if or because as until while of at by for with about against
  between into through during before after above below to from up down in out on off over under again
  further then once here there when where why how all any both each few more most other some such only
  own same so than too very s t can will just don should now d ll m o re ve y`
    .split(/\s+/)
    .filter((word) => word !== ''),
);

/**
 * Words that phrase a request for information rather than name its subject — "has anyone written
 * papers on …", "is any information available about …", "tell me what is known of …". They are rare in
 * the documents, so BM25 gives them a high IDF and ranks by them chunks that happen to say "papers" or
 * "available". Queries drop them (documents keep them); a query of nothing else keeps them. Chosen as
 * English request phrasing, not fitted to a test collection; words that are also subjects in technical
 * text (`source`, `reference`, `work`, `study`, `need`) are left out.
 */
export const REQUEST_WORDS: ReadonlySet<string> = new Set(
  `anyone anybody someone somebody anything something everything information info paper papers article
  articles document documents literature publication publications report reports available exist exists
  existing known know knows tell explain describe discuss find found give show please look looking help
  thanks thank regarding concerning`
    .split(/\s+/)
    .filter((word) => word !== ''),
);

// Scripts written without spaces between words: a run of them is one "word" to the regex below, so the
// ICU word segmenter (dictionary based for Chinese, Japanese, Thai …) cuts it instead.
const UNSPACED_SCRIPT =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/u;
const WORD = /[\p{L}\p{M}\p{N}]+/gu;
const ASCII_WORD = /^[a-z]+$/;
const STEM_CACHE_LIMIT = 100_000;
const wordSegmenter = new Intl.Segmenter(undefined, { granularity: 'word' });

/** A tokenizer with the given options; it caches stems, so keep one per index rather than one per call. */
export function createTokenizer(options: TokenizerOptions = {}): Tokenizer {
  const dropStopwords = options.stopwords ?? true;
  const stem = options.stemming ?? true;
  const extra = options.extraStopwords;
  const stems = new Map<string, string>();

  const normalise = (word: string, terms: string[]): void => {
    if (dropStopwords && ENGLISH_STOPWORDS.has(word)) return;
    if (extra?.has(word) === true) return;
    // Porter's rules are for English: other words are kept as they are rather than mangled.
    if (!stem || !ASCII_WORD.test(word)) {
      terms.push(word);
      return;
    }
    let stemmed = stems.get(word);
    if (stemmed === undefined) {
      stemmed = stemmer(word);
      if (stems.size >= STEM_CACHE_LIMIT) stems.clear();
      stems.set(word, stemmed);
    }
    terms.push(stemmed);
  };

  return (text: string): string[] => {
    const terms: string[] = [];
    // NFKC folds compatibility forms (full-width letters, ligatures like "ﬁ") into the letters people type.
    const normalised = text.normalize('NFKC').toLowerCase();
    for (const match of normalised.matchAll(WORD)) {
      const word = match[0];
      if (!UNSPACED_SCRIPT.test(word)) {
        normalise(word, terms);
        continue;
      }
      for (const segment of wordSegmenter.segment(word)) {
        if (segment.isWordLike === true) normalise(segment.segment, terms);
      }
    }
    return terms;
  };
}
