//! `scripts/blend_scores.py` on a scores file whose figures are known by
//! hand (the format `detective eval --scores` writes).
use std::path::PathBuf;
use std::process::Command;

fn line(label: &str, majority: &str, neighbours: f64, classifier: f64) -> String {
    serde_json::json!({
        "record": 1,
        "group": null,
        "label": label,
        "family": null,
        "domain": null,
        "majority": majority,
        "machine_votes": 3,
        "k": 5,
        "neighbours_score": neighbours,
        "classifier": classifier,
        "score": 0.8 * neighbours + 0.2 * classifier,
        "nearest_similarity": 0.9,
    })
    .to_string()
}

#[test]
fn blend_scores_reports_auroc_tpr_and_avg_rec_per_weight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    // Neighbours alone: machine 0.9, 0.6; human 0.4, 0.7. Classifier alone:
    // machine 1.0, 0.8; human 0.0, 0.2 (it separates them perfectly).
    let lines = [
        line("machine", "machine", 0.9, 1.0),
        line("machine", "human", 0.6, 0.8),
        line("human", "human", 0.4, 0.0),
        line("human", "machine", 0.7, 0.2),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/blend_scores.py"))
        .arg(&path)
        .args(["--weights", "0,1"])
        .output()
        .expect("run .venv/bin/python (scripts/setup)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One of two right in each class.
    assert!(stdout.contains("majority label AvgRec 50.00"), "{stdout}");
    // Weight 0: 3 of 4 machine-human pairs ordered right; at 1% FPR the
    // threshold is the highest human score (0.7), which only 0.9 passes;
    // at 0.5 both machine texts and one human text of two are right.
    assert!(
        stdout.contains("| 0.00 | 0.7500 | 0.500 | 75.00 | 75.00 (at 0.41) |"),
        "{stdout}"
    );
    // Weight 1: the classifier separates every pair; the lowest threshold
    // that does is just above the highest human score (0.2).
    assert!(
        stdout.contains("| 1.00 | 1.0000 | 1.000 | 100.00 | 100.00 (at 0.21) |"),
        "{stdout}"
    );
}
