//! The IPC channel names (`POST /ipc/<channel>`), exactly as the UI sends them.

use std::{fmt, str::FromStr};

/// One IPC channel. [`Channel::as_str`] is its wire name; [`str::parse`] maps a name back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `services:get-all`: every service's [`crate::ServiceStatus`].
    ServicesGetAll,
    /// `services:start`: start one service ([`crate::ServiceRequest`]).
    ServicesStart,
    /// `services:stop`: stop one service ([`crate::ServiceRequest`]).
    ServicesStop,
    /// `services:restart`: restart one service ([`crate::ServiceRequest`]).
    ServicesRestart,
    /// `database:init`: run pending migrations.
    DatabaseInit,
    /// `database:status`: whether the database is initialised and its version.
    DatabaseStatus,
    /// `logs:get`: recent log entries ([`crate::LogsGetRequest`]).
    LogsGet,
    /// `logs:clear`: empty the in-memory tails and the log files.
    LogsClear,
    /// `app:get-path`: one of conductor's directories ([`crate::GetPathRequest`]).
    AppGetPath,
    /// `app:quit`: answer 202, then shut down gracefully.
    AppQuit,
    /// `app:health`: our extension, the fleet's overall health ([`crate::AppHealth`]).
    AppHealth,
    /// `metrics:get`: our extension, resource history ([`crate::MetricsGetRequest`]).
    MetricsGet,
    /// `app:reload`: our extension, apply a changed registry ([`crate::ReloadRequest`]).
    AppReload,
}

impl Channel {
    /// Every channel, in the SPEC's table order.
    pub const ALL: [Channel; 13] = [
        Channel::ServicesGetAll,
        Channel::ServicesStart,
        Channel::ServicesStop,
        Channel::ServicesRestart,
        Channel::DatabaseInit,
        Channel::DatabaseStatus,
        Channel::LogsGet,
        Channel::LogsClear,
        Channel::AppGetPath,
        Channel::AppQuit,
        Channel::AppHealth,
        Channel::MetricsGet,
        Channel::AppReload,
    ];

    /// The wire name, e.g. `services:get-all`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::ServicesGetAll => "services:get-all",
            Channel::ServicesStart => "services:start",
            Channel::ServicesStop => "services:stop",
            Channel::ServicesRestart => "services:restart",
            Channel::DatabaseInit => "database:init",
            Channel::DatabaseStatus => "database:status",
            Channel::LogsGet => "logs:get",
            Channel::LogsClear => "logs:clear",
            Channel::AppGetPath => "app:get-path",
            Channel::AppQuit => "app:quit",
            Channel::AppHealth => "app:health",
            Channel::MetricsGet => "metrics:get",
            Channel::AppReload => "app:reload",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel name that is not one of [`Channel::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownChannel(pub String);

impl fmt::Display for UnknownChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown channel {:?}; known channels: ", self.0)?;
        for (i, channel) in Channel::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(channel.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownChannel {}

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == name)
            .ok_or_else(|| UnknownChannel(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_parses_back_from_its_wire_name() {
        for channel in Channel::ALL {
            assert_eq!(channel.as_str().parse::<Channel>(), Ok(channel));
        }
    }

    #[test]
    fn wire_names_are_the_specs() {
        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        insta::assert_json_snapshot!(names);
    }

    #[test]
    fn unknown_channel_lists_the_known_ones() {
        let err = "services:list".parse::<Channel>().unwrap_err();
        insta::assert_snapshot!(err.to_string());
    }
}
