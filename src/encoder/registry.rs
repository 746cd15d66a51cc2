//! Where model files live and how they are checked.
//!
//! A model is named (`minilm`, `mpnet`, ...) or given as a directory. A named
//! model is `models/NAME/manifest.json` (tracked in git: source package,
//! checksums, architecture, license) plus `models/NAME/weights/` (placed there
//! by `scripts/setup`, never downloaded at run time). Every file the manifest
//! lists is verified by SHA-256 before it is used.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::EncoderError;

/// Files an encoder directory must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub license: String,
    /// Truncation length the model was trained with: its default.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Default style view (lexical view and its weight) for this model.
    #[serde(default)]
    pub view: Option<super::View>,
    /// SHA-256 of every file in `weights/`, by file name.
    pub files: BTreeMap<String, String>,
}

/// A resolved model: its directory of weights and, when known, its manifest.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Option<Manifest>,
}

impl ModelFiles {
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// Folders searched for named models, in order: `$DETECTIVE_MODELS`,
/// `./models`, and the `models/` folder of the source tree the binary was
/// built from.
pub fn model_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os("DETECTIVE_MODELS") {
        roots.push(PathBuf::from(dir));
    }
    roots.push(PathBuf::from("models"));
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    roots
}

/// Resolves a model name or directory and verifies its files.
pub fn resolve(spec: &str) -> Result<ModelFiles, EncoderError> {
    let as_dir = Path::new(spec);
    let files = if as_dir.is_dir() {
        from_dir(as_dir)?
    } else if spec.contains('/') {
        return Err(EncoderError::UnknownModel {
            spec: spec.to_owned(),
            known: known_models(),
        });
    } else {
        let root = model_roots()
            .into_iter()
            .find(|r| r.join(spec).join("manifest.json").is_file())
            .ok_or_else(|| EncoderError::UnknownModel {
                spec: spec.to_owned(),
                known: known_models(),
            })?;
        from_dir(&root.join(spec))?
    };
    verify(&files)?;
    Ok(files)
}

/// The manifest's `max_length` for a named model or model directory, without
/// verifying its files.
pub fn default_max_length(spec: &str) -> Option<usize> {
    manifest_of(spec)?.max_length
}

/// The style view a model's manifest names as its default (the neural view
/// alone when it names none).
pub fn default_view(spec: &str) -> Option<super::View> {
    manifest_of(spec)?.view
}

fn manifest_of(spec: &str) -> Option<Manifest> {
    let dir = Path::new(spec);
    let dir = if dir.is_dir() {
        dir.to_owned()
    } else {
        model_roots()
            .into_iter()
            .map(|r| r.join(spec))
            .find(|d| d.join("manifest.json").is_file())?
    };
    from_dir(&dir).ok()?.manifest
}

fn from_dir(dir: &Path) -> Result<ModelFiles, EncoderError> {
    let manifest_path = dir.join("manifest.json");
    if manifest_path.is_file() {
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|source| EncoderError::Read {
                path: manifest_path.clone(),
                source,
            })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| EncoderError::Config {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        return Ok(ModelFiles {
            name: manifest.name.clone(),
            dir: dir.join("weights"),
            manifest: Some(manifest),
        });
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    Ok(ModelFiles {
        name,
        dir: dir.to_owned(),
        manifest: None,
    })
}

fn verify(files: &ModelFiles) -> Result<(), EncoderError> {
    for file in REQUIRED_FILES {
        if !files.path(file).is_file() {
            return Err(EncoderError::MissingFile {
                model: files.name.clone(),
                path: files.path(file),
            });
        }
    }
    let Some(manifest) = &files.manifest else {
        return Ok(());
    };
    for (file, expected) in &manifest.files {
        let path = files.path(file);
        if !path.is_file() {
            return Err(EncoderError::MissingFile {
                model: files.name.clone(),
                path,
            });
        }
        let actual = sha256_file(&path)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(EncoderError::Checksum {
                path,
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String, EncoderError> {
    let read_err = |source| EncoderError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Names of the models with a manifest in any model root.
pub fn known_models() -> Vec<String> {
    let mut names: Vec<String> = model_roots()
        .iter()
        .filter_map(|r| std::fs::read_dir(r).ok())
        .flatten()
        .flatten()
        .filter(|e| e.path().join("manifest.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}
