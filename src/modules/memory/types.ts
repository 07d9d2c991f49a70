import type { ForgetWhat, Memory } from './memory-bank.ts';

/** `memory` config. */
export interface MemoryConfig {
  capture: { enabled: boolean; min_characters: number };
  recall: { enabled: boolean; top_k: number };
  max_users_cached: number;
}

/** `memory.list`: the user's memories, newest first. */
export interface MemoryListRequest {
  userId: string;
  limit?: number;
  /** Only memories older than this ISO time. */
  before?: string;
}

/** `memory.forget`: one memory, or every memory of the user. Reply: `{ forgotten: number }`. */
export type MemoryForgetRequest = { userId: string } & ({ memoryId: string } | { all: true });

export type { ForgetWhat, Memory };
