//! `<userData>/run-state.json`: the live process groups and this run's marker, rewritten as
//! they change, so the next run can reclaim what a killed conductor left behind (SPEC §4
//! step 2).

use std::path::{Path, PathBuf};

use tokio::sync::watch;

use super::settings::MARKER_VARIABLE;
use crate::fleet::RunState;

/// after the conductor that wrote `state`; returns how many. Blocking.
pub(super) fn kill_run_tree(state: &RunState) -> usize {
    let (Some(run_id), Some(since)) = (&state.run_id, state.start_time) else {
        return 0;
    };
    let prefix = format!("{MARKER_VARIABLE}={run_id}/");
    conductor_spawn::kill_marked(prefix.as_bytes(), since)
}

pub(super) fn write_run_state_now(state: &RunState, path: &Path) {
    let json = serde_json::to_vec_pretty(state).expect("run state always serialises");
    let tmp = path.with_extension("json.tmp");
    if let Err(err) = std::fs::write(&tmp, json).and(std::fs::rename(&tmp, path)) {
        tracing::warn!(path = %path.display(), "could not write run state: {err}");
    }
}

/// Rewrites the run-state file whenever the set of live process groups changes.
/// Ends once `stop` turns true, never in the middle of a write.
pub(super) async fn write_run_state(
    mut rx: watch::Receiver<RunState>,
    path: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Both arms are cancel-safe; the write below is never raced against `stop`.
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let state = rx.borrow_and_update().clone();
        let json = serde_json::to_vec_pretty(&state).expect("run state always serialises");
        let tmp = path.with_extension("json.tmp");
        let written = tokio::fs::write(&tmp, json)
            .await
            .and(tokio::fs::rename(&tmp, &path).await);
        if let Err(err) = written {
            tracing::warn!(path = %path.display(), "could not write run state: {err}");
        }
    }
}

/// SPEC §4 step 2: terminates the process groups a previous run recorded in
/// `<userData>/run-state.json` and did not stop (it died without cleaning up). Groups are only
/// killed when provably ours (leader pid and start time), so a reused pid is never touched.
/// Returns one line per group for the log; removes the file.
pub fn reclaim_orphans(user_data: &Path) -> Vec<String> {
    let path = user_data.join("run-state.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let lines = match serde_json::from_str::<RunState>(&text) {
        // Start times count from boot: after a reboot they prove nothing, and every recorded
        // group died with the old boot anyway.
        Ok(state) if state.boot_id != conductor_spawn::boot_id() => {
            vec![format!(
                "ignored {}: written before the last reboot",
                path.display()
            )]
        }
        Ok(state) => {
            let records = state.records();
            let mut lines: Vec<String> = conductor_spawn::reclaim(&records)
                .iter()
                .map(|reclaimed| reclaimed.to_string())
                .collect();
            // Descendants that left their groups (daemons) are found by the run's marker.
            let n_marked = kill_run_tree(&state);
            if n_marked > 0 {
                lines.push(format!(
                    "killed {n_marked} leftover process(es) carrying {MARKER_VARIABLE}={}/…",
                    state.run_id.as_deref().unwrap_or_default()
                ));
            }
            lines
        }
        Err(err) => vec![format!("ignored unreadable {}: {err}", path.display())],
    };
    let _ = std::fs::remove_file(&path);
    lines
}
