//! Small spellings the targets share: durations, sizes, names and systemd's quoting rules.
//!
//! Pure string functions; which target uses which is decided in the target modules.

use std::time::Duration;

/// A duration as systemd and Compose both read it: whole seconds as `"10s"`, else `"500ms"`.
pub(crate) fn duration(value: Duration) -> String {
    if value.subsec_nanos() == 0 {
        format!("{}s", value.as_secs())
    } else {
        format!("{}ms", value.as_millis().max(1))
    }
}

/// Whole seconds rounded up, at least `min`: Kubernetes counts probe timings in seconds.
pub(crate) fn seconds_up(value: Duration, min: u64) -> u64 {
    let seconds = value.as_secs() + u64::from(value.subsec_nanos() > 0);
    seconds.max(min)
}

/// A Kubernetes quantity for bytes: `"512Mi"` when it divides evenly, else the byte count.
pub(crate) fn quantity(bytes: u64) -> String {
    for (shift, unit) in [(30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The app's name as a name part on every target: lowercase letters, digits and `-`.
pub(crate) fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_owned();
    if slug.is_empty() {
        "app".to_owned()
    } else {
        slug
    }
}

/// A service's name as Kubernetes and image paths take it: lowercase, `_` as `-`.
pub(crate) fn dns_label(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// One word of an `Exec*=` line: `%` and `$` doubled (systemd expands specifiers and
/// variables there), quoted when it holds a space, a quote, a backslash or is a bare `;`.
pub(crate) fn exec_word(word: &str) -> String {
    exec_word_native(&word.replace('%', "%%"))
}

/// One word of an `Exec*=` line that is already unit text (it holds `%S` on purpose): only
/// `$` is doubled, and it is quoted as [`exec_word`] quotes.
pub(crate) fn exec_word_native(word: &str) -> String {
    let escaped = word.replace('$', "$$");
    let needs_quotes = escaped.is_empty()
        || escaped == ";"
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || "\"'\\".contains(c));
    if needs_quotes {
        format!("\"{}\"", c_escape(&escaped))
    } else {
        escaped
    }
}

/// An `Environment=` assignment, always quoted; `%` doubled (specifiers are expanded there).
pub(crate) fn environment(name: &str, value: &str) -> String {
    format!(
        "\"{}={}\"",
        c_escape(name),
        c_escape(&value.replace('%', "%%"))
    )
}

/// An `Environment=` assignment whose value is already systemd text (it holds specifiers
/// such as `%S` on purpose).
pub(crate) fn environment_raw(name: &str, value: &str) -> String {
    format!("\"{}={}\"", c_escape(name), c_escape(value))
}

/// `path` without `.` and `..` components (lexically: no file system is read), as systemd
/// refuses a program path that is not normalised. The registry makes paths absolute by joining
/// them to its directory, so `../bin/x` arrives as `/srv/app/../bin/x`.
pub(crate) fn normalize(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A path in a unit setting (`WorkingDirectory=`, `MemoryMax=`…): `%` doubled.
pub(crate) fn setting(value: &str) -> String {
    value.replace('%', "%%")
}

fn c_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_milliseconds_only_when_needed() {
        assert_eq!(duration(Duration::from_secs(10)), "10s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(seconds_up(Duration::from_millis(300), 1), 1);
        assert_eq!(seconds_up(Duration::from_millis(2500), 1), 3);
        assert_eq!(seconds_up(Duration::ZERO, 0), 0);
    }

    #[test]
    fn names_become_lowercase_words_joined_by_dashes() {
        assert_eq!(slug("FACTSWAY"), "factsway");
        assert_eq!(slug("My App!"), "my-app");
        assert_eq!(slug("%%"), "app");
        assert_eq!(dns_label("Pdf_Export"), "pdf-export");
        assert_eq!(quantity(512 << 20), "512Mi");
        assert_eq!(quantity(1000), "1000");
    }

    #[test]
    fn paths_lose_dot_components() {
        assert_eq!(
            normalize("/srv/app/fixtures/../target/./x"),
            "/srv/app/target/x"
        );
        assert_eq!(normalize("/../x/"), "/x");
        assert_eq!(normalize("node"), "node");
    }

    #[test]
    fn systemd_words_are_escaped_and_quoted_as_needed() {
        assert_eq!(exec_word("dist/index.js"), "dist/index.js");
        assert_eq!(exec_word("50%"), "50%%");
        assert_eq!(exec_word("$HOME"), "$$HOME");
        assert_eq!(exec_word("a b"), "\"a b\"");
        assert_eq!(exec_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(exec_word(""), "\"\"");
        assert_eq!(exec_word(";"), "\";\"");
        assert_eq!(exec_word_native("%S/my app"), "\"%S/my app\"");
        assert_eq!(environment("A", "x%y \"z\""), "\"A=x%%y \\\"z\\\"\"");
        assert_eq!(environment_raw("A", "%S/app"), "\"A=%S/app\"");
    }
}
