//! Guesses the level of one output line: a JSON line's `level`/`severity` field, else a level
//! word at the start of the line (after an optional timestamp), else the stream's default.
//! Checks only the first bytes of a line and parses JSON only for lines starting with `{`, so it
//! stays cheap at a million lines per second. It never fails and never changes the line.

use conductor_protocol::LogLevel;
use serde::Deserialize;

use crate::Stream;

/// How far into a line a level word is looked for (after leading timestamps and brackets).
const SCAN_BYTES: usize = 64;

/// The level of `line` read from `stream`.
///
/// In order:
/// 1. a line starting with `{` that is a JSON object with a `level` or `severity` field: its
///    value, a name (`"warn"`, `"WARNING"`, `"fatal"` …) or a pino/bunyan number (10 and 20
///    debug, 30 info, 40 warn, 50 and above error);
/// 2. a logfmt line starting with `level=` or with `time=`/`ts=` followed by `level=`;
/// 3. a glog prefix: `I`, `W`, `E` or `F` followed by four digits and a space (`W0102 15:04…`);
/// 4. a level word as the first word, in any case, optionally bracketed and followed by any
///    non-alphanumeric character (`INFO`, `[warn]`, `ERROR:`, `<debug>`, `Warning -`), after
///    up to two leading timestamp-like tokens (`2024-05-01T10:00:00Z`, `[12:00:01]`);
/// 5. otherwise info for stdout and warn for stderr.
///
/// Level words: `trace`, `debug`, `dbg`, `verbose` (debug); `info`, `information`, `notice`
/// (info); `warn`, `warning` (warn); `error`, `err`, `fatal`, `crit`, `critical`, `panic`,
/// `severe`, `alert`, `emerg` (error).
pub fn detect_level(line: &str, stream: Stream) -> LogLevel {
    let fallback = match stream {
        Stream::Stdout => LogLevel::Info,
        Stream::Stderr => LogLevel::Warn,
    };
    let trimmed = line.trim_start();
    let level = if trimmed.starts_with('{') {
        json_level(trimmed)
    } else {
        logfmt_level(trimmed)
            .or_else(|| glog_level(trimmed.as_bytes()))
            .or_else(|| leading_word_level(trimmed.as_bytes()))
    };
    level.unwrap_or(fallback)
}

#[derive(Deserialize)]
struct JsonLevelFields<'a> {
    #[serde(borrow, default)]
    level: Option<JsonLevel<'a>>,
    #[serde(borrow, default)]
    severity: Option<JsonLevel<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonLevel<'a> {
    Number(f64),
    Name(#[serde(borrow)] std::borrow::Cow<'a, str>),
}

fn json_level(line: &str) -> Option<LogLevel> {
    let fields: JsonLevelFields<'_> = serde_json::from_str(line).ok()?;
    match fields.level.or(fields.severity)? {
        JsonLevel::Name(name) => word_level(name.as_bytes()),
        JsonLevel::Number(number) => Some(match number {
            n if n < 30.0 => LogLevel::Debug,
            n if n < 40.0 => LogLevel::Info,
            n if n < 50.0 => LogLevel::Warn,
            _ => LogLevel::Error,
        }),
    }
}

/// `level=warn …`, `time="…" level=warn …` (logrus), `ts=… level=warn …` (go-kit).
fn logfmt_level(line: &str) -> Option<LogLevel> {
    let rest = if let Some(rest) = line.strip_prefix("level=") {
        rest
    } else if line.starts_with("time=") || line.starts_with("ts=") {
        let head = &line.as_bytes()[..line.len().min(SCAN_BYTES * 2)];
        let at = memchr::memmem::find(head, b" level=")?;
        &line[at + " level=".len()..]
    } else {
        return None;
    };
    let value = rest.trim_start_matches('"').as_bytes();
    let end = value
        .iter()
        .position(|byte| !byte.is_ascii_alphabetic())
        .unwrap_or(value.len());
    word_level(&value[..end])
}

/// glog/klog: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg`.
fn glog_level(line: &[u8]) -> Option<LogLevel> {
    let [letter, digits @ .., b' '] = line.get(..6)? else {
        return None;
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match letter {
        b'I' => Some(LogLevel::Info),
        b'W' => Some(LogLevel::Warn),
        b'E' | b'F' => Some(LogLevel::Error),
        _ => None,
    }
}

fn leading_word_level(line: &[u8]) -> Option<LogLevel> {
    let mut rest = &line[..line.len().min(SCAN_BYTES)];
    // Skip up to two timestamp-like tokens (a date, a time), each maybe bracketed.
    for _ in 0..2 {
        let token = skip_opening(rest);
        if !token.first().is_some_and(u8::is_ascii_digit) {
            break;
        }
        let end = token
            .iter()
            .position(|byte| !is_timestamp_byte(*byte))
            .unwrap_or(token.len());
        let after = token[end..].strip_prefix(b"]").unwrap_or(&token[end..]);
        rest = trim_ascii_start(after);
    }
    let word = skip_opening(rest);
    let end = word
        .iter()
        .position(|byte| !byte.is_ascii_alphabetic())
        .unwrap_or(word.len());
    // The word must end at a non-alphanumeric byte, so `INFORMAL` or `error42` is no level.
    if word.get(end).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    word_level(&word[..end])
}

/// Skips one opening bracket of the kinds log formats put around levels and timestamps.
fn skip_opening(bytes: &[u8]) -> &[u8] {
    match bytes.first() {
        Some(b'[' | b'<' | b'(') => &bytes[1..],
        _ => bytes,
    }
}

fn is_timestamp_byte(byte: u8) -> bool {
    byte.is_ascii_digit() || matches!(byte, b'-' | b':' | b'.' | b',' | b'/' | b'+' | b'T' | b'Z')
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// The level a level word names, in any case.
fn word_level(word: &[u8]) -> Option<LogLevel> {
    if word.is_empty() || word.len() > 11 {
        return None;
    }
    let mut lower = [0u8; 11];
    let lower = &mut lower[..word.len()];
    lower.copy_from_slice(word);
    lower.make_ascii_lowercase();
    Some(match &*lower {
        b"trace" | b"debug" | b"dbg" | b"verbose" => LogLevel::Debug,
        b"info" | b"information" | b"notice" => LogLevel::Info,
        b"warn" | b"warning" => LogLevel::Warn,
        b"error" | b"err" | b"fatal" | b"crit" | b"critical" | b"panic" | b"severe" | b"alert"
        | b"emerg" => LogLevel::Error,
        _ => return None,
    })
}

/// Every level word with its level, for tests.
#[cfg(test)]
pub(crate) const LEVEL_WORDS: &[(&str, LogLevel)] = &[
    ("trace", LogLevel::Debug),
    ("debug", LogLevel::Debug),
    ("dbg", LogLevel::Debug),
    ("verbose", LogLevel::Debug),
    ("info", LogLevel::Info),
    ("information", LogLevel::Info),
    ("notice", LogLevel::Info),
    ("warn", LogLevel::Warn),
    ("warning", LogLevel::Warn),
    ("error", LogLevel::Error),
    ("err", LogLevel::Error),
    ("fatal", LogLevel::Error),
    ("crit", LogLevel::Error),
    ("critical", LogLevel::Error),
    ("panic", LogLevel::Error),
    ("severe", LogLevel::Error),
    ("alert", LogLevel::Error),
    ("emerg", LogLevel::Error),
];

#[cfg(test)]
mod tests {
    use super::*;
    use LogLevel::{Debug, Error, Info, Warn};
    use Stream::{Stderr, Stdout};
    use proptest::prelude::*;

    #[test]
    fn level_detection_table() {
        let table: &[(&str, Stream, LogLevel)] = &[
            // Stream defaults.
            ("listening on port 3001", Stdout, Info),
            ("listening on port 3001", Stderr, Warn),
            ("", Stdout, Info),
            ("", Stderr, Warn),
            // Leading words, any case, with the usual decorations.
            ("INFO server started", Stderr, Info),
            ("info: server started", Stderr, Info),
            ("[warn] disk almost full", Stdout, Warn),
            ("[WARNING] disk almost full", Stdout, Warn),
            ("ERROR: connection refused", Stdout, Error),
            ("Error - connection refused", Stdout, Error),
            ("<debug> cache miss", Stdout, Debug),
            ("DEBUG cache miss", Stdout, Debug),
            ("TRACE enter fn", Stdout, Debug),
            ("FATAL out of memory", Stdout, Error),
            ("panic: runtime error: index out of range", Stderr, Error),
            ("WARNING:root:deprecated call", Stdout, Warn),
            (
                "INFO:     Uvicorn running on http://127.0.0.1:8000",
                Stderr,
                Info,
            ),
            ("  ERROR indented", Stdout, Error),
            ("ERROR", Stdout, Error),
            // Not level words.
            ("INFORMAL meeting", Stderr, Warn),
            ("errors: 0", Stdout, Info),
            ("error42 happened", Stderr, Warn),
            ("Started in 3 ms", Stdout, Info),
            ("[server] ready", Stderr, Warn),
            // After timestamps.
            (
                "2024-05-01T10:00:00.123Z  WARN conductor: slow probe",
                Stdout,
                Warn,
            ),
            ("[2024-05-01T10:00:00Z ERROR my_crate] boom", Stdout, Error),
            ("2024-05-01 10:00:00,123 ERROR boom", Stdout, Error),
            ("[10:00:00] [info] ok", Stderr, Info),
            ("2024-05-01 10:00:00 something happened", Stderr, Warn),
            // glog.
            ("W0102 15:04:05.000000   123 main.go:10] slow", Stdout, Warn),
            (
                "E0102 15:04:05.000000   123 main.go:10] boom",
                Stdout,
                Error,
            ),
            (
                "F0102 15:04:05.000000   123 main.go:10] dead",
                Stdout,
                Error,
            ),
            ("I0102 15:04:05.000000   123 main.go:10] fine", Stderr, Info),
            ("W01 short", Stdout, Info),
            // logfmt.
            ("level=warn msg=\"slow\"", Stdout, Warn),
            (
                "time=\"2024-05-01T10:00:00Z\" level=error msg=boom",
                Stdout,
                Error,
            ),
            ("ts=2024-05-01T10:00:00Z level=debug msg=x", Stdout, Debug),
            // JSON.
            (r#"{"level":"error","msg":"boom"}"#, Stdout, Error),
            (r#"{"msg":"x","level":"WARNING"}"#, Stdout, Warn),
            (r#"{"severity":"INFO","message":"ok"}"#, Stderr, Info),
            (r#"{"level":30,"msg":"pino info"}"#, Stderr, Info),
            (r#"{"level":40,"msg":"pino warn"}"#, Stdout, Warn),
            (r#"{"level":50,"msg":"pino error"}"#, Stdout, Error),
            (r#"{"level":20,"msg":"pino debug"}"#, Stdout, Debug),
            (r#"{"level":"\u0065rror"}"#, Stdout, Error),
            (r#"{"msg":"no level"}"#, Stderr, Warn),
            (r#"{"level":"loud"}"#, Stdout, Info),
            (r#"{"level": ["not", "a", "level"]}"#, Stderr, Warn),
            ("{not json ERROR", Stdout, Info),
            ("[1,2,3]", Stdout, Info),
        ];
        let mut wrong = Vec::new();
        for (line, stream, expected) in table {
            let seen = detect_level(line, *stream);
            if seen != *expected {
                wrong.push(format!(
                    "{line:?} on {stream:?}: expected {expected:?}, got {seen:?}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn stderr_without_a_level_word_is_warn() {
        assert_eq!(detect_level("something happened", Stderr), Warn);
        assert_eq!(detect_level("something happened", Stdout), Info);
    }

    fn decorated(word: &str, style: usize) -> String {
        match style {
            0 => word.to_uppercase(),
            1 => format!("[{word}]"),
            2 => format!("{}:", word.to_uppercase()),
            3 => {
                let mut chars = word.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase());
                format!(
                    "{}{} -",
                    first.into_iter().collect::<String>(),
                    chars.as_str()
                )
            }
            _ => format!("2024-05-01T10:00:00.123Z {}", word.to_uppercase()),
        }
    }

    proptest! {
        #[test]
        fn a_line_built_from_a_level_word_parses_back_to_its_level(
            word in 0..LEVEL_WORDS.len(),
            style in 0..5usize,
            message in ".*",
            stderr: bool,
        ) {
            let (word, level) = LEVEL_WORDS[word];
            let line = format!("{} {message}", decorated(word, style));
            let stream = if stderr { Stderr } else { Stdout };
            prop_assert_eq!(detect_level(&line, stream), level, "line {:?}", line);
        }

        #[test]
        fn json_level_fields_parse_back(word in 0..LEVEL_WORDS.len(), message in ".*") {
            let (word, level) = LEVEL_WORDS[word];
            let line = serde_json::json!({"msg": message, "level": word}).to_string();
            prop_assert_eq!(detect_level(&line, Stderr), level);
        }

        #[test]
        fn arbitrary_text_never_panics(line in "\\PC*", stderr: bool) {
            let stream = if stderr { Stderr } else { Stdout };
            let _ = detect_level(&line, stream);
        }
    }
}
