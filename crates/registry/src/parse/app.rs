//! Reads `[app]`: the app's name, deployment environment, startup mode, features, the
//! optional `[app.window]` program and the origins allowed to call the control API.
//!
//! `--features` from the command line replaces the file's list here; which services the
//! features select is decided per service, in `service`.

use std::path::Path;

use toml::Spanned;

use crate::error::ProblemKind;
use crate::keys;
use crate::spec::{AppSpec, LoadOptions, StartupMode, WindowSpec, fallback};

use super::ctx::Ctx;
use super::paths::{resolve, resolve_command};
use super::walker::Section;

pub(super) fn read_app(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: &Path,
    options: &LoadOptions,
) -> AppSpec {
    let app = root.table(ctx, "app");
    let mut spec = AppSpec {
        name: String::new(),
        deployment_env: fallback::DEPLOYMENT_ENV.to_owned(),
        startup: StartupMode::Dependency,
        features: Vec::new(),
        window: None,
        allowed_origins: Vec::new(),
    };
    let name_help =
        "add name = \"MyApp\" under [app]; it names the data directory and the default database";
    let Some(app) = app else {
        if root.get("app").is_none() {
            ctx.report(
                "app.name",
                None,
                ProblemKind::MissingKey("name"),
                Some(name_help),
            );
        }
        spec.features = options.features.clone().unwrap_or_default();
        return spec;
    };
    app.check_keys(ctx, &keys::APP);
    match app.word(ctx, "name") {
        Some(name) if name.get_ref().contains(['/', '\\']) => ctx.report(
            "app.name",
            Some(name.span()),
            ProblemKind::InvalidValue {
                value: name.into_inner(),
                reason: "must not contain / or \\",
            },
            Some("the name is used as a directory name"),
        ),
        Some(name) => spec.name = name.into_inner(),
        None if app.get("name").is_none() => {
            ctx.report(
                "app.name",
                app.span.clone(),
                ProblemKind::MissingKey("name"),
                Some(name_help),
            );
        }
        None => {}
    }
    if let Some(env) = app.word(ctx, "deployment_env") {
        spec.deployment_env = env.into_inner();
    }
    if let Some(mode) = app.choice(ctx, "startup", keys::STARTUP_MODES) {
        spec.startup = if *mode.get_ref() == "sequential" {
            StartupMode::Sequential
        } else {
            StartupMode::Dependency
        };
    }
    let file_features = app.strings(ctx, "features").unwrap_or_default();
    spec.features = match &options.features {
        Some(features) => features.clone(),
        None => file_features.into_iter().map(Spanned::into_inner).collect(),
    };
    if let Some(window) = app.table(ctx, "window") {
        spec.window = read_window(ctx, &window, base_dir);
    }
    spec.allowed_origins = read_origins(ctx, &app);
    spec
}

const ORIGIN_HELP: &str = "write each origin as a browser sends it in the Origin header, \
     scheme://host[:port], like \"app://factsway\" or \"http://localhost:5173\"";

/// `allowed_origins`: the well-formed entries; each other one is reported where it is written.
fn read_origins(ctx: &mut Ctx<'_>, app: &Section<'_, '_>) -> Vec<String> {
    let location = app.key_path("allowed_origins");
    let mut origins = Vec::new();
    for (index, origin) in app
        .strings(ctx, "allowed_origins")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match origin_problem(origin.get_ref()) {
            None => origins.push(origin.into_inner()),
            Some(reason) => ctx.report(
                &format!("{location}[{index}]"),
                Some(origin.span()),
                ProblemKind::InvalidValue {
                    value: origin.get_ref().clone(),
                    reason,
                },
                Some(ORIGIN_HELP),
            ),
        }
    }
    origins
}

/// Why `origin` is not one a browser could send, if it is not. An allowed origin is compared
/// byte for byte with the request's `Origin` header, so it must be written the way browsers
/// serialise one (RFC 6454): lowercase, no path, no default port. `null` is refused: it is the
/// origin of every `data:` page and sandboxed frame, so allowing it would allow any of them.
fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin == "null" {
        return Some("is the origin of every data: page and sandboxed frame and cannot be allowed");
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Some("is not of the form scheme://host[:port]");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Some("does not start with a scheme such as http:// or app://");
    }
    if authority.contains(['/', '?', '#']) {
        return Some("must not have a path, query or fragment (not even a final /)");
    }
    if origin.chars().any(|c| c.is_ascii_uppercase()) {
        return Some("must be lowercase, as browsers send it");
    }
    // An IPv6 literal keeps its brackets; the port is what follows the host, if anything.
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.find(']') {
            Some(end) => authority.split_at(end + 2),
            None => return Some("has an unclosed [ in its host"),
        },
        None => match authority.find(':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, ""),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
    if !host_ok {
        return Some("has no host, or a host with characters a host name cannot have");
    }
    if let Some(digits) = port.strip_prefix(':') {
        let number = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u16>().ok())
            .flatten();
        match number {
            None | Some(0) => return Some("has a port that is not a number from 1 to 65535"),
            Some(80) if scheme == "http" => {
                return Some("must leave out the default port, as browsers do");
            }
            Some(443) if scheme == "https" => {
                return Some("must leave out the default port, as browsers do");
            }
            Some(_) if digits.starts_with('0') => {
                return Some("has a port with a leading zero, which browsers never send");
            }
            Some(_) => {}
        }
    } else if !port.is_empty() {
        return Some("is not of the form scheme://host[:port]");
    }
    None
}

/// `[app.window]`; `None` when it has no usable command (the problem is reported).
fn read_window(ctx: &mut Ctx<'_>, window: &Section<'_, '_>, base_dir: &Path) -> Option<WindowSpec> {
    window.check_keys(ctx, &keys::WINDOW);
    let command = window.word(ctx, "command");
    if command.is_none() && window.get("command").is_none() {
        ctx.report(
            &window.path,
            window.span.clone(),
            ProblemKind::MissingKey("command"),
            Some("add command = \"…\": the program that shows the app's window"),
        );
    }
    // Read before giving up on a missing command, so their problems are reported too.
    let args = window.strings(ctx, "args").unwrap_or_default();
    let cwd = window.string(ctx, "cwd");
    let env = window.env(ctx, "env").unwrap_or_default();
    let command = command?;
    Some(WindowSpec {
        command: resolve_command(base_dir, command.get_ref()),
        args: args.into_iter().map(Spanned::into_inner).collect(),
        cwd: cwd.map_or_else(
            || base_dir.to_path_buf(),
            |cwd| resolve(base_dir, cwd.get_ref()),
        ),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    fn app(text: &str, options: &LoadOptions) -> (AppSpec, Vec<String>) {
        read_toml(text, |ctx, root| {
            read_app(ctx, root, Path::new("/srv/demo"), options)
        })
    }

    #[test]
    fn a_window_without_a_command_is_dropped_but_its_other_keys_are_checked() {
        let (spec, problems) = app(
            "[app]\nname = \"Demo\"\n[app.window]\nargs = [1]\n",
            &LoadOptions::default(),
        );
        assert_eq!(spec.window, None);
        assert_eq!(
            problems,
            [
                "3:6: app.window: missing key \"command\"\n  help: add command = \"…\": the program that shows the app's window",
                "4:9: app.window.args[0]: expected a string, found an integer\n  help: put each entry in double quotes",
            ]
        );
    }

    #[test]
    fn command_line_features_replace_the_file_s_even_without_an_app_table() {
        let options = LoadOptions {
            features: Some(vec!["gpu".to_owned()]),
        };
        let (with_table, _) = app("[app]\nname = \"Demo\"\nfeatures = [\"ocr\"]\n", &options);
        assert_eq!(with_table.features, ["gpu"]);
        let (without_table, problems) = app("", &options);
        assert_eq!(without_table.features, ["gpu"]);
        assert_eq!(
            problems,
            [
                "app.name: missing key \"name\"\n  help: add name = \"MyApp\" under [app]; it names the data directory and the default database"
            ]
        );
    }

    #[test]
    fn allowed_origins_keep_the_well_formed_and_place_each_other_one() {
        let (spec, problems) = app(
            "[app]\nname = \"Demo\"\nallowed_origins = [\"app://factsway\", \"http://localhost:5173/\", 3]\n",
            &LoadOptions::default(),
        );
        assert_eq!(spec.allowed_origins, ["app://factsway"]);
        assert_eq!(
            problems,
            [
                // The type is checked while the list is read, the form of each string after.
                "3:64: app.allowed_origins[2]: expected a string, found an integer\n  help: put each entry in double quotes".to_owned(),
                format!(
                    "3:38: app.allowed_origins[1]: \"http://localhost:5173/\" must not have a path, \
                     query or fragment (not even a final /)\n  help: {ORIGIN_HELP}"
                ),
            ]
        );
    }

    #[test]
    fn origins_must_be_written_as_browsers_send_them() {
        for good in [
            "app://factsway",
            "http://localhost:5173",
            "http://127.0.0.1:41234",
            "https://app.example",
            "tauri://localhost",
            "http://[::1]:8080",
            "chrome-extension://abcdef",
        ] {
            assert_eq!(origin_problem(good), None, "{good} is an origin");
        }
        let cases = [
            ("null", "is the origin of every data: page"),
            ("localhost:5173", "is not of the form"),
            ("//localhost", "is not of the form"),
            ("5ttp://localhost", "does not start with a scheme"),
            ("://localhost", "does not start with a scheme"),
            ("http://localhost:5173/", "must not have a path"),
            ("http://localhost/app", "must not have a path"),
            ("http://localhost?x=1", "must not have a path"),
            ("http://localhost#top", "must not have a path"),
            ("HTTP://localhost", "must be lowercase"),
            ("http://LocalHost", "must be lowercase"),
            ("file://", "has no host"),
            ("http://user@host", "has no host, or a host with characters"),
            (
                "http://local host",
                "has no host, or a host with characters",
            ),
            ("http://[::1", "has an unclosed ["),
            ("http://[::1]x", "is not of the form"),
            ("http://localhost:", "has a port that is not a number"),
            ("http://localhost:0", "has a port that is not a number"),
            ("http://localhost:65536", "has a port that is not a number"),
            ("http://localhost:5x", "has a port that is not a number"),
            ("http://localhost:80", "must leave out the default port"),
            ("https://localhost:443", "must leave out the default port"),
            ("http://localhost:05173", "has a port with a leading zero"),
        ];
        for (bad, reason) in cases {
            match origin_problem(bad) {
                Some(problem) => assert!(problem.starts_with(reason), "{bad}: {problem}"),
                None => panic!("{bad} was taken as an origin"),
            }
        }
    }

    #[test]
    fn an_app_name_must_not_be_a_path() {
        let (spec, problems) = app("[app]\nname = \"a/b\"\n", &LoadOptions::default());
        assert_eq!(spec.name, "");
        assert_eq!(
            problems,
            [
                "2:8: app.name: \"a/b\" must not contain / or \\\n  help: the name is used as a directory name"
            ]
        );
    }
}
