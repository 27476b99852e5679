// Types of the client (index.js). The wire types themselves are generated from the Rust
// protocol crate into protocol.d.ts; this file only says how the client uses them.

import type {
  ChannelName,
  ChannelRequests,
  ChannelResponses,
  EventName,
  EventPayload,
} from "./protocol.js";

export * from "./protocol.js";

/** A request conductor refused (`status` ≥ 400), or one that never reached it (`status` 0). */
export declare class ConductorError extends Error {
  readonly name: "ConductorError";
  /** The HTTP status; 0 when conductor could not be reached. */
  readonly status: number;
  /** The channel that was invoked, when the error came from `invoke`. */
  readonly channel?: ChannelName;
}

/** What a listener learns besides the payload. */
export interface EventMeta<E extends string = string> {
  event: E;
  /** The SSE `id:` (increases by one per event within one conductor run). */
  id: string | undefined;
}

export interface ConnectByDataDir {
  /** conductor's `--data-dir`: `<dataDir>/ipc.json` is read now and again after a restart. */
  dataDir: string;
  backoff?: BackoffOptions;
  /** Called each time the event stream is (re)established. */
  onStreamOpen?: () => void;
  /** Called when the event stream could not be opened or broke; it is retried with backoff. */
  onStreamError?: (error: Error) => void;
}

export interface ConnectByUrl {
  /** The control API's base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  token: string;
  /** `fetch` (the Authorization header) or `eventsource` (`?token=`); chosen by the runtime. */
  transport?: "fetch" | "eventsource";
  backoff?: BackoffOptions;
  /** Called each time the event stream is (re)established. */
  onStreamOpen?: () => void;
  /** Called when the event stream could not be opened or broke; it is retried with backoff. */
  onStreamError?: (error: Error) => void;
}

/** Delays between reconnection attempts of the event stream, doubling from `initial`. */
export interface BackoffOptions {
  /** Milliseconds before the first retry (default 100). */
  initial?: number;
  /** Longest delay in milliseconds (default 5000). */
  max?: number;
}

/** Arguments of `invoke`: the payload is required exactly when the channel needs one. */
export type InvokeArgs<C extends ChannelName> = undefined extends ChannelRequests[C]
  ? [payload?: ChannelRequests[C]]
  : [payload: ChannelRequests[C]];

export declare class Client {
  readonly url: string;
  readonly token: string;
  /** conductor's pid, when known (from ipc.json). */
  readonly pid: number | undefined;
  /** `POST /ipc/<channel>`; resolves with the response body, rejects with a ConductorError. */
  invoke<C extends ChannelName>(channel: C, ...payload: InvokeArgs<C>): Promise<ChannelResponses[C]>;
  /** Listens to one event over the shared stream; returns the function that unsubscribes. */
  on<E extends EventName>(
    event: E,
    listener: (payload: EventPayload<E>, meta: EventMeta<E>) => void,
  ): () => void;
  /** Unsubscribes every listener and closes the event stream. */
  close(): void;
  /** `app:quit`, resolving once conductor has exited (rejects after `timeoutMs`, default 30 s). */
  quit(options?: { timeoutMs?: number }): Promise<void>;
}

export declare function connect(options: ConnectByDataDir | ConnectByUrl): Promise<Client>;
