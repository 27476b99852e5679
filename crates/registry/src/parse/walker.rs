//! The generic part of reading spanned TOML: a table with its dotted path ([`Section`]) and
//! readers that take one typed value out of it, reporting a missing, unknown or mistyped key
//! where it is written and going on.
//!
//! Nothing here knows the registry's sections; which keys a table has and what they mean is
//! the job of the section readers beside this file.

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::ProblemKind;
use crate::keys;
use crate::suggest::closest;

use super::ctx::Ctx;
use super::expected::{Expected, wrong_type, wrong_type_with_help};
use super::{Span, Value};

/// A table being read, with its dotted path for messages.
pub(super) struct Section<'a, 'i> {
    pub(super) table: &'a DeTable<'i>,
    pub(super) path: String,
    /// Where the table is named (its key), for problems about a key that is missing.
    pub(super) span: Option<Span>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// The document's top-level table, whose keys have no prefix.
    pub(super) fn root(table: &'a DeTable<'i>) -> Self {
        Section {
            table,
            path: String::new(),
            span: None,
        }
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    /// Reports every key not in `known`, suggesting the closest known one.
    pub(super) fn check_keys(&self, ctx: &mut Ctx<'_>, table: &keys::Table) {
        let known = table.names();
        let mut keys: Vec<&Spanned<_>> = self.table.keys().collect();
        keys.sort_by_key(|key| key.span().start);
        for key in keys {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let header = if self.path.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in [{}]", self.path)
            };
            let help = match closest(name, known.iter().copied()) {
                Some(suggestion) => format!(
                    "did you mean \"{suggestion}\"? Keys allowed {header}: {}",
                    known.join(", ")
                ),
                None => format!("remove it; keys allowed {header}: {}", known.join(", ")),
            };
            ctx.report_owned(
                &self.key_path(name),
                Some(key.span()),
                ProblemKind::UnknownKey(name.to_owned()),
                Some(help),
            );
        }
    }

    /// The sub-table under `key`; a value of another type is reported.
    pub(super) fn table(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Section<'a, 'i>> {
        let value = self.get(key)?;
        let key_span = self.table.get_key_value(key).map(|(key, _)| key.span());
        match value.get_ref() {
            DeValue::Table(table) => Some(Section {
                table,
                path: self.key_path(key),
                span: key_span,
            }),
            _ => {
                wrong_type(ctx, &self.key_path(key), value, Expected::Table);
                None
            }
        }
    }

    pub(super) fn string(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Spanned<String>> {
        let value = self.get(key)?;
        as_string(ctx, &self.key_path(key), value)
    }

    /// A string that must not be empty or blank.
    pub(super) fn word(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Spanned<String>> {
        let value = self.string(ctx, key)?;
        if value.get_ref().trim().is_empty() {
            let help = if key == "command" {
                "name the program to run, like \"node\" or \"./bin/server\""
            } else {
                "give it a value, or remove the key to use the default"
            };
            ctx.report(
                &self.key_path(key),
                Some(value.span()),
                ProblemKind::Empty,
                Some(help),
            );
            return None;
        }
        Some(value)
    }

    pub(super) fn strings(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Vec<Spanned<String>>> {
        let value = self.get(key)?;
        let location = self.key_path(key);
        let DeValue::Array(items) = value.get_ref() else {
            wrong_type(ctx, &location, value, Expected::ArrayOfStrings);
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if let Some(string) = as_string(ctx, &format!("{location}[{index}]"), item) {
                strings.push(string);
            }
        }
        Some(strings)
    }

    pub(super) fn bool(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            _ => {
                wrong_type(ctx, &self.key_path(key), value, Expected::Boolean);
                None
            }
        }
    }

    pub(super) fn integer(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<(i128, Span)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Integer(integer) => {
                // TOML integers are 64-bit, so this only fails on text the parser rejected.
                let number =
                    i128::from_str_radix(integer.as_str(), integer.radix()).unwrap_or(i128::MAX);
                Some((number, value.span()))
            }
            _ => {
                wrong_type(ctx, &self.key_path(key), value, Expected::Integer);
                None
            }
        }
    }

    pub(super) fn bounded<T: TryFrom<i128>>(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        min: i128,
        max: i128,
    ) -> Option<T> {
        let (number, span) = self.integer(ctx, key)?;
        let in_range = (min..=max).contains(&number);
        match T::try_from(number) {
            Ok(converted) if in_range => Some(converted),
            _ => {
                ctx.report(
                    &self.key_path(key),
                    Some(span),
                    ProblemKind::OutOfRange {
                        value: number,
                        min,
                        max,
                    },
                    None,
                );
                None
            }
        }
    }

    /// A string that must be one of `allowed`.
    pub(super) fn choice(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Option<Spanned<&'static str>> {
        let value = self.string(ctx, key)?;
        let text = value.get_ref().as_str();
        if let Some(word) = allowed.iter().find(|word| **word == text) {
            return Some(Spanned::new(value.span(), *word));
        }
        let help = closest(text, allowed.iter().copied())
            .map(|word| format!("did you mean \"{word}\"?"))
            .or_else(|| (key == "startup").then(|| {
                "\"dependency\" starts each service once its dependencies are ready, \"sequential\" one at a time in file order".to_owned()
            }));
        ctx.report_owned(
            &self.key_path(key),
            Some(value.span()),
            ProblemKind::UnknownChoice {
                value: text.to_owned(),
                allowed,
            },
            help,
        );
        None
    }

    /// A table of string values (`env = { NODE_ENV = "production" }`).
    pub(super) fn env(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<BTreeMap<String, String>> {
        let section = self.table(ctx, key)?;
        let mut env = BTreeMap::new();
        let mut entries: Vec<_> = section.table.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, value) in entries {
            let location = section.key_path(name.get_ref());
            if let DeValue::String(text) = value.get_ref() {
                env.insert(name.get_ref().to_string(), text.to_string());
            } else {
                let help = format!(
                    "environment values are strings: write {} = \"…\" with quotes",
                    name.get_ref()
                );
                wrong_type_with_help(ctx, &location, value, Expected::String, help);
            }
        }
        Some(env)
    }
}

fn as_string(ctx: &mut Ctx<'_>, location: &str, value: &Value<'_>) -> Option<Spanned<String>> {
    match value.get_ref() {
        DeValue::String(text) => Some(Spanned::new(value.span(), text.to_string())),
        _ => {
            wrong_type(ctx, location, value, Expected::String);
            None
        }
    }
}

/// Runs `read` on the top-level table of `text`, for the readers' unit tests: gives what it
/// read and each problem as the user sees it (`line:column: location: what`, then its help).
#[cfg(test)]
pub(super) fn read_toml<T>(
    text: &str,
    read: impl FnOnce(&mut Ctx<'_>, &Section<'_, '_>) -> T,
) -> (T, Vec<String>) {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => panic!("the test's TOML must parse: {error}"),
    };
    let mut ctx = Ctx::new(text);
    let read = read(&mut ctx, &Section::root(root.get_ref()));
    let problems = ctx
        .problems
        .iter()
        .map(|problem| match &problem.help {
            Some(help) => format!("{problem}\n  help: {help}"),
            None => problem.to_string(),
        })
        .collect();
    (read, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_table_knows_its_dotted_path_and_where_it_is_named() {
        let text = "[services.a]\nport = 1\n";
        let (read, problems) = read_toml(text, |ctx, root| {
            let services = root.table(ctx, "services")?;
            let service = services.table(ctx, "a")?;
            Some((service.key_path("port"), service.path, service.span))
        });
        let name_at = text.find('a').unwrap_or_default();
        assert_eq!(
            read,
            Some((
                "services.a.port".to_owned(),
                "services.a".to_owned(),
                Some(name_at..name_at + 1)
            ))
        );
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn unknown_keys_are_reported_in_file_order_with_the_closest_known_key() {
        let text = "zzz = 1\nprot = 2\n[x]\ncomand = 3\n";
        const fn key(name: &'static str) -> keys::Key {
            keys::Key {
                name,
                value: keys::Type::String,
                default: None,
                required: false,
                description: "",
            }
        }
        static ROOT: keys::Table = keys::Table {
            description: "",
            keys: &[key("port"), key("x")],
        };
        static X: keys::Table = keys::Table {
            description: "",
            keys: &[key("command")],
        };
        let (_, problems) = read_toml(text, |ctx, root| {
            root.check_keys(ctx, &ROOT);
            if let Some(x) = root.table(ctx, "x") {
                x.check_keys(ctx, &X);
            }
        });
        assert_eq!(
            problems,
            [
                "1:1: zzz: unknown key \"zzz\"\n  help: remove it; keys allowed at the top level: port, x",
                "2:1: prot: unknown key \"prot\"\n  help: did you mean \"port\"? Keys allowed at the top level: port, x",
                "4:1: x.comand: unknown key \"comand\"\n  help: did you mean \"command\"? Keys allowed in [x]: command",
            ]
        );
    }

    #[test]
    fn a_blank_word_is_reported_with_help_for_its_key() {
        let (read, problems) = read_toml("command = \" \"\nname = \"\"\n", |ctx, root| {
            (root.word(ctx, "command"), root.word(ctx, "name"))
        });
        assert_eq!(read, (None, None));
        assert_eq!(
            problems,
            [
                "1:11: command: must not be empty\n  help: name the program to run, like \"node\" or \"./bin/server\"",
                "2:8: name: must not be empty\n  help: give it a value, or remove the key to use the default",
            ]
        );
    }

    #[test]
    fn strings_keeps_the_strings_and_reports_each_other_entry_by_index() {
        let (read, problems) = read_toml("args = [\"a\", 1, \"b\"]\n", |ctx, root| {
            root.strings(ctx, "args").map(|args| {
                args.into_iter()
                    .map(Spanned::into_inner)
                    .collect::<Vec<_>>()
            })
        });
        assert_eq!(read, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(
            problems,
            [
                "1:14: args[1]: expected a string, found an integer\n  help: put each entry in double quotes"
            ]
        );
    }

    #[test]
    fn integers_keep_their_radix_and_bounded_reports_the_allowed_range() {
        let (read, problems) = read_toml(
            "mask = 0x10\nretries = 0\nhuge = 5000000000\n",
            |ctx, root| {
                (
                    root.integer(ctx, "mask").map(|(number, _)| number),
                    root.bounded::<u32>(ctx, "retries", 1, 10),
                    root.bounded::<u32>(ctx, "huge", 0, i128::MAX),
                )
            },
        );
        assert_eq!(read, (Some(16), None, None));
        assert_eq!(
            problems,
            [
                "2:11: retries: 0 is out of range (allowed: 1 to 10)".to_owned(),
                format!(
                    "3:8: huge: 5000000000 is out of range (allowed: 0 to {})",
                    i128::MAX
                ),
            ]
        );
    }

    #[test]
    fn a_choice_suggests_the_closest_word_or_explains_the_startup_modes() {
        const MODES: &[&str] = &["dependency", "sequential"];
        let (read, problems) =
            read_toml("kind = \"sequental\"\nstartup = \"fast\"\n", |ctx, root| {
                (
                    root.choice(ctx, "kind", MODES),
                    root.choice(ctx, "startup", MODES),
                )
            });
        assert_eq!(read, (None, None));
        assert_eq!(
            problems,
            [
                "1:8: kind: \"sequental\" is not one of \"dependency\", \"sequential\"\n  help: did you mean \"sequential\"?",
                "2:11: startup: \"fast\" is not one of \"dependency\", \"sequential\"\n  help: \"dependency\" starts each service once its dependencies are ready, \"sequential\" one at a time in file order",
            ]
        );
    }

    #[test]
    fn env_keeps_string_values_and_asks_for_quotes_around_the_others() {
        let (read, problems) = read_toml("env = { A = \"1\", B = 2 }\n", |ctx, root| {
            root.env(ctx, "env")
        });
        assert_eq!(
            read,
            Some(BTreeMap::from([("A".to_owned(), "1".to_owned())]))
        );
        assert_eq!(
            problems,
            [
                "1:22: env.B: expected a string, found an integer\n  help: environment values are strings: write B = \"…\" with quotes"
            ]
        );
    }

    #[test]
    fn a_missing_key_is_no_value_and_no_problem() {
        let (read, problems) = read_toml("", |ctx, root| {
            (
                root.table(ctx, "t").is_none(),
                root.string(ctx, "s"),
                root.bool(ctx, "b"),
                root.integer(ctx, "i"),
                root.env(ctx, "env"),
            )
        });
        assert_eq!(read, (true, None, None, None, None));
        assert_eq!(problems, Vec::<String>::new());
    }
}
