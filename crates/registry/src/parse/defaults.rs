//! Reads `[defaults]`: the health probe, timeouts and restart policy every service falls back
//! to, key by key.
//!
//! The defaults are kept as written, not resolved: which of their keys apply is only known
//! once a service's own tables are read.

use std::path::Path;
use std::time::Duration;

use crate::keys;

use super::ctx::Ctx;
use super::health::HealthDraft;
use super::restart::RestartDraft;
use super::walker::Section;

/// `[defaults]` as written; every service falls back to it key by key.
#[derive(Default)]
pub(super) struct Defaults {
    pub(super) health: HealthDraft,
    pub(super) ready_timeout: Option<Duration>,
    pub(super) stop_timeout: Option<Duration>,
    pub(super) restart: RestartDraft,
    pub(super) metrics_interval: Option<Duration>,
}

pub(super) fn read_defaults(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    base_dir: &Path,
) -> Defaults {
    let Some(defaults) = root.table(ctx, "defaults") else {
        return Defaults::default();
    };
    defaults.check_keys(ctx, &keys::DEFAULTS);
    let health = defaults
        .table(ctx, "health")
        .map(|section| {
            let draft = HealthDraft::read(ctx, &section);
            // Resolving once here reports problems of [defaults.health] itself (a misplaced key,
            // exec without command) once instead of once per service.
            draft.resolve(ctx, &section.path, &HealthDraft::default(), base_dir);
            draft
        })
        .unwrap_or_default();
    Defaults {
        health,
        ready_timeout: defaults.nonzero_duration(ctx, "ready_timeout"),
        stop_timeout: defaults.duration(ctx, "stop_timeout"),
        restart: defaults
            .table(ctx, "restart")
            .map(|section| RestartDraft::read(ctx, &section))
            .unwrap_or_default(),
        metrics_interval: defaults.sampling_interval(ctx, "metrics_interval"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    #[test]
    fn defaults_are_kept_as_written_and_their_own_probe_problems_reported() {
        let text = "[defaults]\nstop_timeout = \"0s\"\nhealth = { kind = \"exec\" }\n";
        let (defaults, problems) = read_toml(text, |ctx, root| {
            read_defaults(ctx, root, Path::new("/srv/demo"))
        });
        assert_eq!(defaults.ready_timeout, None);
        assert_eq!(defaults.stop_timeout, Some(Duration::ZERO));
        assert_eq!(
            problems,
            [
                "3:1: defaults.health: missing key \"command\"\n  help: kind = \"exec\" runs a command: add command = \"…\" (and args = [ … ])"
            ]
        );
    }
}
