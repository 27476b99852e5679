//! The window command (SPEC §2 `[app] window`): started after every service is ready, logged
//! as source `window`, stopped first on quit (before the services it talks to).

use std::{ffi::OsString, sync::Arc};

use super::{Conductor, settings::MARKER_VARIABLE};
use crate::fleet::Shared;

/// The log source name of the window command.
const WINDOW: &str = "window";

/// The running window command (SPEC §2 `[app] window`).
pub struct Window {
    process: conductor_spawn::ProcessGroup,
    shared: Arc<Shared>,
}

impl Window {
    /// The window process's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Resolves when the window exits, describing how. Cancel-safe.
    pub async fn exited(&mut self) -> String {
        let description = match self.process.wait().await {
            Ok(status) => crate::service::describe_exit(status),
            Err(err) => format!("could not be awaited: {err}"),
        };
        self.shared.forget_group(WINDOW);
        description
    }

    /// Stops the window's process group (SIGTERM, wait, SIGKILL).
    pub async fn stop(&mut self, timeout: std::time::Duration) {
        let _ = self.process.stop(timeout).await;
        self.shared.forget_group(WINDOW);
    }
}

impl Conductor {
    /// Starts the registry's window command, if any: after every service is ready, with the
    /// common environment plus `extra_env` (the binary adds the IPC URL and token). Its output
    /// is logged as service `window`; its exit is the app's signal to quit.
    pub fn start_window(
        &self,
        extra_env: Vec<(OsString, OsString)>,
    ) -> Result<Option<Window>, conductor_spawn::SpawnError> {
        let registry = self.registry();
        let Some(window) = &registry.app.window else {
            return Ok(None);
        };
        let mut env = self.inner.common_env.clone();
        env.extend(
            window
                .env
                .iter()
                .map(|(key, value)| (key.into(), value.into())),
        );
        env.extend(extra_env);
        let spec = conductor_spawn::SpawnSpec {
            program: window.command.clone().into(),
            args: window.args.iter().map(OsString::from).collect(),
            cwd: Some(window.cwd.clone()),
            env,
            marker: Some(conductor_spawn::TreeMarker::new(
                MARKER_VARIABLE,
                format!("{}/{WINDOW}", self.inner.run_id),
            )),
            limits: Default::default(),
        };
        let mut process = conductor_spawn::spawn(&spec)?;
        if let Some(stdout) = process.take_stdout() {
            drop(
                self.inner
                    .logs
                    .capture(WINDOW, conductor_logs::Stream::Stdout, stdout),
            );
        }
        if let Some(stderr) = process.take_stderr() {
            drop(
                self.inner
                    .logs
                    .capture(WINDOW, conductor_logs::Stream::Stderr, stderr),
            );
        }
        self.inner.shared.remember_group(WINDOW, process.record());
        self.inner.logs.record(
            WINDOW,
            conductor_protocol::LogLevel::Info,
            format!("started pid {}", process.pid()),
        );
        Ok(Some(Window {
            process,
            shared: self.inner.shared.clone(),
        }))
    }
}
