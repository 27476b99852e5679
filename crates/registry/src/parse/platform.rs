//! Reads a service's `platform` table: per-OS overrides of `command`, `args`, `cwd` and `env`.
//!
//! Every platform's table is checked, so a typo in another OS's override is caught on the
//! developer's machine, but only the current platform's is returned. Applying the overrides to
//! the service is the service reader's job.

use std::collections::BTreeMap;

use toml::Spanned;

use crate::keys;

use super::ctx::Ctx;
use super::walker::Section;

/// The platform table whose overrides apply to this build.
pub(super) const CURRENT_PLATFORM: &str = if cfg!(target_os = "windows") {
    "windows"
} else if cfg!(target_os = "macos") {
    "macos"
} else {
    "linux"
};

/// One platform's overrides as written: only the keys it names are `Some` (or non-empty).
#[derive(Default)]
pub(super) struct Overrides {
    pub(super) command: Option<String>,
    /// Whether `command` is written at all, even unusable: its own problem is reported, so the
    /// service is not also blamed for having no command.
    pub(super) command_given: bool,
    pub(super) args: Option<Vec<String>>,
    pub(super) cwd: Option<String>,
    /// Added to the service's `env`, replacing values of the same names.
    pub(super) env: BTreeMap<String, String>,
}

/// Checks every table under `service`'s `platform` and returns the current platform's
/// overrides (none when it has no table).
pub(super) fn read_platforms(ctx: &mut Ctx<'_>, service: &Section<'_, '_>) -> Overrides {
    let mut current = Overrides::default();
    let Some(platforms) = service.table(ctx, "platform") else {
        return current;
    };
    platforms.check_keys(ctx, &keys::PLATFORM);
    for platform in keys::PLATFORMS {
        let Some(table) = platforms.table(ctx, platform) else {
            continue;
        };
        let overrides = read_overrides(ctx, &table);
        if *platform == CURRENT_PLATFORM {
            current = overrides;
        }
    }
    current
}

fn read_overrides(ctx: &mut Ctx<'_>, table: &Section<'_, '_>) -> Overrides {
    table.check_keys(ctx, &keys::OVERRIDES);
    Overrides {
        command: table.word(ctx, "command").map(Spanned::into_inner),
        command_given: table.get("command").is_some(),
        args: table
            .strings(ctx, "args")
            .map(|args| args.into_iter().map(Spanned::into_inner).collect()),
        cwd: table.string(ctx, "cwd").map(Spanned::into_inner),
        env: table.env(ctx, "env").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    #[test]
    fn only_the_current_platform_applies_but_every_platform_is_checked() {
        let other = if CURRENT_PLATFORM == "linux" {
            "windows"
        } else {
            "linux"
        };
        let text = format!(
            "[platform.{CURRENT_PLATFORM}]\ncommand = \"\"\nargs = [\"a\"]\nenv = {{ A = \"1\" }}\n[platform.{other}]\ncommand = \"other\"\nshell = \"x\"\n"
        );
        let (overrides, problems) = read_toml(&text, read_platforms);
        assert_eq!(overrides.command, None);
        assert!(overrides.command_given);
        assert_eq!(overrides.args, Some(vec!["a".to_owned()]));
        assert_eq!(overrides.cwd, None);
        assert_eq!(
            overrides.env,
            BTreeMap::from([("A".to_owned(), "1".to_owned())])
        );
        assert_eq!(
            problems,
            [
                format!(
                    "2:11: platform.{CURRENT_PLATFORM}.command: must not be empty\n  help: name the program to run, like \"node\" or \"./bin/server\""
                ),
                format!(
                    "7:1: platform.{other}.shell: unknown key \"shell\"\n  help: remove it; keys allowed in [platform.{other}]: command, args, env, cwd"
                ),
            ]
        );
    }

    #[test]
    fn no_table_for_the_current_platform_overrides_nothing() {
        let (overrides, problems) = read_toml("[platform.plan9]\n", read_platforms);
        assert!(overrides.command.is_none() && !overrides.command_given);
        assert!(overrides.args.is_none() && overrides.env.is_empty());
        assert_eq!(
            problems,
            [
                "1:11: platform.plan9: unknown key \"plan9\"\n  help: remove it; keys allowed in [platform]: linux, macos, windows"
            ]
        );
    }
}
