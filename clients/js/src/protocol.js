// Generated from crates/protocol by `cargo xtask ts-types`; do not edit.
// `cargo xtask ts-types --check` (part of `cargo xtask verify`) fails when it drifts.

export const CHANNELS = Object.freeze([
  "services:get-all",
  "services:start",
  "services:stop",
  "services:restart",
  "database:init",
  "database:status",
  "logs:get",
  "logs:clear",
  "app:get-path",
  "app:quit",
  "app:health",
  "metrics:get",
  "app:reload",
]);

export const EVENTS = Object.freeze([
  "service:status-changed",
  "service:error",
  "database:initialized",
  "app:health-changed",
  "app:metrics",
  "app:reloaded",
  "app:reload-failed",
  "logs:entry",
  "resync",
  "lagged",
]);
