//! Whole-file tests: every validation message (insta snapshots of the exact text), the parsed
//! model of a good file, and property tests over random dependency graphs and random text.
//!
//! Module-level unit tests (units, graph, suggest) sit beside their code; these need the parser,
//! the validator and the graph together.

use std::path::Path;

use proptest::prelude::*;

use crate::{HealthCheck, LoadError, LoadOptions, ProblemKind, Registry, Selection, StartupMode};

const GOOD: &str = include_str!("../../../fixtures/registries/good.toml");
const SEVERAL_ERRORS: &str = include_str!("../../../fixtures/registries/several-errors.toml");

fn parse_with(text: &str, options: &LoadOptions) -> Result<Registry, LoadError> {
    Registry::parse(text, Path::new("/srv/demo/conductor.toml"), options)
}

fn parse_ok(text: &str) -> Registry {
    match parse_with(text, &LoadOptions::default()) {
        Ok(registry) => registry,
        Err(error) => panic!("expected the registry to be valid, got:\n{error}"),
    }
}

/// The full error text, with the file named as a user would see it.
fn errors(text: &str) -> String {
    match Registry::parse(text, Path::new("conductor.toml"), &LoadOptions::default()) {
        Ok(registry) => panic!("expected problems, got a valid registry: {registry:#?}"),
        Err(error) => error.to_string(),
    }
}

/// Snapshots the error text with the input alongside, so a reviewer sees both.
macro_rules! assert_errors {
    ($name:literal, $input:expr) => {{
        let input: &str = $input;
        insta::with_settings!({ description => input, omit_expression => true }, {
            insta::assert_snapshot!($name, errors(input));
        });
    }};
}

const APP: &str = "[app]\nname = \"Demo\"\n";

#[test]
fn syntax_error_gives_line_and_column() {
    assert_errors!(
        "syntax_error",
        "[app]\nname = \"Demo\"\n\n[services.records]\nport = 3001\ncommand = \"node\nargs = []\n"
    );
}

#[test]
fn unknown_keys_are_reported_with_suggestions() {
    assert_errors!(
        "unknown_key",
        &format!(
            "{APP}colour = \"blue\"\n\n[services.records]\nport = 3001\ncommand = \"node\"\ndependson = []\nhealth = {{ knd = \"tcp\" }}\n"
        )
    );
}

#[test]
fn malformed_allowed_origins_are_each_placed() {
    assert_errors!(
        "bad_origins",
        &format!(
            "{APP}allowed_origins = [\"app://factsway\", \"null\", \"http://localhost:5173/\"]\n\n[services.records]\nport = 3001\ncommand = \"node\"\n"
        )
    );
}

#[test]
fn unknown_dependency_suggests_the_closest_service() {
    assert_errors!(
        "unknown_dependency",
        &format!(
            "{APP}\n[services.citation]\nport = 3004\ncommand = \"node\"\n\n[services.export]\nport = 3003\ncommand = \"node\"\ndepends_on = [\"citaton\", \"pdf\"]\n"
        )
    );
}

#[test]
fn three_service_cycle_is_printed_as_a_path() {
    assert_errors!(
        "three_service_cycle",
        &format!(
            "{APP}\n[services.a]\nport = 1\ncommand = \"x\"\ndepends_on = [\"b\"]\n\n[services.b]\nport = 2\ncommand = \"x\"\ndepends_on = [\"c\"]\n\n[services.c]\nport = 3\ncommand = \"x\"\ndepends_on = [\"a\"]\n"
        )
    );
}

#[test]
fn self_dependency_is_a_cycle_of_one() {
    assert_errors!(
        "self_dependency",
        &format!("{APP}\n[services.a]\nport = 1\ncommand = \"x\"\ndepends_on = [\"a\", \"a\"]\n")
    );
}

#[test]
fn duplicate_port_names_both_services() {
    assert_errors!(
        "duplicate_port",
        &format!(
            "{APP}\n[services.records]\nport = 3001\ncommand = \"node\"\n\n[services.export]\nport = 3001\ncommand = \"node\"\n"
        )
    );
}

#[test]
fn unusable_ports_are_rejected() {
    assert_errors!(
        "bad_ports",
        &format!(
            "{APP}\n[services.zero]\nport = 0\ncommand = \"x\"\n\n[services.big]\nport = 70000\ncommand = \"x\"\n\n[services.negative]\nport = -1\ncommand = \"x\"\n\n[services.text]\nport = \"3001\"\ncommand = \"x\"\n\n[services.none]\ncommand = \"x\"\n"
        )
    );
}

#[test]
fn missing_and_empty_commands_are_rejected() {
    assert_errors!(
        "bad_commands",
        &format!(
            "{APP}\n[services.missing]\nport = 1\n\n[services.empty]\nport = 2\ncommand = \"  \"\n\n[services.other-os]\nport = 3\n[services.other-os.platform.plan9]\ncommand = \"x\"\n"
        )
    );
}

#[test]
fn started_service_cannot_depend_on_an_inactive_one() {
    assert_errors!(
        "inactive_dependency",
        &format!(
            "{APP}\n[services.ocr]\nport = 1\ncommand = \"x\"\nfeature = \"ocr\"\n\n[services.spare]\nport = 2\ncommand = \"x\"\nenabled = false\n\n[services.analysis]\nport = 3\ncommand = \"x\"\ndepends_on = [\"ocr\", \"spare\"]\n\n[services.idle]\nport = 4\ncommand = \"x\"\nenabled = false\ndepends_on = [\"spare\"]\n"
        )
    );
}

#[test]
fn registry_without_services_is_rejected() {
    assert_errors!("empty_registry", APP);
    assert_errors!("empty_services_table", &format!("{APP}[services]\n"));
}

#[test]
fn bad_durations_and_sizes_are_explained() {
    assert_errors!(
        "bad_units",
        &format!(
            "{APP}\n[logs]\nmax_size = \"10TB\"\nmax_files = -1\n\n[defaults]\nready_timeout = 30\nstop_timeout = \"5 seconds please\"\nhealth = {{ interval = \"0s\" }}\nrestart = {{ backoff = \"1x\" }}\n\n[services.records]\nport = 3001\ncommand = \"node\"\n"
        )
    );
}

#[test]
fn health_kinds_and_their_keys_are_checked() {
    assert_errors!(
        "bad_health",
        &format!(
            "{APP}\n[services.a]\nport = 1\ncommand = \"x\"\nhealth = {{ kind = \"htp\" }}\n\n[services.b]\nport = 2\ncommand = \"x\"\nhealth = {{ kind = \"tcp\", path = \"/ready\" }}\n\n[services.c]\nport = 3\ncommand = \"x\"\nhealth = {{ kind = \"exec\", failure_threshold = 0 }}\n\n[services.d]\nport = 4\ncommand = \"x\"\nhealth = {{ path = \"ready\" }}\n"
        )
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_errors!(
        "wrong_types",
        "app = \"Demo\"\n\n[services.a]\nport = 1.5\ncommand = [\"node\"]\nargs = \"dist/index.js\"\nenv = { DEBUG = true }\ncritical = \"yes\"\ndepends_on = [3]\n\n[services.b]\nport = 2\ncommand = \"x\"\nstartup = \"sequential\"\n[services.b.platform.linux]\nargs = [1]\n\n[services.c]\n"
    );
}

#[test]
fn app_name_is_required() {
    assert_errors!(
        "missing_app_name",
        "[app]\nstartup = \"paralel\"\n\n[services.a]\nport = 1\ncommand = \"x\"\n\n[services.\"bad name\"]\nport = 2\ncommand = \"x\"\n"
    );
}

#[test]
fn several_problems_are_all_reported() {
    let text = errors(SEVERAL_ERRORS);
    assert!(text.ends_with("9 problems in conductor.toml"), "{text}");
    assert_errors!("several_problems", SEVERAL_ERRORS);
}

#[test]
fn good_file_parses_to_the_expected_model() {
    let registry = parse_ok(GOOD);
    insta::assert_debug_snapshot!("good_registry", registry);
}

#[test]
fn services_keep_file_order_not_key_order() {
    let registry = parse_ok(GOOD);
    let names: Vec<&str> = registry.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["records", "ingestion", "ocr", "gpu", "export", "reserved"]
    );
}

#[test]
fn paths_and_commands_resolve_against_the_file() {
    let registry = parse_ok(GOOD);
    assert_eq!(registry.base_dir, Path::new("/srv/demo"));
    let records = registry
        .service("records")
        .map(|s| (s.command.clone(), s.cwd.clone()));
    assert_eq!(
        records,
        Some(("node".into(), "/srv/demo/services/records".into()))
    );
    let ingestion = registry
        .service("ingestion")
        .map(|s| (s.command.clone(), s.cwd.clone()));
    assert_eq!(
        ingestion,
        Some(("/srv/demo/bin/ingestion".into(), "/srv/demo".into()))
    );
    assert_eq!(
        registry.database.path.as_deref(),
        Some(Path::new("/srv/demo/demo.db"))
    );
}

#[test]
fn relative_file_path_gives_an_absolute_base_dir() {
    let registry = Registry::parse(GOOD, Path::new("conductor.toml"), &LoadOptions::default());
    let base_dir = registry.map(|registry| registry.base_dir);
    assert!(
        matches!(&base_dir, Ok(dir) if dir.is_absolute()),
        "{base_dir:?}"
    );
}

#[test]
fn service_tables_override_only_the_keys_they_name() {
    let registry = parse_ok(GOOD);
    let Some(records) = registry.service("records") else {
        panic!("records is in good.toml")
    };
    // interval from [defaults], timeout from the SPEC fallback, path from [defaults].
    assert_eq!(
        records.health.check,
        HealthCheck::Http {
            path: "/health".into()
        }
    );
    assert_eq!(records.health.interval, std::time::Duration::from_secs(5));
    assert_eq!(records.health.timeout, std::time::Duration::from_secs(2));
    assert_eq!(records.restart.max_retries, 2);
    assert_eq!(records.restart.backoff, std::time::Duration::from_secs(1));
    let Some(ingestion) = registry.service("ingestion") else {
        panic!("ingestion is in good.toml")
    };
    assert_eq!(ingestion.health.check, HealthCheck::Tcp);
    assert_eq!(ingestion.health.interval, std::time::Duration::from_secs(5));
}

#[test]
fn features_select_services_and_core_is_always_on() {
    let registry = parse_ok(GOOD);
    let selection = |name: &str| registry.service(name).map(|s| s.selection.clone());
    assert_eq!(selection("records"), Some(Selection::Active));
    assert_eq!(selection("ocr"), Some(Selection::Active));
    assert_eq!(
        selection("gpu"),
        Some(Selection::SkippedByFeature("gpu".into()))
    );
    assert_eq!(selection("reserved"), Some(Selection::Disabled));

    let options = LoadOptions {
        features: Some(vec!["gpu".into()]),
    };
    // --features replaces the file's ["ocr"]; nothing started depends on ocr, so the file
    // stays valid with ocr skipped.
    let registry = match parse_with(GOOD, &options) {
        Ok(registry) => registry,
        Err(error) => panic!("{error}"),
    };
    let selection = |name: &str| registry.service(name).map(|s| s.selection.clone());
    assert_eq!(selection("gpu"), Some(Selection::Active));
    assert_eq!(
        selection("ocr"),
        Some(Selection::SkippedByFeature("ocr".into()))
    );
    assert_eq!(registry.app.features, ["gpu"]);
}

#[test]
fn current_platform_overrides_command_args_cwd_and_merges_env() {
    let platform = if cfg!(target_os = "windows") {
        "windows"
    } else if cfg!(target_os = "macos") {
        "macos"
    } else {
        "linux"
    };
    let other = if platform == "linux" {
        "windows"
    } else {
        "linux"
    };
    let text = format!(
        "{APP}\n[services.a]\nport = 1\ncommand = \"node\"\nargs = [\"a.js\"]\nenv = {{ A = \"1\", B = \"1\" }}\n[services.a.platform.{platform}]\ncommand = \"bin/a\"\ncwd = \"x\"\nenv = {{ B = \"2\" }}\n[services.a.platform.{other}]\ncommand = \"other\"\nargs = []\n"
    );
    let registry = parse_ok(&text);
    let Some(service) = registry.service("a") else {
        panic!("a is declared")
    };
    assert_eq!(service.command, "/srv/demo/bin/a");
    assert_eq!(service.args, ["a.js"]);
    assert_eq!(service.cwd, Path::new("/srv/demo/x"));
    let env: Vec<(&str, &str)> = service
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("A", "1"), ("B", "2")]);
}

#[test]
fn window_database_and_exec_probe_resolve_against_the_file() {
    let text = format!(
        "{APP}deployment_env = \"test\"\nstartup = \"sequential\"\nwindow = {{ command = \"./shell/app\", args = [\"--x\"], env = {{ A = \"1\" }} }}\n\n[database]\nmigrations = \"db/migrations\"\n\n[services.a]\nport = 1\ncommand = \"x\"\nstop_timeout = \"0s\"\nhealth = {{ kind = \"exec\", command = \"bin/probe\", args = [\"-q\"], timeout = \"500ms\" }}\n"
    );
    let registry = parse_ok(&text);
    assert_eq!(registry.app.deployment_env, "test");
    assert_eq!(registry.app.startup, StartupMode::Sequential);
    let window = registry
        .app
        .window
        .clone()
        .map(|w| (w.command, w.args, w.cwd, w.env.len()));
    assert_eq!(
        window,
        Some((
            "/srv/demo/shell/app".into(),
            vec!["--x".into()],
            "/srv/demo".into(),
            1
        ))
    );
    assert_eq!(registry.database.path, None);
    assert_eq!(
        registry.database.migrations.as_deref(),
        Some(Path::new("/srv/demo/db/migrations"))
    );
    let Some(service) = registry.service("a") else {
        panic!("a is declared")
    };
    assert_eq!(
        service.health.check,
        HealthCheck::Exec {
            command: "/srv/demo/bin/probe".into(),
            args: vec!["-q".into()]
        }
    );
    assert_eq!(
        service.health.timeout,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(service.stop_timeout, std::time::Duration::ZERO);
}

#[test]
fn start_plan_levels_and_sequence() {
    let registry = parse_ok(GOOD);
    insta::assert_snapshot!("good_start_plan", registry.start_plan().to_string());
    let mut sequential = registry.clone();
    sequential.app.startup = StartupMode::Sequential;
    let plan = sequential.start_plan();
    assert_eq!(
        plan.levels,
        [
            vec!["records"],
            vec!["ingestion"],
            vec!["ocr"],
            vec!["export"]
        ]
    );
    assert_eq!(plan.stop_levels()[0], ["export"]);
}

#[test]
fn builtin_registry_plan() {
    let registry = Registry::builtin();
    assert_eq!(registry.services.len(), 8);
    insta::assert_snapshot!("builtin_summary", registry.summary().to_string());
    insta::assert_snapshot!("builtin_start_plan", registry.start_plan().to_string());
}

#[test]
fn builtin_registry_passes_its_own_validation() {
    // Written out as TOML, the built-in registry must load to the same model.
    let mut text = String::from("[app]\nname = \"FACTSWAY\"\n");
    for service in &Registry::builtin().services {
        let depends_on: Vec<String> = service
            .depends_on
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect();
        text.push_str(&format!(
            "\n[services.{}]\nport = {}\ncommand = \"node\"\nargs = [\"dist/index.js\"]\ncwd = \"services/{}\"\ndepends_on = [{}]\nenabled = {}\n",
            service.name, service.port, service.name, depends_on.join(", "), service.enabled
        ));
    }
    let current = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(error) => panic!("current dir: {error}"),
    };
    let loaded = Registry::parse(
        &text,
        &current.join("conductor.toml"),
        &LoadOptions::default(),
    );
    match loaded {
        Ok(loaded) => assert_eq!(loaded, Registry::builtin()),
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn missing_file_is_a_read_problem() {
    let path = std::env::temp_dir().join(format!(
        "conductor-registry-missing-{}.toml",
        std::process::id()
    ));
    let Err(error) = Registry::load(&path, &LoadOptions::default()) else {
        panic!("{} does not exist, load must fail", path.display());
    };
    assert!(matches!(
        error.problems[..],
        [crate::Problem {
            kind: ProblemKind::Read(_),
            ..
        }]
    ));
    let text = error
        .to_string()
        .replace(&path.display().to_string(), "[FILE]");
    insta::assert_snapshot!("missing_file", text);
}

/// A random acyclic graph: service `i` depends on a subset of services generated before it,
/// declared in a shuffled order.
fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<usize>)> {
    (1usize..12)
        .prop_flat_map(|n_services| {
            let edges: Vec<_> = (0..n_services)
                .map(|i| proptest::collection::vec(0..i.max(1), 0..=i.min(4)))
                .collect();
            let order: Vec<usize> = (0..n_services).collect();
            (edges, Just(order).prop_shuffle())
        })
        .prop_map(|(edges, order)| {
            let edges = edges
                .into_iter()
                .enumerate()
                .map(|(i, mut targets)| {
                    targets.retain(|target| *target < i);
                    targets.sort_unstable();
                    targets.dedup();
                    targets
                })
                .collect();
            (edges, order)
        })
}

fn registry_text(edges: &[Vec<usize>], order: &[usize], startup: &str) -> String {
    let mut text = format!("[app]\nname = \"Demo\"\nstartup = \"{startup}\"\n");
    for &service in order {
        let depends_on: Vec<String> = edges[service].iter().map(|d| format!("\"s{d}\"")).collect();
        text.push_str(&format!(
            "\n[services.s{service}]\nport = {}\ncommand = \"x\"\ndepends_on = [{}]\n",
            1000 + service,
            depends_on.join(", ")
        ));
    }
    text
}

proptest! {
    #[test]
    fn plan_respects_every_edge_whatever_the_declaration_order((edges, order) in dag()) {
        let registry = parse_ok(&registry_text(&edges, &order, "dependency"));
        let plan = registry.start_plan();
        let level_of = |name: &str| plan.levels.iter().position(|level| level.iter().any(|n| n == name));
        for (service, targets) in edges.iter().enumerate() {
            let name = format!("s{service}");
            let n_occurrences = plan.levels.iter().flatten().filter(|n| **n == name).count();
            prop_assert_eq!(n_occurrences, 1, "{} in {:?}", name, plan.levels);
            for target in targets {
                let target_level = level_of(&format!("s{target}"));
                prop_assert!(target_level < level_of(&name), "{:?}", plan.levels);
            }
        }
        // Within a level, file order is kept.
        for level in &plan.levels {
            let positions: Vec<usize> = level
                .iter()
                .filter_map(|name| registry.services.iter().position(|s| s.name == *name))
                .collect();
            prop_assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
        }

        let sequential = parse_ok(&registry_text(&edges, &order, "sequential")).start_plan();
        let sequence: Vec<&str> = sequential.levels.iter().flatten().map(String::as_str).collect();
        prop_assert_eq!(sequence.len(), edges.len());
        prop_assert!(sequential.levels.iter().all(|level| level.len() == 1));
        for (service, targets) in edges.iter().enumerate() {
            let at = |name: String| sequence.iter().position(|n| *n == name);
            for target in targets {
                let (before, after) = (at(format!("s{target}")), at(format!("s{service}")));
                prop_assert!(before < after, "s{} after s{}: {:?}", target, service, sequence);
            }
        }
    }

    #[test]
    fn injected_cycle_is_rejected_and_the_printed_cycle_exists(
        (mut edges, order) in dag(),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..5),
    ) {
        // Chain distinct services c0 -> c1 -> … -> c0 (one service: a self-dependency).
        let mut ring: Vec<usize> = picks.iter().map(|pick| pick.index(edges.len())).collect();
        ring.sort_unstable();
        ring.dedup();
        for (position, &service) in ring.iter().enumerate() {
            let next = ring[(position + 1) % ring.len()];
            if !edges[service].contains(&next) {
                edges[service].push(next);
            }
        }
        let text = match parse_with(&registry_text(&edges, &order, "dependency"), &LoadOptions::default()) {
            Ok(_) => return Err(TestCaseError::fail("a registry with a cycle was accepted")),
            Err(error) => error.to_string(),
        };
        let cycles: Vec<&str> = text
            .lines()
            .filter_map(|line| line.split_once("dependency cycle: ").map(|(_, cycle)| cycle))
            .collect();
        prop_assert!(!cycles.is_empty(), "{}", text);
        for cycle in cycles {
            let names: Vec<usize> = cycle
                .split(" -> ")
                .map(|name| name.trim_start_matches('s').parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|error| TestCaseError::fail(format!("{cycle}: {error}")))?;
            prop_assert!(names.len() >= 2 && names.first() == names.last(), "{}", cycle);
            for pair in names.windows(2) {
                prop_assert!(edges[pair[0]].contains(&pair[1]), "no edge {:?} in {}", pair, cycle);
            }
        }
    }

    #[test]
    fn any_text_gives_a_registry_or_problems_never_a_panic(text in "\\PC{0,200}") {
        if let Err(error) = parse_with(&text, &LoadOptions::default()) {
            prop_assert!(!error.problems.is_empty());
        }
    }

    #[test]
    fn damaged_good_file_never_panics(start in 0usize..GOOD.len(), length in 1usize..40) {
        let mut text = GOOD.to_owned();
        let start = (0..=start).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = ((start + length).min(text.len())..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text.replace_range(start..end, "");
        if let Err(error) = parse_with(&text, &LoadOptions::default()) {
            let message = error.to_string();
            prop_assert!(message.ends_with("in /srv/demo/conductor.toml"), "{}", message);
        }
    }
}

/// One edit of a registry's text, applied at a position chosen by an index.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, String),
    DuplicateLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop_oneof![
        Just("=".to_owned()),
        Just("[".to_owned()),
        Just("]]".to_owned()),
        Just("\"".to_owned()),
        Just("{ x = 1 }".to_owned()),
        Just("\n[services.records]\n".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("\"0s\"".to_owned()),
        Just("\u{0}".to_owned()),
        Just("é\u{202e}".to_owned()),
        ".{0,12}",
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<prop::sample::Index>(), tokens).prop_map(|(at, text)| Mutation::Insert(at, text)),
        any::<prop::sample::Index>().prop_map(Mutation::DuplicateLine),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn mutate(text: &str, mutation: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.lines().collect();
    match mutation {
        Mutation::Delete(at, n) => {
            let start = at.index(chars.len().max(1)).min(chars.len());
            let end = (start + n).min(chars.len());
            chars[..start].iter().chain(&chars[end..]).collect()
        }
        Mutation::Insert(at, insert) => {
            let at = at.index(chars.len() + 1);
            let mut out: String = chars[..at].iter().collect();
            out.push_str(insert);
            out.extend(&chars[at..]);
            out
        }
        Mutation::DuplicateLine(at) => {
            let at = at
                .index(lines.len().max(1))
                .min(lines.len().saturating_sub(1));
            if let Some(line) = lines.get(at).copied() {
                lines.insert(at, line);
            }
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            if !lines.is_empty() {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
            }
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Issue 12: random edits of a valid registry never panic the parser, and every error
    /// says where it is (a key path, or a line and column inside the text).
    #[test]
    fn mutated_registries_never_panic_and_every_error_has_a_place(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let original = include_str!("../../../fixtures/registries/good.toml");
        let text = mutations.iter().fold(original.to_owned(), |text, m| mutate(&text, m));
        if let Err(error) = Registry::parse(&text, Path::new("conductor.toml"), &LoadOptions::default()) {
            let n_lines = text.lines().count().max(1) + 1;
            prop_assert!(!error.problems.is_empty());
            for problem in &error.problems {
                let placed = !problem.location.is_empty() || problem.line_col.is_some();
                prop_assert!(placed, "no place for {} in:\n{}", problem, text);
                if let Some((line, column)) = problem.line_col {
                    prop_assert!(line >= 1 && line <= n_lines && column >= 1, "{:?} in:\n{}", problem.line_col, text);
                }
            }
            let _rendered = error.to_string();
        }
    }
}

#[test]
fn logs_tail_bytes_is_a_size_and_defaults_to_4_mib() {
    let default = parse_ok(&format!(
        "{APP}\n[services.records]\nport = 3001\ncommand = \"node\"\n"
    ));
    assert_eq!(default.logs.tail_bytes, 4 * 1024 * 1024);
    let text = format!(
        "{APP}\n[logs]\ntail_bytes = \"1MB\"\n\n[services.records]\nport = 3001\ncommand = \"node\"\n"
    );
    assert_eq!(parse_ok(&text).logs.tail_bytes, 1024 * 1024);
}
