//! Reads a `health` table (in `[defaults]` or a service) and combines a service's table with
//! the defaults' into the probe the service gets.
//!
//! A table is kept as written ([`HealthDraft`]) until it is resolved, because a service falls
//! back to `[defaults.health]` key by key, and the kind chosen decides which keys make sense.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::error::ProblemKind;
use crate::spec::{HealthCheck, HealthSpec, fallback};

use super::Span;
use super::ctx::Ctx;
use super::paths::resolve_command;
use super::walker::Section;

const HEALTH_KEYS: &[&str] = &[
    "kind",
    "path",
    "command",
    "args",
    "interval",
    "timeout",
    "failure_threshold",
];
const HEALTH_KINDS: &[&str] = &["http", "tcp", "exec", "none"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Tcp,
    Exec,
    None,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Exec => "exec",
            Kind::None => "none",
        }
    }
}

/// A `health` table as written: only the keys it names are `Some`.
#[derive(Clone, Default)]
pub(super) struct HealthDraft {
    /// Where the table is named, to point at when a key it needs is missing.
    span: Option<Span>,
    kind: Option<Kind>,
    path: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    args: Option<Spanned<Vec<String>>>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    failure_threshold: Option<u32>,
}

impl HealthDraft {
    pub(super) fn read(ctx: &mut Ctx<'_>, section: &Section<'_, '_>) -> HealthDraft {
        section.check_keys(ctx, HEALTH_KEYS);
        let kind = section
            .choice(ctx, "kind", HEALTH_KINDS)
            .map(|kind| match *kind.get_ref() {
                "tcp" => Kind::Tcp,
                "exec" => Kind::Exec,
                "none" => Kind::None,
                _ => Kind::Http,
            });
        let path = section.word(ctx, "path");
        if let Some(path) = path
            .as_ref()
            .filter(|path| !path.get_ref().starts_with('/'))
        {
            ctx.report(
                &section.key_path("path"),
                Some(path.span()),
                ProblemKind::InvalidValue {
                    value: path.get_ref().clone(),
                    reason: "must start with /",
                },
                Some("write the HTTP path from its leading /, like \"/health\""),
            );
        }
        let args_span = section.get("args").map(Spanned::span);
        HealthDraft {
            span: section.span.clone(),
            kind,
            path,
            command: section.word(ctx, "command"),
            args: section
                .strings(ctx, "args")
                .zip(args_span)
                .map(|(args, span)| {
                    Spanned::new(span, args.into_iter().map(Spanned::into_inner).collect())
                }),
            interval: section.nonzero_duration(ctx, "interval"),
            timeout: section.nonzero_duration(ctx, "timeout"),
            failure_threshold: section.bounded(ctx, "failure_threshold", 1, i128::from(u32::MAX)),
        }
    }

    /// Combines this table with `base` (the defaults) into a probe.
    /// Only problems of keys this table names are reported, so `[defaults]` is blamed once.
    pub(super) fn resolve(
        &self,
        ctx: &mut Ctx<'_>,
        location: &str,
        base: &HealthDraft,
        base_dir: &Path,
    ) -> HealthSpec {
        let kind = self.kind.or(base.kind).unwrap_or(Kind::Http);
        let misplaced = [
            ("path", self.path.as_ref().map(Spanned::span), Kind::Http),
            (
                "command",
                self.command.as_ref().map(Spanned::span),
                Kind::Exec,
            ),
            ("args", self.args.as_ref().map(Spanned::span), Kind::Exec),
        ];
        for (key, span, applies_to) in misplaced {
            if span.is_some() && kind != applies_to {
                ctx.report(
                    &format!("{location}.{key}"),
                    span,
                    ProblemKind::KeyNotForKind {
                        key,
                        applies_to: applies_to.name(),
                        kind: kind.name(),
                    },
                    Some("remove the key, or change kind"),
                );
            }
        }
        let check = match kind {
            Kind::Http => HealthCheck::Http {
                path: self.path.as_ref().or(base.path.as_ref()).map_or_else(
                    || fallback::HEALTH_PATH.to_owned(),
                    |path| path.get_ref().clone(),
                ),
            },
            Kind::Tcp => HealthCheck::Tcp,
            Kind::None => HealthCheck::None,
            Kind::Exec => {
                let command = self.command.as_ref().or(base.command.as_ref());
                if command.is_none() && self.kind == Some(Kind::Exec) {
                    ctx.report(
                        location,
                        self.span.clone(),
                        ProblemKind::MissingKey("command"),
                        Some("kind = \"exec\" runs a command: add command = \"…\" (and args = [ … ])"),
                    );
                }
                HealthCheck::Exec {
                    command: command.map_or_else(String::new, |command| {
                        resolve_command(base_dir, command.get_ref())
                    }),
                    args: self
                        .args
                        .as_ref()
                        .or(base.args.as_ref())
                        .map_or_else(Vec::new, |args| args.get_ref().clone()),
                }
            }
        };
        HealthSpec {
            check,
            interval: self
                .interval
                .or(base.interval)
                .unwrap_or(fallback::INTERVAL),
            timeout: self.timeout.or(base.timeout).unwrap_or(fallback::TIMEOUT),
            failure_threshold: self
                .failure_threshold
                .or(base.failure_threshold)
                .unwrap_or(fallback::FAILURE_THRESHOLD),
        }
    }
}
