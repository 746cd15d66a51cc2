//! Don't accuse what you cannot judge: texts in languages the references do
//! not cover get no verdict.
//!
//! The references (and the encoder) know some languages; a text in another
//! one lands far from every reference and its neighbours vote on style they
//! cannot compare, which in practice calls human writing machine-made. The
//! language is identified with `whatlang` (trigram statistics, no model
//! files); when the identification is reliable and the language is not one
//! of the covered ones, the detection abstains: `label: "unknown"` with a
//! reason a moderator can read, the score still reported. A text written
//! largely in a script none of the covered languages uses (Cyrillic or Han
//! beside English, say) abstains too, even where a mix of scripts leaves
//! the identification unreliable: such mixed texts (translated technical
//! writing that keeps English commands and names) are what the trigram
//! statistics most often misread as English.
use std::collections::BTreeSet;

use serde::Serialize;
use whatlang::{Lang, Script};

/// Characters of a text read to identify its language.
const SAMPLE_CHARS: usize = 2_000;
/// Letters (of a known script) a text needs before its scripts are judged.
const MIN_SCRIPT_LETTERS: usize = 20;
/// Share of those letters in scripts no covered language uses from which
/// a text abstains.
const FOREIGN_SCRIPT_SHARE: f64 = 0.2;

/// What made a detection abstain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// A language the references do not cover.
    Language,
    /// A script the covered languages are not written in.
    Script,
    /// Unlike every reference (see [`super::novelty`]).
    Novelty,
}

/// Why a detection gave no verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Abstention {
    pub cause: Cause,
    /// ISO 639-3 code of the identified language (`und` when the text's
    /// language could not be told, only its script); absent when the
    /// language was not the cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The script that made it abstain, when it was the script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    pub reason: String,
}

/// The languages verdicts are given for.
#[derive(Debug, Clone, PartialEq)]
pub enum Languages {
    /// Every text gets a verdict.
    Any,
    /// ISO 639-3 codes (`eng`, `deu`, ...).
    Only(BTreeSet<&'static str>),
}

impl Default for Languages {
    /// The shipped references are English.
    fn default() -> Self {
        Self::Only(BTreeSet::from(["eng"]))
    }
}

/// Two-letter codes of common languages, accepted beside whatlang's
/// three-letter ones.
const TWO_LETTER: &[(&str, &str)] = &[
    ("en", "eng"),
    ("de", "deu"),
    ("fr", "fra"),
    ("es", "spa"),
    ("it", "ita"),
    ("pt", "por"),
    ("nl", "nld"),
    ("ru", "rus"),
    ("uk", "ukr"),
    ("pl", "pol"),
    ("tr", "tur"),
    ("ar", "ara"),
    ("zh", "cmn"),
    ("ja", "jpn"),
    ("ko", "kor"),
    ("hi", "hin"),
    ("id", "ind"),
    ("vi", "vie"),
    ("sv", "swe"),
    ("cs", "ces"),
];

impl Languages {
    /// `any`, or a comma-separated list of ISO 639-3 codes (or common
    /// two-letter ones): `eng`, `en,de`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        if spec.trim() == "any" {
            return Ok(Self::Any);
        }
        let mut set = BTreeSet::new();
        for code in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let three = TWO_LETTER
                .iter()
                .find(|(two, _)| *two == code)
                .map_or(code, |(_, three)| three);
            let lang = Lang::from_code(three).ok_or_else(|| {
                format!("unknown language {code:?} (ISO 639-3 codes such as eng, deu, or any)")
            })?;
            set.insert(lang.code());
        }
        if set.is_empty() {
            return Err("name at least one language, or any".into());
        }
        Ok(Self::Only(set))
    }

    /// Whether to abstain on `text`, and why.
    pub fn judge(&self, text: &str) -> Option<Abstention> {
        let Self::Only(covered) = self else {
            return None;
        };
        let end = text
            .char_indices()
            .nth(SAMPLE_CHARS)
            .map_or(text.len(), |(i, _)| i);
        let sample = &text[..end];
        let info = whatlang::detect(sample);
        let lang = match info {
            Some(info) if info.is_reliable() => info.lang(),
            _ => return foreign_script(sample, covered),
        };
        if covered.contains(lang.code()) {
            return foreign_script(sample, covered);
        }
        Some(Abstention {
            cause: Cause::Language,
            language: Some(lang.code().to_owned()),
            script: None,
            reason: format!(
                "the text is in {} ({}), a language the references do not cover ({}): \
                 no verdict; add references in it to judge such texts",
                lang.eng_name(),
                lang.code(),
                covered.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Any => "any".into(),
            Self::Only(set) => set.iter().copied().collect::<Vec<_>>().join(","),
        }
    }
}

/// Abstention when at least [`FOREIGN_SCRIPT_SHARE`] of the text's letters
/// are in scripts that none of the `covered` languages is written in.
fn foreign_script(text: &str, covered: &BTreeSet<&'static str>) -> Option<Abstention> {
    let mut counts: Vec<(Script, usize)> = Vec::new();
    let mut buf = [0u8; 4];
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        let Some(script) = whatlang::detect_script(c.encode_utf8(&mut buf)) else {
            continue;
        };
        match counts.iter_mut().find(|(s, _)| *s == script) {
            Some((_, n)) => *n += 1,
            None => counts.push((script, 1)),
        }
    }
    let letters: usize = counts.iter().map(|(_, n)| n).sum();
    if letters < MIN_SCRIPT_LETTERS {
        return None;
    }
    let writes_covered = |s: &Script| s.langs().iter().any(|l| covered.contains(l.code()));
    counts.retain(|(s, _)| !writes_covered(s));
    let share = counts.iter().map(|(_, n)| n).sum::<usize>() as f64 / letters as f64;
    if share < FOREIGN_SCRIPT_SHARE {
        return None;
    }
    let (script, _) = counts.iter().max_by_key(|(_, n)| *n)?;
    Some(Abstention {
        cause: Cause::Script,
        language: Some("und".into()),
        script: Some(script.name().to_owned()),
        reason: format!(
            "{:.0}% of the text's letters are in {} script, which the languages the \
             references cover ({}) are not written in: no verdict; add references in its \
             language to judge such texts",
            100.0 * share,
            script.name(),
            covered.iter().copied().collect::<Vec<_>>().join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Human texts written for this test, in languages and scripts the
    /// shipped references lack.
    pub const FOREIGN: &[(&str, &str)] = &[
        ("rus", "Вчера вечером мы долго сидели на кухне у бабушки, пили чай с вареньем и слушали, как она рассказывает о своей молодости в маленьком городе на Волге."),
        ("deu", "Gestern Abend saßen wir noch lange in der Küche meiner Großmutter, tranken Tee und hörten zu, wie sie von ihrer Jugend in einem kleinen Dorf an der Mosel erzählte."),
        ("cmn", "昨天晚上我们在奶奶家的厨房里坐了很久，一边喝茶一边听她讲她年轻时在江南小镇上的生活，窗外一直下着小雨。"),
        ("ind", "Kemarin sore kami duduk lama di dapur nenek, minum teh manis sambil mendengarkan ceritanya tentang masa mudanya di sebuah desa kecil dekat pantai."),
        ("spa", "Ayer por la tarde nos quedamos mucho tiempo en la cocina de la abuela, tomando té y escuchando sus historias de cuando era joven en un pueblo pequeño."),
        ("fra", "Hier soir, nous sommes restés longtemps dans la cuisine de ma grand-mère à boire du thé en écoutant les histoires de sa jeunesse dans un petit village."),
        ("jpn", "昨日の夜、私たちは祖母の台所で長い間お茶を飲みながら、彼女が若い頃に住んでいた小さな町の話を聞いていました。"),
    ];

    #[test]
    fn foreign_texts_abstain_and_english_ones_do_not() {
        let langs = Languages::default();
        for (code, text) in FOREIGN {
            let a = langs
                .judge(text)
                .unwrap_or_else(|| panic!("no abstention for {code}"));
            assert_eq!(a.language.as_deref(), Some(*code));
            assert!(a.reason.contains("no verdict"), "{}", a.reason);
        }
        let english = "Yesterday evening we sat in my grandmother's kitchen for a long time, \
                       drinking tea and listening to her stories about growing up in a small town.";
        assert_eq!(langs.judge(english), None);
        assert_eq!(Languages::Any.judge(FOREIGN[0].1), None);
    }

    #[test]
    fn covered_languages_are_judged() {
        let langs = Languages::parse("en,de").unwrap();
        assert_eq!(langs.judge(FOREIGN[1].1), None);
        assert!(langs.judge(FOREIGN[0].1).is_some());
        assert_eq!(Languages::parse("eng").unwrap(), Languages::default());
        assert!(Languages::parse("xx").is_err());
        assert!(Languages::parse(",").is_err());
        assert_eq!(Languages::parse("any").unwrap(), Languages::Any);
    }

    #[test]
    fn unreliable_identifications_do_not_abstain() {
        // Too short to tell: a verdict, not an abstention.
        assert_eq!(Languages::default().judge("ok"), None);
        assert_eq!(Languages::default().judge("Привет, как дела?"), None);
    }

    #[test]
    fn texts_largely_in_an_uncovered_script_abstain() {
        // Translated technical writing that keeps English commands: the
        // trigrams see mostly English, the letters are largely Han.
        let mixed = "调用 Tcl_IsShared 检查 objPtr 是否被共享；如果 refCount 大于一，必须先用 \
                     Tcl_DuplicateObj 复制 listPtr，然后 Tcl_ListObjAppendElement 才能修改它。\
                     the interpreter";
        assert_eq!(
            whatlang::detect(mixed).map(|i| (i.lang(), i.is_reliable())),
            Some((Lang::Eng, true)),
            "the trigram statistics misread it as English"
        );
        let a = Languages::default().judge(mixed).expect("abstains");
        assert_eq!(a.script.as_deref(), Some("Mandarin"), "{a:?}");
        assert!(a.reason.contains("Mandarin script"), "{}", a.reason);
        // The same text is judged once its language is covered.
        assert_eq!(Languages::parse("en,zh").unwrap().judge(mixed), None);
        // A few foreign letters in an English text change nothing.
        let quoted = "The café on the corner serves a dish the owner calls 小笼包, which are \
                      soup dumplings, and it has been full every morning since it opened.";
        assert_eq!(Languages::default().judge(quoted), None);
        let greek = "Ο παππούς μου έλεγε πάντα ιστορίες για τη θάλασσα και τα ταξίδια του \
                     with the fishermen of the island, late into the summer nights.";
        let a = Languages::default().judge(greek).expect("abstains");
        assert!(
            a.script.is_some() || a.language.as_deref() == Some("ell"),
            "{a:?}"
        );
    }
}
