//! Readers for values with a unit, durations and sizes, on top of the walker's [`Section`]:
//! they take the value out of TOML and report where it is written when it is wrong.
//!
//! The unit grammar itself (`"1h 30m"`, `"10MB"`) is `crate::units`; this file only adds the
//! TOML types accepted and the places and help lines of the problems.

use std::time::Duration;

use toml::de::DeValue;

use crate::error::ProblemKind;
use crate::units::{parse_duration, parse_size};

use super::ctx::Ctx;
use super::expected::{Expected, wrong_type};
use super::walker::Section;

/// The shortest `metrics_interval` other than off (`"0s"`).
pub const MIN_METRICS_INTERVAL: Duration = Duration::from_millis(100);

impl Section<'_, '_> {
    /// A duration string where zero has a meaning: restart at once, kill without waiting.
    pub(super) fn duration(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Duration> {
        self.duration_unless(ctx, key, |_| None)
    }

    /// A duration string that must be greater than zero: a zero probe interval would
    /// busy-loop, and a zero timeout would give up before anything could answer.
    pub(super) fn nonzero_duration(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Duration> {
        self.duration_unless(ctx, key, |duration| {
            duration.is_zero().then_some("must be greater than zero")
        })
    }

    /// A sampling interval: `"0s"` turns sampling off; otherwise at least
    /// [`MIN_METRICS_INTERVAL`], so that sampling a tree never becomes a busy loop.
    pub(super) fn sampling_interval(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Duration> {
        self.duration_unless(ctx, key, |duration| {
            (!duration.is_zero() && duration < MIN_METRICS_INTERVAL)
                .then_some("must be \"0s\" (off) or at least 100ms")
        })
    }

    /// A duration string, reported as invalid when `reject` gives a reason for its value.
    fn duration_unless(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        reject: impl FnOnce(Duration) -> Option<&'static str>,
    ) -> Option<Duration> {
        let value = self.get(key)?;
        let location = self.key_path(key);
        let DeValue::String(text) = value.get_ref() else {
            wrong_type(ctx, &location, value, Expected::DurationString);
            return None;
        };
        let reason = match parse_duration(text).map(|duration| (duration, reject(duration))) {
            Ok((duration, None)) => return Some(duration),
            Ok((_, Some(reason))) => reason.to_owned(),
            Err(error) => error.to_string(),
        };
        ctx.report(
            &location,
            Some(value.span()),
            ProblemKind::InvalidDuration {
                value: text.to_string(),
                reason,
            },
            Some("write a number with a unit: \"500ms\", \"10s\", \"2m\", \"1h 30m\""),
        );
        None
    }

    /// A size: a string with a unit (`"10MB"`) or an integer count of bytes; never zero.
    pub(super) fn size(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<u64> {
        let value = self.get(key)?;
        let location = self.key_path(key);
        let help = Some(
            "write a whole number with a unit: \"512KB\", \"10MB\", \"1GB\" (1 KB = 1024 bytes)",
        );
        let (text, result) = match value.get_ref() {
            DeValue::String(text) => (
                text.to_string(),
                parse_size(text).map_err(|e| e.to_string()),
            ),
            DeValue::Integer(integer) => (
                integer.to_string(),
                integer
                    .as_str()
                    .parse::<u64>()
                    .map_err(|_| "must be a positive number of bytes".to_owned()),
            ),
            _ => {
                wrong_type(ctx, &location, value, Expected::SizeString);
                return None;
            }
        };
        let reason = match result {
            Ok(0) => "must be greater than zero".to_owned(),
            Ok(bytes) => return Some(bytes),
            Err(reason) => reason,
        };
        ctx.report(
            &location,
            Some(value.span()),
            ProblemKind::InvalidSize {
                value: text,
                reason,
            },
            help,
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    const DURATION_HELP: &str =
        "  help: write a number with a unit: \"500ms\", \"10s\", \"2m\", \"1h 30m\"";
    const SIZE_HELP: &str = "  help: write a whole number with a unit: \"512KB\", \"10MB\", \"1GB\" (1 KB = 1024 bytes)";

    #[test]
    fn zero_is_a_duration_but_not_a_nonzero_one() {
        let (read, problems) = read_toml("backoff = \"0s\"\ninterval = \"0s\"\n", |ctx, root| {
            (
                root.duration(ctx, "backoff"),
                root.nonzero_duration(ctx, "interval"),
            )
        });
        assert_eq!(read, (Some(Duration::ZERO), None));
        assert_eq!(
            problems,
            [format!(
                "2:12: interval: \"0s\" is not a valid duration: must be greater than zero\n{DURATION_HELP}"
            )]
        );
    }

    #[test]
    fn nonzero_duration_keeps_a_positive_value() {
        let read = read_toml("timeout = \"1m 30s\"\n", |ctx, root| {
            root.nonzero_duration(ctx, "timeout")
        });
        assert_eq!(read, (Some(Duration::from_secs(90)), vec![]));
    }

    #[test]
    fn a_bare_number_is_not_a_duration_and_nonsense_says_why() {
        let (read, problems) = read_toml("timeout = 30\nbackoff = \"soon\"\n", |ctx, root| {
            (
                root.nonzero_duration(ctx, "timeout"),
                root.duration(ctx, "backoff"),
            )
        });
        assert_eq!(read, (None, None));
        assert_eq!(
            problems,
            [
                "1:11: timeout: expected a duration string, found an integer\n  help: write a quoted number with a unit, like \"10s\" or \"500ms\"".to_owned(),
                format!("2:11: backoff: \"soon\" is not a valid duration: expected number at 0\n{DURATION_HELP}"),
            ]
        );
    }

    #[test]
    fn sizes_are_strings_with_a_unit_or_a_count_of_bytes() {
        let read = read_toml("max_size = \"10MB\"\ntail_bytes = 2048\n", |ctx, root| {
            (root.size(ctx, "max_size"), root.size(ctx, "tail_bytes"))
        });
        assert_eq!(read, ((Some(10 << 20), Some(2048)), vec![]));
    }

    #[test]
    fn sizes_of_zero_or_below_and_other_types_are_rejected() {
        let text = "a = 0\nb = \"0KB\"\nc = -1\nd = true\n";
        let (read, problems) = read_toml(text, |ctx, root| {
            ["a", "b", "c", "d"].map(|key| root.size(ctx, key))
        });
        assert_eq!(read, [None; 4]);
        assert_eq!(
            problems,
            [
                format!("1:5: a: \"0\" is not a valid size: must be greater than zero\n{SIZE_HELP}"),
                format!("2:5: b: \"0KB\" is not a valid size: must be greater than zero\n{SIZE_HELP}"),
                format!("3:5: c: \"-1\" is not a valid size: must be a positive number of bytes\n{SIZE_HELP}"),
                "4:5: d: expected a size string, found a boolean\n  help: write a quoted size like \"10MB\", or a number of bytes".to_owned(),
            ]
        );
    }

    #[test]
    fn an_absent_key_is_no_value_and_no_problem() {
        let read = read_toml("", |ctx, root| {
            (
                root.duration(ctx, "backoff"),
                root.nonzero_duration(ctx, "interval"),
                root.size(ctx, "max_size"),
            )
        });
        assert_eq!(read, ((None, None, None), vec![]));
    }
}
