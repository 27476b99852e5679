//! Parsers for the human-written units of the registry: durations (`"10s"`) and sizes (`"10MB"`).
//!
//! Sizes use 1024-multiples for every unit (`KB` = `KiB` = 1024 bytes), as pm2 and logrotate do.
//! This module parses strings only; reading them from TOML and reporting where lives in
//! `parse::units`.

use std::time::Duration;

/// Why a duration or size string was rejected; the message is a lowercase fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The duration string is not understood by humantime.
    #[error("{0}")]
    Duration(String),
    /// The size string does not have the shape `<integer>[ ]<unit>`.
    #[error("expected a whole number of bytes with an optional unit B, KB, MB or GB")]
    SizeShape,
    /// The size unit is not one we know.
    #[error("unknown size unit \"{0}\" (known: B, KB, MB, GB, KiB, MiB, GiB)")]
    SizeUnit(String),
    /// The size does not fit in 64 bits.
    #[error("size is too large")]
    SizeOverflow,
}

/// Parses a duration like `"10s"`, `"500ms"` or `"1m 30s"` (humantime syntax).
///
/// # Errors
/// [`UnitError::Duration`] with humantime's explanation when the string is not a duration.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    humantime::parse_duration(text.trim()).map_err(|error| UnitError::Duration(error.to_string()))
}

/// A size in the units [`parse_size`] reads (1024-based), to one decimal: `143.2MB`, `512B`.
/// What it prints parses back to within a tenth of a unit.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// Parses a size like `"10MB"`, `"512 KB"`, `"1GiB"` or `"4096"` (bytes) into bytes.
///
/// Units are case-insensitive and all 1024-based: `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB`,
/// and `B` for bytes.
///
/// # Errors
/// [`UnitError`] saying whether the shape, the unit or the magnitude is wrong.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(UnitError::SizeShape);
    }
    let unit = unit.trim_start();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ if unit.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            return Err(UnitError::SizeUnit(unit.to_owned()));
        }
        _ => return Err(UnitError::SizeShape),
    };
    let number: u64 = digits.parse().map_err(|_| UnitError::SizeOverflow)?;
    number
        .checked_mul(multiplier)
        .ok_or(UnitError::SizeOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_format_in_the_units_they_are_written_in() {
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(100 * 1024 * 1024), "100.0MB");
        assert_eq!(format_size(150 * 1024 * 1024 + 512 * 1024), "150.5MB");
        assert_eq!(format_size(3 << 30), "3.0GB");
    }
    use proptest::prelude::*;

    #[test]
    fn sizes_use_1024_multiples() {
        assert_eq!(parse_size("10MB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512 kb"), Ok(512 * 1024));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("7B"), Ok(7));
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        assert_eq!(parse_size("MB"), Err(UnitError::SizeShape));
        assert_eq!(parse_size(""), Err(UnitError::SizeShape));
        assert_eq!(parse_size("-1MB"), Err(UnitError::SizeShape));
        assert_eq!(parse_size("1.5MB"), Err(UnitError::SizeShape));
        assert_eq!(parse_size("10TB"), Err(UnitError::SizeUnit("TB".into())));
        assert_eq!(
            parse_size("99999999999999999999"),
            Err(UnitError::SizeOverflow)
        );
        assert_eq!(parse_size("17179869184GB"), Err(UnitError::SizeOverflow));
    }

    #[test]
    fn durations_parse_humantime_strings() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    const UNITS: &[(&str, u64)] = &[
        ("", 1),
        ("B", 1),
        ("K", 1024),
        ("KB", 1024),
        ("KiB", 1024),
        ("kb", 1024),
        ("M", 1 << 20),
        ("MB", 1 << 20),
        ("mib", 1 << 20),
        ("G", 1 << 30),
        ("GB", 1 << 30),
        ("GiB", 1 << 30),
    ];

    proptest! {
        #[test]
        fn size_of_number_and_unit_is_their_product(
            number in 0u64..(1 << 33),
            unit in 0..UNITS.len(),
            space in any::<bool>(),
        ) {
            let (name, multiplier) = UNITS[unit];
            let text = format!("{number}{}{name}", if space { " " } else { "" });
            prop_assert_eq!(parse_size(&text), Ok(number * multiplier));
        }

        #[test]
        fn size_overflow_is_an_error_not_a_wrap(number in (1u64 << 34)..u64::MAX) {
            prop_assert_eq!(parse_size(&format!("{number}GB")), Err(UnitError::SizeOverflow));
        }

        #[test]
        fn size_parser_never_panics(text in "\\PC{0,12}") {
            let _ = parse_size(&text);
        }

        #[test]
        fn millisecond_durations_round_trip(millis in 0u64..10_000_000_000) {
            prop_assert_eq!(
                parse_duration(&format!("{millis}ms")),
                Ok(Duration::from_millis(millis))
            );
        }

        #[test]
        fn formatted_durations_parse_back(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
            let duration = Duration::new(secs, nanos);
            let text = humantime::format_duration(duration).to_string();
            prop_assert_eq!(parse_duration(&text), Ok(duration));
        }

        #[test]
        fn duration_parser_never_panics(text in "\\PC{0,16}") {
            let _ = parse_duration(&text);
        }
    }
}
