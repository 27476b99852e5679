//! The dependency graph: start order by levels, and cycle detection for validation.
//!
//! Works on service names and `depends_on` lists only; it neither starts anything nor decides
//! what an unknown or inactive dependency means (that is `validate`'s job).

use std::collections::HashMap;
use std::fmt;

use crate::spec::{Registry, ServiceSpec, StartupMode};

/// The order in which active services start.
///
/// Each level is started after every service of the earlier levels is ready; the services of
/// one level do not depend on each other. Within a level, services keep their file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartPlan {
    /// Service names, level by level.
    pub levels: Vec<Vec<String>>,
}

impl StartPlan {
    /// The order in which services stop: the start levels reversed, so dependents stop first.
    pub fn stop_levels(&self) -> Vec<Vec<String>> {
        self.levels.iter().rev().cloned().collect()
    }
}

impl fmt::Display for StartPlan {
    /// One line per level: `level 0: records`, `level 1: ingestion, export`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, level) in self.levels.iter().enumerate() {
            writeln!(f, "level {index}: {}", level.join(", "))?;
        }
        Ok(())
    }
}

impl Registry {
    /// The service called `name`, active or not.
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|service| service.name == name)
    }

    /// The start order of the active services.
    ///
    /// Dependency mode: level 0 holds services without dependencies, each later service sits
    /// one level after its deepest dependency. Sequential mode: one service per level, in file
    /// order except that a service never comes before its dependencies.
    /// Dependencies on inactive or unknown services are ignored (validation rejects them).
    /// Should a registry built by hand contain a cycle, its services are placed last, in file
    /// order, rather than dropped.
    pub fn start_plan(&self) -> StartPlan {
        let active: Vec<&ServiceSpec> = self
            .services
            .iter()
            .filter(|service| service.is_active())
            .collect();
        let index: HashMap<&str, usize> = active
            .iter()
            .enumerate()
            .map(|(position, service)| (service.name.as_str(), position))
            .collect();
        let dependencies: Vec<Vec<usize>> = active
            .iter()
            .map(|service| {
                service
                    .depends_on
                    .iter()
                    .filter_map(|name| index.get(name.as_str()).copied())
                    .collect()
            })
            .collect();
        let name = |position: usize| active[position].name.clone();
        match self.app.startup {
            StartupMode::Dependency => StartPlan {
                levels: levels(&dependencies)
                    .into_iter()
                    .map(|level| level.into_iter().map(name).collect())
                    .collect(),
            },
            StartupMode::Sequential => StartPlan {
                levels: sequence(&dependencies)
                    .into_iter()
                    .map(|position| vec![name(position)])
                    .collect(),
            },
        }
    }
}

/// Groups nodes `0..n` into levels; `dependencies[i]` lists the nodes `i` needs first.
fn levels(dependencies: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n_nodes = dependencies.len();
    let mut level_of: Vec<Option<usize>> = vec![None; n_nodes];
    let mut n_placed = 0;
    // Each pass places every node whose dependencies all have a level; a pass that places
    // nothing means the rest is cyclic.
    loop {
        let mut progress = false;
        for node in 0..n_nodes {
            if level_of[node].is_some() {
                continue;
            }
            let deepest = dependencies[node]
                .iter()
                .map(|dependency| level_of[*dependency].map(|level| level + 1))
                .try_fold(0, |deepest, level| level.map(|level| level.max(deepest)));
            if let Some(level) = deepest {
                level_of[node] = Some(level);
                n_placed += 1;
                progress = true;
            }
        }
        if !progress || n_placed == n_nodes {
            break;
        }
    }
    let n_levels = level_of
        .iter()
        .flatten()
        .max()
        .map_or(0, |deepest| deepest + 1);
    let mut grouped = vec![Vec::new(); n_levels];
    let mut cyclic = Vec::new();
    for (node, level) in level_of.into_iter().enumerate() {
        match level {
            Some(level) => grouped[level].push(node),
            None => cyclic.push(node),
        }
    }
    if !cyclic.is_empty() {
        grouped.push(cyclic);
    }
    grouped
}

/// Nodes in file order, except that each waits for its dependencies (stable topological order).
fn sequence(dependencies: &[Vec<usize>]) -> Vec<usize> {
    let n_nodes = dependencies.len();
    let mut placed = vec![false; n_nodes];
    let mut order = Vec::with_capacity(n_nodes);
    while order.len() < n_nodes {
        let ready = (0..n_nodes).find(|node| {
            !placed[*node]
                && dependencies[*node]
                    .iter()
                    .all(|dependency| placed[*dependency])
        });
        // Without a ready node the rest is cyclic: take the first one so nothing is dropped.
        let Some(node) = ready.or_else(|| (0..n_nodes).find(|node| !placed[*node])) else {
            break;
        };
        placed[node] = true;
        order.push(node);
    }
    order
}

/// One simple cycle per group of mutually dependent nodes, each starting at the group's first
/// node in file order and listed without repeating it (`[a, b]` means `a -> b -> a`).
pub(crate) fn find_cycles(dependencies: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n_nodes = dependencies.len();
    // Registries are small, so plain reachability (n depth-first searches) is simpler than
    // Tarjan's algorithm and fast enough.
    let reach: Vec<Vec<bool>> = (0..n_nodes)
        .map(|start| {
            let mut seen = vec![false; n_nodes];
            let mut stack: Vec<usize> = dependencies[start].clone();
            while let Some(node) = stack.pop() {
                if !seen[node] {
                    seen[node] = true;
                    stack.extend(&dependencies[node]);
                }
            }
            seen
        })
        .collect();
    let mut reported = vec![false; n_nodes];
    let mut cycles = Vec::new();
    for start in 0..n_nodes {
        if reported[start] || !reach[start][start] {
            continue;
        }
        let in_group = |node: usize| reach[start][node] && reach[node][start];
        for (node, seen) in reported.iter_mut().enumerate() {
            *seen |= in_group(node);
        }
        cycles.push(shortest_cycle_through(start, dependencies, &in_group));
    }
    cycles
}

/// Breadth-first search from `start` back to itself within the group: the shortest such path
/// visits no node twice, so it is a simple cycle.
fn shortest_cycle_through(
    start: usize,
    dependencies: &[Vec<usize>],
    in_group: &dyn Fn(usize) -> bool,
) -> Vec<usize> {
    let mut parent: Vec<Option<usize>> = vec![None; dependencies.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in &dependencies[node] {
            if next == start {
                let mut cycle = vec![node];
                let mut current = node;
                while let Some(previous) = parent[current] {
                    cycle.push(previous);
                    current = previous;
                }
                cycle.reverse();
                return cycle;
            }
            if in_group(next) && parent[next].is_none() && next != start {
                parent[next] = Some(node);
                queue.push_back(next);
            }
        }
    }
    // Unreachable for a node that reaches itself, which is the caller's precondition.
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_deepest_dependency() {
        // 0 <- 1 <- 2, and 3 alone.
        let dependencies = vec![vec![], vec![0], vec![1, 0], vec![]];
        assert_eq!(levels(&dependencies), vec![vec![0, 3], vec![1], vec![2]]);
    }

    #[test]
    fn sequence_keeps_file_order_unless_a_dependency_comes_later() {
        let dependencies = vec![vec![2], vec![], vec![]];
        assert_eq!(sequence(&dependencies), vec![1, 2, 0]);
    }

    #[test]
    fn cycles_are_found_once_per_group() {
        // 0 -> 1 -> 2 -> 0, 3 -> 3, 4 -> 0 (depends on the cycle, not part of it).
        let dependencies = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        assert_eq!(find_cycles(&dependencies), vec![vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn cyclic_leftovers_are_placed_last_not_dropped() {
        let dependencies = vec![vec![], vec![2], vec![1]];
        assert_eq!(levels(&dependencies), vec![vec![0], vec![1, 2]]);
        assert_eq!(sequence(&dependencies), vec![0, 1, 2]);
    }
}
