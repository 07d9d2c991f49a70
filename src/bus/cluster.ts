/**
 * What a module may know of the nodes its bus connects (`ctx.cluster`). Some events only matter to other
 * nodes — text_chat's `chat.turn.started`, which tells them a reply is generating here — and a node alone
 * on its bus need not send them.
 */

/** The nodes a bus connects, as a module sees them. */
export interface ClusterInfo {
  /**
   * Other nodes may hear this node's events: a networked transport (NATS), or, in tests, a local network
   * several in-process nodes share. False for the in-process bus of a single node.
   */
  readonly multiNode: boolean;
}

declare module '../core/module.ts' {
  interface PlatformServices {
    /** Absent where the platform does not say (a module's worker, a hand-made context): assume other nodes. */
    cluster?: ClusterInfo;
  }
}
