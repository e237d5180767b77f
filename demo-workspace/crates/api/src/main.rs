//! attune-api: the HTTP face of Attune. Answers GET with JSON of the packs it sees and its build id,
//! so a test (or a person with curl) can prove what a running container sees.
//!
//! Routes (GET only): `/` and `/packs` — the packs as loaded at start or at the last SIGHUP;
//! `/live` — the packs directory scanned now; `/health` — `{"ok":true}`.
//! Port: `ATTUNE_API_PORT` (default 8080), on all interfaces.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use attune_common::json;
use attune_common::log::log;
use attune_common::packs;
use attune_common::service::{PacksState, Service};

/// Shown in every answer; edit it to see a rebuilt binary's new behaviour.
const MESSAGE: &str = "attune api ready";

fn body(state: &PacksState, live: bool) -> String {
    let (packs_json, error, loads) = if live {
        match packs::scan(&state.dir) {
            Ok(found) => (packs::to_json(&found), None, state.loads),
            Err(err) => ("[]".to_string(), Some(err.to_string()), state.loads),
        }
    } else {
        (
            packs::to_json(&state.packs),
            state.error.clone(),
            state.loads,
        )
    };
    format!(
        "{{\"service\":\"api\",\"build_id\":{},\"version\":{},\"message\":{},\"live\":{},\"packs_dir\":{},\
\"loads\":{},\"loaded_at\":{},\"error\":{},\"packs\":{}}}",
        json::string(attune_common::BUILD_ID),
        json::string(env!("CARGO_PKG_VERSION")),
        json::string(MESSAGE),
        live,
        json::string(&state.dir.to_string_lossy()),
        loads,
        state.loaded_at,
        error.as_deref().map(json::string).unwrap_or_else(|| "null".to_string()),
        packs_json
    )
}

fn handle(mut stream: TcpStream, state: &Arc<Mutex<PacksState>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers so the client sees a clean close.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let (status, payload) = match (method, path) {
        ("GET", "/") | ("GET", "/packs") => {
            ("200 OK", body(&state.lock().expect("packs state"), false))
        }
        ("GET", "/live") => {
            let snapshot = state.lock().expect("packs state").clone();
            ("200 OK", body(&snapshot, true))
        }
        ("GET", "/health") => ("200 OK", "{\"ok\":true}".to_string()),
        ("GET", _) => (
            "404 Not Found",
            format!("{{\"error\":{}}}", json::string("no such path")),
        ),
        _ => (
            "405 Method Not Allowed",
            format!("{{\"error\":{}}}", json::string("GET only")),
        ),
    };
    log("api", "INFO", &format!("{} {} -> {}", method, path, status));
    let response = format!(
        "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status,
        payload.len(),
        payload
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

fn main() {
    let service = Service::start("api");
    let port: u16 = std::env::var("ATTUNE_API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(listener) => listener,
        Err(err) => {
            log(
                "api",
                "ERROR",
                &format!("cannot listen on port {}: {}", port, err),
            );
            std::process::exit(1);
        }
    };
    log("api", "INFO", &format!("listening on 0.0.0.0:{}", port));
    let state = service.state.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    if let Err(err) = handle(stream, &state) {
                        log("api", "WARN", &format!("request failed: {}", err));
                    }
                }
                Err(err) => log("api", "WARN", &format!("accept failed: {}", err)),
            }
        }
    });
    service.run(|_packs| {})
}
