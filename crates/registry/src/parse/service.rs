//! Reads `[services]`: each `[services.NAME]` table into a service with `[defaults]`, the
//! current platform's overrides and the feature selection applied, plus the places of the
//! values that `validate` cross-checks.
//!
//! Problems inside one service are found here; problems between services (shared ports,
//! unknown or cyclic dependencies) are left to `validate`, which needs them all read first.

use std::borrow::Cow;
use std::path::Path;

use toml::Spanned;
use toml::de::DeValue;

use crate::error::ProblemKind;
use crate::keys;
use crate::spec::{Selection, ServiceSpec, fallback};

use super::Span;
use super::ctx::Ctx;
use super::defaults::Defaults;
use super::deploy::read_deploy;
use super::expected::{Expected, wrong_type_with_help};
use super::health::HealthDraft;
use super::limits::read_limits;
use super::paths::{resolve, resolve_command};
use super::platform::{CURRENT_PLATFORM, read_platforms};
use super::restart::RestartDraft;
use super::walker::Section;

/// Where a service's cross-checked values are written.
pub(crate) struct ServicePlaces {
    /// The port value, when it was a usable port.
    pub(crate) port: Option<Span>,
    /// Each `depends_on` entry, aligned with `ServiceSpec::depends_on`.
    pub(crate) depends_on: Vec<Span>,
}

/// The services `[services]` declares, in file order.
pub(super) struct Services {
    pub(super) services: Vec<ServiceSpec>,
    /// One entry per element of `services`, same order.
    pub(super) places: Vec<ServicePlaces>,
    /// Whether the file has at least one `[services.NAME]` table (even an unreadable one).
    pub(super) has_services: bool,
}

pub(super) fn read_services(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: &Path,
    defaults: &Defaults,
    features: &[String],
) -> Services {
    let mut read = Services {
        services: Vec::new(),
        places: Vec::new(),
        has_services: false,
    };
    let Some(section) = root.table(ctx, "services") else {
        return read;
    };
    let mut entries: Vec<_> = section.table.iter().collect();
    entries.sort_by_key(|(name, _)| name.span().start);
    read.has_services = !entries.is_empty();
    for (name, value) in entries {
        let location = section.key_path(name.get_ref());
        let DeValue::Table(table) = value.get_ref() else {
            let help = format!(
                "declare a service as a table: [services.{}] with port and command",
                name.get_ref()
            );
            wrong_type_with_help(ctx, &location, value, Expected::Table, help);
            continue;
        };
        let service = Section {
            table,
            path: location,
            span: Some(name.span()),
        };
        let (spec, place) = read_service(ctx, name, &service, base_dir, defaults, features);
        read.services.push(spec);
        read.places.push(place);
    }
    read
}

/// A service name must be safe as a file name (`<logs>/<name>.log`) and in environment values.
fn is_usable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn read_service(
    ctx: &mut Ctx<'_>,
    name: &Spanned<Cow<'_, str>>,
    service: &Section<'_, '_>,
    base_dir: &Path,
    defaults: &Defaults,
    features: &[String],
) -> (ServiceSpec, ServicePlaces) {
    let name_text = name.get_ref().to_string();
    let location = &service.path;
    if !is_usable_name(&name_text) {
        ctx.report(
            location,
            Some(name.span()),
            ProblemKind::InvalidServiceName(name_text.clone()),
            Some("use letters, digits, - and _ (starting with a letter or digit): the name is used in log file names and SERVICE_NAME"),
        );
    }
    service.check_keys(ctx, &keys::SERVICE);

    let mut port_span = None;
    let mut port = 0;
    match service.integer(ctx, "port") {
        Some((number, span)) => match u16::try_from(number) {
            Ok(valid) if valid != 0 => {
                port = valid;
                port_span = Some(span);
            }
            _ => ctx.report(
                &service.key_path("port"),
                Some(span),
                ProblemKind::InvalidPort(number),
                Some("choose a free port from 1024 to 65535 that no other service uses"),
            ),
        },
        None if service.get("port").is_none() => ctx.report_owned(
            &service.key_path("port"),
            Some(name.span()),
            ProblemKind::MissingKey("port"),
            Some(format!("add port = <number> under [{location}]: every service listens on its own fixed port")),
        ),
        None => {}
    }

    let command = service.word(ctx, "command").map(Spanned::into_inner);
    let command_given = service.get("command").is_some();
    let args: Vec<String> = service
        .strings(ctx, "args")
        .unwrap_or_default()
        .into_iter()
        .map(Spanned::into_inner)
        .collect();
    let cwd = service.string(ctx, "cwd").map(Spanned::into_inner);
    let mut env = service.env(ctx, "env").unwrap_or_default();

    let overrides = read_platforms(ctx, service);
    let command = overrides.command.or(command);
    let args = overrides.args.unwrap_or(args);
    let cwd = overrides.cwd.or(cwd);
    env.extend(overrides.env);
    if command.is_none() && !command_given && !overrides.command_given {
        ctx.report_owned(
            &service.key_path("command"),
            Some(name.span()),
            ProblemKind::MissingKey("command"),
            Some(format!(
                "add command = \"…\" under [{location}] (or under [{location}.platform.{CURRENT_PLATFORM}]): the program that runs the service"
            )),
        );
    }

    let mut depends_on = Vec::new();
    let mut depends_on_spans = Vec::new();
    for dependency in service.strings(ctx, "depends_on").unwrap_or_default() {
        if depends_on.contains(dependency.get_ref()) {
            ctx.report(
                &service.key_path("depends_on"),
                Some(dependency.span()),
                ProblemKind::DuplicateDependency(dependency.get_ref().clone()),
                Some("list each dependency once"),
            );
            continue;
        }
        depends_on_spans.push(dependency.span());
        depends_on.push(dependency.into_inner());
    }

    let feature = service.word(ctx, "feature").map(Spanned::into_inner);
    let enabled = service.bool(ctx, "enabled").unwrap_or(true);
    let selection = match &feature {
        _ if !enabled => Selection::Disabled,
        Some(feature) if feature != "core" && !features.contains(feature) => {
            Selection::SkippedByFeature(feature.clone())
        }
        _ => Selection::Active,
    };

    let own_health = service
        .table(ctx, "health")
        .map(|section| HealthDraft::read(ctx, &section))
        .unwrap_or_default();
    let health = own_health.resolve(ctx, &service.key_path("health"), &defaults.health, base_dir);
    let restart = service
        .table(ctx, "restart")
        .map(|section| RestartDraft::read(ctx, &section))
        .unwrap_or_default()
        .resolve(&defaults.restart);

    let spec = ServiceSpec {
        name: name_text,
        port,
        command: command.map_or_else(String::new, |command| resolve_command(base_dir, &command)),
        args,
        cwd: cwd.map_or_else(|| base_dir.to_path_buf(), |cwd| resolve(base_dir, &cwd)),
        env,
        depends_on,
        critical: service.bool(ctx, "critical").unwrap_or(true),
        feature,
        enabled,
        selection,
        health,
        ready_timeout: service
            .nonzero_duration(ctx, "ready_timeout")
            .or(defaults.ready_timeout)
            .unwrap_or(fallback::READY_TIMEOUT),
        stop_timeout: service
            .duration(ctx, "stop_timeout")
            .or(defaults.stop_timeout)
            .unwrap_or(fallback::STOP_TIMEOUT),
        restart,
        metrics_interval: service
            .sampling_interval(ctx, "metrics_interval")
            .or(defaults.metrics_interval)
            .unwrap_or(fallback::METRICS_INTERVAL),
        limits: service
            .table(ctx, "limits")
            .map(|section| read_limits(ctx, &section))
            .unwrap_or_default(),
        deploy: service
            .table(ctx, "deploy")
            .map(|section| read_deploy(ctx, &section))
            .unwrap_or_default(),
    };
    let places = ServicePlaces {
        port: port_span,
        depends_on: depends_on_spans,
    };
    (spec, places)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    fn services(text: &str) -> (Services, Vec<String>) {
        read_toml(text, |ctx, root| {
            read_services(ctx, root, Path::new("/srv/demo"), &Defaults::default(), &[])
        })
    }

    #[test]
    fn usable_names_are_file_and_environment_safe() {
        for name in ["records", "pdf-export", "ocr_gpu", "s1", "1st"] {
            assert!(is_usable_name(name), "{name}");
        }
        for name in ["", "-records", "_x", "bad name", "a/b", "a.b", "é"] {
            assert!(!is_usable_name(name), "{name}");
        }
    }

    #[test]
    fn a_service_that_is_not_a_table_is_reported_and_left_out() {
        let (read, problems) = services(
            "[services]\nbroken = 3001\n[services.records]\nport = 3001\ncommand = \"node\"\n",
        );
        let names: Vec<&str> = read.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["records"]);
        assert!(read.has_services);
        assert_eq!(
            problems,
            [
                "2:10: services.broken: expected a table, found an integer\n  help: declare a service as a table: [services.broken] with port and command"
            ]
        );
    }

    #[test]
    fn places_point_at_the_port_and_each_kept_dependency() {
        let text = "[services.a]\nport = 1\ncommand = \"x\"\ndepends_on = [\"b\", \"b\", \"c\"]\n";
        let (read, problems) = services(text);
        let span_of = |needle: &str, nth: usize| {
            let start = text.match_indices(needle).nth(nth).map_or(0, |(at, _)| at);
            start..start + needle.len()
        };
        let [place] = &read.places[..] else {
            panic!("one service, one place: {}", read.places.len());
        };
        assert_eq!(place.port, Some(span_of("1", 0)));
        assert_eq!(place.depends_on, [span_of("\"b\"", 0), span_of("\"c\"", 0)]);
        assert_eq!(read.services[0].depends_on, ["b", "c"]);
        assert_eq!(
            problems,
            [
                "4:20: services.a.depends_on: \"b\" is listed more than once\n  help: list each dependency once"
            ]
        );
    }

    #[test]
    fn no_services_table_means_no_services() {
        let (read, problems) = services("[app]\n");
        assert!(read.services.is_empty() && !read.has_services);
        assert_eq!(problems, Vec::<String>::new());
    }
}
