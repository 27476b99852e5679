//! Reads Linux's `/proc`: a process's stat line (state, parent, group, session, start time), its
//! environment and owner, the table of TCP sockets, and which process holds a socket.
//! Parsing is kept apart from reading so it is tested on fixed text. Nothing here signals a
//! process or decides whether one is ours.

use std::{fs, io, path::Path};

/// The fields of `/proc/<pid>/stat` this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: u32,
    /// Field 2, without its parentheses; the kernel truncates it to 15 bytes.
    pub(crate) comm: String,
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead) …
    pub(crate) state: char,
    /// Field 4: the parent (after re-parenting, the reaper that adopted it).
    pub(crate) ppid: u32,
    /// Field 5.
    pub(crate) pgrp: u32,
    /// Field 6: the session id.
    pub(crate) session: u32,
    /// Fields 14 and 15 summed: clock ticks spent in user and kernel mode.
    pub(crate) cpu_ticks: u64,
    /// Field 20.
    pub(crate) threads: u32,
    /// Field 22, clock ticks since boot.
    pub(crate) start_time: u64,
    /// Field 24: resident pages.
    pub(crate) rss_pages: u64,
}

impl ProcStat {
    /// A zombie or dead process has exited: it runs no code and holds no socket, only its pid.
    pub(crate) fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Parses one `/proc/<pid>/stat` line.
///
/// The command name may itself contain spaces and parentheses (`(a) b)`), so it ends at the
/// *last* `)`; the fields after it are plain numbers.
pub(crate) fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line.get(..open)?.trim().parse().ok()?;
    let comm = line.get(open + 1..close)?.to_owned();
    // `rest[0]` is field 3, so field N is `rest[N - 3]`.
    let rest: Vec<&str> = line.get(close + 1..)?.split_ascii_whitespace().collect();
    let mut state_chars = rest.first()?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid: rest.get(4 - 3)?.parse().ok()?,
        pgrp: rest.get(5 - 3)?.parse().ok()?,
        session: rest.get(6 - 3)?.parse().ok()?,
        cpu_ticks: rest
            .get(14 - 3)?
            .parse::<u64>()
            .ok()?
            .saturating_add(rest.get(15 - 3)?.parse().ok()?),
        threads: rest.get(20 - 3)?.parse().ok()?,
        start_time: rest.get(22 - 3)?.parse().ok()?,
        rss_pages: rest.get(24 - 3)?.parse().ok()?,
    })
}

/// Reads `/proc/<pid>/stat`; `None` if the process does not exist (or vanished meanwhile).
pub(crate) fn read_stat(pid: u32) -> Option<ProcStat> {
    // The command name is bytes, not necessarily UTF-8.
    let bytes = fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&String::from_utf8_lossy(&bytes))
}

/// The pids listed in `/proc`, ascending. Threads are not listed, only processes.
pub(crate) fn pids() -> io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// The stat of every process that exists now; processes that exit during the scan are left out.
pub(crate) fn all_processes() -> io::Result<Vec<ProcStat>> {
    Ok(pids()?.into_iter().filter_map(read_stat).collect())
}

/// Whether the NUL-separated environment block `environ` (as `/proc/<pid>/environ` holds it)
/// has an entry that starts with `entry_prefix` (`NAME=value`, or `NAME=val` to match by
/// prefix).
pub(crate) fn environ_has(environ: &[u8], entry_prefix: &[u8]) -> bool {
    environ
        .split(|&byte| byte == 0)
        .any(|entry| entry.starts_with(entry_prefix))
}

/// The `Pss:` line of `/proc/<pid>/smaps_rollup`, in bytes; `None` where it cannot be read
/// (another user's process, a kernel without it).
pub(crate) fn pss_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_pss(&text)
}

fn parse_pss(rollup: &str) -> Option<u64> {
    let line = rollup.lines().find(|line| line.starts_with("Pss:"))?;
    let kib: u64 = line
        .trim_start_matches("Pss:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// How many file descriptors `pid` has open (the entries of `/proc/<pid>/fd`).
pub(crate) fn open_files(pid: u32) -> Option<u32> {
    let dir = format!("/proc/{pid}/fd");
    // Since Linux 6.2 the directory's size is its number of entries: one stat instead of
    // listing it (a listing builds a dentry per descriptor, and was a fifth of sampling's cost).
    if let Ok(meta) = fs::metadata(&dir)
        && meta.len() > 0
    {
        return u32::try_from(meta.len()).ok();
    }
    let count = fs::read_dir(&dir).ok()?.count();
    u32::try_from(count).ok()
}

/// `/proc/<pid>/environ`: the environment the process was started with. Empty for zombies and
/// kernel threads; `None` if it cannot be read (gone, or another user's).
pub(crate) fn read_environ(pid: u32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/environ")).ok()
}

/// The real user id owning the process (the owner of `/proc/<pid>`).
pub(crate) fn owner_uid(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|meta| meta.uid())
}

/// The children of process `pid`, from `/proc/<pid>/task/<tid>/children` (one list per
/// thread: a child belongs to the thread that forked it, an orphan to one thread of its
/// reaper). `None` where the kernel lacks those lists (`CONFIG_PROC_CHILDREN` off); an empty
/// list if the process is gone.
pub(crate) fn children_of(pid: u32) -> Option<Vec<u32>> {
    let mut children = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Some(children);
    };
    for task in tasks.filter_map(Result::ok) {
        match fs::read_to_string(task.path().join("children")) {
            Ok(list) => children.extend(
                list.split_ascii_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok()),
            ),
            // The thread exited during the walk: its children were handed to another thread.
            Err(_) if !task.path().exists() => {}
            Err(_) => return None,
        }
    }
    Some(children)
}

/// The pids of this process's children: [`children_of`] ourselves, a few small files; where
/// the kernel lacks those lists, from the parent field of every process.
pub(crate) fn own_children() -> io::Result<Vec<u32>> {
    let own = std::process::id();
    if let Some(children) = children_of(own) {
        return Ok(children);
    }
    Ok(all_processes()?
        .into_iter()
        .filter(|stat| stat.ppid == own)
        .map(|stat| stat.pid)
        .collect())
}

/// Every descendant of `roots` (the roots themselves excluded), walking [`children_of`];
/// `None` where the kernel lacks the children lists.
pub(crate) fn descendants(roots: &[u32]) -> Option<Vec<u32>> {
    let mut found = Vec::new();
    let mut queue: Vec<u32> = roots.to_vec();
    while let Some(pid) = queue.pop() {
        for child in children_of(pid)? {
            if !found.contains(&child) && !roots.contains(&child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    Some(found)
}

/// The inodes of the listening sockets on `port` in one `/proc/net/tcp` or `/proc/net/tcp6`
/// table. Rows look like
/// `0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 1000 0 12345 …`:
/// local address and port in hex, state `0A` is LISTEN, the inode is the tenth column.
pub(crate) fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let columns: Vec<&str> = row.split_ascii_whitespace().collect();
            let (_, local_port) = columns.get(1)?.rsplit_once(':')?;
            let local_port = u16::from_str_radix(local_port, 16).ok()?;
            if local_port != port || *columns.get(3)? != LISTEN {
                return None;
            }
            columns.get(9)?.parse().ok().filter(|&inode| inode != 0)
        })
        .collect()
}

/// The lowest pid with an open file descriptor on one of these socket inodes. Processes whose
/// descriptors we may not read (another user's) are skipped, so `None` may mean "not visible".
pub(crate) fn socket_owner(inodes: &[u64]) -> Option<u32> {
    let targets: Vec<String> = inodes
        .iter()
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    pids().ok()?.into_iter().find(|pid| {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.filter_map(Result::ok).any(|fd| {
            fs::read_link(fd.path())
                .is_ok_and(|link| targets.iter().any(|target| Path::new(target) == link))
        })
    })
}

/// The process's command line, arguments joined by spaces; falls back to `[comm]` when the
/// command line is empty (kernel threads, zombies).
pub(crate) fn command_line(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&byte| byte == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    if words.is_empty() {
        return read_stat(pid).map(|stat| format!("[{}]", stat.comm));
    }
    Some(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_and_spaces_in_the_name_parses() {
        let line = "4242 (we) ird (name)) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 \
                    1 0 987654 10000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let stat = parse_stat(line).expect("a valid stat line");
        assert_eq!(
            stat,
            ProcStat {
                pid: 4242,
                comm: "we) ird (name)".to_owned(),
                state: 'S',
                ppid: 1,
                pgrp: 4240,
                session: 4240,
                cpu_ticks: 3,
                threads: 1,
                start_time: 987_654,
                rss_pages: 200,
            }
        );
    }

    #[test]
    fn pss_is_read_from_the_rollup_in_bytes() {
        let rollup = "55d0c0a00000-7ffd1b5fe000 ---p 00000000 00:00 0    [rollup]\n\
                      Rss:               11236 kB\nPss:                4321 kB\n\
                      Pss_Anon:           2580 kB\n";
        assert_eq!(parse_pss(rollup), Some(4321 * 1024));
        assert_eq!(parse_pss("Rss: 10 kB\n"), None);
    }

    #[test]
    fn environment_entries_match_whole_names_only() {
        let environ = b"PATH=/bin\0CONDUCTOR_INSTANCE=run1/records\0XCONDUCTOR_INSTANCE=run2/x\0";
        assert!(environ_has(environ, b"CONDUCTOR_INSTANCE=run1/records"));
        assert!(environ_has(environ, b"CONDUCTOR_INSTANCE=run1/"));
        assert!(!environ_has(environ, b"CONDUCTOR_INSTANCE=run2/"));
        assert!(!environ_has(b"", b"CONDUCTOR_INSTANCE="));
    }

    #[test]
    fn own_children_lists_a_child_we_started() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep starts");
        let children = own_children();
        let _ = child.kill();
        let _ = child.wait();
        let children = children.expect("our children can be listed");
        assert!(children.contains(&child.id()), "{children:?}");
    }

    #[test]
    fn truncated_stat_line_is_rejected() {
        assert_eq!(parse_stat("4242 (sh) S 1 4240 4240 0"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn own_stat_names_this_process() {
        let stat = read_stat(std::process::id()).expect("our own /proc entry exists");
        assert_eq!(stat.pid, std::process::id());
        assert!(stat.is_live());
        assert!(stat.start_time > 0);
    }

    #[test]
    fn only_listening_rows_on_the_port_are_picked() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1F90 0100007F:C351 06 00000000:00000000 03:00000E3A 00000000     0        0 0 3 0000000000000000
";
        assert_eq!(listening_inodes(table, 0x1F90), vec![111]);
        assert_eq!(listening_inodes(table, 0x1F91), vec![333]);
        assert_eq!(listening_inodes(table, 80), Vec::<u64>::new());
    }

    #[test]
    fn ipv6_rows_are_read_like_ipv4_rows() {
        let table = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(listening_inodes(table, 3000), vec![444]);
    }
}
