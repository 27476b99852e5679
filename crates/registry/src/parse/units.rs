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

impl Section<'_, '_> {
    /// A duration string; `positive` rejects zero where zero would mean busy-looping or
    /// giving up at once.
    pub(super) fn duration(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        positive: bool,
    ) -> Option<Duration> {
        let value = self.get(key)?;
        let location = self.key_path(key);
        let DeValue::String(text) = value.get_ref() else {
            wrong_type(
                ctx,
                &location,
                value.span(),
                Expected::DurationString,
                value.get_ref(),
            );
            return None;
        };
        let reason = match parse_duration(text) {
            Ok(duration) if positive && duration.is_zero() => {
                "must be greater than zero".to_owned()
            }
            Ok(duration) => return Some(duration),
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
            other => {
                wrong_type(ctx, &location, value.span(), Expected::SizeString, other);
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
