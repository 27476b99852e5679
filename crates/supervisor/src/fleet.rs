//! What the owner tasks share: the status snapshot of every service (read by `services:get-all`
//! without reaching any task), the event bus, the lifecycle recorder and the run-state file of
//! live process groups. Locks here are std mutexes held for a few field updates, never across
//! an await.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Mutex,
    time::{Instant, SystemTime},
};

use conductor_db::{EventRecorder, ServiceEventRow};
use conductor_protocol::{AppHealth, AppHealthStatus, Event, ServiceState, ServiceStatus};
use conductor_spawn::GroupRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{events::EventBus, sync::LockExt};

/// What an owner task publishes about its service after every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) state: ServiceState,
    pub(crate) pid: Option<u32>,
    pub(crate) running_since: Option<Instant>,
    pub(crate) restarts: u32,
    pub(crate) last_error: Option<String>,
}

struct Cell {
    name: String,
    port: u16,
    critical: bool,
    active: bool,
    snapshot: Snapshot,
    last_health_check: Option<SystemTime>,
    degraded: bool,
    /// The last metrics sample of the current process, if one was taken.
    usage: Option<Usage>,
    /// Removed by a reload: no longer shown, counted or changed.
    removed: bool,
}

/// The part of a metrics sample `services:get-all` shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub(crate) cpu_percent: f64,
    pub(crate) memory_bytes: u64,
    pub(crate) processes: u32,
}

impl Cell {
    /// A service as registered: stopped (or disabled), nothing seen yet.
    fn new(member: Member) -> Cell {
        Cell {
            snapshot: Snapshot {
                state: if member.active {
                    ServiceState::Stopped
                } else {
                    ServiceState::Disabled
                },
                pid: None,
                running_since: None,
                restarts: 0,
                last_error: None,
            },
            name: member.name,
            port: member.port,
            critical: member.critical,
            active: member.active,
            last_health_check: None,
            degraded: false,
            usage: None,
            removed: false,
        }
    }

    fn status(&self, now: Instant) -> ServiceStatus {
        ServiceStatus {
            name: self.name.clone(),
            port: self.port,
            status: self.snapshot.state,
            pid: self.snapshot.pid,
            uptime: self
                .snapshot
                .running_since
                .map_or(0, |since| now.saturating_duration_since(since).as_secs()),
            last_health_check: self.last_health_check.map(timestamp),
            restarts: self.snapshot.restarts,
            critical: self.critical,
            last_error: self.snapshot.last_error.clone(),
            cpu_percent: self.usage.map(|usage| usage.cpu_percent),
            memory_bytes: self.usage.map(|usage| usage.memory_bytes),
            processes: self.usage.map(|usage| usage.processes),
        }
    }
}

/// ISO-8601 UTC with milliseconds, the format of every timestamp on the wire.
pub(crate) fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// One service as registered with the fleet.
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) critical: bool,
    pub(crate) active: bool,
}

/// The run-state file: the live process groups, so the next run can reclaim orphans.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// The conductor that wrote it.
    pub pid: u32,
    /// The kernel's boot id when it was written; start times are only comparable within one boot.
    pub boot_id: Option<String>,
    /// The run's id: every process of its services' trees carries
    /// `CONDUCTOR_INSTANCE=<run id>/<service>`.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The writing conductor's start time in clock ticks since boot: a process carrying the
    /// run's marker and started before it cannot be one of the run's.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// Live process groups by service.
    pub groups: BTreeMap<String, RecordedGroup>,
}

impl RunState {
    /// The recorded groups in the form `conductor_spawn::reclaim` takes.
    pub fn records(&self) -> Vec<GroupRecord> {
        self.groups
            .values()
            .map(|group| GroupRecord {
                pgid: group.pgid,
                start_time: group.start_time,
            })
            .collect()
    }
}

/// One process group in the run-state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedGroup {
    /// The group id (the leader's pid).
    pub pgid: u32,
    /// The leader's start time in clock ticks since boot, proving the group is ours.
    pub start_time: u64,
}

pub(crate) struct Shared {
    /// The slots of the services that exist, in registry order (a reload changes it).
    order: Mutex<Vec<usize>>,
    cells: Mutex<Vec<Cell>>,
    health: Mutex<AppHealth>,
    pub(crate) bus: EventBus,
    pub(crate) recorder: Mutex<Option<EventRecorder>>,
    run_state: watch::Sender<RunState>,
    pub(crate) run_state_path: Option<PathBuf>,
}

impl Shared {
    pub(crate) fn new(
        members: Vec<Member>,
        bus: EventBus,
        run_state_path: Option<PathBuf>,
        run_id: String,
    ) -> Shared {
        let cells: Vec<Cell> = members.into_iter().map(Cell::new).collect();
        let order = (0..cells.len()).collect();
        let health = compute_health(&cells);
        let (run_state, _) = watch::channel(RunState {
            pid: std::process::id(),
            boot_id: conductor_spawn::boot_id(),
            run_id: Some(run_id),
            start_time: conductor_spawn::process_start_time(std::process::id()),
            groups: BTreeMap::new(),
        });
        Shared {
            order: Mutex::new(order),
            cells: Mutex::new(cells),
            health: Mutex::new(health),
            bus,
            recorder: Mutex::new(None),
            run_state,
            run_state_path,
        }
    }

    pub(crate) fn statuses(&self) -> Vec<ServiceStatus> {
        let now = Instant::now();
        let order = self.order.lock_recovered().clone();
        let cells = self.cells.lock_recovered();
        order.iter().map(|&slot| cells[slot].status(now)).collect()
    }

    /// A new service's cell (a reload added it); returns its slot.
    pub(crate) fn add_member(&self, member: Member) -> usize {
        let mut cells = self.cells.lock_recovered();
        cells.push(Cell::new(member));
        cells.len() - 1
    }

    /// A service's registration after a reload changed it (port, criticality, started or not).
    pub(crate) fn update_member(&self, slot: usize, member: Member) {
        let mut cells = self.cells.lock_recovered();
        let cell = &mut cells[slot];
        cell.port = member.port;
        cell.critical = member.critical;
        cell.active = member.active;
        self.refresh_health(&cells);
    }

    /// Drops a removed service from statuses and health; its slot is never reused.
    pub(crate) fn remove_member(&self, slot: usize) {
        let mut cells = self.cells.lock_recovered();
        cells[slot].removed = true;
        self.refresh_health(&cells);
    }

    /// The order `services:get-all` lists the existing services in.
    pub(crate) fn set_order(&self, order: Vec<usize>) {
        *self.order.lock_recovered() = order;
    }

    pub(crate) fn status(&self, index: usize) -> ServiceStatus {
        let cells = self.cells.lock_recovered();
        cells[index].status(Instant::now())
    }

    pub(crate) fn health(&self) -> AppHealth {
        self.health.lock_recovered().clone()
    }

    /// Stores a service's snapshot. Emits `service:status-changed` whenever anything a UI
    /// shows changed (state, pid, restarts, lastError), and `app:health-changed` when the app's
    /// health did; records the transition in `service_events` only when the wire state changed.
    pub(crate) fn update(
        &self,
        index: usize,
        snapshot: Snapshot,
        reason: &str,
        correlation_id: &str,
    ) {
        let mut cells = self.cells.lock_recovered();
        let cell = &mut cells[index];
        let before = cell.snapshot.clone();
        // `running_since` shows only as uptime, which a UI ticks by itself.
        let visible_change = before.state != snapshot.state
            || before.pid != snapshot.pid
            || before.restarts != snapshot.restarts
            || before.last_error != snapshot.last_error;
        if snapshot.state != ServiceState::Running {
            cell.degraded = false;
        }
        if snapshot.pid != before.pid {
            // The sample was of the process that is gone.
            cell.usage = None;
        }
        cell.snapshot = snapshot;
        if !visible_change {
            return;
        }
        let status = cell.status(Instant::now());
        let name = cell.name.clone();
        if before.state != status.status {
            tracing::info!(service = %name, from = %before.state, to = %status.status, %reason, "status changed");
            if let Some(recorder) = self.recorder.lock_recovered().as_ref() {
                recorder.record(ServiceEventRow {
                    service: name.clone(),
                    from_state: Some(before.state.as_str().to_owned()),
                    to_state: status.status.as_str().to_owned(),
                    reason: Some(reason.to_owned()),
                    correlation_id: (!correlation_id.is_empty()).then(|| correlation_id.to_owned()),
                    timestamp: timestamp(SystemTime::now()),
                });
            }
        }
        self.bus.publish(Event::ServiceStatusChanged {
            service_name: name,
            status,
        });
        self.refresh_health(&cells);
    }

    /// Stores the last metrics sample of service `index` if `pid` is still its process (a
    /// sample taken just before a restart must not show against the new process).
    pub(crate) fn note_usage(&self, index: usize, pid: u32, usage: Usage) {
        let mut cells = self.cells.lock_recovered();
        if cells[index].snapshot.pid == Some(pid) {
            cells[index].usage = Some(usage);
        }
    }

    /// Each service's current leader pid, in registry order.
    pub(crate) fn pids(&self) -> Vec<Option<u32>> {
        let cells = self.cells.lock_recovered();
        cells.iter().map(|cell| cell.snapshot.pid).collect()
    }

    pub(crate) fn note_probe(&self, index: usize, at: SystemTime, degraded: bool) {
        let mut cells = self.cells.lock_recovered();
        cells[index].last_health_check = Some(at);
        if cells[index].degraded != degraded {
            cells[index].degraded = degraded;
            self.refresh_health(&cells);
        }
    }

    fn refresh_health(&self, cells: &[Cell]) {
        let health = compute_health(cells);
        let mut last = self.health.lock_recovered();
        if *last != health {
            *last = health.clone();
            self.bus.publish(Event::AppHealthChanged(health));
        }
    }

    pub(crate) fn report_error(&self, service: &str, error: String) {
        self.bus.publish(Event::ServiceError {
            service_name: service.to_owned(),
            error,
            timestamp: timestamp(SystemTime::now()),
        });
    }

    pub(crate) fn remember_group(&self, service: &str, record: GroupRecord) {
        self.run_state.send_modify(|state| {
            state.groups.insert(
                service.to_owned(),
                RecordedGroup {
                    pgid: record.pgid,
                    start_time: record.start_time,
                },
            );
        });
    }

    pub(crate) fn forget_group(&self, service: &str) {
        self.run_state
            .send_if_modified(|state| state.groups.remove(service).is_some());
    }

    pub(crate) fn watch_run_state(&self) -> watch::Receiver<RunState> {
        self.run_state.subscribe()
    }
}

/// `critical` when an active critical service is not running, `degraded` when only
/// non-critical ones are not (or a running one's probe says degraded), else `healthy`.
fn compute_health(cells: &[Cell]) -> AppHealth {
    let failing: Vec<&Cell> = cells
        .iter()
        .filter(|cell| !cell.removed && cell.active && cell.snapshot.state != ServiceState::Running)
        .collect();
    let status = if failing.iter().any(|cell| cell.critical) {
        AppHealthStatus::Critical
    } else if !failing.is_empty() || cells.iter().any(|cell| !cell.removed && cell.degraded) {
        AppHealthStatus::Degraded
    } else {
        AppHealthStatus::Healthy
    };
    AppHealth {
        status,
        failing: failing.iter().map(|cell| cell.name.clone()).collect(),
    }
}
