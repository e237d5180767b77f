//! attune-sensor: finds the packs' sensor descriptors (`sensors/*.yaml`) and reports, for each, whether
//! its `entry_point` binary is in the pack and executable (pack binaries such as
//! attune-core-timer-sensor are built by scripts/build-pack-binaries.sh and arrive with the packs).

use std::fs;
use std::path::Path;

use attune_common::log::log;
use attune_common::packs::{yaml_field, Pack};
use attune_common::service::Service;

fn log_sensors(dir: &Path, packs: &[Pack]) {
    for pack in packs {
        for file in pack
            .files
            .iter()
            .filter(|f| f.path.starts_with("sensors/") && f.path.ends_with(".yaml"))
        {
            let text =
                fs::read_to_string(dir.join(&pack.name).join(&file.path)).unwrap_or_default();
            let name = yaml_field(&text, "name").unwrap_or_else(|| file.path.clone());
            let entry = match yaml_field(&text, "entry_point") {
                Some(entry) => entry,
                None => {
                    log(
                        "sensor",
                        "WARN",
                        &format!("sensor {}.{}: no entry_point", pack.name, name),
                    );
                    continue;
                }
            };
            let binary = format!("sensors/{}", entry);
            let state = match pack.files.iter().find(|f| f.path == binary) {
                Some(f) if f.executable => format!("ready ({} bytes)", f.size),
                Some(_) => "entry point is not executable".to_string(),
                None => "entry point missing (run scripts/build-pack-binaries.sh)".to_string(),
            };
            log(
                "sensor",
                "INFO",
                &format!("sensor {}.{} -> {}: {}", pack.name, name, binary, state),
            );
        }
    }
}

fn main() {
    let service = Service::start("sensor");
    let dir = service.state.lock().expect("packs state").dir.clone();
    let packs = service.state.lock().expect("packs state").packs.clone();
    log_sensors(&dir, &packs);
    service.run(move |packs| log_sensors(&dir, packs))
}
