//! attune-executor: plans executions of the packs' actions and logs the plan at start and on SIGHUP.

use std::path::Path;

use attune_common::log::log;
use attune_common::packs::Pack;
use attune_common::service::Service;

fn log_plan(dir: &Path, packs: &[Pack]) {
    let plan = attune_executor::plan(&attune_executor::actions(dir, packs));
    log(
        "executor",
        "INFO",
        &format!("execution plan: {}", attune_executor::describe(&plan)),
    );
}

fn main() {
    let service = Service::start("executor");
    let dir = service.state.lock().expect("packs state").dir.clone();
    let packs = service.state.lock().expect("packs state").packs.clone();
    log_plan(&dir, &packs);
    service.run(move |packs| log_plan(&dir, packs))
}
