//! Property test of hot reload (issue 15) against the real `conductor up`: for random pairs of
//! valid registries (services drawn from a fixed pool of names, random `enabled` flags, env
//! values, health intervals, ports from a set picked free beforehand, acyclic dependencies),
//! `app:reload` from the first to the second leaves running exactly the second's enabled
//! services, lists exactly the second's services in `services:get-all`, reports each service
//! as the model classifies it, ends every process of the first's removed and restarted
//! services, and keeps the process of every service whose process sees no change.
//!
//! Few cases (each is a real conductor with up to four fake-services); processes are pinned by
//! pid and start time, and tagged (`TEST_TAG`) so none survives a failing case.

pub mod support;

use std::collections::BTreeMap;

use conductor_protocol::ServiceState;
use conductor_test_support::Proc;
use proptest::{prelude::*, test_runner::Config};
use serde_json::{Value, json};
use support::{
    Conductor, KillTagged, TempDir, describe_pids, fake_service, free_ports, registry_head, tagged,
    toml_string, unique_tag,
};

/// The names every registry draws from, in declaration order: a service depends only on
/// services before it, so no cycle can arise.
const POOL: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];
/// At most this many services per registry (each a real process).
const MAX_SERVICES: usize = 4;
/// Ports picked free per case; each registry gives its services distinct ones of them.
const N_PORTS: usize = 6;

/// One service of a generated registry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Draft {
    name: &'static str,
    enabled: bool,
    /// The value of `MODE` in its env: a change restarts it.
    mode: u8,
    /// Which of the case's ports it gets: a change restarts it.
    port: usize,
    /// Its health interval in ms: a change retunes it in place.
    interval_ms: u16,
    depends_on: Vec<&'static str>,
}

impl Draft {
    /// What its process sees (a difference means a new process).
    fn process_view(&self) -> (bool, u8, usize) {
        (self.enabled, self.mode, self.port)
    }
}

/// The random choices behind one registry, per name of [`POOL`]; [`Genes::build`] makes a
/// valid registry of them.
#[derive(Debug, Clone)]
struct Genes {
    /// Per pool name: present, enabled, mode, health interval, and which earlier pool names
    /// it would like to depend on (bit k: `POOL[k]`).
    services: Vec<(bool, bool, u8, u16, u8)>,
    /// `ports[i]`: which of the case's ports `POOL[i]` gets (a permutation, so no two share).
    ports: Vec<usize>,
}

impl Genes {
    /// 1 to [`MAX_SERVICES`] services in pool order; a started service depends only on
    /// started services before it.
    fn build(&self) -> Vec<Draft> {
        let mut drafts: Vec<Draft> = Vec::new();
        for (i, &(present, enabled, mode, interval_ms, dependency_bits)) in
            self.services.iter().enumerate()
        {
            // The last name stands in when no other is present.
            let present = present || (i == POOL.len() - 1 && drafts.is_empty());
            if !present || drafts.len() == MAX_SERVICES {
                continue;
            }
            let depends_on = drafts
                .iter()
                .filter(|dependency| {
                    let k = POOL.iter().position(|name| *name == dependency.name);
                    k.is_some_and(|k| dependency_bits & (1 << k) != 0) && dependency.enabled
                })
                .map(|dependency| dependency.name)
                .collect();
            drafts.push(Draft {
                name: POOL[i],
                enabled,
                mode,
                port: self.ports[i],
                interval_ms,
                depends_on,
            });
        }
        drafts
    }
}

fn genes() -> impl Strategy<Value = Genes> {
    let service = (
        any::<bool>(),
        // Mostly started: a disabled service has no process to check.
        proptest::bool::weighted(0.75),
        0..2u8,
        prop_oneof![Just(300u16), Just(400u16)],
        any::<u8>(),
    );
    (
        proptest::collection::vec(service, POOL.len()),
        Just((0..N_PORTS).collect::<Vec<_>>()).prop_shuffle(),
    )
        .prop_map(|(services, ports)| Genes { services, ports })
}

/// A pair of registries: the second is the first with each choice flipped now and then and
/// two ports maybe swapped, so that pairs hold unchanged, retuned, restarted, added and
/// removed services alike (two independent draws would share almost nothing).
fn pair() -> impl Strategy<Value = (Vec<Draft>, Vec<Draft>)> {
    let flip = || proptest::bool::weighted(0.2);
    let mutation = (
        flip(),
        flip(),
        flip(),
        flip(),
        prop_oneof![3 => Just(0u8), 1 => any::<u8>()],
    );
    (
        genes(),
        proptest::collection::vec(mutation, POOL.len()),
        proptest::option::of((0..N_PORTS, 0..N_PORTS)),
    )
        .prop_map(|(first, mutations, swap)| {
            let mut second = first.clone();
            for (service, (present, enabled, mode, interval, dependencies)) in
                second.services.iter_mut().zip(mutations)
            {
                service.0 ^= present;
                service.1 ^= enabled;
                service.2 ^= u8::from(mode);
                if interval {
                    service.3 = 700 - service.3;
                }
                service.4 ^= dependencies;
            }
            if let Some((i, j)) = swap {
                second.ports.swap(i, j);
            }
            (first.build(), second.build())
        })
}

/// The registry's TOML: every service runs fake-service with its tag (the same in both
/// registries, so it is no change).
fn render(app: &str, drafts: &[Draft], ports: &[u16; N_PORTS], tag: &str) -> String {
    let mut text = registry_head(app);
    for draft in drafts {
        let depends_on: Vec<String> = draft.depends_on.iter().map(|d| toml_string(d)).collect();
        text.push_str(&format!(
            r#"
[services.{name}]
port = {port}
command = {bin}
enabled = {enabled}
depends_on = [{depends_on}]
env = {{ MODE = "m{mode}", TEST_TAG = {tag} }}
health = {{ kind = "http", path = "/health", interval = "{interval}ms", timeout = "2s", failure_threshold = 3 }}
"#,
            name = draft.name,
            port = ports[draft.port],
            bin = fake_service(),
            enabled = draft.enabled,
            depends_on = depends_on.join(", "),
            mode = draft.mode,
            tag = toml_string(&service_tag(tag, draft.name)),
            interval = draft.interval_ms,
        ));
    }
    text
}

fn service_tag(tag: &str, name: &str) -> String {
    format!("{tag}-{name}")
}

fn names(drafts: &[Draft]) -> Vec<&'static str> {
    drafts.iter().map(|draft| draft.name).collect()
}

/// The four lists of a reload summary, each sorted: the lists are compared as sets (the
/// order of `changed` is the supervisor's: restarted ones first, then retuned ones).
type Summary = BTreeMap<&'static str, Vec<String>>;

/// What `app:reload` must answer, by the model: changed is any difference at all.
fn expected_summary(first: &[Draft], second: &[Draft]) -> Summary {
    let find = |drafts: &[Draft], name: &str| drafts.iter().find(|d| d.name == name).cloned();
    let mut summary = Summary::new();
    let mut put = |list: &'static str, name: &str| {
        summary.entry(list).or_default().push(name.to_owned());
    };
    for draft in second {
        match find(first, draft.name) {
            None => put("added", draft.name),
            Some(before) if before == *draft => put("unchanged", draft.name),
            Some(_) => put("changed", draft.name),
        }
    }
    for name in names(first) {
        if find(second, name).is_none() {
            put("removed", name);
        }
    }
    for list in LISTS {
        summary.entry(list).or_default().sort();
    }
    summary
}

const LISTS: [&str; 4] = ["added", "removed", "changed", "unchanged"];

/// The lists of an `app:reload` answer that must have succeeded.
fn summary_of(answer: &Value) -> Summary {
    assert_eq!(answer["success"], json!(true), "app:reload: {answer}");
    LISTS
        .into_iter()
        .map(|list| {
            let mut names: Vec<String> = answer[list]
                .as_array()
                .unwrap_or_else(|| panic!("app:reload answered no {list} list: {answer}"))
                .iter()
                .map(|name| name.as_str().unwrap_or_default().to_owned())
                .collect();
            names.sort();
            (list, names)
        })
        .collect()
}

/// Each running service's process, pinned by start time.
fn running(conductor: &Conductor) -> BTreeMap<String, Proc> {
    conductor
        .statuses()
        .into_iter()
        .filter(|status| status.status == ServiceState::Running)
        .map(|status| {
            let pid = status
                .pid
                .unwrap_or_else(|| panic!("running without a pid: {status:?}"));
            let process = Proc::identify(pid)
                .unwrap_or_else(|| panic!("{}'s process {pid} is not in /proc", status.name));
            (status.name, process)
        })
        .collect()
}

fn check_reload(first: &[Draft], second: &[Draft]) {
    let dir = TempDir::new("reload-property");
    let tag = unique_tag("reload-property");
    let _cleanup: Vec<KillTagged> = POOL
        .iter()
        .map(|name| KillTagged(service_tag(&tag, name)))
        .collect();
    let ports = free_ports::<N_PORTS>();
    let conductor = Conductor::start(&dir, &render("ReloadProperty", first, &ports, &tag));
    let before = running(&conductor);
    let enabled = |drafts: &[Draft]| -> Vec<&str> {
        drafts
            .iter()
            .filter(|draft| draft.enabled)
            .map(|draft| draft.name)
            .collect()
    };
    let started: Vec<&str> = before.keys().map(String::as_str).collect();
    assert_eq!(started, sorted(enabled(first)), "after startup");

    let file = dir.write(
        "second.toml",
        &render("ReloadProperty", second, &ports, &tag),
    );
    let answer: Value = conductor.call_ok(
        "app:reload",
        &json!({"registry": file.display().to_string()}).to_string(),
    );
    assert_eq!(
        summary_of(&answer),
        expected_summary(first, second),
        "app:reload"
    );

    let listed: Vec<String> = conductor.statuses().into_iter().map(|s| s.name).collect();
    assert_eq!(listed, names(second), "services:get-all after the reload");
    let after = running(&conductor);
    let now_running: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(
        now_running,
        sorted(enabled(second)),
        "running after the reload"
    );

    for (name, process) in &before {
        let kept = second.iter().find(|d| d.name == name).is_some_and(|draft| {
            first
                .iter()
                .find(|d| d.name == name)
                .is_some_and(|old| old.process_view() == draft.process_view())
        });
        if kept {
            assert_eq!(
                after.get(name),
                Some(process),
                "{name}'s process sees no change but was replaced"
            );
        } else {
            assert_eq!(
                process.live_state(),
                None,
                "{name}'s first process {process:?} outlived the reload"
            );
            if let Some(new) = after.get(name) {
                assert_ne!(new, process, "{name} was to be restarted");
            }
        }
    }
    // Whole trees: nothing carries a service's tag but the process it runs now.
    for name in POOL {
        let mut left = tagged(&service_tag(&tag, name));
        left.sort_unstable();
        let current: Vec<u32> = after
            .get(name)
            .map(|process| process.pid)
            .into_iter()
            .collect();
        assert_eq!(
            left,
            current,
            "processes of {name} besides the one it runs now: {}",
            describe_pids(&left)
        );
    }
}

fn sorted(mut names: Vec<&str>) -> Vec<&str> {
    names.sort_unstable();
    names
}

proptest! {
    #![proptest_config(Config {
        cases: 8,
        max_shrink_iters: 32,
        ..Config::default()
    })]

    #[test]
    fn a_reload_runs_exactly_the_second_registry_and_leaves_nothing_of_the_first(
        (first, second) in pair(),
    ) {
        check_reload(&first, &second);
    }
}
