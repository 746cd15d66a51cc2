//! `serve`'s secrets: the bootstrap key from the environment or a file,
//! checked for length, and a fresh store's first admin key written to an
//! owner-only file, never to the log.
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::common::sqlite_file;
use super::serve::ServeArgs;
use crate::detect::keys::{create_key, Scope};
use crate::store::Store;

/// Shortest bootstrap key accepted.
pub const MIN_ADMIN_KEY_CHARS: usize = 24;

impl ServeArgs {
    /// The bootstrap key, from the environment, the command line or its
    /// file, checked for length.
    pub(super) fn admin_key(&self) -> anyhow::Result<Option<String>> {
        let key = match (&self.admin_key, &self.admin_key_file) {
            (Some(k), _) => {
                if std::env::var("DETECTIVE_ADMIN_KEY").ok().as_deref() != Some(k) {
                    eprintln!(
                        "warning: --admin-key on the command line is visible in the process \
                         list; set DETECTIVE_ADMIN_KEY or use --admin-key-file"
                    );
                }
                Some(k.clone())
            }
            (None, Some(path)) => {
                let raw = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --admin-key-file {}", path.display()))?;
                Some(raw.trim().to_owned())
            }
            (None, None) => None,
        };
        if let Some(k) = &key {
            let n = k.chars().count();
            anyhow::ensure!(
                n >= MIN_ADMIN_KEY_CHARS && !k.chars().any(char::is_whitespace),
                "the admin key must be at least {MIN_ADMIN_KEY_CHARS} characters without spaces \
                 (it has {n}); for example `openssl rand -hex 24`"
            );
        }
        Ok(key)
    }

    /// Where a fresh store's first admin key goes.
    pub(super) fn bootstrap_key_path(&self) -> PathBuf {
        if let Some(p) = &self.bootstrap_key_file {
            return p.clone();
        }
        sqlite_file(&self.store.db)
            .and_then(|file| Path::new(file).parent())
            .unwrap_or(Path::new(""))
            .join("detective-admin.key")
    }
}

/// With no admin key in the environment and no key in the store, creates an
/// admin key so that a fresh install is usable at once. The key goes to a
/// file only its owner can read, never to the log.
pub(super) async fn bootstrap_key(
    store: &dyn Store,
    env_key: bool,
    path: &Path,
) -> anyhow::Result<()> {
    if env_key || !store.list_keys().await?.is_empty() {
        return Ok(());
    }
    let (_, key) = create_key(store, "bootstrap", &[Scope::Admin]).await?;
    write_secret(path, &key)
        .with_context(|| format!("cannot write the new admin key to {}", path.display()))?;
    eprintln!(
        "created an admin API key in {} (readable only by its owner): \
         export KEY=$(cat {})",
        path.display(),
        path.display()
    );
    Ok(())
}

/// Writes `secret` to a new owner-only file (replacing an older one).
fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    writeln!(f, "{secret}")?;
    f.sync_all()
}
