//! Reads a service's `limits = { memory, open_files, processes }`.

use crate::keys;
use crate::spec::Limits;

use super::ctx::Ctx;
use super::walker::Section;

pub(super) fn read_limits(ctx: &mut Ctx<'_>, section: &Section<'_, '_>) -> Limits {
    section.check_keys(ctx, &keys::LIMITS);
    Limits {
        memory: section.size(ctx, "memory"),
        open_files: section.bounded(
            ctx,
            "open_files",
            keys::OPEN_FILES.0.into(),
            keys::OPEN_FILES.1.into(),
        ),
        processes: section.bounded(
            ctx,
            "processes",
            keys::PROCESSES.0.into(),
            keys::PROCESSES.1.into(),
        ),
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
