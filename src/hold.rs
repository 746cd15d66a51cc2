//! A brake for drills: while the file named by `DETECTIVE_HOLD_FILE` exists,
//! the encoder thread holds each batch it has taken before encoding it,
//! `serve` holds just before it declares itself ready, and `import` holds
//! after each committed batch. A drill (or a test)
//! can then keep the service busy or starting for exactly as long as it
//! chooses: a saturated queue, a shutdown with work in flight, requests
//! during start-up. Unset, it costs one branch per batch.
//!
//! A hold file whose content is `panic` makes the point panic instead of
//! holding: the drill for a dying encoder thread. One whose content is
//! `only POINT` holds at that point alone; `only insert` (the one point held only
//! when named) holds a reference
//! write inside its transaction, after its rows and before the commit (the
//! drill for a crash mid-write).
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

fn path() -> Option<&'static PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::var_os("DETECTIVE_HOLD_FILE")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    })
    .as_ref()
}

/// Blocks the calling thread while the hold file exists; logs `held at
/// {point}` when it starts waiting and `released at {point}`.
pub fn wait(point: &str) {
    let Some(path) = path() else { return };
    if !path.exists() {
        return;
    }
    let content = std::fs::read(path).unwrap_or_default();
    let content = content.trim_ascii();
    if content == b"panic" {
        panic!("drill: the hold file asks {point} to panic");
    }
    if content
        .strip_prefix(b"only ")
        .is_some_and(|only| only != point.as_bytes())
    {
        return;
    }
    hold(path, point);
}

/// Like [`wait`], for a point held only when the hold file names it
/// (`only POINT`).
pub fn wait_named(point: &str) {
    let Some(path) = path() else { return };
    let named = std::fs::read(path)
        .is_ok_and(|c| c.trim_ascii().strip_prefix(b"only ") == Some(point.as_bytes()));
    if named {
        hold(path, point);
    }
}

fn hold(path: &std::path::Path, point: &str) {
    tracing::warn!(path = %path.display(), "held at {point}");
    while path.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::warn!("released at {point}");
}
