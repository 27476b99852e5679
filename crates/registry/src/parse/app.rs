//! Reads `[app]`: the app's name, deployment environment, startup mode, features and the
//! optional `[app.window]` program.
//!
//! `--features` from the command line replaces the file's list here; which services the
//! features select is decided per service, in `service`.

use std::path::Path;

use toml::Spanned;

use crate::error::ProblemKind;
use crate::spec::{AppSpec, LoadOptions, StartupMode, WindowSpec, fallback};

use super::ctx::Ctx;
use super::paths::{resolve, resolve_command};
use super::walker::Section;

const APP_KEYS: &[&str] = &["name", "deployment_env", "startup", "features", "window"];
const WINDOW_KEYS: &[&str] = &["command", "args", "cwd", "env"];
const STARTUP_MODES: &[&str] = &["dependency", "sequential"];

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
    app.check_keys(ctx, APP_KEYS);
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
    if let Some(mode) = app.choice(ctx, "startup", STARTUP_MODES) {
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
    spec
}

/// `[app.window]`; `None` when it has no usable command (the problem is reported).
fn read_window(ctx: &mut Ctx<'_>, window: &Section<'_, '_>, base_dir: &Path) -> Option<WindowSpec> {
    window.check_keys(ctx, WINDOW_KEYS);
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
