// Generated from crates/protocol by `cargo xtask ts-types`; do not edit.
// `cargo xtask ts-types --check` (part of `cargo xtask verify`) fails when it drifts.

/** Every IPC channel (`POST /ipc/<channel>`), in the SPEC's table order. */
export type ChannelName =
  | "services:get-all"
  | "services:start"
  | "services:stop"
  | "services:restart"
  | "database:init"
  | "database:status"
  | "logs:get"
  | "logs:clear"
  | "app:get-path"
  | "app:quit"
  | "app:health"
  | "metrics:get"
  | "app:reload";

/** Every event name (the SSE `event:` field). */
export type EventName =
  | "service:status-changed"
  | "service:error"
  | "database:initialized"
  | "app:health-changed"
  | "app:metrics"
  | "app:reloaded"
  | "app:reload-failed"
  | "logs:entry"
  | "resync"
  | "lagged";

/** The channel names at run time (protocol.js), in the order above. */
export declare const CHANNELS: readonly ChannelName[];
/** The event names at run time (protocol.js), in the order above. */
export declare const EVENTS: readonly EventName[];

/** Each channel's request body; `undefined`: the channel takes no arguments. */
export interface ChannelRequests {
  "services:get-all": undefined;
  "services:start": ServiceRequest;
  "services:stop": ServiceRequest;
  "services:restart": ServiceRequest;
  "database:init": undefined;
  "database:status": undefined;
  "logs:get": LogsGetRequest | undefined;
  "logs:clear": undefined;
  "app:get-path": GetPathRequest;
  "app:quit": undefined;
  "app:health": undefined;
  "metrics:get": MetricsGetRequest | undefined;
  "app:reload": ReloadRequest | undefined;
}

/** Each channel's response body. */
export interface ChannelResponses {
  "services:get-all": Array<ServiceStatus>;
  "services:start": ServiceActionResponse;
  "services:stop": ServiceActionResponse;
  "services:restart": ServiceActionResponse;
  "database:init": DatabaseInitResponse;
  "database:status": DatabaseStatus;
  "logs:get": LogsGetResponse;
  "logs:clear": SuccessResponse;
  "app:get-path": GetPathResponse;
  "app:quit": SuccessResponse;
  "app:health": AppHealth;
  "metrics:get": MetricsGetResponse;
  "app:reload": ReloadResponse;
}

/**
 * Response of `app:health` and payload of the `app:health-changed` event.
 */
export type AppHealth = {
/**
 * The overall verdict.
 */
status: AppHealthStatus,
/**
 * The enabled services that are not running, in registry order.
 */
failing: Array<string>, };

/**
 * The fleet's overall health, as `app:health` reports it.
 */
export type AppHealthStatus = "healthy" | "degraded" | "critical";

/**
 * Payload of the `app:metrics` event: one sample of every running, sampled service, of
 * conductor itself, and the app's total (the services and conductor summed).
 */
export type AppMetrics = {
/**
 * When the samples were taken (ISO-8601, UTC, milliseconds).
 */
timestamp: string,
/**
 * The running services sampled at this tick, in registry order.
 */
services: Array<ServiceSample>,
/**
 * conductor's own process.
 */
conductor: MetricsSample,
/**
 * Everything above summed (`memoryKind` is `rss` if any part is).
 */
total: MetricsSample, };

/**
 * Response of `database:init`.
 */
export type DatabaseInitResponse = {
/**
 * Whether every pending migration ran.
 */
success: boolean,
/**
 * How many migrations ran in this call.
 */
migrationsRun: number,
/**
 * Why it failed, when `success` is false.
 */
error?: string | null, };

/**
 * Response of `database:status`.
 */
export type DatabaseStatus = {
/**
 * Whether the database exists and every known migration is applied.
 */
initialized: boolean,
/**
 * The latest applied migration's version, `null` before the first.
 */
version: number | null,
/**
 * The database file's absolute path.
 */
path: string, };

/**
 * The body of every error response of the control API.
 */
export type ErrorBody = {
/**
 * What was wrong and what to do about it.
 */
error: string, };

/**
 * One event. Serialised with its wire name as tag so that a log or a test can hold any event;
 * on the SSE stream only the payload goes into `data:` (see [`Event::payload_json`]).
 */
export type Event = { "event": "service:status-changed", "data": {
/**
 * The service.
 */
serviceName: string,
/**
 * Its status after the change.
 */
status: ServiceStatus, } } | { "event": "service:error", "data": {
/**
 * The service.
 */
serviceName: string,
/**
 * What happened.
 */
error: string,
/**
 * When (ISO-8601, UTC).
 */
timestamp: string, } } | { "event": "database:initialized", "data": {
/**
 * Whether every pending migration ran.
 */
success: boolean,
/**
 * How many ran.
 */
migrationsRun: number, } } | { "event": "app:health-changed", "data": AppHealth } | { "event": "app:metrics", "data": AppMetrics } | { "event": "app:reloaded", "data": ReloadSummary } | { "event": "app:reload-failed", "data": {
/**
 * Every problem, as `app:reload` would answer them.
 */
errors: Array<string>, } } | { "event": "logs:entry", "data": {
/**
 * The lines, oldest first (services interleaved as they were captured).
 */
entries: Array<LogEntry>,
/**
 * Lines left out of `entries`, per service.
 */
skipped: Array<SkippedLines>, } } | { "event": "resync", "data": {
/**
 * The oldest event id still buffered.
 */
oldestAvailable: number, } } | { "event": "lagged", "data": {
/**
 * How many events it missed.
 */
missed: number, } };

/**
 * Request of `app:get-path`.
 */
export type GetPathRequest = {
/**
 * Which directory.
 */
pathName: PathName, };

/**
 * Response of `app:get-path`.
 */
export type GetPathResponse = {
/**
 * The directory's absolute path.
 */
path: string, };

/**
 * The contents of `<userData>/ipc.json`: how a client reaches the running instance.
 */
export type IpcInfo = {
/**
 * Base URL of the control API, e.g. `http://127.0.0.1:41234`.
 */
url: string,
/**
 * The bearer token every request must carry.
 */
token: string,
/**
 * The running conductor's process id.
 */
pid: number, };

/**
 * One line of a service's output (or one line conductor wrote about the service).
 */
export type LogEntry = {
/**
 * When the line was captured (ISO-8601, UTC, milliseconds).
 */
timestamp: string,
/**
 * The service it belongs to.
 */
service: string,
/**
 * Its detected level.
 */
level: LogLevel,
/**
 * The line, without its line terminator.
 */
message: string, };

/**
 * The severity of one log entry.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * Request of `logs:get`; an empty body means every service and [`DEFAULT_LOG_LINES`].
 */
export type LogsGetRequest = {
/**
 * Only this service's entries; every service's, merged by time, when absent.
 */
serviceName?: string | null,
/**
 * How many of the newest entries to return.
 */
lines?: number | null, };

/**
 * Response of `logs:get`: entries oldest first, newest last.
 */
export type LogsGetResponse = {
/**
 * The entries.
 */
logs: Array<LogEntry>, };

/**
 * How `memoryBytes` was measured.
 */
export type MemoryKind = "pss" | "rss";

/**
 * Request of `metrics:get`; an empty body means every service and the whole history.
 */
export type MetricsGetRequest = {
/**
 * Only this service's history.
 */
serviceName?: string | null,
/**
 * Only the samples of the last this many seconds.
 */
seconds?: number | null, };

/**
 * Response of `metrics:get`.
 */
export type MetricsGetResponse = {
/**
 * Each service asked for, in registry order.
 */
services: Array<ServiceMetrics>,
/**
 * conductor's own process, oldest first.
 */
conductor: Array<MetricsSample>, };

/**
 * One sample of a process tree (a service's, conductor's own, or the app's total).
 */
export type MetricsSample = {
/**
 * When it was taken (ISO-8601, UTC, milliseconds).
 */
timestamp: string,
/**
 * CPU time used over the last interval, as a percentage of one core (can exceed 100).
 */
cpuPercent: number,
/**
 * Memory of every process of the tree.
 */
memoryBytes: number,
/**
 * How `memory_bytes` was measured (`rss` if any process's PSS could not be read).
 */
memoryKind: MemoryKind,
/**
 * Processes in the tree (the group and the marked descendants that left it).
 */
processes: number,
/**
 * Threads of those processes.
 */
threads: number,
/**
 * Open file descriptors of those processes.
 */
openFiles: number, };

/**
 * A directory `app:get-path` can name.
 */
export type PathName = "userData" | "logs" | "temp";

/**
 * Request of `app:reload`; an empty body reloads the file conductor was started with.
 */
export type ReloadRequest = {
/**
 * Another registry file to apply instead (its path on this machine).
 */
registry?: string | null, };

/**
 * Response of `app:reload`: `success` with what changed, or every error and nothing applied.
 */
export type ReloadResponse = {
/**
 * Whether the new registry was applied.
 */
success: boolean,
/**
 * Why nothing was applied: each problem of the file with its position, or each change
 * a running app cannot take.
 */
errors?: Array<string>,
/**
 * Services the new registry adds (started once their dependencies run).
 */
added: Array<string>,
/**
 * Services it removes (stopped, their trees gone, dropped from status).
 */
removed: Array<string>,
/**
 * Services whose spec changed (restarted, or retuned without a restart).
 */
changed: Array<string>,
/**
 * Services left alone: same process, no event.
 */
unchanged: Array<string>, };

/**
 * What a reload did: each service of the old and new registry, by name, in one list.
 */
export type ReloadSummary = {
/**
 * Services the new registry adds (started once their dependencies run).
 */
added: Array<string>,
/**
 * Services it removes (stopped, their trees gone, dropped from status).
 */
removed: Array<string>,
/**
 * Services whose spec changed (restarted, or retuned without a restart).
 */
changed: Array<string>,
/**
 * Services left alone: same process, no event.
 */
unchanged: Array<string>, };

/**
 * Response of `services:start`, `services:stop` and `services:restart`.
 */
export type ServiceActionResponse = {
/**
 * Whether the action reached its goal state.
 */
success: boolean,
/**
 * Why it did not, when `success` is false.
 */
error?: string | null, };

/**
 * One service's history, oldest sample first.
 */
export type ServiceMetrics = {
/**
 * The service.
 */
serviceName: string,
/**
 * Its `metrics_interval` in milliseconds; 0 when sampling is off for it.
 */
intervalMs: number,
/**
 * Its samples (while it ran), oldest first.
 */
samples: Array<MetricsSample>, };

/**
 * Request of `services:start`, `services:stop` and `services:restart`.
 */
export type ServiceRequest = {
/**
 * The service to act on.
 */
serviceName: string, };

/**
 * One service's sample in an `app:metrics` event.
 */
export type ServiceSample = {
/**
 * The service.
 */
serviceName: string,
/**
 * Its sample.
 */
sample: MetricsSample, };

/**
 * The seven lifecycle states, serialised by their lowercase wire names.
 */
export type ServiceState = "stopped" | "starting" | "running" | "unhealthy" | "stopping" | "failed" | "disabled";

/**
 * What `services:get-all` reports for one service.
 */
export type ServiceStatus = {
/**
 * The service's name (its table name under `[services]`).
 */
name: string,
/**
 * The port it serves on.
 */
port: number,
/**
 * Its lifecycle state.
 */
status: ServiceState,
/**
 * The process id of its process-group leader while one exists.
 */
pid: number | null,
/**
 * Whole seconds since it last became `running`; 0 when not running.
 */
uptime: number,
/**
 * When its last health probe finished (ISO-8601, UTC), if any.
 */
lastHealthCheck: string | null,
/**
 * Restarts since it last stayed healthy for its `reset_after` period.
 */
restarts: number,
/**
 * Whether the app cannot run without it.
 */
critical: boolean,
/**
 * The last error seen for it, if any.
 */
lastError: string | null,
/**
 * CPU of its process tree over the last metrics interval, in percent of one core; null
 * while it is not running or before its first sample (and with sampling off).
 */
cpuPercent: number | null,
/**
 * Memory of its process tree at the last sample (PSS where readable, else RSS; see
 * `metrics:get`); null like `cpuPercent`.
 */
memoryBytes: number | null,
/**
 * Processes in its tree at the last sample; null like `cpuPercent`.
 */
processes: number | null, };

/**
 * Log lines a `logs:entry` event left out.
 */
export type SkippedLines = {
/**
 * The service whose lines they were; `None` when the stream fell behind and the lines'
 * services are not known.
 */
serviceName: string | null,
/**
 * How many; without a service, at least this many (reads of one line or more each).
 */
lines: number,
/**
 * Where they all are: the service's log file (or the log directory, without a service).
 */
file: string, };

/**
 * Response of `logs:clear`.
 */
export type SuccessResponse = {
/**
 * Whether it worked.
 */
success: boolean, };

/** The payload (SSE `data:`) of the event named `E`. */
export type EventPayload<E extends EventName> = Extract<Event, { event: E }>["data"];
