//! Compact storage of captured lines: a [`Batch`] holds the lines of one pipe read in one string
//! with one timestamp, and a service's [`Tail`] keeps the newest lines, within a line and a byte
//! bound, as a queue of shared batches.
//! Protocol [`LogEntry`] values are built only when someone asks (`logs:get`, followers), so the
//! capture path costs one allocation per pipe read, not three per line.
//! This module knows nothing about files or pipes.

use std::{collections::VecDeque, sync::Arc, time::SystemTime};

use conductor_protocol::{LogEntry, LogLevel};

use crate::TAIL_ENTRY_OVERHEAD_BYTES;

/// Metadata of one line inside a [`Batch`]; its text runs from the previous line's end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineMeta {
    pub(crate) end: u32,
    pub(crate) level: LogLevel,
    pub(crate) continuation: bool,
}

/// The lines of one pipe read (or one `record` call), sharing one timestamp.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Milliseconds since the Unix epoch; never smaller than the previous batch's of the service.
    pub(crate) timestamp_ms: u64,
    /// Global capture order, to merge services whose batches share a millisecond.
    pub(crate) seq: u64,
    pub(crate) text: String,
    pub(crate) lines: Vec<LineMeta>,
}

impl Batch {
    pub(crate) fn new(text_capacity: usize) -> Batch {
        Batch {
            timestamp_ms: 0,
            seq: 0,
            text: String::with_capacity(text_capacity),
            lines: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, message: &str, level: LogLevel, continuation: bool) {
        self.text.push_str(message);
        self.lines.push(LineMeta {
            // Pieces are at most 64 KiB (192 KiB once decoded) and a batch holds one pipe read.
            end: u32::try_from(self.text.len()).unwrap_or(u32::MAX),
            level,
            continuation,
        });
    }

    /// The lines as (message, metadata).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, LineMeta)> {
        let mut start = 0usize;
        self.lines.iter().map(move |meta| {
            let end = meta.end as usize;
            let message = self.text.get(start..end).unwrap_or_default();
            start = end;
            (message, *meta)
        })
    }

    /// Line `index` as (message, metadata); an index out of range gives an empty info line.
    pub(crate) fn line(&self, index: usize) -> (&str, LineMeta) {
        let Some(meta) = self.lines.get(index) else {
            let empty = LineMeta {
                end: 0,
                level: LogLevel::Info,
                continuation: false,
            };
            return ("", empty);
        };
        let start = match index.checked_sub(1) {
            Some(previous) => self.lines[previous].end as usize,
            None => 0,
        };
        (
            self.text.get(start..meta.end as usize).unwrap_or_default(),
            *meta,
        )
    }

    /// The in-memory footprint counted against the disk backlog limit.
    pub(crate) fn footprint(&self) -> usize {
        self.text.capacity() + self.lines.capacity() * std::mem::size_of::<LineMeta>()
    }

    /// The timestamp in the wire and file format (ISO-8601 UTC, milliseconds).
    pub(crate) fn timestamp(&self) -> String {
        format_timestamp(self.timestamp_ms)
    }
}

pub(crate) fn format_timestamp(timestamp_ms: u64) -> String {
    let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(timestamp_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// What one line counts against a tail's byte bound (see [`crate::LogConfig::tail_bytes`]).
fn counted_bytes(message: &str) -> usize {
    message.len() + TAIL_ENTRY_OVERHEAD_BYTES
}

/// The newest lines of one service: at most `max_lines` of them, counting at most `max_bytes`.
#[derive(Debug)]
pub(crate) struct Tail {
    max_lines: usize,
    max_bytes: usize,
    batches: VecDeque<Arc<Batch>>,
    /// Lines of the front batch already evicted.
    skip: usize,
    len: usize,
    /// The [`counted_bytes`] of the kept lines.
    bytes: usize,
}

impl Tail {
    pub(crate) fn new(max_lines: usize, max_bytes: usize) -> Tail {
        Tail {
            max_lines,
            max_bytes,
            batches: VecDeque::new(),
            skip: 0,
            len: 0,
            bytes: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `batch`, then drops the oldest lines until both bounds hold; a line that alone
    /// counts more than `max_bytes` is not kept at all.
    pub(crate) fn push(&mut self, batch: Arc<Batch>) {
        if batch.lines.is_empty() || self.max_lines == 0 {
            return;
        }
        self.len += batch.lines.len();
        self.bytes += batch
            .iter()
            .map(|(message, _)| counted_bytes(message))
            .sum::<usize>();
        self.batches.push_back(batch);
        // One line at a time, because with the byte bound the number to drop depends on their
        // lengths; each line is dropped once, so this costs O(1) per line captured.
        while self.len > self.max_lines || self.bytes > self.max_bytes {
            let Some(front) = self.batches.front() else {
                break;
            };
            self.bytes -= counted_bytes(front.line(self.skip).0);
            self.len -= 1;
            self.skip += 1;
            if self.skip == front.lines.len() {
                self.batches.pop_front();
                self.skip = 0;
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.skip = 0;
        self.len = 0;
        self.bytes = 0;
    }

    /// The newest `n` lines, oldest first, as (batch, index of the line in the batch).
    pub(crate) fn newest(&self, n: usize) -> Vec<(Arc<Batch>, usize)> {
        let mut out = Vec::with_capacity(n.min(self.len));
        'batches: for (position, batch) in self.batches.iter().enumerate().rev() {
            let first = if position == 0 { self.skip } else { 0 };
            for index in (first..batch.lines.len()).rev() {
                if out.len() == n {
                    break 'batches;
                }
                out.push((Arc::clone(batch), index));
            }
        }
        out.reverse();
        out
    }
}

/// Builds protocol entries for (service, batch, line index) triples, formatting each batch's
/// timestamp once.
pub(crate) fn materialise<'a>(
    lines: impl IntoIterator<Item = (&'a str, &'a Arc<Batch>, usize)>,
) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    let mut current: Option<(&Arc<Batch>, String)> = None;
    for (service, batch, index) in lines {
        let timestamp = match &current {
            Some((cached, timestamp)) if Arc::ptr_eq(cached, batch) => timestamp.clone(),
            _ => {
                let timestamp = batch.timestamp();
                current = Some((batch, timestamp.clone()));
                timestamp
            }
        };
        let (message, meta) = batch.line(index);
        entries.push(LogEntry {
            timestamp,
            service: service.to_string(),
            level: meta.level,
            message: message.to_string(),
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: usize, n: usize) -> Arc<Batch> {
        let mut batch = Batch::new(0);
        for number in first..first + n {
            batch.push(&number.to_string(), LogLevel::Info, false);
        }
        Arc::new(batch)
    }

    fn numbers(tail: &Tail, n: usize) -> Vec<String> {
        tail.newest(n)
            .iter()
            .map(|(batch, index)| batch.line(*index).0.to_string())
            .collect()
    }

    #[test]
    fn tail_keeps_only_the_newest_capacity_lines() {
        let mut tail = Tail::new(5, usize::MAX);
        tail.push(batch(0, 3));
        tail.push(batch(3, 3));
        assert_eq!(tail.len(), 5);
        assert_eq!(numbers(&tail, 100), ["1", "2", "3", "4", "5"]);
        tail.push(batch(6, 7));
        assert_eq!(tail.len(), 5);
        assert_eq!(tail.batches.len(), 1, "fully evicted batches are released");
        assert_eq!(numbers(&tail, 100), ["8", "9", "10", "11", "12"]);
        assert_eq!(numbers(&tail, 2), ["11", "12"]);
        assert_eq!(numbers(&tail, 0), Vec::<String>::new());
    }

    #[test]
    fn issue_12_long_lines_are_evicted_by_bytes_keeping_the_newest_that_fit() {
        let max_bytes = 10_000;
        let mut tail = Tail::new(1000, max_bytes);
        // Lines of 1000 bytes, a few to a batch: the line bound alone would keep all 300.
        let long_line = |number: usize| format!("{number:04}{}", "x".repeat(996));
        for first in (0..300).step_by(3) {
            let mut batch = Batch::new(0);
            for number in first..first + 3 {
                batch.push(&long_line(number), LogLevel::Info, false);
            }
            tail.push(Arc::new(batch));

            let kept = tail.newest(usize::MAX);
            let kept_bytes: usize = kept
                .iter()
                .map(|(batch, index)| counted_bytes(batch.line(*index).0))
                .sum();
            assert!(kept_bytes <= max_bytes, "{kept_bytes} bytes kept");
            assert_eq!(
                tail.bytes, kept_bytes,
                "the running count matches the lines"
            );
            let numbers: Vec<usize> = kept
                .iter()
                .map(|(batch, index)| batch.line(*index).0[..4].parse().expect("a number"))
                .collect();
            let newest = first + 2;
            let fitting = (max_bytes / counted_bytes(&long_line(0))).min(newest + 1);
            let expected: Vec<usize> = (newest + 1 - fitting..=newest).collect();
            assert_eq!(numbers, expected, "the newest lines that fit, oldest first");
        }
        // The text really held: only the oldest batch may still hold evicted lines.
        let held: usize = tail.batches.iter().map(|batch| batch.text.len()).sum();
        assert!(held <= max_bytes + 3 * 1000, "{held} bytes of text held");
    }

    #[test]
    fn a_line_counting_more_than_the_byte_bound_is_not_kept() {
        let mut tail = Tail::new(10, 2 * counted_bytes("1"));
        tail.push(batch(0, 2));
        tail.push(Arc::new({
            let mut batch = Batch::new(0);
            batch.push(&"y".repeat(1000), LogLevel::Info, false);
            batch
        }));
        assert_eq!(tail.len(), 0);
        assert_eq!(tail.bytes, 0);
        assert!(tail.batches.is_empty(), "no batch is held for nothing");
        tail.push(batch(7, 1));
        assert_eq!(numbers(&tail, 100), ["7"]);
    }

    #[test]
    fn materialise_keeps_order_and_levels() {
        let mut first = Batch::new(0);
        first.timestamp_ms = 1_700_000_000_123;
        first.push("a", LogLevel::Warn, false);
        first.push("b", LogLevel::Error, false);
        let first = Arc::new(first);
        let entries = materialise([("svc", &first, 0), ("svc", &first, 1)]);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].timestamp, "2023-11-14T22:13:20.123Z");
        assert_eq!(entries[0].message, "a");
        assert_eq!(entries[0].level, LogLevel::Warn);
        assert_eq!(entries[1].message, "b");
        assert_eq!(entries[1].service, "svc");
    }
}
