//! Execution planning: which actions the packs define and which runner each needs. The executor
//! service logs the plan; the worker (through a path dependency on this crate) picks the actions
//! its runtime can run.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use attune_common::packs::{yaml_field, Pack};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// `<pack>.<name>`, e.g. `core.echo`.
    pub reference: String,
    /// `runner_type:` of the action file, `shell` when absent.
    pub runner: String,
    pub entry_point: Option<String>,
}

/// Every `actions/*.yaml` of every pack under `packs_dir`, sorted by reference.
pub fn actions(packs_dir: &Path, packs: &[Pack]) -> Vec<Action> {
    let mut out = Vec::new();
    for pack in packs {
        for file in &pack.files {
            let is_action = file.path.starts_with("actions/")
                && (file.path.ends_with(".yaml") || file.path.ends_with(".yml"))
                && !file.path["actions/".len()..].contains('/');
            if !is_action {
                continue;
            }
            let text = match fs::read_to_string(packs_dir.join(&pack.name).join(&file.path)) {
                Ok(text) => text,
                Err(_) => continue,
            };
            let stem = file.path["actions/".len()..]
                .rsplit_once('.')
                .map(|(s, _)| s)
                .unwrap_or("");
            let name = yaml_field(&text, "name").unwrap_or_else(|| stem.to_string());
            out.push(Action {
                reference: format!("{}.{}", pack.name, name),
                runner: yaml_field(&text, "runner_type").unwrap_or_else(|| "shell".to_string()),
                entry_point: yaml_field(&text, "entry_point"),
            });
        }
    }
    out.sort_by(|a, b| a.reference.cmp(&b.reference));
    out
}

/// Actions grouped by runner: runner -> action references.
pub fn plan(actions: &[Action]) -> BTreeMap<String, Vec<String>> {
    let mut by_runner: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for action in actions {
        by_runner
            .entry(action.runner.clone())
            .or_default()
            .push(action.reference.clone());
    }
    by_runner
}

/// One line describing a plan, e.g. `3 actions: python=1 shell=2`.
pub fn describe(plan: &BTreeMap<String, Vec<String>>) -> String {
    let total: usize = plan.values().map(Vec::len).sum();
    let parts: Vec<String> = plan
        .iter()
        .map(|(runner, refs)| format!("{}={}", runner, refs.len()))
        .collect();
    format!("{} actions: {}", total, parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_actions_by_runner() {
        let a = |r: &str, runner: &str| Action {
            reference: r.to_string(),
            runner: runner.to_string(),
            entry_point: None,
        };
        let p = plan(&[
            a("core.echo", "shell"),
            a("core.http", "python"),
            a("core.sleep", "shell"),
        ]);
        assert_eq!(describe(&p), "3 actions: python=1 shell=2");
    }
}
