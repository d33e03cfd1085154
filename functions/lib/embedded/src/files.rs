//! Messages as files (streamed to a temporary file, then renamed into place) and secrets in an encrypted file.

use async_trait::async_trait;
use bytes::Bytes;
use mailbridge_core::crypto::{Sealed, SealingKey};
use mailbridge_core::ports::{BlobReader, BlobStore, BlobWriter, SecretStore};
use mailbridge_core::{Error, Result, Secret};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::io::AsyncWriteExt;

pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Removes the partial files of writes that never committed (a process killed while storing
    /// a message). Only for a store no other process is writing to. Returns how many.
    pub fn remove_unfinished(&self) -> std::io::Result<usize> {
        fn walk(dir: &Path, removed: &mut usize) -> std::io::Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if entry.file_type()?.is_dir() {
                    walk(&path, removed)?;
                } else if name.starts_with('.') && name.ends_with(".part") {
                    std::fs::remove_file(&path)?;
                    *removed += 1;
                }
            }
            Ok(())
        }
        let mut removed = 0;
        walk(&self.root, &mut removed)?;
        Ok(removed)
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(Error::invalid(format!("bad object key {key}")));
        }
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn create(&self, key: &str, _content_type: &str) -> Result<Box<dyn BlobWriter>> {
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a parent").to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(Error::storage)?;
        let tmp = dir.join(format!(
            ".{}.part",
            mailbridge_core::crypto::random_token(8)
        ));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(Error::storage)?;
        Ok(Box::new(FileWriter { file, tmp, path }))
    }

    fn locate(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

#[async_trait]
impl BlobReader for FileBlobStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(b.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::storage(e)),
        }
    }
}

/// A file written beside its final name and renamed over it when committed.
struct FileWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    path: PathBuf,
}

#[async_trait]
impl BlobWriter for FileWriter {
    async fn write(&mut self, piece: Bytes) -> Result<()> {
        self.file.write_all(&piece).await.map_err(Error::storage)
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.file.flush().await.map_err(Error::storage)?;
        self.file.sync_data().await.map_err(Error::storage)?;
        tokio::fs::rename(&self.tmp, &self.path)
            .await
            .map_err(Error::storage)
    }

    async fn abort(self: Box<Self>) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

/// Secrets sealed in `secrets.json` with a master key kept in `master.key` (mode 0600).
pub struct FileSecrets {
    file: PathBuf,
    key: SealingKey,
    lock: Mutex<()>,
}

fn io(e: std::io::Error) -> Error {
    Error::storage(format!("secrets file: {e}"))
}

impl FileSecrets {
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io)?;
        let key_path = dir.join("master.key");
        let key = match std::fs::read_to_string(&key_path) {
            Ok(k) => Secret::new(k),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = SealingKey::generate_base64();
                write_private(&key_path, k.expose().as_bytes())?;
                k
            }
            Err(e) => return Err(io(e)),
        };
        Ok(Self {
            file: dir.join("secrets.json"),
            key: SealingKey::from_base64(&key)?,
            lock: Mutex::new(()),
        })
    }

    /// Secrets sealed in `dir/secrets.json` with a key kept elsewhere (`serve`'s sealing key).
    pub fn open_with_key(dir: impl AsRef<Path>, key: SealingKey) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io)?;
        Ok(Self {
            file: dir.join("secrets.json"),
            key,
            lock: Mutex::new(()),
        })
    }

    /// Whether `dir` holds sealed secrets.
    pub fn exist_in(dir: impl AsRef<Path>) -> bool {
        dir.as_ref().join("secrets.json").exists()
    }

    fn read_all(&self) -> Result<BTreeMap<String, Sealed>> {
        match std::fs::read(&self.file) {
            Ok(b) => serde_json::from_slice(&b).map_err(Error::storage),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(e)),
        }
    }

    pub fn set(&self, name: &str, value: &Secret) -> Result<()> {
        let _g = self
            .lock
            .lock()
            .map_err(|_| Error::storage("secrets lock poisoned"))?;
        let mut all = self.read_all()?;
        all.insert(name.into(), self.key.seal(value.expose().as_bytes(), name)?);
        write_private(
            &self.file,
            &serde_json::to_vec_pretty(&all).map_err(Error::storage)?,
        )
    }

    pub fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.read_all()?.contains_key(name))
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn get(&self, name: &str) -> Result<Secret> {
        let all = self.read_all()?;
        let sealed = all.get(name).ok_or_else(|| Error::Config {
            code: "secret-missing".into(),
            reason: format!("no secret named {name}"),
        })?;
        let plain = self.key.open(sealed, name)?;
        Ok(Secret::new(
            String::from_utf8(plain).map_err(Error::storage)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn partial_files_of_a_killed_write_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileBlobStore::new(dir.path());
        let mut done = store
            .create("messages/m/a.eml", "message/rfc822")
            .await
            .unwrap();
        done.write(Bytes::from_static(b"kept")).await.unwrap();
        done.commit().await.unwrap();
        // Killed half-way: neither committed nor aborted.
        let mut cut = store
            .create("messages/m/b.eml", "message/rfc822")
            .await
            .unwrap();
        cut.write(Bytes::from_static(b"half")).await.unwrap();
        std::mem::forget(cut);
        assert_eq!(store.remove_unfinished().unwrap(), 1);
        assert_eq!(store.remove_unfinished().unwrap(), 0);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("messages/m"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["a.eml"]);
    }

    #[tokio::test]
    async fn secrets_are_sealed_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileSecrets::open(dir.path()).unwrap();
        s.set("client", &Secret::new("very-secret-value")).unwrap();
        let on_disk = std::fs::read_to_string(dir.path().join("secrets.json")).unwrap();
        assert!(!on_disk.contains("very-secret-value"));
        let again = FileSecrets::open(dir.path()).unwrap();
        assert_eq!(
            again.get("client").await.unwrap().expose(),
            "very-secret-value"
        );
        assert!(again.get("other").await.is_err());
    }

    #[tokio::test]
    async fn blobs_round_trip_and_refuse_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBlobStore::new(dir.path());
        b.put(
            "messages/m/x.eml",
            Bytes::from_static(b"raw\r\n"),
            "message/rfc822",
        )
        .await
        .unwrap();
        assert_eq!(
            b.get("messages/m/x.eml").await.unwrap().unwrap(),
            Bytes::from_static(b"raw\r\n")
        );
        assert!(b.put("../x", Bytes::new(), "x").await.is_err());
        assert!(b.get("messages/m/none").await.unwrap().is_none());
    }
}
