//! The analysis scripts on inputs whose results are known by hand:
//! `scripts/blend_scores.py` on a scores file (the format `detective eval
//! --scores` writes), `scripts/foreign_human_set.py`, and
//! `scripts/average_weights.py` on two small safetensors models.
use std::path::PathBuf;

use crate::common::{script, venv_python};

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
    let out = venv_python()
        .arg(script("blend_scores.py"))
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

/// `scripts/foreign_human_set.py` keeps a paragraph of a translated manual
/// page only when it is in the page's language: what a translation left in
/// English is dropped, English pages keep English, headings and short
/// lines are not paragraphs. Runs its functions on rendered text written
/// for this test (no package is downloaded).
#[test]
fn foreign_human_set_keeps_paragraphs_in_the_pages_language() {
    let check = r#"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("fhs", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
german = ("Gestern Abend saßen wir noch lange in der Küche meiner Großmutter, tranken Tee "
          "und hörten zu, wie sie von ihrer Jugend in einem kleinen Dorf an der Mosel erzählte. "
          "Niemand wollte nach Hause gehen, bevor die Geschichte zu Ende war.")
english = ("The ruleset then needs to handle both of these kinds of actions, and it is the "
           "caller that decides which of them are allowed for the files that the program opens "
           "after the call has returned, so nothing it does later can widen them again.")
han = ("昨天晚上我们在奶奶家的厨房里坐了很久，一边喝茶一边听她讲她年轻时在江南小镇上的生活，"
       "窗外一直下着小雨，谁也不想回家。" * 5)
latin_in_zh = "rsync --recursive --links --perms --times source destination 复制 " * 4
rendered = "NAME\n       " + german[:90] + "\n       " + german[90:] + "\n\nSEE ALSO\n       ls(1)\n"
paras = list(m.paragraphs(rendered))
assert paras == [german, "ls(1)"], paras  # headings are not paragraphs
assert m.usable(german, "de")
assert not m.usable(english, "de"), "an untranslated paragraph is English"
assert m.usable(english, "en")
assert m.usable(han, "zh")
assert not m.usable(latin_in_zh, "zh"), "mostly Latin letters"
assert not m.usable("Kurz.", "de"), "too short"
print("ok")
"#;
    let out = venv_python()
        .args(["-c", check])
        .arg(script("foreign_human_set.py"))
        .output()
        .expect("run .venv/bin/python (scripts/setup)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A safetensors file of one tensor `w`.
fn safetensors(dtype: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let header =
        serde_json::json!({"w": {"dtype": dtype, "shape": shape, "data_offsets": [0, data.len()]}})
            .to_string()
            .into_bytes();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

#[test]
fn average_weights_takes_the_mean_of_f16_and_f32_models_and_refuses_other_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let model = |name: &str, file: Vec<u8>| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(d.join("weights")).unwrap();
        std::fs::write(d.join("weights/model.safetensors"), file).unwrap();
        d
    };
    let f32s: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    // 3, 4, 5, 6 in IEEE half precision.
    let f16s: Vec<u8> = [0x4200u16, 0x4400, 0x4500, 0x4600]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let a = model("a", safetensors("F32", &[2, 2], &f32s));
    let b = model("b", safetensors("F16", &[2, 2], &f16s));
    let odd = model("odd", safetensors("F32", &[4], &f32s));
    let like = dir.path().join("like");
    std::fs::create_dir_all(&like).unwrap();
    std::fs::write(like.join("config.json"), "{}").unwrap();
    std::fs::write(like.join("model.safetensors"), b"replaced").unwrap();
    let run = |models: &[&PathBuf], out: &std::path::Path| {
        venv_python()
            .arg(script("average_weights.py"))
            .arg("--out")
            .arg(out)
            .arg("--like")
            .arg(&like)
            .args(models)
            .output()
            .expect("run .venv/bin/python (scripts/setup)")
    };
    let out = dir.path().join("mean");
    let done = run(&[&a, &b], &out);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("config.json")).unwrap(),
        "{}"
    );
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["w"]["dtype"], "F32");
    assert_eq!(header["w"]["shape"], serde_json::json!([2, 2]));
    let values: Vec<f32> = bytes[8 + n..]
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, [2.0, 3.0, 4.0, 5.0]);

    let refused = run(&[&a, &odd], &dir.path().join("never"));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has shape [4], not [2, 2]"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!dir.path().join("never").exists());
}
