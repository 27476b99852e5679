//! Orphan reclaim: SIGKILLs process groups that a previous run of conductor recorded and left
//! behind (it was killed before it could stop them), but only groups provably ours.
//!
//! Linux does not hand out a pid while a process still has it as its process group, so a group
//! whose members have `pgrp == pgid` is the group we recorded if its leader is alive with the
//! recorded start time, or, if the leader is gone, if every member started no earlier than the
//! leader did. Anything else is skipped and says why.
//!
//! Not here: the run-state file that holds the records (the caller owns it) and the decision
//! to reclaim at all.

use std::{fmt, time::Duration};

use crate::{GroupRecord, group::GroupSignal, sys};

/// How long [`reclaim`] waits for the groups it SIGKILLed to be gone, so that their ports are
/// free when it returns.
const RECLAIM_GRACE: Duration = Duration::from_secs(5);
const RECLAIM_POLL: Duration = Duration::from_millis(5);

/// What [`reclaim`] did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// The record as given.
    pub record: GroupRecord,
    /// Killed or skipped, and why.
    pub outcome: ReclaimOutcome,
}

/// Whether a recorded group was killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReclaimOutcome {
    /// The group was ours and was sent SIGKILL.
    Killed {
        /// Live processes in the group when it was killed.
        n_processes: usize,
    },
    /// The group was left alone.
    Skipped(SkipReason),
}

/// Why a recorded group was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The pgid is 0, 1 or out of range: no child of ours can have it.
    InvalidRecord,
    /// The record has no start time (`0`), so nothing can prove the group is ours.
    NoStartTime,
    /// No live process is in the group: nothing to do.
    NoLiveProcess,
    /// A process leads a group with this id but started at another time: the id was reused.
    LeaderStartTimeMismatch {
        /// The start time of the process that holds the pid now.
        found: u64,
    },
    /// The leader is gone and a member started before it did, so this is not the group we
    /// recorded.
    MemberPredatesRecord {
        /// The older member.
        pid: u32,
        /// Its start time.
        start_time: u64,
    },
    /// The calling process is in this group; killing it would kill ourselves.
    ContainsCurrentProcess,
    /// Sending SIGKILL failed (for example `EPERM`).
    KillFailed {
        /// The operating system's message.
        error: String,
    },
    /// The process table could not be read (no `/proc` on this platform, or it is not mounted).
    ProcessTableUnreadable {
        /// The operating system's message.
        error: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRecord => write!(f, "the record's pgid cannot belong to a child"),
            Self::NoStartTime => {
                write!(f, "no start time was recorded, so it cannot be proven ours")
            }
            Self::NoLiveProcess => write!(f, "no live process is left in the group"),
            Self::LeaderStartTimeMismatch { found } => write!(
                f,
                "its leader started at tick {found}, not at the recorded tick: the pid was reused"
            ),
            Self::MemberPredatesRecord { pid, start_time } => write!(
                f,
                "member {pid} started at tick {start_time}, before the recorded leader: the id was reused"
            ),
            Self::ContainsCurrentProcess => write!(f, "the group contains this process"),
            Self::KillFailed { error } => write!(f, "sending SIGKILL failed: {error}"),
            Self::ProcessTableUnreadable { error } => {
                write!(f, "the process table could not be read: {error}")
            }
        }
    }
}

impl fmt::Display for Reclaimed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pgid = self.record.pgid;
        match &self.outcome {
            ReclaimOutcome::Killed { n_processes } => {
                write!(
                    f,
                    "process group {pgid}: killed {n_processes} leftover process(es)"
                )
            }
            ReclaimOutcome::Skipped(reason) => write!(f, "process group {pgid}: skipped, {reason}"),
        }
    }
}

/// One row of the process table, as reclaim needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) pid: u32,
    pub(crate) pgrp: u32,
    pub(crate) start_time: u64,
    /// Not a zombie: zombies have exited and only wait to be reaped.
    pub(crate) live: bool,
}

/// For each record, SIGKILLs its group if the group still has live members and is provably
/// ours (see the module doc), and reports what was done. Then waits, up to a few seconds, for
/// the killed processes to be gone, so their ports are free when it returns.
///
/// Blocking (reads `/proc`, may sleep): call it before starting services, from
/// `spawn_blocking` in async code.
///
/// Start times count from boot, so records from a previous boot prove nothing: keep
/// [`boot_id`] next to the records and pass only those of the current boot.
pub fn reclaim(records: &[GroupRecord]) -> Vec<Reclaimed> {
    let table = match sys::process_table() {
        Ok(table) => table,
        Err(error) => {
            let reason = SkipReason::ProcessTableUnreadable {
                error: error.to_string(),
            };
            return records
                .iter()
                .map(|&record| Reclaimed {
                    record,
                    outcome: ReclaimOutcome::Skipped(reason.clone()),
                })
                .collect();
        }
    };
    let own_pid = std::process::id();
    let mut killed = Vec::new();
    let results: Vec<Reclaimed> = records
        .iter()
        .map(|&record| {
            let outcome = match judge(&record, &table, own_pid) {
                Ok(n_processes) => match sys::signal_group(record.pgid, GroupSignal::Kill) {
                    Ok(()) => {
                        killed.push(record.pgid);
                        ReclaimOutcome::Killed { n_processes }
                    }
                    Err(error) => ReclaimOutcome::Skipped(SkipReason::KillFailed {
                        error: error.to_string(),
                    }),
                },
                Err(reason) => ReclaimOutcome::Skipped(reason),
            };
            let reclaimed = Reclaimed { record, outcome };
            tracing::info!(%reclaimed, "orphan reclaim");
            reclaimed
        })
        .collect();
    wait_until_gone(&killed);
    results
}

/// Whether `record`'s group is ours to kill, judged on one snapshot of the process table;
/// `Ok` holds the number of live members.
pub(crate) fn judge(
    record: &GroupRecord,
    table: &[Member],
    own_pid: u32,
) -> Result<usize, SkipReason> {
    if record.pgid <= 1 || i32::try_from(record.pgid).is_err() {
        return Err(SkipReason::InvalidRecord);
    }
    if record.start_time == 0 {
        return Err(SkipReason::NoStartTime);
    }
    let members: Vec<&Member> = table.iter().filter(|m| m.pgrp == record.pgid).collect();
    let n_live = members.iter().filter(|m| m.live).count();
    if n_live == 0 {
        return Err(SkipReason::NoLiveProcess);
    }
    match members.iter().find(|m| m.pid == record.pgid) {
        Some(leader) if leader.start_time != record.start_time => {
            return Err(SkipReason::LeaderStartTimeMismatch {
                found: leader.start_time,
            });
        }
        Some(_) => {}
        None => {
            if let Some(older) = members.iter().find(|m| m.start_time < record.start_time) {
                return Err(SkipReason::MemberPredatesRecord {
                    pid: older.pid,
                    start_time: older.start_time,
                });
            }
        }
    }
    if members.iter().any(|m| m.pid == own_pid) {
        return Err(SkipReason::ContainsCurrentProcess);
    }
    Ok(n_live)
}

/// Waits until no live process is in any of `pgids`, or [`RECLAIM_GRACE`] has passed.
/// These processes are not our children, so there is nothing to await: look again and again.
fn wait_until_gone(pgids: &[u32]) {
    if pgids.is_empty() {
        return;
    }
    let deadline = std::time::Instant::now() + RECLAIM_GRACE;
    loop {
        let Ok(table) = sys::process_table() else {
            return;
        };
        let n_left = table
            .iter()
            .filter(|m| m.live && pgids.contains(&m.pgrp))
            .count();
        if n_left == 0 {
            return;
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                n_left,
                ?pgids,
                "reclaimed processes still alive after SIGKILL"
            );
            return;
        }
        // Other processes cannot be awaited: poll until they are gone or the deadline passes.
        std::thread::sleep(RECLAIM_POLL);
    }
}

/// This boot's id (Linux: `/proc/sys/kernel/random/boot_id`), `None` where unknown. Store it
/// with the [`GroupRecord`]s and discard the records when it changed: start times count from
/// boot, so after a reboot another group may match a recorded one by chance.
pub fn boot_id() -> Option<String> {
    sys::boot_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGID: u32 = 5000;
    const STARTED: u64 = 1_000;
    const OWN_PID: u32 = 42;

    fn member(pid: u32, pgrp: u32, start_time: u64, live: bool) -> Member {
        Member {
            pid,
            pgrp,
            start_time,
            live,
        }
    }

    fn record(pgid: u32, start_time: u64) -> GroupRecord {
        GroupRecord { pgid, start_time }
    }

    /// Situation, record, process table, expected verdict.
    type Case = (
        &'static str,
        GroupRecord,
        Vec<Member>,
        Result<usize, SkipReason>,
    );

    #[test]
    fn verdicts_follow_the_ownership_rules() {
        let unrelated = member(7, 7, 10, true);
        let cases: Vec<Case> = vec![
            (
                "leader alive with the recorded start time",
                record(PGID, STARTED),
                vec![
                    unrelated.clone(),
                    member(PGID, PGID, STARTED, true),
                    member(5001, PGID, STARTED + 5, true),
                ],
                Ok(2),
            ),
            (
                "leader is an unreaped zombie, a grandchild lives",
                record(PGID, STARTED),
                vec![
                    member(PGID, PGID, STARTED, false),
                    member(5001, PGID, STARTED + 5, true),
                ],
                Ok(1),
            ),
            (
                "leader gone, members started after it",
                record(PGID, STARTED),
                vec![
                    member(5001, PGID, STARTED, true),
                    member(5002, PGID, STARTED + 9, true),
                ],
                Ok(2),
            ),
            (
                "pid reused by a new group leader",
                record(PGID, STARTED),
                vec![member(PGID, PGID, STARTED + 1, true)],
                Err(SkipReason::LeaderStartTimeMismatch { found: STARTED + 1 }),
            ),
            (
                "leader gone, a member is older than the record",
                record(PGID, STARTED),
                vec![member(5001, PGID, STARTED - 1, true)],
                Err(SkipReason::MemberPredatesRecord {
                    pid: 5001,
                    start_time: STARTED - 1,
                }),
            ),
            (
                "group is empty",
                record(PGID, STARTED),
                vec![unrelated.clone()],
                Err(SkipReason::NoLiveProcess),
            ),
            (
                "only zombies left",
                record(PGID, STARTED),
                vec![member(PGID, PGID, STARTED, false)],
                Err(SkipReason::NoLiveProcess),
            ),
            (
                "a process with the pid but in another group does not count",
                record(PGID, STARTED),
                vec![member(PGID, 1, STARTED, true)],
                Err(SkipReason::NoLiveProcess),
            ),
            (
                "our own group",
                record(PGID, STARTED),
                vec![
                    member(PGID, PGID, STARTED, true),
                    member(OWN_PID, PGID, STARTED + 1, true),
                ],
                Err(SkipReason::ContainsCurrentProcess),
            ),
            (
                "no start time recorded",
                record(PGID, 0),
                vec![member(PGID, PGID, 0, true)],
                Err(SkipReason::NoStartTime),
            ),
            (
                "pgid 0 means our own group to kill()",
                record(0, STARTED),
                vec![],
                Err(SkipReason::InvalidRecord),
            ),
            (
                "pgid 1 is init's",
                record(1, STARTED),
                vec![member(1, 1, STARTED, true)],
                Err(SkipReason::InvalidRecord),
            ),
            (
                "pgid beyond pid_t",
                record(u32::MAX, STARTED),
                vec![],
                Err(SkipReason::InvalidRecord),
            ),
        ];
        for (situation, record, table, expected) in cases {
            assert_eq!(judge(&record, &table, OWN_PID), expected, "{situation}");
        }
    }

    #[test]
    fn reasons_read_as_sentences() {
        let reclaimed = Reclaimed {
            record: record(PGID, STARTED),
            outcome: ReclaimOutcome::Skipped(SkipReason::LeaderStartTimeMismatch { found: 77 }),
        };
        assert_eq!(
            reclaimed.to_string(),
            "process group 5000: skipped, its leader started at tick 77, not at the recorded tick: the pid was reused"
        );
        let killed = Reclaimed {
            record: record(PGID, STARTED),
            outcome: ReclaimOutcome::Killed { n_processes: 3 },
        };
        assert_eq!(
            killed.to_string(),
            "process group 5000: killed 3 leftover process(es)"
        );
    }
}
