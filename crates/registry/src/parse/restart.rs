//! Reads a `restart` table (in `[defaults]` or a service) and combines a service's table with
//! the defaults' into its restart policy.
//!
//! Only the policy's numbers are read here; when and how a service is restarted is the
//! supervisor's job.

use std::time::Duration;

use crate::keys;
use crate::spec::{RestartSpec, fallback};

use super::ctx::Ctx;
use super::walker::Section;

/// A `restart` table as written: only the keys it names are `Some`.
#[derive(Clone, Copy, Default)]
pub(super) struct RestartDraft {
    max_retries: Option<u32>,
    backoff: Option<Duration>,
    backoff_max: Option<Duration>,
    reset_after: Option<Duration>,
}

impl RestartDraft {
    pub(super) fn read(ctx: &mut Ctx<'_>, section: &Section<'_, '_>) -> RestartDraft {
        section.check_keys(ctx, &keys::RESTART);
        RestartDraft {
            max_retries: section.bounded(ctx, "max_retries", 0, i128::from(u32::MAX)),
            backoff: section.duration(ctx, "backoff"),
            backoff_max: section.duration(ctx, "backoff_max"),
            reset_after: section.duration(ctx, "reset_after"),
        }
    }

    /// This table's keys, each falling back to `base` (the defaults), then to the SPEC's.
    pub(super) fn resolve(&self, base: &RestartDraft) -> RestartSpec {
        RestartSpec {
            max_retries: self
                .max_retries
                .or(base.max_retries)
                .unwrap_or(fallback::MAX_RETRIES),
            backoff: self.backoff.or(base.backoff).unwrap_or(fallback::BACKOFF),
            backoff_max: self
                .backoff_max
                .or(base.backoff_max)
                .unwrap_or(fallback::BACKOFF_MAX),
            reset_after: self
                .reset_after
                .or(base.reset_after)
                .unwrap_or(fallback::RESET_AFTER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    #[test]
    fn each_key_falls_back_to_the_defaults_then_to_the_spec() {
        let text = "[d]\nmax_retries = 7\nbackoff = \"2s\"\n[s]\nbackoff = \"0s\"\n";
        let (restart, problems) = read_toml(text, |ctx, root| {
            let mut read = |key| {
                root.table(ctx, key)
                    .map(|section| RestartDraft::read(ctx, &section))
                    .unwrap_or_default()
            };
            let defaults = read("d");
            read("s").resolve(&defaults)
        });
        assert_eq!(
            restart,
            RestartSpec {
                max_retries: 7,
                backoff: Duration::ZERO,
                backoff_max: fallback::BACKOFF_MAX,
                reset_after: fallback::RESET_AFTER,
            }
        );
        assert_eq!(problems, Vec::<String>::new());
    }
}
