//! Reads a service's `limits = { memory, open_files, processes }`.

use crate::spec::Limits;

use super::ctx::Ctx;
use super::walker::Section;

const LIMITS_KEYS: &[&str] = &["memory", "open_files", "processes"];

/// The largest rlimit we accept: beyond it the kernel refuses or the number means nothing.
const MAX_RLIMIT: i128 = 1 << 30;

pub(super) fn read_limits(ctx: &mut Ctx<'_>, section: &Section<'_, '_>) -> Limits {
    section.check_keys(ctx, LIMITS_KEYS);
    Limits {
        memory: section.size(ctx, "memory"),
        // A process needs its stdin, stdout and stderr, and most runtimes a few more.
        open_files: section.bounded(ctx, "open_files", 8, MAX_RLIMIT),
        processes: section.bounded(ctx, "processes", 1, MAX_RLIMIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::walker::read_toml;

    fn limits(text: &str) -> (Limits, Vec<String>) {
        read_toml(text, |ctx, root| {
            let section = root.table(ctx, "limits").expect("a limits table");
            read_limits(ctx, &section)
        })
    }

    #[test]
    fn every_limit_is_read() {
        let (limits, problems) =
            limits("limits = { memory = \"512MB\", open_files = 4096, processes = 256 }\n");
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(
            limits,
            Limits {
                memory: Some(512 * 1024 * 1024),
                open_files: Some(4096),
                processes: Some(256),
            }
        );
    }

    #[test]
    fn nonsense_limits_are_each_reported_where_written() {
        let (limits, problems) =
            limits("limits = { memory = \"0MB\", open_files = -1, processes = 0, cpu = 2 }\n");
        assert_eq!(limits, Limits::default());
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("unknown key \"cpu\""), "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("1:21: limits.memory")),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("limits.open_files")),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("limits.processes")),
            "{problems:#?}"
        );
    }

    #[test]
    fn an_unparsable_memory_size_says_how_to_write_one() {
        let (_, problems) = limits("limits = { memory = \"lots\" }\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("limits.memory"), "{problems:#?}");
        assert!(problems[0].contains("\"512KB\""), "{problems:#?}");
    }
}
