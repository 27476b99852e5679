//! The type a reader wanted ([`Expected`]) and the problem reported when a value has another
//! TOML type, with a help line saying how to write the wanted one.
//!
//! Only the mismatch is reported here; a value of the right type that is still unusable (an
//! empty command, a zero interval) is the reader's to explain.

use std::fmt;

use toml::de::DeValue;

use crate::error::ProblemKind;

use super::Value;
use super::ctx::Ctx;

/// What a reader wanted where it found a value of another type.
///
/// Durations and sizes are their own cases, not [`Expected::String`], because their help line
/// shows the unit syntax rather than only asking for quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expected {
    String,
    Integer,
    Boolean,
    ArrayOfStrings,
    Table,
    DurationString,
    SizeString,
}

impl Expected {
    /// The type with its article, as messages say it (`expected a table`).
    /// [`ProblemKind::WrongType`] is public and holds this text, not the enum.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Expected::String => "a string",
            Expected::Integer => "an integer",
            Expected::Boolean => "a boolean",
            Expected::ArrayOfStrings => "an array of strings",
            Expected::Table => "a table",
            Expected::DurationString => "a duration string",
            Expected::SizeString => "a size string",
        }
    }

    /// How to write a value of this type; `key` is the last segment of the value's location,
    /// `args[0]` for an array entry.
    fn help(self, key: &str) -> String {
        let help = match self {
            Expected::String if key.ends_with(']') => "put each entry in double quotes",
            Expected::String => return format!("put the value in double quotes: {key} = \"…\""),
            Expected::Integer => "write a whole number without quotes, like 3001",
            Expected::Boolean => "write true or false, without quotes",
            Expected::ArrayOfStrings => "write a list of quoted strings: [\"a\", \"b\"]",
            Expected::Table => {
                "write a table: a [header] line followed by key = value lines, or { key = value }"
            }
            Expected::DurationString => {
                "write a quoted number with a unit, like \"10s\" or \"500ms\""
            }
            Expected::SizeString => "write a quoted size like \"10MB\", or a number of bytes",
        };
        help.to_owned()
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reports that `value`, at `location`, is not of the `expected` type.
pub(super) fn wrong_type(ctx: &mut Ctx<'_>, location: &str, value: &Value<'_>, expected: Expected) {
    let key = location.rsplit('.').next().unwrap_or(location);
    wrong_type_with_help(ctx, location, value, expected, expected.help(key));
}

/// [`wrong_type`] with a help line that knows more than the type, such as what the key is for.
pub(super) fn wrong_type_with_help(
    ctx: &mut Ctx<'_>,
    location: &str,
    value: &Value<'_>,
    expected: Expected,
    help: String,
) {
    ctx.report_owned(
        location,
        Some(value.span()),
        ProblemKind::WrongType {
            expected: expected.as_str(),
            found: type_name(value.get_ref()),
        },
        Some(help),
    );
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use toml::Spanned;

    use super::*;

    fn value(text: &str) -> DeValue<'_> {
        match DeValue::parse(text) {
            Ok(value) => value.into_inner(),
            Err(error) => panic!("{text} is a TOML value: {error}"),
        }
    }

    #[test]
    fn display_is_the_type_with_its_article() {
        let cases = [
            (Expected::String, "a string"),
            (Expected::Integer, "an integer"),
            (Expected::Boolean, "a boolean"),
            (Expected::ArrayOfStrings, "an array of strings"),
            (Expected::Table, "a table"),
            (Expected::DurationString, "a duration string"),
            (Expected::SizeString, "a size string"),
        ];
        for (expected, text) in cases {
            assert_eq!(expected.to_string(), text);
            assert_eq!(expected.as_str(), text);
        }
    }

    #[test]
    fn found_types_are_named_with_their_article() {
        let cases = [
            ("\"x\"", "a string"),
            ("1", "an integer"),
            ("1.5", "a float"),
            ("true", "a boolean"),
            ("1979-05-27", "a date-time"),
            ("[1]", "an array"),
            ("{ a = 1 }", "a table"),
        ];
        for (text, name) in cases {
            assert_eq!(type_name(&value(text)), name, "{text}");
        }
    }

    #[test]
    fn string_help_names_the_key_but_not_an_array_index() {
        assert_eq!(
            Expected::String.help("cwd"),
            "put the value in double quotes: cwd = \"…\""
        );
        assert_eq!(
            Expected::String.help("args[2]"),
            "put each entry in double quotes"
        );
    }

    #[test]
    fn a_wrong_type_is_reported_at_the_value_with_help_for_its_key_or_the_callers() {
        let text = "[services.a]\ncwd = 1.5\nenv = 2\n";
        let mut ctx = Ctx::new(text);
        let at = |needle: &'static str| {
            let start = text.find(needle).unwrap_or_default();
            Spanned::new(start..start + needle.len(), value(needle))
        };
        wrong_type(&mut ctx, "services.a.cwd", &at("1.5"), Expected::String);
        wrong_type_with_help(
            &mut ctx,
            "services.a.env",
            &at("2"),
            Expected::Table,
            "env is a table".to_owned(),
        );
        let reported: Vec<(String, Option<&str>)> = ctx
            .problems
            .iter()
            .map(|problem| (problem.to_string(), problem.help.as_deref()))
            .collect();
        assert_eq!(
            reported,
            [
                (
                    "2:7: services.a.cwd: expected a string, found a float".to_owned(),
                    Some("put the value in double quotes: cwd = \"…\"")
                ),
                (
                    "3:7: services.a.env: expected a table, found an integer".to_owned(),
                    Some("env is a table")
                ),
            ]
        );
    }
}
