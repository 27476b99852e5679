//! The list of problems found so far, and the line and column of each one's place in the text.
//!
//! Readers and `validate` push problems here and carry on; nothing here decides what is a
//! problem, and nothing stops at the first one.

use std::path::Path;

use crate::error::{LoadError, Problem, ProblemKind};

use super::Span;

/// The problem list and what is needed to give each problem a line and column.
pub(crate) struct Ctx<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
    pub(crate) problems: Vec<Problem>,
}

impl<'t> Ctx<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        Ctx {
            text,
            line_starts,
            problems: Vec::new(),
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let line_start = self.line_starts[line.saturating_sub(1)];
        let offset = offset.min(self.text.len());
        let column = self
            .text
            .get(line_start..offset)
            .map_or(offset - line_start, |prefix| prefix.chars().count());
        (line, column + 1)
    }

    pub(crate) fn report(
        &mut self,
        location: &str,
        span: Option<Span>,
        kind: ProblemKind,
        help: Option<&str>,
    ) {
        self.report_owned(location, span, kind, help.map(str::to_owned));
    }

    pub(crate) fn report_owned(
        &mut self,
        location: &str,
        span: Option<Span>,
        kind: ProblemKind,
        help: Option<String>,
    ) {
        let line_col = span.map(|span| self.line_col(span.start));
        self.problems.push(Problem {
            location: location.to_owned(),
            line_col,
            kind,
            help,
        });
    }

    pub(super) fn into_error(mut self, path: &Path) -> LoadError {
        // Problems are found section by section and then across services; reading them in
        // file order is easier, with the ones that have no place in the file last.
        self.problems
            .sort_by_key(|problem| (problem.line_col.is_none(), problem.line_col));
        LoadError {
            file: path.to_path_buf(),
            problems: self.problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "[a]\nname = \"é\" x\n";
        let ctx = Ctx::new(text);
        let x_at = text.find('x').unwrap_or_default();
        assert_eq!(ctx.line_col(0), (1, 1));
        assert_eq!(ctx.line_col(4), (2, 1));
        assert_eq!(ctx.line_col(x_at), (2, 12));
        // Past the end (an error at end of input) stays on the last line.
        assert_eq!(ctx.line_col(text.len() + 5), (3, 1));
    }

    #[test]
    fn problems_are_put_in_file_order_with_placeless_ones_last() {
        let mut ctx = Ctx::new("a = 1\nb = 2\n");
        ctx.report("services", None, ProblemKind::EmptyRegistry, None);
        ctx.report("b", Some(6..7), ProblemKind::Empty, None);
        ctx.report("a", Some(0..1), ProblemKind::Empty, Some("help"));
        let error = ctx.into_error(Path::new("conductor.toml"));
        let order: Vec<(&str, Option<(usize, usize)>)> = error
            .problems
            .iter()
            .map(|problem| (problem.location.as_str(), problem.line_col))
            .collect();
        assert_eq!(
            order,
            [("a", Some((1, 1))), ("b", Some((2, 1))), ("services", None)]
        );
        assert_eq!(error.file, Path::new("conductor.toml"));
    }
}
