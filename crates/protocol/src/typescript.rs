//! The TypeScript declarations of the wire contract (feature `typescript`), which
//! `cargo xtask ts-types` writes to `clients/js/src/protocol.d.ts`, and the runtime list of
//! channel and event names beside them (`protocol.js`).
//! Every type is ts-rs's rendering of the serde type itself; the channel and event name unions
//! come from [`Channel::ALL`] and [`EventName::ALL`], and the channel → request/response table
//! from an exhaustive `match`, so a new channel does not compile until it has its types.
//! Nothing here writes a file: [`declarations`] returns the text.

use std::{
    any::TypeId,
    collections::{BTreeMap, BTreeSet},
};

use ts_rs::{Config, TS, TypeVisitor};

use crate::{
    AppHealth, Channel, DatabaseInitResponse, DatabaseStatus, ErrorBody, Event, EventName,
    GetPathRequest, GetPathResponse, IpcInfo, LogsGetRequest, LogsGetResponse, MetricsGetRequest,
    MetricsGetResponse, ReloadRequest, ReloadResponse, ServiceActionResponse, ServiceRequest,
    ServiceStatus, SuccessResponse,
};

/// The whole `protocol.d.ts`: every wire type, the name unions and the channel table.
pub fn declarations() -> String {
    let mut types = Declarations {
        // serde_json writes a u64 as a JSON number, and JSON.parse reads it as one: `bigint`
        // (ts-rs's default) would describe a value no client ever sees.
        config: Config::new().with_large_int("number"),
        seen: BTreeSet::new(),
        by_name: BTreeMap::new(),
    };
    let mut out = String::from(HEADER);

    out.push_str("/** Every IPC channel (`POST /ipc/<channel>`), in the SPEC's table order. */\n");
    out.push_str(&union("ChannelName", Channel::ALL.map(Channel::as_str)));
    out.push_str("/** Every event name (the SSE `event:` field). */\n");
    out.push_str(&union("EventName", EventName::ALL.map(EventName::as_str)));
    out.push_str(
        "/** The channel names at run time (protocol.js), in the order above. */\n\
         export declare const CHANNELS: readonly ChannelName[];\n\
         /** The event names at run time (protocol.js), in the order above. */\n\
         export declare const EVENTS: readonly EventName[];\n\n",
    );

    let rows: Vec<(Channel, Option<String>, String)> = Channel::ALL
        .into_iter()
        .map(|channel| {
            let (request, response) = channel_types(channel, &mut types);
            (channel, request, response)
        })
        .collect();
    out.push_str(
        "/** Each channel's request body; `undefined`: the channel takes no arguments. */\n\
         export interface ChannelRequests {\n",
    );
    for (channel, request, _) in &rows {
        let request = request.as_deref().unwrap_or("undefined");
        out.push_str(&format!("  \"{channel}\": {request};\n"));
    }
    out.push_str(
        "}\n\n/** Each channel's response body. */\nexport interface ChannelResponses {\n",
    );
    for (channel, _, response) in &rows {
        out.push_str(&format!("  \"{channel}\": {response};\n"));
    }
    out.push_str("}\n\n");

    types.name::<Event>();
    types.name::<IpcInfo>();
    types.name::<ErrorBody>();
    for declaration in types.by_name.values() {
        out.push_str(declaration);
    }
    out.push_str(
        "/** The payload (SSE `data:`) of the event named `E`. */\n\
         export type EventPayload<E extends EventName> = Extract<Event, { event: E }>[\"data\"];\n",
    );
    // ts-rs leaves a space after each `{` it breaks a line at.
    let mut trimmed: String = out
        .lines()
        .map(|line| line.trim_end().to_owned() + "\n")
        .collect();
    trimmed.truncate(trimmed.trim_end().len());
    trimmed.push('\n');
    trimmed
}

/// `protocol.js`: the channel and event names as arrays, for code that needs them at run
/// time (the browser's `EventSource` listens by name), typed by `protocol.d.ts`.
pub fn names_module() -> String {
    let list = |names: &[&str]| -> String {
        names
            .iter()
            .map(|name| format!("  \"{name}\",\n"))
            .collect()
    };
    format!(
        "{HEADER}\
         export const CHANNELS = Object.freeze([\n{}]);\n\n\
         export const EVENTS = Object.freeze([\n{}]);\n",
        list(&Channel::ALL.map(Channel::as_str)),
        list(&EventName::ALL.map(EventName::as_str)),
    )
}

const HEADER: &str = "// Generated from crates/protocol by `cargo xtask ts-types`; do not edit.\n\
                      // `cargo xtask ts-types --check` (part of `cargo xtask verify`) fails when it drifts.\n\n";

/// The request (`None`: no arguments) and response type of each channel.
fn channel_types(channel: Channel, types: &mut Declarations) -> (Option<String>, String) {
    match channel {
        Channel::ServicesGetAll => (None, types.name::<Vec<ServiceStatus>>()),
        Channel::ServicesStart | Channel::ServicesStop | Channel::ServicesRestart => (
            Some(types.name::<ServiceRequest>()),
            types.name::<ServiceActionResponse>(),
        ),
        Channel::DatabaseInit => (None, types.name::<DatabaseInitResponse>()),
        Channel::DatabaseStatus => (None, types.name::<DatabaseStatus>()),
        // The body is optional: an empty one means every service and the default count.
        Channel::LogsGet => (
            Some(format!("{} | undefined", types.name::<LogsGetRequest>())),
            types.name::<LogsGetResponse>(),
        ),
        Channel::LogsClear => (None, types.name::<SuccessResponse>()),
        Channel::AppGetPath => (
            Some(types.name::<GetPathRequest>()),
            types.name::<GetPathResponse>(),
        ),
        Channel::AppQuit => (None, types.name::<SuccessResponse>()),
        Channel::AppHealth => (None, types.name::<AppHealth>()),
        Channel::MetricsGet => (
            Some(format!("{} | undefined", types.name::<MetricsGetRequest>())),
            types.name::<MetricsGetResponse>(),
        ),
        Channel::AppReload => (
            Some(format!("{} | undefined", types.name::<ReloadRequest>())),
            types.name::<ReloadResponse>(),
        ),
    }
}

fn union(name: &str, members: impl IntoIterator<Item = &'static str>) -> String {
    let members: Vec<String> = members.into_iter().map(|m| format!("\"{m}\"")).collect();
    format!("export type {name} =\n  | {};\n\n", members.join("\n  | "))
}

/// Collects the declaration of each named type and of everything it refers to, once each.
/// They are written sorted by name: ts-rs visits a type's dependencies in the order of a
/// `HashSet` built by its derive macro, which changes from one compilation to the next.
struct Declarations {
    config: Config,
    seen: BTreeSet<TypeId>,
    by_name: BTreeMap<String, String>,
}

impl Declarations {
    /// Declares `T` (and what it uses) and returns how TypeScript names it.
    fn name<T: TS + 'static>(&mut self) -> String {
        self.visit::<T>();
        T::name(&self.config)
    }
}

impl TypeVisitor for Declarations {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        if !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        // Only derived types have a file of their own; `Vec<T>`, `Option<T>` and primitives
        // are written inline, but what they wrap may need declaring.
        if T::output_path().is_some() {
            let docs = T::docs().unwrap_or_default();
            let declaration = format!("{docs}export {}\n\n", T::decl(&self.config));
            self.by_name.insert(T::ident(&self.config), declaration);
        }
        T::visit_dependencies(self);
        T::visit_generics(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_and_event_name_is_in_its_union() {
        let text = declarations();
        for channel in Channel::ALL {
            assert!(text.contains(&format!("\n  | \"{channel}\"")), "{channel}");
            assert!(text.contains(&format!("  \"{channel}\": ")), "{channel}");
        }
        for event in EventName::ALL {
            assert!(text.contains(&format!("\n  | \"{}\"", event.as_str())));
        }
    }

    #[test]
    fn large_integers_are_numbers_and_names_are_camel_case() {
        let text = declarations();
        assert!(!text.contains("bigint"), "{text}");
        assert!(text.contains("lastHealthCheck: string | null"), "{text}");
        assert!(
            text.contains("\"event\": \"service:status-changed\""),
            "{text}"
        );
    }
}
