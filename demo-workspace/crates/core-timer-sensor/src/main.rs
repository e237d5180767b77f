//! attune-core-timer-sensor: the `core` pack's interval timer. Prints one JSON trigger event per
//! interval (`ATTUNE_TIMER_INTERVAL_SECS`, default 5) on stdout, for ever; `--once` prints one event
//! and exits (a quick check that the built binary runs).

use std::thread;
use std::time::Duration;

use attune_common::json;
use attune_common::log::now_secs;

fn event(tick: u64) -> String {
    format!(
        "{{\"trigger\":\"core.intervaltimer\",\"tick\":{},\"at\":{},\"build_id\":{}}}",
        tick,
        now_secs(),
        json::string(attune_common::BUILD_ID)
    )
}

fn main() {
    let once = std::env::args().skip(1).any(|a| a == "--once");
    let interval = std::env::var("ATTUNE_TIMER_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(5);
    let mut tick = 0u64;
    loop {
        println!("{}", event(tick));
        if once {
            return;
        }
        tick += 1;
        thread::sleep(Duration::from_secs(interval));
    }
}
