use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};

use detective::config::EncoderConfig;
use detective::encoder::Encoder;
use serde::Deserialize;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shared_dir() -> PathBuf {
    std::env::var_os("DETECTIVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"))
}

pub fn models_dir() -> PathBuf {
    root().join("models")
}

/// `scripts/NAME`.
pub fn script(name: &str) -> PathBuf {
    root().join("scripts").join(name)
}

/// The set-up's Python (`.venv/bin/python`, installed by `scripts/setup`),
/// unbuffered, to run a script or `-c` code.
pub fn venv_python() -> Command {
    let mut cmd = Command::new(root().join(".venv/bin/python"));
    cmd.env("PYTHONUNBUFFERED", "1");
    cmd
}

#[derive(Debug, Deserialize)]
pub struct Golden {
    pub cases: Vec<GoldenCase>,
}

#[derive(Debug, Deserialize)]
pub struct GoldenCase {
    pub case: String,
    pub max_length: usize,
    pub text: String,
    pub input_ids: Vec<i64>,
    pub embedding: Vec<f32>,
}

#[track_caller]
pub fn golden(file: &str) -> Golden {
    let path = shared_dir().join("fixtures").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture parses")
}

#[track_caller]
pub fn load_encoder(model: &str, max_length: usize) -> Encoder {
    let cfg = EncoderConfig {
        model: models_dir().join(model).display().to_string(),
        max_length,
        ..EncoderConfig::default()
    };
    Encoder::load(&cfg).unwrap_or_else(|e| panic!("load {model}: {e} (run scripts/setup)"))
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_detective")
}

/// A free loopback port (for a helper process the test starts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A helper process, killed and reaped when the test ends (or panics).
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
