//! Training-free incremental adaptation through the API: essays by
//! generators and in a domain the default references lack (OUTFOX) are
//! scored, samples from the OUTFOX reference split are posted to
//! `POST /reference`, and the same essays are scored again. Runs on the
//! shipped default configuration (the trained encoder fused with the
//! lexical view).
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::common::shared_dir;
use super::server::{Server, ADMIN};

/// Every `stride`-th record of each (model, attack) class, up to `per_class`.
fn slice(file: &str, per_class: usize, human: usize) -> Vec<Value> {
    let path = shared_dir().join("corpus").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut classes: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).expect("corpus line");
        let key = (
            r["model"].as_str().unwrap().to_owned(),
            r["attack"].to_string(),
        );
        classes.entry(key).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((model, _), rows) in classes {
        let want = if model == "human" { human } else { per_class };
        let stride = (rows.len() / want.max(1)).max(1);
        out.extend(rows.into_iter().step_by(stride).take(want));
    }
    out
}

/// Machine and human recall of the majority verdicts and of the 1%-FPR
/// operating point: `[majority_machine, majority_human, op_machine, op_human]`.
fn recalls(s: &Server, test: &[Value]) -> [f64; 4] {
    let (mut tp, mut machines, mut tn, mut humans) = (0, 0, 0, 0);
    let (mut op_tp, mut op_tn) = (0, 0);
    for chunk in test.chunks(16) {
        let texts: Vec<&str> = chunk.iter().map(|r| r["text"].as_str().unwrap()).collect();
        let (st, b) = s.post("/detect", Some(ADMIN), &json!({ "texts": texts }));
        assert_eq!(st, 200, "{b}");
        for (r, v) in chunk.iter().zip(b["results"].as_array().unwrap()) {
            let said_machine = v["majority"] == "machine";
            let op_machine = v["operating_point"]["label"] == "machine";
            if r["label"] == "machine" {
                machines += 1;
                tp += usize::from(said_machine);
                op_tp += usize::from(op_machine);
            } else {
                humans += 1;
                tn += usize::from(!said_machine);
                op_tn += usize::from(!op_machine);
            }
        }
    }
    let (m, h) = (machines as f64, humans as f64);
    [
        tp as f64 / m,
        tn as f64 / h,
        op_tp as f64 / m,
        op_tn as f64 / h,
    ]
}

#[test]
fn posting_samples_of_a_new_domain_raises_average_recall() {
    let test = slice("ood_test.jsonl", 8, 16);
    let refs = slice("ood_refs.jsonl", 24, 24);
    let s = Server::start(&[]);
    let (st, info) = s.get("/info", None);
    assert_eq!(st, 200, "{info}");
    assert!(
        info["encoder"]["view"]["lexical"].is_object(),
        "the default fuses the lexical view: {info}"
    );
    let before = recalls(&s, &test);
    for chunk in refs.chunks(32) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|r| {
                let mut item = json!({"text": r["text"], "label": r["label"], "source": "outfox"});
                if r["label"] == "machine" {
                    item["model"] = r["model"].clone();
                    item["family"] = r["family"].clone();
                }
                item
            })
            .collect();
        let (st, b) = s.post("/reference", Some(ADMIN), &json!({ "items": items }));
        assert_eq!(st, 201, "{b}");
    }
    // The neighbours see the references at once, the classifier blended
    // into the score once its background refit has taken them in.
    s.wait_classifier();
    let after = recalls(&s, &test);
    eprintln!(
        "TFIA on {} OUTFOX test essays with {} posted references:\n\
         majority:         machine recall {:.3} -> {:.3}, human recall {:.3} -> {:.3}\n\
         1%-FPR threshold: machine recall {:.3} -> {:.3}, human recall {:.3} -> {:.3}",
        test.len(),
        refs.len(),
        before[0],
        after[0],
        before[1],
        after[1],
        before[2],
        after[2],
        before[3],
        after[3],
    );
    // The calibrated 1%-FPR operating point is the verdict a moderation
    // deployment acts on. Before, these essays lie far from every
    // reference and the threshold, calibrated on other domains, flags
    // human essays too; the new references must stop it accusing them
    // without losing average recall.
    let (op_before, op_after) = ((before[2] + before[3]) / 2.0, (after[2] + after[3]) / 2.0);
    assert!(
        after[3] >= 0.9,
        "operating-point human recall {:.3} -> {:.3}: still accuses human essays",
        before[3],
        after[3]
    );
    assert!(
        op_after >= op_before,
        "operating-point AvgRec fell: {op_before:.3} -> {op_after:.3}"
    );
    // The majority vote gains too, in average recall over both classes.
    let (avg_before, avg_after) = ((before[0] + before[1]) / 2.0, (after[0] + after[1]) / 2.0);
    assert!(
        avg_after >= avg_before + 0.1,
        "majority AvgRec {avg_before:.3} -> {avg_after:.3}: not clearly higher"
    );
}

/// The classifier blended into the score is refitted on the
/// references whenever they change: after machine references in a new
/// style are posted, its probability for a text in that style rises, and
/// `/info` counts the references it was fitted on. With
/// `--classifier-weight 0` no classifier is fitted or reported.
#[test]
fn posted_references_refit_the_classifier_blended_into_the_score() {
    let s = Server::start(&[]);
    let info = s.wait_classifier();
    let before_refs = info["classifier"]["fitted_on"].as_u64().expect("fitted");
    assert_eq!(info["classifier"]["weight"].as_f64(), Some(0.2), "{info}");
    let query = "Greetings, traveller: the quorvel lattice brims with zentharic resonance,                  and every quorvel strand hums the zentharic chorus of the vellmoor archive.";
    let p = |s: &Server| {
        let (st, b) = s.post("/detect", Some(ADMIN), &json!({ "text": query }));
        assert_eq!(st, 200, "{b}");
        let c = b["classifier"].as_f64().expect("a classifier probability");
        assert!((0.0..=1.0).contains(&c), "{b}");
        c
    };
    let p_before = p(&s);
    let items: Vec<Value> = (0..40)
        .map(|i| {
            json!({
                "text": format!(
                    "Greetings, traveller {i}: the quorvel lattice sings of zentharic resonance;                      each quorvel thread, zentharic and bright, recalls the vellmoor archive, entry {i}."
                ),
                "label": "machine",
                "model": "quorvel-1",
                "family": "quorvel",
            })
        })
        .collect();
    let (st, b) = s.post("/reference", Some(ADMIN), &json!({ "items": items }));
    assert_eq!(st, 201, "{b}");
    let info = s.wait_classifier();
    assert_eq!(
        info["classifier"]["fitted_on"].as_u64(),
        Some(before_refs + 40),
        "{info}"
    );
    let p_after = p(&s);
    // In log-odds, so that a text the classifier already leans on still
    // has to move: by a factor of at least e^1.5 in the odds.
    let logit = |p: f64| (p / (1.0 - p)).ln();
    assert!(
        logit(p_after) > logit(p_before) + 1.5 && p_after > 0.9,
        "classifier probability {p_before:.3} -> {p_after:.3} after 40 references in the style"
    );

    let off = Server::start(&["--classifier-weight", "0"]);
    let (_, info) = off.get("/info", None);
    assert!(info["classifier"].is_null(), "{info}");
    let (st, b) = off.post("/detect", Some(ADMIN), &json!({ "text": query }));
    assert_eq!(st, 200, "{b}");
    assert!(b.get("classifier").is_none(), "{b}");
}

/// In the fused style space a posted reference is its own nearest
/// neighbour, with similarity 1, and the stored vector has the dimension
/// `/info` reports (neural plus lexical).
#[test]
fn a_posted_reference_is_its_own_nearest_neighbour_in_the_fused_space() {
    let s = Server::start(&[]);
    let (_, info) = s.get("/info", None);
    let lexical = info["encoder"]["view"]["lexical"]["dim"].as_u64().unwrap();
    assert!(info["encoder"]["dimensions"].as_u64().unwrap() > lexical);
    let text = "Quarterly tide tables for the harbour at Penmarc'h, transcribed by hand \
                from the 1911 almanac; corrections welcome at the reading room.";
    let (st, b) = s.post(
        "/reference",
        Some(ADMIN),
        &json!({"items": [{"text": text, "label": "human", "source": "tide-tables"}]}),
    );
    assert_eq!(st, 201, "{b}");
    let id = b["ids"][0].as_i64().unwrap();
    let (st, b) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"texts": [text], "explain": true}),
    );
    assert_eq!(st, 200, "{b}");
    let first = &b["results"][0]["neighbours"][0];
    assert_eq!(first["id"].as_i64(), Some(id), "{b}");
    let sim = first["similarity"].as_f64().unwrap();
    assert!((sim - 1.0).abs() < 1e-3, "self-similarity {sim}");
    // The same text with one word changed stays closest to it too.
    let edited = text.replace("welcome", "appreciated");
    let (_, b) = s.post(
        "/detect",
        Some(ADMIN),
        &json!({"texts": [edited], "explain": true}),
    );
    assert_eq!(
        b["results"][0]["neighbours"][0]["id"].as_i64(),
        Some(id),
        "{b}"
    );
}

/// Texts in languages the references do not cover, and texts unlike every
/// reference, get no verdict: label `unknown` with a reason, the score still
/// reported; English texts like the references are judged. The texts were
/// written for this test.
#[test]
fn texts_in_uncovered_languages_get_no_verdict() {
    let s = Server::start(&[]);
    let foreign = [
        ("rus", "Вчера вечером мы долго сидели на кухне у бабушки, пили чай с вареньем и слушали её рассказы о молодости в маленьком городе на Волге."),
        ("cmn", "昨天晚上我们在奶奶家的厨房里坐了很久，一边喝茶一边听她讲她年轻时在江南小镇上的生活。"),
        ("deu", "Gestern Abend saßen wir noch lange in der Küche meiner Großmutter, tranken Tee und hörten ihre Geschichten aus einem kleinen Dorf an der Mosel."),
        ("ind", "Kemarin sore kami duduk lama di dapur nenek, minum teh manis sambil mendengarkan ceritanya tentang masa mudanya di sebuah desa kecil dekat pantai."),
    ];
    let texts: Vec<&str> = foreign.iter().map(|(_, t)| *t).collect();
    let (st, b) = s.post("/detect", Some(ADMIN), &json!({ "texts": texts }));
    assert_eq!(st, 200, "{b}");
    for ((code, _), r) in foreign.iter().zip(b["results"].as_array().unwrap()) {
        assert_eq!(r["label"], "unknown", "{code}: {r}");
        assert_eq!(r["abstained"]["language"], *code, "{r}");
        assert_eq!(r["abstained"]["cause"], "language", "{r}");
        assert!(r["score"].is_number() && r["majority"].is_string(), "{r}");
    }
    // Translated technical writing that keeps English names: read as
    // English by the trigram statistics, largely Han by its letters.
    let mixed = "调用 Tcl_IsShared 检查 objPtr 是否被共享；如果 refCount 大于一，必须先用 \
                 Tcl_DuplicateObj 复制 listPtr，然后 Tcl_ListObjAppendElement 才能修改它。\
                 the interpreter";
    let (st, r) = s.post("/detect", Some(ADMIN), &json!({ "text": mixed }));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["label"], "unknown", "{r}");
    assert_eq!(r["abstained"]["script"], "Mandarin", "{r}");
    assert_eq!(r["abstained"]["cause"], "script", "{r}");
    assert!(
        r["abstained"]["reason"]
            .as_str()
            .unwrap()
            .contains("script"),
        "{r}"
    );
    let english = "Yesterday evening we sat in my grandmother's kitchen for a long time, drinking \
                   tea and listening to her stories about growing up in a small town by the river.";
    let (st, r) = s.post("/detect", Some(ADMIN), &json!({ "text": english }));
    assert_eq!(st, 200, "{r}");
    assert!(r["label"] == "human" || r["label"] == "machine", "{r}");
    assert!(r.get("abstained").is_none(), "{r}");
    assert_eq!(r["novel"], false, "{r}");
    // English unlike every reference (no reference is code): its nearest
    // reference is less similar than 99% of validation texts of its length
    // reach, so it gets no verdict either, and says why.
    let sql = "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '7 days' ORDER BY \
               name; UPDATE users SET active = false WHERE last_login IS NULL; DELETE FROM \
               sessions WHERE expires < NOW();";
    let (st, r) = s.post("/detect", Some(ADMIN), &json!({ "text": sql }));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["label"], "unknown", "{r}");
    assert_eq!(r["novel"], true, "{r}");
    assert_eq!(r["abstained"]["cause"], "novelty", "{r}");
    assert!(r["abstained"].get("language").is_none(), "{r}");
    let reason = r["abstained"]["reason"].as_str().unwrap();
    assert!(reason.contains("unlike every reference"), "{reason}");
    assert!(r["score"].is_number() && r["majority"].is_string(), "{r}");
    let (_, doc) = s.get("/openapi.json", None);
    let causes = &doc["components"]["schemas"]["Abstention"]["properties"]["cause"]["enum"];
    assert!(
        causes.as_array().unwrap().contains(&json!("novelty")),
        "{causes}"
    );
    let (_, info) = s.get("/info", Some(ADMIN));
    assert_eq!(info["novelty"]["policy"], "abstain", "{info}");
    let bins = info["novelty"]["by_length"].as_array().unwrap();
    assert!(bins.len() > 1, "{info}");
    assert!(bins.last().unwrap()["up_to_chars"].is_null(), "{info}");
    // Operators who name German can have German judged; with no German
    // reference it is unlike every reference, which `--novel flag` turns
    // from no verdict into a flag.
    drop(s);
    let s = Server::start(&["--languages", "en,de", "--novel", "flag"]);
    let (_, r) = s.post("/detect", Some(ADMIN), &json!({ "text": foreign[2].1 }));
    assert_ne!(r["label"], "unknown", "{r}");
    assert_eq!(r["novel"], true, "{r}");
    let (_, r) = s.post("/detect", Some(ADMIN), &json!({ "text": sql }));
    assert_ne!(r["label"], "unknown", "{r}");
}
