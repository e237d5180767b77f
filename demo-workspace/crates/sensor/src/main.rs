//! attune-sensor: finds the packs' sensors (files under `sensors/`) and reports which are runnable.

use attune_common::log::log;
use attune_common::packs::Pack;
use attune_common::service::Service;

fn log_sensors(packs: &[Pack]) {
    for pack in packs {
        for file in pack.files.iter().filter(|f| f.path.starts_with("sensors/")) {
            if file.path.ends_with("/.gitkeep") {
                continue;
            }
            let state = if file.executable {
                "executable"
            } else {
                "not executable"
            };
            log(
                "sensor",
                "INFO",
                &format!(
                    "sensor {}/{}: {} bytes, {}",
                    pack.name, file.path, file.size, state
                ),
            );
        }
    }
}

fn main() {
    let service = Service::start("sensor");
    let packs = service.state.lock().expect("packs state").packs.clone();
    log_sensors(&packs);
    service.run(log_sensors)
}
