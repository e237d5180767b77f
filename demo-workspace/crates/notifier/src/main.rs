//! attune-notifier: would fan out execution events; here it watches the packs and says how many
//! notification targets it would serve.

use attune_common::log::log;
use attune_common::packs::Pack;
use attune_common::service::Service;

fn log_targets(packs: &[Pack]) {
    let files: usize = packs.iter().map(|p| p.files.len()).sum();
    log(
        "notifier",
        "INFO",
        &format!("notifying for {} packs ({} files)", packs.len(), files),
    );
}

fn main() {
    let service = Service::start("notifier");
    let packs = service.state.lock().expect("packs state").packs.clone();
    log_targets(&packs);
    service.run(log_targets)
}
