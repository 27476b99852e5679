//! Cuts the byte stream of a pipe into lines: LF or CRLF terminated, over-long lines split into
//! pieces of at most [`MAX_LINE_BYTES`] marked as continuations.
//! It works on bytes and never fails: decoding (lossy UTF-8) and level detection happen later.
//! It does no I/O and keeps no more than one unfinished line between calls.

/// The longest piece of a line the framer emits; a longer line is split into several pieces.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One piece of a line as cut by [`LineFramer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The bytes, without the line terminator.
    pub bytes: &'a [u8],
    /// Whether this piece continues the line of the previous piece (the line was longer than the
    /// framer's limit and was split).
    pub continuation: bool,
}

/// Incremental line framer: feed it chunks with [`LineFramer::push`], call
/// [`LineFramer::finish`] at end of stream.
///
/// Lines are terminated by `\n`; a `\r` right before it is removed.
/// A line longer than the limit is emitted as pieces of at most the limit, cut on a UTF-8
/// character boundary where the bytes allow it, every piece after the first flagged
/// [`Piece::continuation`].
/// Complete lines inside a chunk are emitted without copying.
#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    /// The unfinished line carried over from the previous chunk.
    partial: Vec<u8>,
    /// Whether pieces of the current line were already emitted.
    continuing: bool,
}

impl Default for LineFramer {
    fn default() -> Self {
        LineFramer::new()
    }
}

impl LineFramer {
    /// A framer splitting lines longer than [`MAX_LINE_BYTES`].
    pub fn new() -> LineFramer {
        LineFramer::with_max_line(MAX_LINE_BYTES)
    }

    /// A framer splitting lines longer than `max_line` bytes (at least 4, so that any UTF-8
    /// character fits in one piece).
    pub fn with_max_line(max_line: usize) -> LineFramer {
        LineFramer {
            max_line: max_line.max(4),
            partial: Vec::new(),
            continuing: false,
        }
    }

    /// Frames `chunk`, calling `emit` for every piece completed by it, in order.
    pub fn push(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(Piece<'_>)) {
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(end) => {
                    self.partial.extend_from_slice(&chunk[..end]);
                    chunk = &chunk[end + 1..];
                    let line = std::mem::take(&mut self.partial);
                    emit_line(self.max_line, strip_cr(&line), self.continuing, emit);
                    self.continuing = false;
                    // Keep the allocation for the next carried-over line.
                    self.partial = line;
                    self.partial.clear();
                }
                None => {
                    self.partial.extend_from_slice(chunk);
                    self.split_partial(emit);
                    return;
                }
            }
        }
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            emit_line(
                self.max_line,
                strip_cr(&chunk[..end]),
                self.continuing,
                emit,
            );
            self.continuing = false;
            chunk = &chunk[end + 1..];
        }
        self.partial.extend_from_slice(chunk);
        self.split_partial(emit);
    }

    /// Emits the unterminated last line, if any; the framer is then ready for a new stream.
    pub fn finish(&mut self, emit: &mut impl FnMut(Piece<'_>)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            emit_line(self.max_line, strip_cr(&line), self.continuing, emit);
        }
        self.continuing = false;
    }

    /// Emits full-size pieces of an unfinished line that already exceeds the limit, so the
    /// carried-over buffer stays bounded whatever the child writes.
    fn split_partial(&mut self, emit: &mut impl FnMut(Piece<'_>)) {
        // A trailing `\r` may be the first half of a CRLF: it does not count towards the limit,
        // so a line of exactly the limit followed by CRLF is not split.
        let content = |partial: &[u8]| partial.len() - usize::from(partial.ends_with(b"\r"));
        if content(&self.partial) <= self.max_line {
            return;
        }
        let mut start = 0;
        while content(&self.partial[start..]) > self.max_line {
            let rest = &self.partial[start..];
            let cut = char_boundary_cut(rest, self.max_line);
            emit(Piece {
                bytes: &rest[..cut],
                continuation: self.continuing,
            });
            self.continuing = true;
            start += cut;
        }
        self.partial.drain(..start);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Emits a complete line, split into pieces if it is longer than `max_line`.
fn emit_line(
    max_line: usize,
    mut line: &[u8],
    mut continuation: bool,
    emit: &mut impl FnMut(Piece<'_>),
) {
    while line.len() > max_line {
        let cut = char_boundary_cut(line, max_line);
        emit(Piece {
            bytes: &line[..cut],
            continuation,
        });
        continuation = true;
        line = &line[cut..];
    }
    emit(Piece {
        bytes: line,
        continuation,
    });
}

/// Where to cut `bytes` (longer than `max`) so the first piece is at most `max` bytes and, when
/// the bytes are UTF-8 there, no character is cut in two (which would turn it into two
/// replacement characters after decoding).
fn char_boundary_cut(bytes: &[u8], max: usize) -> usize {
    // Look back at most 3 bytes for the start of a multi-byte character straddling the cut.
    for back in 1..=3 {
        let Some(index) = max.checked_sub(back) else {
            break;
        };
        let byte = bytes[index];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: keep looking for the lead byte
        }
        let width = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if index + width > max && index > 0 {
            index
        } else {
            max
        };
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(max_line: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut framer = LineFramer::with_max_line(max_line);
        let mut out = Vec::new();
        let mut emit = |piece: Piece<'_>| {
            out.push((
                String::from_utf8_lossy(piece.bytes).into_owned(),
                piece.continuation,
            ));
        };
        for chunk in chunks {
            framer.push(chunk, &mut emit);
        }
        framer.finish(&mut emit);
        out
    }

    fn whole(lines: &[&str]) -> Vec<(String, bool)> {
        lines.iter().map(|line| (line.to_string(), false)).collect()
    }

    #[test]
    fn lf_and_crlf_lines_lose_their_terminators() {
        assert_eq!(
            frame(100, &[b"a\nb\r\nc\r\n\n"]),
            whole(&["a", "b", "c", ""])
        );
    }

    #[test]
    fn lines_spanning_chunks_are_joined() {
        assert_eq!(
            frame(100, &[b"hel", b"lo\r", b"\nwor", b"ld\n"]),
            whole(&["hello", "world"])
        );
    }

    #[test]
    fn unterminated_last_line_is_emitted_at_finish() {
        assert_eq!(frame(100, &[b"a\nlast"]), whole(&["a", "last"]));
        assert_eq!(frame(100, &[b"a\n"]), whole(&["a"]));
    }

    #[test]
    fn long_line_in_one_chunk_is_split_into_continuations() {
        assert_eq!(
            frame(4, &[b"abcdefghij\nk\n"]),
            vec![
                ("abcd".to_string(), false),
                ("efgh".to_string(), true),
                ("ij".to_string(), true),
                ("k".to_string(), false),
            ]
        );
    }

    #[test]
    fn long_line_across_chunks_is_split_without_buffering_it_whole() {
        let mut framer = LineFramer::with_max_line(4);
        let mut pieces = Vec::new();
        framer.push(b"abcdef", &mut |piece| pieces.push(piece.bytes.to_vec()));
        assert_eq!(
            pieces,
            vec![b"abcd".to_vec()],
            "a full piece goes out early"
        );
        assert_eq!(framer.partial, b"ef");
        framer.push(b"gh\n", &mut |piece| {
            pieces.push(piece.bytes.to_vec());
            assert!(piece.continuation);
        });
        assert_eq!(pieces, vec![b"abcd".to_vec(), b"efgh".to_vec()]);
    }

    #[test]
    fn line_of_exactly_the_limit_with_crlf_split_across_chunks_is_not_split() {
        assert_eq!(frame(4, &[b"abcd\r", b"\nx\n"]), whole(&["abcd", "x"]));
    }

    #[test]
    fn split_never_cuts_a_utf8_character() {
        // "aé" is 3 bytes; a 2-byte cut would fall inside "é".
        let out = frame(4, &["aaaé".as_bytes(), b"\n"]);
        assert_eq!(
            out,
            vec![("aaa".to_string(), false), ("é".to_string(), true)]
        );
    }

    #[test]
    fn invalid_utf8_is_passed_through() {
        let mut framer = LineFramer::new();
        let mut pieces = Vec::new();
        framer.push(b"\xff\xfe ok\n", &mut |piece| {
            pieces.push(piece.bytes.to_vec())
        });
        assert_eq!(pieces, vec![b"\xff\xfe ok".to_vec()]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_in_arbitrary_chunks_frame_back_to_the_input(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>(), Just(0xC3), Just(0xA9)],
                0..600,
            ),
            cuts in proptest::collection::vec(0..600usize, 0..8),
            max_line in 4..40usize,
        ) {
            let mut framer = LineFramer::with_max_line(max_line);
            let mut lines: Vec<Vec<u8>> = Vec::new();
            let mut emit = |piece: Piece<'_>| {
                assert!(piece.bytes.len() <= max_line, "piece of {} bytes", piece.bytes.len());
                match lines.last_mut() {
                    Some(line) if piece.continuation => line.extend_from_slice(piece.bytes),
                    _ => {
                        assert!(!piece.continuation, "a continuation with no line before it");
                        lines.push(piece.bytes.to_vec());
                    }
                }
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                framer.push(&bytes[start..cut], &mut emit);
                start = cut;
            }
            framer.finish(&mut emit);

            let mut expected: Vec<Vec<u8>> = bytes
                .split(|byte| *byte == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line).to_vec())
                .collect();
            // The text after the last newline is a line only if it is not empty.
            if expected.last().is_some_and(|last| last.is_empty() && !bytes.ends_with(b"\r")) {
                expected.pop();
            }
            prop_assert_eq!(lines, expected);
        }
    }
}
