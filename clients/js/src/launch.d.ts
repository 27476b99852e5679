// Types of the Node-only launcher (launch.js).

import type { ChildProcess } from "node:child_process";
import type { Client } from "./index.js";

export interface LaunchOptions {
  /** The conductor executable (default: `conductor` on the PATH). */
  binary?: string;
  /** `--registry`: the registry file (default: conductor's own choice). */
  registry?: string;
  /** `--data-dir`: where ipc.json, the lock, the database and the logs live. */
  dataDir: string;
  /** More arguments of `conductor up`, e.g. `["--features", "ocr"]`. */
  args?: string[];
  /** Each line conductor prints, as it prints it. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** conductor's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Give up (and kill conductor) when startup takes longer. */
  timeoutMs?: number;
}

/** A client of the conductor `launch` started, with its child process. */
export interface LaunchedClient extends Client {
  readonly child: ChildProcess;
  /** Settles when conductor has exited and its output has been read. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** conductor exited (or could not start) before its startup completed. */
export declare class LaunchError extends Error {
  readonly name: "LaunchError";
  /** 2: startup failed; 3: another instance runs on this data dir; null: killed or not started. */
  readonly exitCode: number | null | undefined;
  readonly signal: NodeJS.Signals | null | undefined;
  /** Everything conductor wrote to stderr (its error report). */
  readonly stderr: string | undefined;
  readonly stdout: string | undefined;
}

export declare function launch(options: LaunchOptions): Promise<LaunchedClient>;
