//! Scanning the packs directory (`/opt/attune/packs`, or `ATTUNE_PACKS_DIR`): one sub-directory per
//! pack, every regular file in it counted, sized and checksummed so a caller can tell exactly which
//! content a running service sees.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::json;

pub const DEFAULT_PACKS_DIR: &str = "/opt/attune/packs";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackFile {
    /// Path relative to the pack directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// FNV-1a 64-bit of the content, as 16 hex digits (not cryptographic; it only has to change
    /// when the content does).
    pub checksum: String,
    pub executable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    pub name: String,
    /// `version:` from pack.yaml, when there is one.
    pub version: Option<String>,
    /// Sorted by path.
    pub files: Vec<PackFile>,
    /// Checksum over every file's path and checksum.
    pub checksum: String,
}

/// The packs directory: `ATTUNE_PACKS_DIR` when set and non-empty, else `/opt/attune/packs`.
pub fn packs_dir() -> PathBuf {
    match std::env::var("ATTUNE_PACKS_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_PACKS_DIR),
    }
}

/// FNV-1a 64 over `bytes`, continuing from `hash` (start with [`FNV_OFFSET`]).
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Every pack under `dir`, sorted by name. Entries that are not directories are ignored, and so
/// are hidden ones: a tool refreshing the packs volume keeps its staging area and lock there
/// (`.attune-txn-*`, `.attune-lock`) for the moment of a commit, and those are not packs.
pub fn scan(dir: &Path) -> io::Result<Vec<Pack>> {
    let mut packs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        packs.push(scan_pack(&name, &entry.path())?);
    }
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packs)
}

fn scan_pack(name: &str, root: &Path) -> io::Result<Pack> {
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hash = FNV_OFFSET;
    for f in &files {
        hash = fnv1a(hash, f.path.as_bytes());
        hash = fnv1a(hash, &[0]);
        hash = fnv1a(hash, f.checksum.as_bytes());
    }
    let version = fs::read_to_string(root.join("pack.yaml"))
        .ok()
        .and_then(|text| yaml_field(&text, "version"));
    Ok(Pack {
        name: name.to_string(),
        version,
        files,
        checksum: format!("{:016x}", hash),
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PackFile>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = fs::metadata(&path)?;
        if meta.is_dir() {
            collect(root, &path, out)?;
        } else if meta.is_file() {
            let content = fs::read(&path)?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(PackFile {
                path: rel.join("/"),
                size: meta.len(),
                checksum: format!("{:016x}", fnv1a(FNV_OFFSET, &content)),
                executable: meta.permissions().mode() & 0o111 != 0,
            });
        }
    }
    Ok(())
}

/// The value of a top-level `key: value` line of a simple YAML document (quotes stripped). Enough
/// for pack.yaml and action files; not a YAML parser.
pub fn yaml_field(text: &str, key: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('\t') || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim() == key {
                let v = v.trim().trim_matches('"').trim_matches('\'');
                if !v.is_empty() {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

/// The packs as a JSON array: name, version, file count, checksum and every file's path, size,
/// checksum and executable bit.
pub fn to_json(packs: &[Pack]) -> String {
    let items: Vec<String> =
        packs
            .iter()
            .map(|p| {
                let files: Vec<String> = p
                    .files
                    .iter()
                    .map(|f| {
                        format!(
                            "{{\"path\":{},\"size\":{},\"checksum\":{},\"executable\":{}}}",
                            json::string(&f.path),
                            f.size,
                            json::string(&f.checksum),
                            f.executable
                        )
                    })
                    .collect();
                format!(
                "{{\"name\":{},\"version\":{},\"files\":{},\"checksum\":{},\"files_list\":[{}]}}",
                json::string(&p.name),
                p.version.as_deref().map(json::string).unwrap_or_else(|| "null".to_string()),
                p.files.len(),
                json::string(&p.checksum),
                files.join(",")
            )
            })
            .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_packs_with_counts_and_checksums() {
        let dir = std::env::temp_dir().join(format!("attune-packs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("core/actions")).unwrap();
        fs::write(
            dir.join("core/pack.yaml"),
            "ref: core\nversion: \"1.2.0\"\n",
        )
        .unwrap();
        fs::write(dir.join("core/actions/echo.yaml"), "name: echo\n").unwrap();
        fs::write(dir.join("stray-file"), "not a pack").unwrap();
        fs::create_dir_all(dir.join(".attune-txn-1/core")).unwrap();
        fs::write(dir.join(".attune-txn-1/core/half"), "staged").unwrap();
        let packs = scan(&dir).unwrap();
        assert_eq!(packs.len(), 1);
        assert_eq!(packs[0].name, "core");
        assert_eq!(packs[0].version.as_deref(), Some("1.2.0"));
        assert_eq!(packs[0].files.len(), 2);
        assert_eq!(packs[0].files[0].path, "actions/echo.yaml");
        let before = packs[0].checksum.clone();
        fs::write(dir.join("core/actions/echo.yaml"), "name: echo2\n").unwrap();
        assert_ne!(scan(&dir).unwrap()[0].checksum, before);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn fnv_matches_reference_vector() {
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
