//! The local runner's data directory: state, messages, secrets. Opened as found and never
//! deleted (only the demo's own directory is started afresh); marked as mailbridge's so that an
//! unrelated folder is refused rather than used or wiped; locked, so that a second instance on the
//! same directory stops before touching anything; readable by its owner only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file that marks a directory as mailbridge's, and says whose: `serve` or `demo`.
const MARKER: &str = "MAILBRIDGE-DATA";
/// The file held locked while an instance uses the directory.
const LOCK: &str = "lock";

/// What a directory is for: the durable data of `serve`, or the demo's, started afresh each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Demo,
}

impl Purpose {
    fn word(self) -> &'static str {
        match self {
            Purpose::Serve => "serve",
            Purpose::Demo => "demo",
        }
    }
}

/// A data directory in use: held locked until dropped (or the process ends, however it ends).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Opens `path` for `purpose`: creates it if missing, adopts it if empty, refuses a folder that
    /// holds anything but mailbridge's data for that purpose, and refuses while another instance
    /// holds it. The demo's directory is emptied first (and only the demo's).
    pub fn open(path: &Path, purpose: Purpose) -> Result<DataDir, String> {
        let shown = path.display();
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
                let marker = std::fs::read_to_string(path.join(MARKER)).ok();
                match marker.as_deref().map(str::trim) {
                    _ if entries.is_empty() => {}
                    Some(word) if word == purpose.word() => {}
                    Some(word) => {
                        return Err(format!(
                            "{shown} holds mailbridge's {word} data; use another directory for {}",
                            purpose.word()
                        ))
                    }
                    None => {
                        return Err(format!(
                            "{shown} is not empty and is not a mailbridge data directory; \
                             name a new or empty directory"
                        ))
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path)
                    .map_err(|e| format!("cannot create the data directory {shown}: {e}"))?;
            }
            Err(e) => return Err(format!("cannot read the data directory {shown}: {e}")),
        }
        owner_only(path)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK))
            .map_err(|e| format!("cannot open {}: {e}", path.join(LOCK).display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "another mailbridge is running on {shown}; stop it first, or name another \
                     directory"
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {shown}: {e}"))
            }
        }
        // Locked: only now may anything be removed or written.
        if purpose == Purpose::Demo {
            for entry in std::fs::read_dir(path).map_err(|e| format!("{shown}: {e}"))? {
                let entry = entry.map_err(|e| format!("{shown}: {e}"))?;
                if entry.file_name() == LOCK {
                    continue;
                }
                let p = entry.path();
                let removed = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                removed.map_err(|e| format!("cannot clear {}: {e}", p.display()))?;
            }
        }
        let mut marker = File::create(path.join(MARKER))
            .map_err(|e| format!("cannot write {}: {e}", path.join(MARKER).display()))?;
        writeln!(marker, "{}", purpose.word()).map_err(|e| format!("{shown}: {e}"))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Only the owner may list or enter the directory, so nothing in it is readable by other local
/// users, whatever the modes of the files SQLite and the message store create inside.
fn owner_only(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_created_private_and_marked() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("data");
        let dir = DataDir::open(&path, Purpose::Serve).unwrap();
        assert_eq!(dir.path(), path);
        assert_eq!(
            std::fs::read_to_string(path.join(MARKER)).unwrap().trim(),
            "serve"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn a_second_instance_is_refused_and_touches_nothing() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("data");
        let first = DataDir::open(&path, Purpose::Serve).unwrap();
        std::fs::write(path.join("state.db"), b"precious").unwrap();
        let second = DataDir::open(&path, Purpose::Serve).unwrap_err();
        assert!(second.contains("another mailbridge is running"), "{second}");
        // Not even a demo may clear it while it is in use.
        let demo = DataDir::open(&path, Purpose::Demo).unwrap_err();
        assert!(demo.contains("serve data"), "{demo}");
        assert_eq!(std::fs::read(path.join("state.db")).unwrap(), b"precious");
        drop(first);
        // Reopened after the first instance stopped: as it was.
        let again = DataDir::open(&path, Purpose::Serve).unwrap();
        assert_eq!(
            std::fs::read(again.path().join("state.db")).unwrap(),
            b"precious"
        );
    }

    #[test]
    fn an_unrelated_folder_is_refused_and_left_alone() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("thesis.docx"), b"years of work").unwrap();
        for purpose in [Purpose::Serve, Purpose::Demo] {
            let e = DataDir::open(root.path(), purpose).unwrap_err();
            assert!(e.contains("not a mailbridge data directory"), "{e}");
        }
        assert_eq!(
            std::fs::read(root.path().join("thesis.docx")).unwrap(),
            b"years of work"
        );
        // An empty folder is adopted.
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(DataDir::open(&empty, Purpose::Serve).is_ok());
    }

    #[test]
    fn only_the_demo_starts_afresh() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("demo");
        drop(DataDir::open(&path, Purpose::Demo).unwrap());
        std::fs::create_dir(path.join("store")).unwrap();
        std::fs::write(path.join("state.db"), b"last run").unwrap();
        let dir = DataDir::open(&path, Purpose::Demo).unwrap();
        assert!(!dir.path().join("state.db").exists());
        assert!(!dir.path().join("store").exists());
        drop(dir);

        let serve = root.path().join("serve");
        drop(DataDir::open(&serve, Purpose::Serve).unwrap());
        std::fs::write(serve.join("state.db"), b"mail").unwrap();
        assert!(DataDir::open(&serve, Purpose::Demo).is_err());
        let dir = DataDir::open(&serve, Purpose::Serve).unwrap();
        assert_eq!(std::fs::read(dir.path().join("state.db")).unwrap(), b"mail");
    }
}
