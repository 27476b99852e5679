//! Reads a `health` table (in `[defaults]` or a service) and combines a service's table with
//! the defaults' into the probe the service gets.
//!
//! A table is kept as written ([`HealthDraft`]) until it is resolved, because a service falls
//! back to `[defaults.health]` key by key, and the kind chosen decides which keys make sense.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::error::ProblemKind;
use crate::keys;
use crate::spec::{HealthCheck, HealthSpec, fallback};

use super::Span;
use super::ctx::Ctx;
use super::paths::resolve_command;
use super::walker::Section;

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
        section.check_keys(ctx, &keys::HEALTH);
        let kind =
            section
                .choice(ctx, "kind", keys::HEALTH_KINDS)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    /// Reads `[d]` as the defaults and `[s]` as a service's table, and resolves the service's.
    fn resolve_service(text: &str) -> (HealthSpec, Vec<String>) {
        read_toml(text, |ctx, root| {
            let read = |ctx: &mut Ctx<'_>, key| {
                root.table(ctx, key)
                    .map(|section| HealthDraft::read(ctx, &section))
                    .unwrap_or_default()
            };
            let defaults = read(ctx, "d");
            read(ctx, "s").resolve(ctx, "s", &defaults, Path::new("/srv/demo"))
        })
    }

    #[test]
    fn a_service_falls_back_to_the_defaults_key_by_key() {
        let (health, problems) = resolve_service(
            "[d]\nkind = \"exec\"\ncommand = \"bin/probe\"\ninterval = \"1s\"\n[s]\nargs = [\"-q\"]\n",
        );
        assert_eq!(
            health,
            HealthSpec {
                check: HealthCheck::Exec {
                    command: "/srv/demo/bin/probe".to_owned(),
                    args: vec!["-q".to_owned()],
                },
                interval: Duration::from_secs(1),
                timeout: fallback::TIMEOUT,
                failure_threshold: fallback::FAILURE_THRESHOLD,
            }
        );
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn a_key_of_another_kind_is_blamed_on_the_table_that_names_it() {
        // The defaults' path is no problem of the service's tcp probe; its own path is.
        let (health, problems) =
            resolve_service("[d]\npath = \"/ready\"\n[s]\nkind = \"tcp\"\npath = \"/x\"\n");
        assert_eq!(health.check, HealthCheck::Tcp);
        assert_eq!(
            problems,
            [
                "5:8: s.path: \"path\" only applies to kind = \"http\", but the kind is \"tcp\"\n  help: remove the key, or change kind"
            ]
        );
    }

    #[test]
    fn exec_without_a_command_is_reported_only_where_the_kind_is_chosen() {
        let (_, from_defaults) = resolve_service("[d]\nkind = \"exec\"\n[s]\ninterval = \"1s\"\n");
        assert_eq!(from_defaults, Vec::<String>::new());
        let (health, own) = resolve_service("[s]\nkind = \"exec\"\n");
        assert_eq!(
            own,
            [
                "1:2: s: missing key \"command\"\n  help: kind = \"exec\" runs a command: add command = \"…\" (and args = [ … ])"
            ]
        );
        assert_eq!(
            health.check,
            HealthCheck::Exec {
                command: String::new(),
                args: vec![]
            }
        );
    }

    #[test]
    fn an_http_path_must_start_with_a_slash() {
        let (health, problems) = resolve_service("[s]\npath = \"ready\"\n");
        // Reported, yet kept: the probe is built from what was written.
        assert_eq!(
            health.check,
            HealthCheck::Http {
                path: "ready".to_owned()
            }
        );
        assert_eq!(
            problems,
            [
                "2:8: s.path: \"ready\" must start with /\n  help: write the HTTP path from its leading /, like \"/health\""
            ]
        );
    }
}
