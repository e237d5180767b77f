//! attune-worker: runs the actions of one runtime (`ATTUNE_WORKER_RUNTIME`, default `shell`); the
//! compose service `worker-shell` is this binary. Uses the executor crate's planning.

use std::path::Path;

use attune_common::log::log;
use attune_common::packs::Pack;
use attune_common::service::Service;

fn log_runnable(runtime: &str, dir: &Path, packs: &[Pack]) {
    let runnable: Vec<String> = attune_executor::actions(dir, packs)
        .into_iter()
        .filter(|a| a.runner == runtime)
        .map(|a| a.reference)
        .collect();
    log(
        "worker",
        "INFO",
        &format!(
            "runtime {}: {} runnable actions [{}]",
            runtime,
            runnable.len(),
            runnable.join(", ")
        ),
    );
}

fn main() {
    let runtime = std::env::var("ATTUNE_WORKER_RUNTIME").unwrap_or_else(|_| "shell".to_string());
    let service = Service::start("worker");
    let dir = service.state.lock().expect("packs state").dir.clone();
    let packs = service.state.lock().expect("packs state").packs.clone();
    log_runnable(&runtime, &dir, &packs);
    service.run(move |packs| log_runnable(&runtime, &dir, packs))
}
