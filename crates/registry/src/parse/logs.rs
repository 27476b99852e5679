//! Reads `[logs]`: how large log files grow, how many rotated files are kept and how much of
//! each service's output the in-memory tail holds.
//!
//! A key left out keeps the SPEC's default from `LogsSpec::default`.

use crate::keys;
use crate::spec::LogsSpec;

use super::ctx::Ctx;
use super::walker::Section;

pub(super) fn read_logs(ctx: &mut Ctx<'_>, root: &Section<'_, '_>) -> LogsSpec {
    let mut spec = LogsSpec::default();
    let Some(logs) = root.table(ctx, "logs") else {
        return spec;
    };
    logs.check_keys(ctx, &keys::LOGS);
    if let Some(max_size) = logs.size(ctx, "max_size") {
        spec.max_size = max_size;
    }
    if let Some(max_files) = logs.bounded(ctx, "max_files", 0, i128::from(u32::MAX)) {
        spec.max_files = max_files;
    }
    if let Some(tail) = logs.bounded(ctx, "tail", 0, i128::from(u32::MAX)) {
        spec.tail = tail;
    }
    if let Some(tail_bytes) = logs.size(ctx, "tail_bytes") {
        spec.tail_bytes = usize::try_from(tail_bytes).unwrap_or(usize::MAX);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    #[test]
    fn keys_left_out_keep_their_defaults() {
        let (spec, problems) =
            read_toml("[logs]\nmax_files = 3\ntail_bytes = \"1KB\"\n", read_logs);
        assert_eq!(
            spec,
            LogsSpec {
                max_files: 3,
                tail_bytes: 1024,
                ..LogsSpec::default()
            }
        );
        assert_eq!(problems, Vec::<String>::new());
    }
}
