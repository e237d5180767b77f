//! The life of every Attune service: log start, list the packs, then heartbeat for ever, re-reading
//! the packs on SIGHUP and stopping cleanly on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::log::log;
use crate::packs::{self, Pack};
use crate::signals;

/// What a service sees: its packs as of the last (re)load, shared with other threads (the api's
/// HTTP listener reads it).
#[derive(Debug, Clone)]
pub struct PacksState {
    pub dir: PathBuf,
    pub packs: Vec<Pack>,
    /// How many times the packs were loaded (1 after start, +1 per SIGHUP).
    pub loads: u64,
    /// Unix time of the last load.
    pub loaded_at: u64,
    /// The error of the last load, if it failed (e.g. the directory is missing).
    pub error: Option<String>,
}

pub struct Service {
    pub name: &'static str,
    pub state: Arc<Mutex<PacksState>>,
    heartbeat: Duration,
}

impl Service {
    /// Log the start line, install signal handlers and load the packs once.
    pub fn start(name: &'static str) -> Service {
        let dir = packs::packs_dir();
        let heartbeat = std::env::var("ATTUNE_HEARTBEAT_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(5);
        log(
            name,
            "INFO",
            &format!(
                "starting attune-{} build_id={} packs_dir={} heartbeat={}s",
                name,
                crate::BUILD_ID,
                dir.display(),
                heartbeat
            ),
        );
        if let Err(err) = signals::install() {
            log(name, "WARN", &err);
        }
        let state = PacksState {
            dir,
            packs: Vec::new(),
            loads: 0,
            loaded_at: 0,
            error: None,
        };
        let service = Service {
            name,
            state: Arc::new(Mutex::new(state)),
            heartbeat: Duration::from_secs(heartbeat),
        };
        service.load_packs();
        service
    }

    /// (Re)read the packs directory and log one line per pack.
    pub fn load_packs(&self) -> Vec<Pack> {
        let dir = self.state.lock().expect("packs state").dir.clone();
        let result = packs::scan(&dir);
        let mut state = self.state.lock().expect("packs state");
        state.loads += 1;
        state.loaded_at = crate::log::now_secs();
        match result {
            Ok(found) => {
                if found.is_empty() {
                    log(
                        self.name,
                        "WARN",
                        &format!("no packs under {}", dir.display()),
                    );
                }
                for pack in &found {
                    log(
                        self.name,
                        "INFO",
                        &format!(
                            "pack {}: {} files (checksum {})",
                            pack.name,
                            pack.files.len(),
                            pack.checksum
                        ),
                    );
                }
                state.packs = found;
                state.error = None;
            }
            Err(err) => {
                log(
                    self.name,
                    "WARN",
                    &format!("cannot read packs under {}: {}", dir.display(), err),
                );
                state.packs = Vec::new();
                state.error = Some(err.to_string());
            }
        }
        state.packs.clone()
    }

    /// Run for ever: a heartbeat line every few seconds (`ATTUNE_HEARTBEAT_SECS`, default 5); on SIGHUP
    /// re-read the packs and call `on_reload` with them; exit 0 on SIGTERM/SIGINT.
    pub fn run<F: FnMut(&[Pack])>(self, mut on_reload: F) -> ! {
        let started = Instant::now();
        let mut next_beat = Instant::now() + self.heartbeat;
        loop {
            thread::sleep(Duration::from_millis(200));
            if signals::terminate_requested() {
                log(self.name, "INFO", "stopping (signal received)");
                std::process::exit(0);
            }
            if signals::take_hangup() {
                log(self.name, "INFO", "SIGHUP: re-reading packs");
                let packs = self.load_packs();
                on_reload(&packs);
            }
            if Instant::now() >= next_beat {
                let count = self.state.lock().expect("packs state").packs.len();
                log(
                    self.name,
                    "INFO",
                    &format!(
                        "heartbeat uptime={}s packs={}",
                        started.elapsed().as_secs(),
                        count
                    ),
                );
                next_beat += self.heartbeat;
            }
        }
    }
}
