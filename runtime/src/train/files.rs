//! Writing output files so that nothing is lost: atomically (a temporary
//! beside the target, synced, renamed over it), only onto regular files
//! (through a symlink to its target, never over a device), and cleaning up
//! the temporaries a killed run left behind.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Write `path` atomically. A crash leaves the old file or the new one; a
/// symlink is written through (the link stays, its target is replaced); a
/// device, pipe, socket or directory is refused. Temporaries of the same
/// target left by runs that were killed mid-write are removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = writable_target(path)?;
    let dir = parent(&target);
    let name = file_name(&target);
    remove_stale_temporaries(dir, &name);
    let tmp = dir.join(format!("{}{}", temporary_prefix(&name), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        // Persist the rename itself; not every platform can open a directory.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The file a write to `path` replaces: `path` itself, or the file a
/// symlink (or chain of them) points to. An existing target that is not a
/// regular file is refused: renaming over `/dev/full` would replace the
/// device with a file.
pub fn writable_target(path: &Path) -> io::Result<PathBuf> {
    let mut target = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&target)?;
                target = parent(&target).join(link);
            }
            Ok(meta) if meta.is_file() => return Ok(target),
            Ok(meta) => {
                let kind = if meta.is_dir() { "a directory" } else { "not a regular file (a device, pipe or socket)" };
                let via = if target == path { String::new() } else { format!(" (the symlink's target {})", target.display()) };
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("is {kind}{via}; give the name of a file")));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(target),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidInput, "too many levels of symbolic links"))
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned())
}

/// Temporaries are named `.<name>.tmp-<pid>`.
fn temporary_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Remove `.<name>.tmp-<pid>` files in `dir` whose process is gone (a run
/// killed between creating and renaming its temporary). Where liveness
/// cannot be told (no `/proc`), only temporaries a day old are removed.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = temporary_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let has_proc = Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let stale = if has_proc {
            pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
        } else {
            entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 86_400))
        };
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convc-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A temporary of a process that no longer exists is removed by the
    /// next save of the same target; one of a live process, and those of
    /// other targets, stay.
    #[test]
    fn stale_temporaries_are_removed_on_the_next_save() {
        let dir = scratch("stale");
        // Process ids are below 2^22 on Linux; this one cannot be running.
        let dead = dir.join(".w.safetensors.tmp-4294967");
        let other = dir.join(".v.safetensors.tmp-4294967");
        for f in [&dead, &other] {
            std::fs::write(f, b"half a file").unwrap();
        }
        // The parent of this test is alive, so its temporary stays.
        let parent_tmp = dir.join(format!(".w.safetensors.tmp-{}", std::os::unix::process::parent_id()));
        std::fs::write(&parent_tmp, b"being written").unwrap();
        write_atomic(&dir.join("w.safetensors"), b"whole").unwrap();
        assert_eq!(std::fs::read(dir.join("w.safetensors")).unwrap(), b"whole");
        assert!(!dead.exists(), "the dead run's temporary is removed");
        assert!(parent_tmp.exists(), "a live process's temporary stays");
        assert!(other.exists(), "another target's temporary stays");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A symlink is written through to its target and stays a symlink; a
    /// device and a directory are refused and left as they were.
    #[test]
    fn symlinks_are_written_through_and_special_files_refused() {
        let dir = scratch("links");
        let real = dir.join("real.safetensors");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.join("link.safetensors");
        std::os::unix::fs::symlink("real.safetensors", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read(&real).unwrap(), b"new", "its target has the new bytes");

        let err = write_atomic(Path::new("/dev/null"), b"x").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file(), "/dev/null is still a device");
        let to_dev = dir.join("to-dev");
        std::os::unix::fs::symlink("/dev/null", &to_dev).unwrap();
        let err = write_atomic(&to_dev, b"x").unwrap_err();
        assert!(err.to_string().contains("the symlink's target /dev/null"), "{err}");
        let err = write_atomic(&dir, b"x").unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
