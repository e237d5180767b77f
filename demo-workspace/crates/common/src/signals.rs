//! SIGHUP (re-read packs) and SIGTERM/SIGINT (stop) without the libc crate: std already links the C
//! library, so declaring its `signal()` is enough. The handler only stores to atomics, which is
//! async-signal-safe; the service loop polls them.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};

const SIGHUP: c_int = 1;
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIG_ERR: usize = usize::MAX;

static HANGUP: AtomicBool = AtomicBool::new(false);
static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
}

extern "C" fn on_signal(signum: c_int) {
    if signum == SIGHUP {
        HANGUP.store(true, Ordering::SeqCst);
    } else {
        TERMINATE.store(true, Ordering::SeqCst);
    }
}

/// Install the handlers. Without a SIGTERM handler a service running as PID 1 in a container would
/// ignore `docker stop` and be killed only after the 10 s grace period.
pub fn install() -> Result<(), String> {
    for signum in [SIGHUP, SIGINT, SIGTERM] {
        // SAFETY: `signal` is the C library's; the handler is an `extern "C"` fn that only touches atomics.
        let previous = unsafe { signal(signum, on_signal) };
        if previous == SIG_ERR {
            return Err(format!("cannot install a handler for signal {}", signum));
        }
    }
    Ok(())
}

/// True once per SIGHUP received since the last call.
pub fn take_hangup() -> bool {
    HANGUP.swap(false, Ordering::SeqCst)
}

pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}
